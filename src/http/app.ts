import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { hostHeaderValidation, originValidation } from '@modelcontextprotocol/express';
import { createMcpHandler } from '@modelcontextprotocol/server';
import { InFlight } from '../in-flight.js';
import type { Runtime } from '../runtime.js';
import { createServer } from '../server.js';
import { SERVER_NAME, VERSION } from '../version.js';
import { createBrowserLogin } from './browser-login.js';
import { sendLanding } from './landing.js';
import { browserRoutes, storeUnavailablePage } from '../browser/routes.js';
import { bearerAuth, trustedProxyAuth, userFromContext } from './caller.js';
import { createMcpEndpoint, sendJsonRpcError } from './mcp-endpoint.js';
import type { OidcProvider } from './oidc.js';

export interface HttpApp {
  /** The request listener for `node:http`: `/mcp` on its own fast path, everything else through Express. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** POST /mcp requests being answered: shutdown lets them finish. */
  requests: InFlight;
  /** Open 2025-era sessions (for tests and /healthz). */
  sessionCount(): number;
  /** Shutdown has begun: `/mcp` answers 503 with `Connection: close` from now on. */
  beginShutdown(): void;
  close(): Promise<void>;
}

/**
 * Everything on one port: `/mcp` (both protocol eras), the browser pages, the protected-resource
 * metadata and `/healthz`. Host and Origin are validated on every route (DNS rebinding).
 */
export function createHttpApp(runtime: Runtime, oidc?: OidcProvider): HttpApp {
  const { config, logger } = runtime;
  const base = config.appRedirectUri;
  const resource = `${base}/mcp`;
  const metadataPath = '/.well-known/oauth-protected-resource/mcp';
  const loopbackNames = ['localhost', '127.0.0.1', '[::1]'];
  const allowedHosts = config.allowedHosts ?? [...new Set([hostnameForHeader(new URL(base).hostname), ...loopbackNames])];

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // DNS rebinding: Host and Origin on every route, before anything else runs.
  app.use(hostHeaderValidation(allowedHosts));
  app.use(originValidation(config.allowedOrigins ?? allowedHosts));
  // RFC 9728: where clients learn which authorization server issues tokens for /mcp.
  app.get(metadataPath, (_req, res) => {
    if (!oidc) return res.status(404).json({ error: 'not_found', error_description: 'This deployment authenticates through a trusted gateway.' });
    res.json({
      resource,
      authorization_servers: [oidc.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['openid'],
      resource_name: 'DingTalk documents (agent-identity-dingtalk-mcp)',
    });
  });

  // What this is and how to connect, instead of "Cannot GET /".
  app.get('/', (req, res) =>
    sendLanding(req, res, { version: VERSION, mcpUrl: resource, metadataUrl: `${base}${metadataPath}`, issuer: oidc?.issuer, sandbox: config.sandbox }),
  );

  app.get('/healthz', async (_req, res) => {
    const check = await runtime.broker.checkCredentials?.().catch((e: unknown) => ({ ok: false as const, reason: (e as Error).message }));
    // The store's state names its endpoint, never its user or password.
    const store = runtime.store.health();
    const pendingAuthorizations = store.status === 'ready' ? await runtime.pending.count().catch(() => undefined) : undefined;
    const usable = check?.ok !== false && store.status === 'ready';
    res.status(usable ? 200 : 503).json({
      status: usable ? 'ok' : 'degraded',
      version: VERSION,
      agentIdentityCredentials: check === undefined ? 'unchecked' : check.ok ? 'usable' : 'unavailable',
      ...(check?.ok ? { credentialSource: check.type } : {}),
      ...(check && !check.ok ? { problem: check.reason } : {}),
      store,
      sessions: mcp.sessionCount(),
      ...(pendingAuthorizations !== undefined ? { pendingAuthorizations } : {}),
    });
  });

  const trustedProxy = config.trustedProxyHeader && config.trustedProxies ? { header: config.trustedProxyHeader, proxies: config.trustedProxies } : undefined;
  const login = createBrowserLogin({
    appRedirectUri: base,
    signer: runtime.state.signer,
    once: runtime.store.once,
    logger,
    // One way to know the browser user, like /mcp: the trusted gateway when configured, else our sign-in.
    ...(trustedProxy
      ? { trustedProxy }
      : oidc && config.oidcClientId
        ? { oidc: { provider: oidc, clientId: config.oidcClientId, clientSecret: config.oidcClientSecret } }
        : {}),
  });
  app.use(login.router, storeUnavailablePage(logger));
  app.use(
    browserRoutes({
      pending: runtime.pending,
      state: runtime.state,
      broker: runtime.broker,
      callbackUrl: config.callbackUrl,
      serverName: SERVER_NAME,
      logger,
      verifyBrowserUser: login.verifyBrowserUser,
    }),
  );

  // Who is calling: a verified bearer JWT, or (opt-in) a trusted gateway's header.
  const authenticate = trustedProxy
    ? trustedProxyAuth(trustedProxy.header, trustedProxy.proxies, logger)
    : bearerAuth(oidc!, config.oidcAudience ?? config.oidcClientId ?? '', `${base}${metadataPath}`, logger);

  const deps = runtime.toolDeps(userFromContext);
  const mcp = createMcpEndpoint({
    allowedHosts,
    allowedOrigins: config.allowedOrigins ?? allowedHosts,
    authenticate,
    maxBodyBytes: parseByteSize(config.maxBody),
    // Per user across every replica (the state store).
    rateLimits: runtime.store.rateLimits,
    rateLimitPerMinute: config.rateLimitPerMinute,
    // 2026-07-28: stateless, a fresh server instance per request (state lives in the runtime).
    modern: createMcpHandler(() => createServer(deps), { legacy: 'reject' }),
    connectLegacy: (transport) => createServer(deps).connect(transport),
    logger,
  });
  const requests = new InFlight();

  // Errors from the page routes: JSON, never an HTML stack.
  app.use((err: { status?: number; message?: string }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    logger.error('unhandled HTTP error', { error: String(err.message ?? err) });
    sendJsonRpcError(res, err.status && err.status >= 400 && err.status < 600 ? err.status : 500, -32603, 'Internal error');
  });

  return {
    handler(req, res) {
      const path = req.url ?? '/';
      const end = path.indexOf('?');
      const pathname = end === -1 ? path : path.slice(0, end);
      if (pathname === '/mcp' || pathname === '/mcp/') {
        // POSTs carry the calls shutdown waits for; a 2025 GET stream would hold the drain open.
        if (req.method === 'POST') res.once('close', requests.enter());
        return mcp.handle(req, res);
      }
      app(req, res);
    },
    requests,
    sessionCount: () => mcp.sessionCount(),
    beginShutdown: () => mcp.beginShutdown(),
    close: () => mcp.close(),
  };
}

/** `1mb`, `500kb`, `2048b` (the DINGTALK_MCP_MAX_BODY syntax) in bytes. */
export function parseByteSize(size: string): number {
  const m = /^(\d+)(b|kb|mb)$/i.exec(size);
  if (!m) throw new Error(`not a size: ${size}`);
  return Number(m[1]) * { b: 1, kb: 1024, mb: 1024 * 1024 }[m[2]!.toLowerCase() as 'b' | 'kb' | 'mb'];
}
function hostnameForHeader(hostname: string): string {
  return hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
}
