import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostHeaderValidation, NodeStreamableHTTPServerTransport, originValidation } from '@modelcontextprotocol/node';
import { classifyInboundRequest, isInitializeRequest, type AuthInfo, type McpHttpHandler } from '@modelcontextprotocol/server';
import { userKey } from '../identity/types.js';
import { hashUserId, type Logger } from '../log.js';
import { userFromRequest, type Authenticate, type AuthenticatedRequest } from './caller.js';
import { readJsonBody } from './json-body.js';
import { StoreUnavailableError, type RateLimits } from '../state/types.js';

const MAX_SESSIONS_PER_USER = 20;
const SESSION_IDLE_MS = 30 * 60_000;
const ALLOWED_METHODS = 'GET, POST, DELETE';

interface LegacySession {
  transport: NodeStreamableHTTPServerTransport;
  owner: string;
  lastSeen: number;
}

export interface McpEndpointOptions {
  allowedHosts: string[];
  allowedOrigins: string[];
  authenticate: Authenticate;
  maxBodyBytes: number;
  /** Per-user tool-call budget, shared by every replica. */
  rateLimits: RateLimits;
  rateLimitPerMinute: number;
  /** 2026-07-28: the SDK's stateless handler (one server instance per request). */
  modern: McpHttpHandler;
  /** 2025-11-25: a connected server for a new session. */
  connectLegacy: (transport: NodeStreamableHTTPServerTransport) => Promise<void>;
  logger: Logger;
}

export interface McpEndpoint {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** From now on every request is answered 503 with `Connection: close`. */
  beginShutdown(): void;
  sessionCount(): number;
  close(): Promise<void>;
}

/**
 * `/mcp` on plain `node:http`, in the order that keeps every check ahead of the work it guards:
 * Host and Origin (DNS rebinding) → shutdown gate → method → authentication → body (media type,
 * coding, charset, size, depth; read only after authentication) → per-user rate limit → the era:
 * a `Mcp-Session-Id` settles 2025-11-25 at once, otherwise the SDK's own classifier decides.
 */
