import express, { type Request, type Response } from 'express';
import type { PendingAuthorization } from '../authorization/pending.js';
import type { Signer } from '../authorization/signer.js';
import type { Logger } from '../log.js';
import type { OnceMarks } from '../state/types.js';
import { gatewayUser } from './caller.js';
import type { AuthorizationRequest, OidcProvider } from './oidc.js';
import { sendPage, setPageSecurityHeaders } from '../browser/pages.js';

// One cookie per sign-in in progress and per authorization, so a user with two links open in one
// browser keeps both working.
const LOGIN_COOKIE = 'dtmcp_login';
const FLOW_COOKIE = (state: string) => `dtmcp_oidc_${state}`;
const BIND_COOKIE = (pendingId: string) => `dtmcp_bind_${pendingId}`;
const LOGIN_TTL_MS = 60 * 60_000;
const FLOW_TTL_MS = 10 * 60_000;

export interface BrowserLoginOptions {
  appRedirectUri: string;
  signer: Signer;
  logger: Logger;
  /** Each sign-in response is used once, whichever replica it reaches. */
  once: OnceMarks;
  oidc?: { provider: OidcProvider; clientId: string; clientSecret?: string };
  trustedProxy?: { header: string; proxies: string[] };
}

interface BrowserUser {
  sub: string;
  iss?: string;
}

/**
 * Same-user verification of authorization links (MCP spec: "the server MUST verify the identity
 * of the user who opens the URL"; docs/architecture.md decision 5). `/connect/<id>` signs the browser user in
 * against the same identity provider as the bearer tokens (authorization code + PKCE) and goes on
 * to Agent Identity only when the browser user's `sub` is the pending authorization's user; it
 * binds browser and authorization in a signed, HttpOnly, SameSite=Lax cookie that `/callback`
 * requires. A forwarded link opened by someone else binds nothing.
 */
