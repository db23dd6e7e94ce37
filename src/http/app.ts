import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { hostHeaderValidation, originValidation } from '@modelcontextprotocol/express';
import { NodeStreamableHTTPServerTransport, toNodeHandler, toWebRequest } from '@modelcontextprotocol/node';
import { createMcpHandler, isInitializeRequest, isLegacyRequest } from '@modelcontextprotocol/server';
import { InFlight } from '../in-flight.js';
import { userKey } from '../identity/types.js';
import { hashUserId } from '../log.js';
import type { Runtime } from '../runtime.js';
import { createServer } from '../server.js';
import { VERSION } from '../version.js';
import { createBrowserLogin } from './browser-login.js';
import { sendLanding } from './landing.js';
import { browserRoutes, storeUnavailablePage } from './browser-routes.js';
import { bearerAuth, trustedProxyAuth, userFromContext, userFromRequest } from './caller.js';
import type { OidcProvider } from './oidc.js';
import { StoreUnavailableError } from '../state/types.js';

const MAX_SESSIONS_PER_USER = 20;
const SESSION_IDLE_MS = 30 * 60_000;

interface LegacySession {
  transport: NodeStreamableHTTPServerTransport;
  owner: string;
  lastSeen: number;
}

export interface HttpApp {
  app: express.Express;
  /** POST /mcp requests being answered: shutdown lets them finish. */
  requests: InFlight;
  /** Open 2025-era sessions (for tests and /healthz). */
  sessionCount(): number;
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
  // Bodies are parsed only for /mcp, and only after the caller is authenticated.
  const json = express.json({ limit: config.maxBody });

  // RFC 9728: where clients learn which authorization server issues tokens for /mcp.
  app.get(metadataPath, (_req, res) => {
    if (!oidc) return res.status(404).json({ error: 'not_found', error_description: 'This deployment authenticates through a trusted gateway.' });
    res.json({ resource, authorization_servers: [oidc.issuer], bearer_methods_supported: ['header'], scopes_supported: ['openid'], resource_name: 'DingTalk documents (agent-identity-dingtalk-mcp)' });
  });