export function createMcpEndpoint(options: McpEndpointOptions): McpEndpoint {
  const { logger, rateLimits } = options;
  const checkHost = hostHeaderValidation(options.allowedHosts);
  const checkOrigin = originValidation(options.allowedOrigins);
  let closing = false;

  // 2025-11-25: sessions, so a tool call can wait for the user and receive the completion
  // notification. Keyed by user AND session id (spec: never by session id alone).
  const sessions = new Map<string, LegacySession>();
  const sessionKey = (owner: string, id: string) => `${owner}\u0000${id}`;

  const serveLegacy = async (req: AuthenticatedRequest, res: ServerResponse, body: unknown) => {
    const owner = userKey(userFromRequest(req)!);
    const id = req.headers['mcp-session-id'];
    if (typeof id === 'string') {
      const session = sessions.get(sessionKey(owner, id));
      if (!session) {
        const elsewhere = [...sessions.values()].some((s) => s.transport.sessionId === id);
        if (elsewhere) logger.warn("security: session id presented with another user's token; refused", { user: hashUserId(owner) });
        return sendJsonRpcError(res, 404, -32001, 'Session not found: start a new session with initialize.');
      }
      session.lastSeen = Date.now();
      return session.transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
      return sendJsonRpcError(res, 400, -32000, 'Bad request: send initialize first, then the Mcp-Session-Id it returns.');
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
    await options.connectLegacy(transport);
    await transport.handleRequest(req, res, body);
  };

  const serve = async (req: AuthenticatedRequest, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'POST' && req.method !== 'DELETE') {
      res.setHeader('Allow', ALLOWED_METHODS);
      return sendJsonRpcError(res, 405, -32000, `Method ${req.method} is not allowed on /mcp: use POST (and GET or DELETE with an Mcp-Session-Id).`);
    }
    const auth = await options.authenticate(req);
    if (!auth.ok) return sendJson(res, auth.status, auth.body, auth.headers);
    req.auth = auth.auth;

    let body: unknown;
    if (req.method === 'POST') {
      const read = await readJsonBody(req, options.maxBodyBytes);
      if (!read.ok) return sendJsonRpcError(res, read.status, read.code, read.message, read.headers);
      body = read.value;
      const calls = countToolCalls(body);
      if (calls > 0) {
        const user = userKey(userFromRequest(req)!);
        let retryAfter: number;
        try {
          retryAfter = await rateLimits.take(user, calls, options.rateLimitPerMinute, 60_000);
        } catch (e) {
          if (!(e instanceof StoreUnavailableError)) throw e;
          // Fail closed: without the shared count, N replicas would allow N times the limit.
          logger.warn('state store unavailable: tool calls refused with 503', { error: e.message });
          return sendJson(
            res,
            503,
            { jsonrpc: '2.0', id: requestIdOf(body), error: { code: -32000, message: `${e.message} Nothing was done.` } },
            { 'Retry-After': String(e.retryAfterSeconds) },
          );
        }
        if (retryAfter > 0) {
          logger.warn('rate limit: tool calls refused', { user: hashUserId(user) });
          const seconds = Math.ceil(retryAfter / 1000);
          return sendJson(
            res,
            429,
            {
              jsonrpc: '2.0',
              id: requestIdOf(body),
              error: { code: -32000, message: `Too many tool calls: at most ${options.rateLimitPerMinute} per minute per user. Retry in ${seconds} s.` },
            },
            { 'Retry-After': String(seconds) },
          );
        }
      }
    }

    // A session id can only belong to a 2025-11-25 session: no need to classify the body.
    if (req.method !== 'POST' || req.headers['mcp-session-id'] !== undefined) return serveLegacy(req, res, body);
    const route = classifyInboundRequest({
      httpMethod: 'POST',
      protocolVersionHeader: header(req, 'mcp-protocol-version'),
      mcpMethodHeader: header(req, 'mcp-method'),
      mcpNameHeader: header(req, 'mcp-name'),
      body,
    });
    if (route.kind === 'legacy') return serveLegacy(req, res, body);
    return serveWeb(options.modern, req, res, body, req.auth);
  };

  const sweeper = setInterval(() => {
    const idle = Date.now() - SESSION_IDLE_MS;
    for (const s of sessions.values()) if (s.lastSeen < idle) void s.transport.close();
  }, 60_000);
  sweeper.unref();

  return {
    handle(req, res) {
      if (!checkHost(req, res) || !checkOrigin(req, res)) return;
      if (closing) {
        res.setHeader('Connection', 'close');
        res.setHeader('Retry-After', '1');
        return sendJsonRpcError(
          res,
          503,
          -32000,
          'The server is shutting down: send the request again in a moment (another replica, or this one once it has restarted).',
        );
      }
      serve(req, res).catch((e: unknown) => {
        logger.error('error serving /mcp', { error: (e as Error).message });
        if (!res.headersSent) sendJsonRpcError(res, 500, -32603, 'Internal error');
        else res.end();
      });
    },
    beginShutdown() {
      closing = true;
    },
    sessionCount: () => sessions.size,
    async close() {
      clearInterval(sweeper);
      await Promise.allSettled([...sessions.values()].map((s) => s.transport.close()));
    },
  };
}

/**
 * Serve one request with the SDK's web-standard handler, without a second copy of the body: the
 * parsed message is handed over as `parsedBody`, so the web Request carries headers only.
 */
async function serveWeb(handler: McpHttpHandler, req: IncomingMessage, res: ServerResponse, body: unknown, authInfo: AuthInfo | undefined): Promise<void> {
  const abort = new AbortController();
  let finished = false;
  res.once('close', () => {
    if (!finished) abort.abort();
  });
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/mcp'}`, { method: 'POST', headers, signal: abort.signal });
  const response = await handler.fetch(request, { parsedBody: body, ...(authInfo ? { authInfo } : {}) });
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    out[name] = value;
  });
  if (response.body === null) {
    finished = true;
    res.writeHead(response.status, out).end();
    return;
  }
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) {
    // A single JSON answer: one write.
    const text = await response.text();
    finished = true;
    res.writeHead(response.status, out).end(text);
    return;
  }
  res.writeHead(response.status, out);
  res.flushHeaders();
  const reader = response.body.getReader();
  abort.signal.addEventListener('abort', () => void reader.cancel().catch(() => {}), { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value))
        await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          abort.signal.addEventListener('abort', () => resolve(), { once: true });
        });
    }
  } finally {
    finished = true;
    res.end();
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function countToolCalls(body: unknown): number {
  if (!Array.isArray(body)) return (body as { method?: unknown } | null)?.method === 'tools/call' ? 1 : 0;
  let n = 0;
  for (const m of body) if ((m as { method?: unknown } | null)?.method === 'tools/call') n++;
  return n;
}

function requestIdOf(body: unknown): unknown {
  return Array.isArray(body) ? null : ((body as { id?: unknown } | null)?.id ?? null);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) }).end(text);
}

export function sendJsonRpcError(res: ServerResponse, status: number, code: number, message: string, headers?: Record<string, string>): void {
  sendJson(res, status, { jsonrpc: '2.0', id: null, error: { code, message } }, headers);
}
