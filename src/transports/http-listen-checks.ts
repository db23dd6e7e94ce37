import type { Config } from '../config.js';
import { isSecureEndpoint } from '../http/oidc.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export const isLoopback = (host: string) => LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);

/**
 * Refusals before HTTP mode listens (issue 9): each names what is wrong and the setting that fixes it.
 * - A non-loopback bind without TLS: cookies ignore ports, so any page on that host could plant
 *   sign-in and binding cookies, and bearer tokens cross the network in clear text.
 * - A loopback APP_REDIRECT_URI on another port than `--port`: this server would advertise
 *   (protected-resource metadata, callback) whatever listens there, e.g. another local copy.
 *   A public URL off loopback may sit behind a proxy on any port: that is legitimate.
 * - A plain-http OIDC_ISSUER off loopback: refused here rather than at the first sign-in or token.
 */
export function httpListenProblem(config: Config): string | undefined {
  const publicUrl = new URL(config.appRedirectUri);
  if (!isLoopback(config.host) && publicUrl.protocol !== 'https:' && !config.allowInsecureHttp) {
    return (
      `refusing to serve on ${config.host} without TLS: APP_REDIRECT_URI is ${config.appRedirectUri}, so bearer tokens and sign-in cookies would cross the network in clear text and another page on that host could plant cookies. ` +
      'Put a TLS-terminating proxy in front and set APP_REDIRECT_URI to its https:// URL, or listen on 127.0.0.1 (--host 127.0.0.1); ' +
      'on a trusted lab network only, set DINGTALK_MCP_ALLOW_INSECURE_HTTP=1.'
    );
  }
  // The identity provider client's own rule (src/http/oidc.ts), so what starts here also works at the first sign-in.
  if (config.oidcIssuer && !isSecureEndpoint(config.oidcIssuer)) {
    return (
      `OIDC_ISSUER is ${config.oidcIssuer}: plain http is allowed only on loopback (the sandbox's identity provider), because this server reads the keys that sign bearer tokens from it and sends sign-in codes to it. ` +
      "Use the identity provider's https:// issuer URL."
    );
  }
  const publicPort = Number(publicUrl.port || (publicUrl.protocol === 'https:' ? 443 : 80));
  if (isLoopback(publicUrl.hostname) && publicPort !== config.port && !config.publicUrlProxied) {
    return (
      `APP_REDIRECT_URI is ${config.appRedirectUri} (port ${publicPort}) but --port is ${config.port}: clients would be sent to whatever listens on port ${publicPort}. ` +
      `Use --port ${publicPort}, or set APP_REDIRECT_URI=${publicUrl.protocol}//${publicUrl.hostname}:${config.port} (and register its /callback), ` +
      `or, if a proxy on this machine forwards port ${publicPort} to ${config.port}, set DINGTALK_MCP_PUBLIC_URL_PROXIED=1.`
    );
  }
  return undefined;
}
