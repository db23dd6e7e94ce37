/**
 * The web chat's back end: the page, sign-in, one event stream per open page, and the few POSTs the page makes.
 *
 * Safety, on every route: the Host header must name this server (DNS rebinding); the session cookie is HttpOnly,
 * SameSite=Lax (Secure and `__Host-` over https); every state-changing request must be a same-origin JSON POST
 * (Origin checked, Sec-Fetch-Site if sent) carrying the session's CSRF token in a header; bodies are bounded; each
 * user gets a message rate limit, one turn at a time and a bounded number of open pages. The page never receives a
 * token: the user's MCP access token, refresh token and ID token stay in this process (UserChat and its transports).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';
import { RateLimiter } from '../../../src/state/token-bucket.js';
import type { ResolvedServer } from '../config.js';
import type { DashScopeClient } from '../dashscope.js';
import type { SignIn, PendingSignIn, SignedInUser, UserTokens } from './sign-in.js';
import type { ChatEvent } from './transcript.js';
import { BusyError, UserChat } from './user-chat.js';

export interface Limits {
  /** Bytes of one JSON body. */
  bodyBytes: number;
  /** Characters of one message. */
  messageChars: number;
  messagesPerMinute: number;
  /** Signed-in users at once. */
  maxUsers: number;
  /** Browser sessions (signed in or not) at once. */
  maxSessions: number;
  /** Open pages (event streams) per user. */
  streamsPerUser: number;
  /** Signed-in browser sessions per user (beyond this, the least recently used one is signed out). */
  sessionsPerUser: number;
  /** A signed-in user with no open page and no activity for this long is signed out. */
  userIdleMs: number;
  /** A browser session that never signed in is forgotten after this long. */
  anonymousIdleMs: number;
  /** How long consent and confirmation cards wait. */
  decisionTimeoutMs: number;
  /** A message renews the person's access token when it expires within this long. */
  refreshMarginMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  bodyBytes: 16 * 1024,
  messageChars: 4000,
  messagesPerMinute: 12,
  maxUsers: 50,
  maxSessions: 2000,
  streamsPerUser: 4,
  sessionsPerUser: 10,
  userIdleMs: 30 * 60_000,
  anonymousIdleMs: 15 * 60_000,
  decisionTimeoutMs: 10 * 60_000,
  refreshMarginMs: 2 * 60_000,
};

export interface WebChatOptions {
  llm: DashScopeClient;
  /** The MCP servers every user's chat connects to. */
  servers: ResolvedServer[];
  /** The server that trusts our sign-in: each user's connection to it carries that user's access token. */
  signInServer: string;
  /** Made once the origin is known (the redirect URI is `<origin>/auth/callback`). */
  signIn: (origin: string) => Promise<SignIn>;
  port?: number;
  limits?: Partial<Limits>;
  /** MCP revision to prefer (default 'auto': 2026-07-28 when the server offers it). */
  era?: 'auto' | 'legacy';
  /** Shown on the page under the title (e.g. "Sandbox: everything is emulated"). */
  banner?: string;
  log?: (line: string) => void;
}

export interface WebChat {
  url: string;
  /** Signed-in users (tests). */
  users(): Array<{ sub: string; name: string; chat: UserChat }>;
  /** Every token this back end holds for its users (access and refresh tokens), for leak checks. */
  heldSecrets(): string[];
  close(): Promise<void>;
}

interface BrowserSession {
  id: string;
  csrf: string;
  lastSeen: number;
  flow?: PendingSignIn & { expiresAt: number };
  userKey?: string;
}

interface UserEntry {
  key: string;
  user: SignedInUser;
  tokens: UserTokens;
  /** The headers object of this user's transport to the sign-in server: refreshed in place. */
  auth: Record<string, string>;
  chat: UserChat;
}

const SIGN_IN_TTL_MS = 10 * 60_000;

/** Static files: the page source next to this module's source, the compiled script under dist/, two vendored libraries. */
function pageFiles(): Record<string, { type: string; body: Buffer }> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const root = /\/dist\/examples\/qwen-chat\/web\/$/.test(here) ? new URL('../../../../', import.meta.url) : new URL('../../../', import.meta.url);
  const file = (p: string) => fileURLToPath(new URL(p, root));
  const script = file('dist/examples/qwen-chat/web/page/app.js');
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  const require = createRequire(import.meta.url);
  const read = (p: string) => readFileSync(p);
  return {
    '/': { type: 'text/html; charset=utf-8', body: read(file('examples/qwen-chat/web/page/index.html')) },
    '/static/style.css': { type: 'text/css; charset=utf-8', body: read(file('examples/qwen-chat/web/page/style.css')) },
    '/static/app.js': { type: 'text/javascript; charset=utf-8', body: read(script) },
    '/static/vendor/markdown-it.min.js': { type: 'text/javascript; charset=utf-8', body: read(require.resolve('markdown-it/browser')) },
    '/static/vendor/purify.min.js': { type: 'text/javascript; charset=utf-8', body: read(require.resolve('dompurify/purify.min.js')) },
  };
}