  // What this is and how to connect, instead of "Cannot GET /".
  app.get('/', (req, res) => sendLanding(req, res, { version: VERSION, mcpUrl: resource, metadataUrl: `${base}${metadataPath}`, issuer: oidc?.issuer, sandbox: config.sandbox }));

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
      ...(check && check.ok ? { credentialSource: check.type } : {}),
      ...(check && !check.ok ? { problem: check.reason } : {}),
      store,
      sessions: sessions.size,
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
    ...(trustedProxy ? { trustedProxy } : oidc && config.oidcClientId ? { oidc: { provider: oidc, clientId: config.oidcClientId, clientSecret: config.oidcClientSecret } } : {}),
  });
  app.use(login.router, storeUnavailablePage(logger));
  app.use(browserRoutes({ pending: runtime.pending, state: runtime.state, broker: runtime.broker, logger, verifyBrowserUser: login.verifyBrowserUser }));

  // Who is calling: a verified bearer JWT, or (opt-in) a trusted gateway's header.
  const authenticate = trustedProxy
    ? trustedProxyAuth(trustedProxy.header, trustedProxy.proxies, logger)
    : bearerAuth(oidc!, config.oidcAudience ?? config.oidcClientId ?? '', `${base}${metadataPath}`, logger);

  // Per user across every replica (the state store): one Redis round trip per tools/call request.
  const rateLimit = async (req: Request, res: Response, next: NextFunction) => {
    const user = userFromRequest(req);
    const calls = countToolCalls(req.body);
    if (!user || calls === 0) return next();
    let retryAfter: number;
    try {
      retryAfter = await runtime.store.rateLimits.take(userKey(user), calls, config.rateLimitPerMinute, 60_000);
    } catch (e) {
      if (!(e instanceof StoreUnavailableError)) throw e;
      // Fail closed: without the shared count, N replicas would allow N times the limit.
      logger.warn('state store unavailable: tool calls refused with 503', { error: e.message });
      res.status(503).set('Retry-After', String(e.retryAfterSeconds));
      return void res.json({ jsonrpc: '2.0', id: Array.isArray(req.body) ? null : (req.body?.id ?? null), error: { code: -32000, message: `${e.message} Nothing was done.` } });
    }
    if (retryAfter === 0) return next();
    logger.warn('rate limit: tool calls refused', { user: hashUserId(userKey(user)) });
    res.status(429).set('Retry-After', String(Math.ceil(retryAfter / 1000))).json({
      jsonrpc: '2.0',
      id: Array.isArray(req.body) ? null : (req.body?.id ?? null),
      error: { code: -32000, message: `Too many tool calls: at most ${config.rateLimitPerMinute} per minute per user. Retry in ${Math.ceil(retryAfter / 1000)} s.` },
    });
  };

  const deps = runtime.toolDeps(userFromContext);

  // 2026-07-28: stateless, a fresh server instance per request (state lives in the runtime).
  const modern = toNodeHandler(createMcpHandler(() => createServer(deps), { legacy: 'reject' }));

  // 2025-11-25: sessions, so a tool call can wait for the user and receive the completion
  // notification. Keyed by user AND session id (spec: never by session id alone).
  const sessions = new Map<string, LegacySession>();
  const sessionKey = (owner: string, id: string) => `${owner}\u0000${id}`;
  const legacy = async (req: Request, res: Response) => {
    const owner = userKey(userFromRequest(req)!);
    const id = req.headers['mcp-session-id'];
    if (typeof id === 'string') {
      const session = sessions.get(sessionKey(owner, id));
      if (!session) {
        const elsewhere = [...sessions.values()].some((s) => s.transport.sessionId === id);
        if (elsewhere) logger.warn('security: session id presented with another user\'s token; refused', { user: hashUserId(owner) });
        return jsonRpcError(res, 404, -32001, 'Session not found: start a new session with initialize.');
      }
      session.lastSeen = Date.now();
      return session.transport.handleRequest(req, res, req.body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(req.body)) {
      return jsonRpcError(res, 400, -32000, 'Bad request: send initialize first, then the Mcp-Session-Id it returns.');
    }
    const mine = [...sessions.values()].filter((s) => s.owner === owner).sort((a, b) => a.lastSeen - b.lastSeen);
    for (const old of mine.slice(0, Math.max(0, mine.length - MAX_SESSIONS_PER_USER + 1))) await old.transport.close();
    const transport: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sid) => {
        sessions.set(sessionKey(owner, sid), { transport, owner, lastSeen: Date.now() });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(sessionKey(owner, transport.sessionId));
    };
    await createServer(deps).connect(transport);
    await transport.handleRequest(req, res, req.body);
  };

  const route = async (req: Request, res: Response) => {
    try {
      if (req.method === 'POST' && !(await isLegacyRequest(await toWebRequest(req, req.body)))) return await modern(req, res, req.body);
      return await legacy(req, res);
    } catch (e) {
      logger.error('error serving /mcp', { error: (e as Error).message });
      if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal error');
    }
  };
  const requests = new InFlight();
  const track = (_req: Request, res: Response, next: NextFunction) => {
    res.once('close', requests.enter());
    next();
  };
  app.post('/mcp', track, authenticate, json, rateLimit, route);
  app.get('/mcp', authenticate, route);
  app.delete('/mcp', authenticate, route);

  const sweeper = setInterval(() => {
    const idle = Date.now() - SESSION_IDLE_MS;
    for (const s of sessions.values()) if (s.lastSeen < idle) void s.transport.close();
  }, 60_000);
  sweeper.unref();

  // Body errors: 413 for too large, a JSON-RPC parse error for bad JSON, never an HTML stack.
  app.use((err: { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err.type === 'entity.too.large') return jsonRpcError(res, 413, -32600, `Request body too large: the limit is ${config.maxBody}.`);
    if (err.type === 'entity.parse.failed') return jsonRpcError(res, 400, -32700, 'Parse error: the body is not valid JSON.');
    logger.error('unhandled HTTP error', { error: String((err as Error).message ?? err) });
    jsonRpcError(res, err.status && err.status >= 400 && err.status < 600 ? err.status : 500, -32603, 'Internal error');
  });

  return {
    app,
    requests,
    sessionCount: () => sessions.size,
    async close() {
      clearInterval(sweeper);
      await Promise.allSettled([...sessions.values()].map((s) => s.transport.close()));
    },
  };
}

function jsonRpcError(res: Response, status: number, code: number, message: string): void {
  res.status(status).json({ jsonrpc: '2.0', id: null, error: { code, message } });
}

function countToolCalls(body: unknown): number {
  const messages = Array.isArray(body) ? body : [body];
  return messages.filter((m) => (m as { method?: unknown })?.method === 'tools/call').length;
}

function hostnameForHeader(hostname: string): string {
  return hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
}