export function createBrowserLogin(options: BrowserLoginOptions) {
  const { signer, logger, appRedirectUri } = options;
  const secure = appRedirectUri.startsWith('https:');
  const loginRedirectUri = `${appRedirectUri}/login/callback`;
  // Over https, `__Host-` cookies: host-only, Secure, Path=/ — a sibling subdomain cannot plant them.
  const cookieName = (name: string) => (secure ? `__Host-${name}` : name);
  const fromGateway = options.trustedProxy ? gatewayUser(options.trustedProxy.header, options.trustedProxy.proxies) : undefined;

  const setCookie = (res: Response, name: string, value: string, maxAgeMs: number) =>
    res.cookie(cookieName(name), value, { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: maxAgeMs });
  const getCookie = (req: Request, name: string) => readCookie(req, cookieName(name));
  const clearCookie = (res: Response, name: string) => res.clearCookie(cookieName(name), { path: '/', secure, httpOnly: true, sameSite: 'lax' });

  const refuse = (res: Response, entry: PendingAuthorization, why: string) => {
    logger.warn('security: authorization link opened by a different user; refused', { pending: entry.id.slice(0, 6), why });
    sendPage(
      res,
      403,
      'This link belongs to someone else',
      'This authorization link was created for another account, so it cannot be used here. Nothing was changed.',
      'If the link was forwarded to you, ask your own assistant to connect DingTalk for you instead.',
    );
  };

  /** The browser user: the trusted gateway's header, or our signed login cookie. */
  const browserUser = (req: Request): BrowserUser | undefined => {
    if (fromGateway) {
      const userId = fromGateway(req);
      return userId ? { sub: userId } : undefined;
    }
    const cookie = getCookie(req, LOGIN_COOKIE);
    if (!cookie) return undefined;
    const opened = signer.open<BrowserUser>('browser-login', cookie);
    return opened.ok ? opened.value : undefined;
  };

  const sameUser = (user: BrowserUser, entry: PendingAuthorization) =>
    entry.user.kind === 'userId'
      ? user.sub === entry.user.userId
      : user.sub === entry.user.subject && (entry.user.issuer === undefined || user.iss === entry.user.issuer);

  async function verifyBrowserUser(req: Request, res: Response, entry: PendingAuthorization, stage: 'connect' | 'callback'): Promise<boolean> {
    if (stage === 'callback') {
      const bound = getCookie(req, BIND_COOKIE(entry.id));
      const opened = bound ? signer.open<{ pid: string; sub: string }>('authorization-binding', bound) : undefined;
      const user = browserUser(req);
      if (!opened?.ok || opened.value.pid !== entry.id || !user || user.sub !== opened.value.sub || !sameUser(user, entry)) {
        refuse(res, entry, opened?.ok ? 'binding cookie for another user or authorization' : 'no binding cookie from /connect');
        return false;
      }
      clearCookie(res, BIND_COOKIE(entry.id));
      return true;
    }

    const user = browserUser(req);
    if (!user) {
      if (!options.oidc) {
        sendPage(res, 401, 'Sign-in required', "Open this link through your organization's gateway so it can tell who you are.");
        return false;
      }
      let login: AuthorizationRequest;
      try {
        login = await options.oidc.provider.authorizationRequest(options.oidc.clientId, loginRedirectUri);
      } catch (e) {
        logger.error('cannot start the browser sign-in', { error: (e as Error).message });
        sendPage(res, 502, 'Sign-in is unavailable', 'The identity provider cannot be reached right now. Try the link again in a minute.');
        return false;
      }
      setCookie(
        res,
        FLOW_COOKIE(login.state),
        signer.seal(
          'oidc-flow',
          { state: login.state, verifier: login.verifier, nonce: login.nonce, returnTo: `/connect/${entry.id}` },
          Date.now() + FLOW_TTL_MS,
        ),
        FLOW_TTL_MS,
      );
      setPageSecurityHeaders(res);
      res.redirect(302, login.url);
      return false;
    }
    if (!sameUser(user, entry)) {
      refuse(res, entry, "browser user differs from the pending authorization's user");
      return false;
    }
    setCookie(
      res,
      BIND_COOKIE(entry.id),
      signer.seal('authorization-binding', { pid: entry.id, sub: user.sub }, entry.expiresAt),
      Math.max(1000, entry.expiresAt - Date.now()),
    );
    return true;
  }

  const router = express.Router();
  // Cookie tossing: cookies ignore ports (and, over http, any page on this host may set them), so
  // a second cookie of one of our names means someone planted one. Which is ours cannot be told:
  // refuse rather than read either.
  const refuseTossedCookies = (req: Request, res: Response, next: () => void) => {
    const twice = duplicatedCookieNames(req).filter((name) => /^(__Host-)?dtmcp_/.test(name));
    if (twice.length === 0) return next();
    // Pending ids and sign-in states are the bearer part of a link: only their first characters go into the log.
    const short = (text: string) => text.replace(/(connect\/|dtmcp_(?:bind|oidc)_)([A-Za-z0-9_-]{6})[A-Za-z0-9_-]*/g, '$1$2…');
    logger.warn('security: request carries the same cookie twice (cookie tossing?); refused', { path: short(req.path), names: short(twice.join(',')) });
    sendPage(
      res,
      400,
      'Conflicting cookies',
      'Your browser sent two different sign-in cookies for this server, which can mean another site on this host tried to plant one. Nothing was changed.',
      'Clear the cookies of this site in your browser, then open the authorization link from your assistant again.',
    );
  };
  // The interstitial's Continue and Cancel too: the page must be the one this browser's own cookies saw.
  router.get(['/callback', '/login/callback', '/connect/:id/continue', '/connect/:id/cancel'], refuseTossedCookies);
  router.get('/login/callback', async (req, res) => {
    const state = typeof req.query.state === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(req.query.state) ? req.query.state : undefined;
    const flowCookie = state ? getCookie(req, FLOW_COOKIE(state)) : undefined;
    const flow = flowCookie ? signer.open<{ state: string; verifier: string; nonce: string; returnTo: string }>('oidc-flow', flowCookie) : undefined;
    const code = typeof req.query.code === 'string' ? req.query.code : undefined;
    if (!options.oidc || !state || !flow?.ok || state !== flow.value.state || !code) {
      logger.warn('security: sign-in callback refused', { reason: !flow?.ok ? 'no sign-in in progress' : 'state mismatch or no code' });
      return sendPage(
        res,
        400,
        'Sign-in could not be completed',
        'This sign-in response does not match a sign-in started in this browser. Open the authorization link again.',
      );
    }
    if (!(await options.once.claim('oidc-login', state, FLOW_TTL_MS))) {
      logger.warn('security: sign-in callback refused', { reason: 'sign-in response replayed' });
      return sendPage(res, 400, 'Sign-in already completed', 'This sign-in response was already used. Open the authorization link again.');
    }
    try {
      const { claims } = await options.oidc.provider.authorizationCodeGrant({
        // The whole callback query: oauth4webapi checks its state and, when sent, its iss (RFC 9207).
        callback: new URL(req.originalUrl, 'http://callback.invalid').searchParams,
        expectedState: flow.value.state,
        verifier: flow.value.verifier,
        nonce: flow.value.nonce,
        clientId: options.oidc.clientId,
        clientSecret: options.oidc.clientSecret,
        redirectUri: loginRedirectUri,
      });
      const expiresAt = Math.min(Date.now() + LOGIN_TTL_MS, (claims.exp ?? 0) * 1000 || Date.now() + LOGIN_TTL_MS);
      setCookie(res, LOGIN_COOKIE, signer.seal('browser-login', { sub: claims.sub, iss: claims.iss } satisfies BrowserUser, expiresAt), expiresAt - Date.now());
      clearCookie(res, FLOW_COOKIE(state));
      // Only ever back to one of our /connect pages: never an open redirect.
      const returnTo = /^\/connect\/[A-Za-z0-9_-]+$/.test(flow.value.returnTo) ? flow.value.returnTo : '/';
      setPageSecurityHeaders(res);
      res.redirect(302, returnTo);
    } catch (e) {
      logger.warn('sign-in failed', { error: (e as Error).message });
      sendPage(res, 502, 'Sign-in could not be completed', (e as Error).message);
    }
  });

  return { verifyBrowserUser, router };
}

function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      // A malformed value (`%E0`) is no cookie of ours: treat it as absent, never as a 500.
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** Cookie names that occur more than once in the request's Cookie header. */
function duplicatedCookieNames(req: Request): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (seen.has(name)) twice.add(name);
    seen.add(name);
  }
  return [...twice];
}