/** No inline script or style, nothing from elsewhere: model output that slipped through sanitising still could not run. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export async function startWebChat(options: WebChatOptions): Promise<WebChat> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const files = pageFiles();
  const sessions = new Map<string, BrowserSession>();
  const users = new Map<string, UserEntry>();
  const limiter = new RateLimiter(limits.messagesPerMinute, 60_000);
  let signIn: SignIn | undefined;
  let origin = '';
  let allowedHosts = new Set<string>();
  let secure = false;
  const cookieName = () => (secure ? '__Host-qwc_session' : 'qwc_session');

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('trust proxy', false);

  app.use((req, res, next) => {
    res.set({
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-origin',
      'cache-control': 'no-store',
    });
    // DNS rebinding: only requests addressed to this server by name.
    if (!allowedHosts.has(req.headers.host ?? '')) return void res.status(421).type('text/plain').send('Misdirected request: unexpected Host header.\n');
    next();
  });

  for (const [path, f] of Object.entries(files)) {
    app.get(path, (_req, res) => {
      res
        .set('cache-control', path === '/' ? 'no-store' : 'no-cache')
        .type(f.type)
        .send(f.body);
    });
  }

  // --- sessions -------------------------------------------------------------------------------------------------

  const readCookie = (req: Request): string | undefined => {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === cookieName()) return part.slice(eq + 1).trim();
    }
    return undefined;
  };
  const setCookie = (res: Response, id: string) => res.cookie(cookieName(), id, { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge: 12 * 3600_000 });
  const current = (req: Request): BrowserSession | undefined => {
    const id = readCookie(req);
    const s = id ? sessions.get(id) : undefined;
    if (s) s.lastSeen = Date.now();
    return s;
  };
  const newSession = (res: Response, userKey?: string): BrowserSession => {
    if (sessions.size >= limits.maxSessions) evictAnonymous(true);
    if (userKey) {
      const mine = [...sessions.values()].filter((s) => s.userKey === userKey).sort((a, b) => a.lastSeen - b.lastSeen);
      for (const old of mine.slice(0, Math.max(0, mine.length - limits.sessionsPerUser + 1))) sessions.delete(old.id);
    }
    const s: BrowserSession = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), lastSeen: Date.now(), userKey };
    sessions.set(s.id, s);
    setCookie(res, s.id);
    return s;
  };
  const userOf = (s: BrowserSession | undefined) => (s?.userKey ? users.get(s.userKey) : undefined);

  const evictAnonymous = (oldestToo = false) => {
    const cutoff = Date.now() - limits.anonymousIdleMs;
    const anonymous = [...sessions.values()].filter((s) => !s.userKey).sort((a, b) => a.lastSeen - b.lastSeen);
    for (const s of anonymous) if (s.lastSeen < cutoff) sessions.delete(s.id);
    if (oldestToo && sessions.size >= limits.maxSessions) for (const s of anonymous.slice(0, Math.ceil(limits.maxSessions / 10))) sessions.delete(s.id);
  };

  const endUser = async (key: string, reason: string) => {
    const entry = users.get(key);
    users.delete(key);
    for (const s of sessions.values()) if (s.userKey === key) sessions.delete(s.id);
    await entry?.chat.close(reason);
  };

  const sweeper = setInterval(() => {
    evictAnonymous();
    const idle = Date.now() - limits.userIdleMs;
    for (const u of users.values()) {
      if (!u.chat.busy && u.chat.transcript.subscribers === 0 && u.chat.lastActive < idle) void endUser(u.key, 'Signed out after a period without activity.');
    }
  }, 60_000);
  sweeper.unref();

  // --- same-origin + CSRF for every state-changing request --------------------------------------------------------

  const json = express.json({ limit: limits.bodyBytes, strict: true });
  const fail = (res: Response, status: number, error: string) => void res.status(status).json({ error });
  const guard = (req: Request, res: Response, next: NextFunction) => {
    if (req.headers.origin !== origin) return fail(res, 403, 'Cross-origin request refused.');
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return fail(res, 403, 'Cross-site request refused.');
    if (!req.is('application/json')) return fail(res, 415, 'Send JSON (Content-Type: application/json).');
    const session = current(req);
    const token = req.headers['x-csrf-token'];
    if (!session || typeof token !== 'string' || !sameSecret(token, session.csrf)) return fail(res, 403, 'Missing or wrong CSRF token: reload the page.');
    res.locals.session = session;
    next();
  };
  const signedIn = (_req: Request, res: Response, next: NextFunction) => {
    const entry = userOf(res.locals.session as BrowserSession | undefined);
    if (!entry) return fail(res, 401, 'You are not signed in (or your sign-in ended): sign in again.');
    res.locals.user = entry;
    next();
  };

  // --- routes -----------------------------------------------------------------------------------------------------

  app.get('/api/session', (req, res) => {
    const session = current(req) ?? newSession(res);
    const entry = userOf(session);
    res.json({
      csrf: session.csrf,
      user: entry ? { name: entry.user.name, sub: entry.user.sub } : null,
      banner: options.banner ?? null,
      limits: { messageChars: limits.messageChars },
    });
  });

  app.post('/auth/login', guard, json, async (_req, res) => {
    const session = res.locals.session as BrowserSession;
    if (userOf(session)) return void res.json({ url: '/' });
    try {
      const pending = await signIn!.begin();
      session.flow = { ...pending, expiresAt: Date.now() + SIGN_IN_TTL_MS };
      res.json({ url: pending.url });
    } catch (e) {
      log(`web chat: cannot start a sign-in: ${(e as Error).message}`);
      fail(res, 502, 'The identity provider cannot be reached right now. Try again in a minute.');
    }
  });

  app.get('/auth/callback', async (req, res) => {
    const session = current(req);
    const flow = session?.flow;
    const q = (name: string) => (typeof req.query[name] === 'string' ? (req.query[name] as string) : undefined);
    if (!session || !flow || flow.expiresAt < Date.now() || !q('state') || !sameSecret(q('state')!, flow.state)) {
      return page(
        res,
        400,
        'Sign-in could not be completed',
        'This answer from the identity provider does not match a sign-in started in this browser. Go back to the chat and sign in again.',
      );
    }
    session.flow = undefined; // single use
    if (q('error'))
      return page(
        res,
        400,
        'Sign-in was not completed',
        `The identity provider answered "${q('error')!
          .replace(/[^\w.-]/g, '')
          .slice(0, 60)}". Go back to the chat and try again.`,
      );
    const code = q('code');
    if (!code)
      return page(res, 400, 'Sign-in could not be completed', 'The identity provider sent no authorization code. Go back to the chat and sign in again.');
    let result: Awaited<ReturnType<SignIn['finish']>>;
    try {
      result = await signIn!.finish(code, flow);
    } catch (e) {
      log(`web chat: sign-in failed: ${(e as Error).message}`);
      return page(res, 502, 'Sign-in could not be completed', (e as Error).message);
    }
    const key = `${result.user.iss}\u0000${result.user.sub}`;
    let entry = users.get(key);
    if (!entry && users.size >= limits.maxUsers)
      return page(res, 503, 'Too many people are signed in', `This chat serves at most ${limits.maxUsers} people at once. Try again later.`);
    if (entry) {
      entry.tokens = result.tokens;
      entry.auth.Authorization = `Bearer ${result.tokens.accessToken}`;
    } else {
      const auth = { Authorization: `Bearer ${result.tokens.accessToken}` };
      const servers = options.servers.map((s) =>
        s.name === options.signInServer && 'url' in s.entry
          ? { ...s, entry: { ...s.entry, headers: { ...s.entry.headers, ...auth }, oauth: false as const } }
          : s,
      );
      // The transport reads this object on every request: refreshing the token means changing it here.
      const shared = servers.find((s) => s.name === options.signInServer)!.entry as { headers: Record<string, string> };
      const chat = new UserChat({ llm: options.llm, servers, decisionTimeoutMs: limits.decisionTimeoutMs, era: options.era });
      entry = { key, user: result.user, tokens: result.tokens, auth: shared.headers, chat };
      users.set(key, entry);
      try {
        await chat.start();
      } catch (e) {
        users.delete(key);
        return page(res, 502, 'The chat could not start', (e as Error).message);
      }
    }
    // A new session id at sign-in (no session fixation); the anonymous one is gone.
    sessions.delete(session.id);
    newSession(res, key);
    log(`web chat: ${result.user.name} signed in`);
    res.redirect(303, '/');
  });

  app.post('/auth/logout', guard, json, async (_req, res) => {
    const session = res.locals.session as BrowserSession;
    if (session.userKey) await endUser(session.userKey, 'Signed out.');
    sessions.delete(session.id);
    res.clearCookie(cookieName(), { path: '/', httpOnly: true, sameSite: 'lax', secure });
    res.status(204).end();
  });

  app.get('/api/events', (req, res) => {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return fail(res, 403, 'Cross-site request refused.');
    const entry = userOf(current(req));
    if (!entry) return fail(res, 401, 'You are not signed in.');
    const { transcript } = entry.chat;
    if (transcript.subscribers >= limits.streamsPerUser) return fail(res, 429, `At most ${limits.streamsPerUser} open chat pages per person: close one.`);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    const send = (event: ChatEvent) => res.write(`data: ${JSON.stringify(event)}\n\n`);
    send(transcript.snapshot());
    const unsubscribe = transcript.subscribe((event) => {
      send(event);
      if (event.type === 'ended') res.end();
    });
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 25_000);
    res.on('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
    });
  });

  app.post('/api/chat', guard, json, signedIn, async (req, res) => {
    const entry = res.locals.user as UserEntry;
    const message = (req.body as { message?: unknown })?.message;
    if (typeof message !== 'string' || !message.trim()) return fail(res, 400, 'Type a message first.');
    if (message.length > limits.messageChars) return fail(res, 413, `That message is too long: at most ${limits.messageChars} characters.`);
    if (entry.chat.busy) return fail(res, 409, 'Qwen is still answering your previous message: wait, or press Stop.');
    const retryAfter = limiter.take(entry.key);
    if (retryAfter > 0) {
      res.set('retry-after', String(Math.ceil(retryAfter / 1000)));
      return fail(res, 429, `Too many messages: at most ${limits.messagesPerMinute} per minute. Try again in ${Math.ceil(retryAfter / 1000)} s.`);
    }
    if (!(await fresh(entry))) return fail(res, 401, 'Your sign-in has expired: sign in again.');
    entry.chat.send(message).catch((e: unknown) => {
      if (!(e instanceof BusyError)) log(`web chat: turn failed: ${(e as Error).message}`);
    });
    res.status(202).json({ ok: true });
  });

  app.post('/api/decide', guard, json, signedIn, (req, res) => {
    const entry = res.locals.user as UserEntry;
    const { id, answer } = (req.body ?? {}) as { id?: unknown; answer?: unknown };
    if (typeof id !== 'string' || !['accept', 'decline', 'run', 'skip'].includes(answer as string))
      return fail(res, 400, 'Send {"id": "<card id>", "answer": "accept" | "decline" | "run" | "skip"}.');
    if (!entry.chat.decide(id, answer as 'accept')) return fail(res, 409, 'This card is no longer waiting for an answer.');
    res.json({ ok: true });
  });

  app.post('/api/cancel', guard, json, signedIn, (_req, res) => {
    res.json({ ok: (res.locals.user as UserEntry).chat.cancel() });
  });

  app.use((_req, res) => fail(res, 404, 'Not found.'));
  app.use((err: { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err.type === 'entity.too.large') return fail(res, 413, `Request body too large: at most ${limits.bodyBytes} bytes.`);
    if (err.type === 'entity.parse.failed') return fail(res, 400, 'The body is not valid JSON.');
    log(`web chat: unexpected error: ${String((err as Error).message ?? err)}`);
    fail(res, err.status && err.status >= 400 && err.status < 600 ? err.status : 500, 'Something went wrong on the server.');
  });

  /** Refresh the user's access token shortly before it expires; false when the sign-in cannot be renewed. */
  async function fresh(entry: UserEntry): Promise<boolean> {
    if (entry.tokens.expiresAt - Date.now() > limits.refreshMarginMs) return true;
    try {
      entry.tokens = await signIn!.refresh(entry.tokens);
      entry.auth.Authorization = `Bearer ${entry.tokens.accessToken}`;
      return true;
    } catch (e) {
      log(`web chat: token refresh failed: ${(e as Error).message}`);
      await endUser(entry.key, 'Your sign-in expired. Sign in again.');
      return false;
    }
  }

  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  allowedHosts = new Set([`127.0.0.1:${port}`]);
  secure = origin.startsWith('https:');
  try {
    signIn = await options.signIn(origin);
  } catch (e) {
    server.close();
    throw e;
  }

  return {
    url: `${origin}/`,
    users: () => [...users.values()].map((u) => ({ sub: u.user.sub, name: u.user.name, chat: u.chat })),
    heldSecrets: () => [...users.values()].flatMap((u) => [u.tokens.accessToken, u.tokens.refreshToken ?? '']).filter(Boolean),
    async close() {
      clearInterval(sweeper);
      await Promise.allSettled([...users.keys()].map((k) => endUser(k, 'The chat server stopped.')));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function page(res: Response, status: number, title: string, text: string): void {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
  res
    .status(status)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title><link rel="stylesheet" href="/static/style.css"></head><body class="plain"><main><h1>${esc(title)}</h1><p>${esc(text)}</p><p><a href="/">Back to the chat</a></p></main></body></html>`,
    );
}
