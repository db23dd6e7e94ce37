/**
 * A protocol-faithful emulator of the parts of DingTalk this server uses, for tests, `--sandbox` and the demo.
 *
 * One origin serves what DingTalk spreads over two hosts:
 *   - login.dingtalk.com: GET /oauth2/auth (consent page) and POST /oauth2/auth/decision (the emulator's own form
 *     target; the real page is an interactive login, not a public contract)
 *   - api.dingtalk.com:   POST /v1.0/oauth2/userAccessToken, GET /v1.0/contact/users/me,
 *                         POST /v2.0/doc/me/suites/documents/{docKey}/overwriteContent
 * plus /sandbox/* pages and switches that do not exist in DingTalk (document viewer, fault injection).
 *
 * Everything marked MODELED is not documented by DingTalk (see reference/dingtalk.md §8) and was chosen here.
 * Tokens are random (crypto) and never logged or echoed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen, shutdown } from './http.js';

export interface EmulatorApp {
  clientId: string;
  clientSecret: string;
  /** Registered redirect URLs (安全设置 → 重定向URL), matched exactly (reference §2.1). */
  redirectUris: string[];
  /** Shown on the consent page. Defaults to the clientId. */
  name?: string;
  /**
   * Permission codes the app has been granted in the developer console (reference §2.2, §3.6).
   * Default: ['Contact.User.Read', 'Document.Document.Write']. A call needing one the app lacks →
   * 403 Forbidden.AccessDenied.AccessTokenPermissionDenied with accessdenieddetail.requiredScopes.
   */
  permissions?: string[];
}

export interface EmulatorUser {
  unionId: string;
  nick: string;
}

export interface EmulatorDocumentSeed {
  id: string;
  title?: string;
  content?: string;
}

export interface EmulatorDocument {
  id: string;
  title: string;
  content: string;
  writes: Array<{ unionId: string; at: Date }>;
}

export type FaultMatch = 'overwriteContent' | 'users/me' | 'token' | 'any';

export interface FaultSpec {
  /** HTTP status of the injected answer. */
  status: number;
  /** DingTalk error code in the body, e.g. 'Forbidden.AccessDenied.QpsLimitForAppkeyAndApi'. */
  code: string;
  message?: string;
  /** How many matching requests get the fault; Infinity for "until cleared". Default 1. */
  times?: number;
  /** Which API it applies to. Default 'any' (every API endpoint; never the consent pages or /sandbox). */
  match?: FaultMatch;
  /** Wait this long before answering (e.g. to make a client time out). */
  delayMs?: number;
  /** Send this raw text instead of the JSON error body (e.g. an HTML page or the IP-ban page). */
  rawBody?: string;
  /** Added as accessdenieddetail.requiredScopes. */
  requiredScopes?: string[];
}

export type ApiName = 'overwriteContent' | 'users/me' | 'token' | 'authorize' | 'decision' | 'unknown';

export interface EmulatorRequestLog {
  at: Date;
  method: string;
  /** Path without the query string. */
  path: string;
  api: ApiName;
  /** unionId of the user whose (valid) access token was presented, or null. */
  unionId: string | null;
  status: number;
  /** DingTalk error code of the answer, if it was an error. */
  code?: string;
  requestId: string;
  /** For overwriteContent: the document id from the path. */
  documentId?: string;
  /** True when the answer came from an injected fault. */
  faulted?: boolean;
}

export interface DingTalkEmulatorOptions {
  host?: string;
  port?: number;
  apps: EmulatorApp[];
  users?: EmulatorUser[];
  /** Access-token lifetime, seconds (DingTalk: 7200, reference §2.1). */
  tokenTtlSeconds?: number;
  /** Refresh-token lifetime, seconds (DingTalk: 30 days). */
  refreshTokenTtlSeconds?: number;
  documents?: EmulatorDocumentSeed[];
  /** corpId returned by the token endpoint when the scope includes `corpid`. */
  corpId?: string;
  /** Clock, ms since epoch. Default Date.now. See also advanceTime(). */
  now?: () => number;
}

export interface DingTalkEmulator {
  /** Base URL, e.g. http://127.0.0.1:41234 (use for both the login host and the API host). */
  readonly url: string;
  /** Every request except /sandbox/*, in order. */
  readonly requests: EmulatorRequestLog[];
  close(): Promise<void>;
  /** Register (or replace) an app after start, e.g. once the callback's port is known. */
  addApp(app: EmulatorApp): void;
  seedDocument(id: string, doc?: { title?: string; content?: string }): void;
  getDocument(id: string): EmulatorDocument | undefined;
  injectFault(fault: FaultSpec): void;
  clearFaults(): void;
  revokeAccessToken(token: string): void;
  revokeTokensForUser(unionId: string): void;
  /** Move the emulator's clock forward (tokens and codes expire by it). */
  advanceTime(ms: number): void;
  /** The emulator's current time, ms since epoch. */
  now(): number;
  /** Convenience for tests: mint a token pair for a user without the browser flow. */
  issueTokens(clientId: string, unionId: string): { accessToken: string; refreshToken: string; expireIn: number };
  readonly users: ReadonlyArray<EmulatorUser>;
}

export const DEFAULT_EMULATOR_USERS: ReadonlyArray<EmulatorUser> = [
  { unionId: 'emuZhangSan0001UnionId', nick: '张三' },
  { unionId: 'emuLiSi0002UnionId', nick: '李四' },
];

const DEFAULT_PERMISSIONS = ['Contact.User.Read', 'Document.Document.Write'];
/** reference §3.1 (a): content ≤ 50,000 chars. Assumed the same for the user-token variant (UNVERIFIED). */
const MAX_CONTENT_CHARS = 50_000;
const CONSENT_TTL_MS = 10 * 60_000; // MODELED
const AUTH_CODE_TTL_MS = 5 * 60_000; // MODELED: DingTalk's authCode lifetime is not documented
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const OVERWRITE_PATH = /^\/v2\.0\/doc\/me\/suites\/documents\/([^/]+)\/overwriteContent$/;

interface ConsentRequest {
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state: string | undefined;
  expiresAt: number;
}
interface AuthCode {
  clientId: string;
  redirectUri: string;
  unionId: string;
  scopes: string[];
  expiresAt: number;
}
interface AccessTokenRecord {
  clientId: string;
  unionId: string;
  scopes: string[];
  expiresAt: number;
}
type RefreshTokenRecord = AccessTokenRecord;
interface ActiveFault extends Omit<FaultSpec, 'times' | 'match'> {
  remaining: number;
  match: FaultMatch;
}

class HttpError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly message: string,
    readonly extra: Record<string, unknown> = {},
  ) {}
}

export async function startDingTalkEmulator(options: DingTalkEmulatorOptions): Promise<DingTalkEmulator> {
  const host = options.host ?? '127.0.0.1';
  const clock = options.now ?? Date.now;
  let offsetMs = 0;
  const now = () => clock() + offsetMs;
  const tokenTtlMs = (options.tokenTtlSeconds ?? 7200) * 1000;
  const refreshTtlMs = (options.refreshTokenTtlSeconds ?? 30 * 24 * 3600) * 1000;
  const corpId = options.corpId ?? 'dingemulatorcorp0001';

  const apps = new Map(options.apps.map((a) => [a.clientId, a]));
  const users = new Map((options.users ?? DEFAULT_EMULATOR_USERS).map((u) => [u.unionId, { ...u }]));
  const documents = new Map<string, EmulatorDocument>();
  const consentRequests = new Map<string, ConsentRequest>();
  const authCodes = new Map<string, AuthCode>();
  const accessTokens = new Map<string, AccessTokenRecord>();
  const refreshTokens = new Map<string, RefreshTokenRecord>();
  let faults: ActiveFault[] = [];
  const requests: EmulatorRequestLog[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const seedDocument = (id: string, doc: { title?: string; content?: string } = {}) => {
    documents.set(id, { id, title: doc.title ?? id, content: doc.content ?? '', writes: [] });
  };
  for (const d of options.documents ?? []) seedDocument(d.id, d);

  const injectFault = (fault: FaultSpec) => {
    if (!Number.isInteger(fault.status) || fault.status < 100 || fault.status > 599) {
      throw new Error('fault.status must be an HTTP status code');
    }
    const times = fault.times ?? 1;
    if (!(times > 0)) throw new Error('fault.times must be > 0 (or Infinity)');
    const { times: _t, match, ...rest } = fault;
    faults.push({ ...rest, remaining: times, match: match ?? 'any' });
  };

  const issueTokens = (clientId: string, unionId: string, scopes: string[] = ['openid', 'corpid']) => {
    const accessToken = randomBytes(24).toString('hex');
    const refreshToken = randomBytes(24).toString('hex');
    accessTokens.set(accessToken, { clientId, unionId, scopes, expiresAt: now() + tokenTtlMs });
    refreshTokens.set(refreshToken, { clientId, unionId, scopes, expiresAt: now() + refreshTtlMs });
    return { accessToken, refreshToken, expireIn: Math.round(tokenTtlMs / 1000) };
  };

  // ---- request handling -----------------------------------------------------------------------------------------

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Never let a bug crash the test process; answer like DingTalk's gateway would.
      if (!res.headersSent) {
        sendJson(res, 500, { code: 'unknownError', requestid: newRequestId(), message: String(err).slice(0, 200) });
      } else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path === '/sandbox' || path.startsWith('/sandbox/')) {
      await handleSandbox(req, res, method, path);
      return;
    }

    const requestId = newRequestId();
    res.setHeader('x-acs-request-id', requestId); // MODELED: header name as sent by the acs gateway
    const api = classify(method, path);
    const entry: EmulatorRequestLog = { at: new Date(now()), method, path, api, unionId: null, status: 0, requestId };
    const docMatch = OVERWRITE_PATH.exec(path);
    if (docMatch && api === 'overwriteContent') entry.documentId = safeDecode(docMatch[1] ?? '') ?? docMatch[1];
    requests.push(entry);

    const finish = (status: number, code?: string) => {
      entry.status = status;
      if (code) entry.code = code;
    };

    // Injected faults (API endpoints only), answered before authentication like a gateway-level limit.
    if (api === 'overwriteContent' || api === 'users/me' || api === 'token') {
      const fault = faults.find((f) => f.remaining > 0 && (f.match === 'any' || f.match === api));
      if (fault) {
        fault.remaining -= 1;
        faults = faults.filter((f) => f.remaining > 0);
        entry.faulted = true;
        if (fault.delayMs && fault.delayMs > 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              timers.delete(t);
              resolve();
            }, fault.delayMs);
            timers.add(t);
          });
          if (res.destroyed || res.writableEnded) {
            finish(fault.status, fault.code);
            return;
          }
        }
        finish(fault.status, fault.code);
        if (fault.rawBody !== undefined) {
          res.writeHead(fault.status, { 'content-type': 'text/html; charset=utf-8' });
          res.end(fault.rawBody);
          return;
        }
        const body: Record<string, unknown> = {
          code: fault.code,
          requestid: requestId,
          message: fault.message ?? `Injected fault: ${fault.code}`,
        };
        if (fault.requiredScopes) body['accessdenieddetail'] = { requiredScopes: fault.requiredScopes };
        sendJson(res, fault.status, body);
        return;
      }
    }

    try {
      switch (api) {
        case 'authorize':
          finish(authorizePage(res, url));
          return;
        case 'decision':
          finish(await decision(req, res));
          return;
        case 'token': {
          const body = await tokenEndpoint(req);
          sendJson(res, 200, body);
          finish(200);
          return;
        }
        case 'users/me': {
          const token = authenticate(req, 'Contact.User.Read');
          entry.unionId = token.unionId;
          const user = users.get(token.unionId);
          const openId = createHash('sha256').update(`${token.clientId}:${token.unionId}`).digest('hex').slice(0, 24);
          // reference §2.1 step 3: {nick, avatarUrl, mobile, stateCode, email, loginEmail, openId, unionId, visitor}
          sendJson(res, 200, {
            nick: user?.nick ?? token.unionId,
            avatarUrl: '',
            stateCode: '86',
            openId,
            unionId: token.unionId,
            visitor: false,
          });
          finish(200);
          return;
        }
        case 'overwriteContent': {
          const token = authenticate(req, 'Document.Document.Write');
          entry.unionId = token.unionId;
          await overwrite(req, entry.documentId ?? '', token);
          // reference §3.1 (b): → 200 {"data": {...}}. The members of `data` are not documented (MODELED: empty).
          sendJson(res, 200, { data: {} });
          finish(200);
          return;
        }
        default:
          // reference §4: a wrong path gives 404 InvalidAction.NotFound [3P].
          throw new HttpError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.');
      }
    } catch (err) {
      if (err instanceof HttpError) {
        // reference §4: error body {code, requestid, message} (+ accessdenieddetail for permission errors).
        sendJson(res, err.status, { code: err.code, requestid: requestId, message: err.message, ...err.extra });
        finish(err.status, err.code);
        return;
      }
      throw err;
    }
  }

  function classify(method: string, path: string): ApiName {
    if (path === '/oauth2/auth' && method === 'GET') return 'authorize';
    if (path === '/oauth2/auth/decision' && method === 'POST') return 'decision';
    if (path === '/v1.0/oauth2/userAccessToken' && method === 'POST') return 'token';
    if (path === '/v1.0/contact/users/me' && method === 'GET') return 'users/me';
    if (OVERWRITE_PATH.test(path) && method === 'POST') return 'overwriteContent';
    return 'unknown';
  }

  /**
   * reference §2.1 step 5: api.dingtalk.com takes only `x-acs-dingtalk-access-token`; `Authorization: Bearer`
   * or `?access_token=` → 400 AuthenticationFailed.MissingParameter. A bad/expired token → 400 InvalidAuthentication.
   */
  function authenticate(req: IncomingMessage, permission: string): AccessTokenRecord & { token: string } {
    const header = req.headers['x-acs-dingtalk-access-token'];
    const token = Array.isArray(header) ? header[0] : header;
    if (!token) {
      throw new HttpError(400, 'AuthenticationFailed.MissingParameter', '缺少参数：x-acs-dingtalk-access-token');
    }
    const record = accessTokens.get(token);
    if (!record || record.expiresAt <= now()) {
      if (record) accessTokens.delete(token);
      throw new HttpError(400, 'InvalidAuthentication', '不合法的access_token');
    }
    const app = apps.get(record.clientId);
    const granted = app?.permissions ?? DEFAULT_PERMISSIONS;
    if (!granted.includes(permission)) {
      throw new HttpError(403, 'Forbidden.AccessDenied.AccessTokenPermissionDenied', `没有调用该接口的权限，接口权限申请参考：${permission}`, {
        accessdenieddetail: { requiredScopes: [permission] },
      });
    }
    return { ...record, token };
  }

  /** reference §3.1 (b). Validation errors other than the token ones are MODELED (codes not documented). */
  async function overwrite(req: IncomingMessage, documentId: string, token: AccessTokenRecord): Promise<void> {
    const body = await readJson(req);
    const content = body['content'];
    if (content === undefined || content === null) {
      throw new HttpError(400, 'MissingParameter', '缺少参数：content'); // MODELED
    }
    if (typeof content !== 'string') {
      throw new HttpError(400, 'InvalidParameter', 'content must be a string'); // MODELED
    }
    if (content.length > MAX_CONTENT_CHARS) {
      // MODELED code; the 50,000-char limit is documented for §3.1 (a).
      throw new HttpError(
        400,
        'InvalidParameter.Content.TooLong',
        `content is too long: ${content.length} characters, at most ${MAX_CONTENT_CHARS} are allowed`,
      );
    }
    const dataType = body['dataType'];
    if (dataType !== undefined && dataType !== 'markdown') {
      throw new HttpError(400, 'InvalidParameter', 'dataType must be "markdown"'); // MODELED
    }
    const doc = documents.get(documentId);
    if (!doc) {
      // MODELED / UNVERIFIED: DingTalk's "document not found" code is not documented (reference §4, §8.5).
      throw new HttpError(404, 'DocumentNotFound', 'The document does not exist or the user has no access to it.');
    }
    doc.content = content;
    doc.writes.push({ unionId: token.unionId, at: new Date(now()) });
  }

  /** reference §2.1 step 2. Error codes other than invalidClientIdOrSecret are MODELED. */
  async function tokenEndpoint(req: IncomingMessage): Promise<Record<string, unknown>> {
    const body = await readJson(req);
    const str = (k: string) => (typeof body[k] === 'string' ? (body[k] as string) : undefined);
    const clientId = str('clientId');
    const clientSecret = str('clientSecret');
    const grantType = str('grantType');
    const app = clientId ? apps.get(clientId) : undefined;
    if (!app || clientSecret !== app.clientSecret) {
      throw new HttpError(400, 'invalidClientIdOrSecret', '无效的clientId或者clientSecret');
    }
    let record: AccessTokenRecord;
    if (grantType === 'authorization_code') {
      const code = str('code');
      if (!code) throw new HttpError(400, 'MissingParameter', '缺少参数：code'); // MODELED
      const entry = authCodes.get(code);
      authCodes.delete(code); // single use, even when it is rejected below
      if (!entry || entry.expiresAt <= now() || entry.clientId !== app.clientId) {
        throw new HttpError(400, 'invalidAuthCode', '不合法的临时授权码'); // MODELED
      }
      record = { clientId: entry.clientId, unionId: entry.unionId, scopes: entry.scopes, expiresAt: 0 };
    } else if (grantType === 'refresh_token') {
      const refreshToken = str('refreshToken');
      if (!refreshToken) throw new HttpError(400, 'MissingParameter', '缺少参数：refreshToken'); // MODELED
      const entry = refreshTokens.get(refreshToken);
      if (!entry || entry.expiresAt <= now() || entry.clientId !== app.clientId) {
        throw new HttpError(400, 'invalidRefreshToken', '不合法的refreshToken'); // MODELED
      }
      refreshTokens.delete(refreshToken); // rotation (reference §2.1: appears to rotate; UNVERIFIED)
      record = entry;
    } else {
      throw new HttpError(400, 'invalidGrantType', 'grantType must be authorization_code or refresh_token'); // MODELED
    }
    const tokens = issueTokens(record.clientId, record.unionId, record.scopes);
    const out: Record<string, unknown> = { ...tokens };
    if (record.scopes.includes('corpid')) out['corpId'] = corpId;
    return out;
  }

  /** reference §2.1 step 1. Invalid requests never redirect (the redirect_uri is not trusted yet): 400 page. */
  function authorizePage(res: ServerResponse, url: URL): number {
    const q = url.searchParams;
    const clientId = q.get('client_id');
    const redirectUri = q.get('redirect_uri');
    const bad = (msg: string) => {
      sendHtml(res, 400, page('授权请求无效 · Invalid authorization request', `<p>${escapeHtml(msg)}</p>`));
      return 400;
    };
    if (!clientId) return bad('Missing client_id.');
    const app = apps.get(clientId);
    if (!app) return bad(`Unknown client_id "${clientId}": no such DingTalk app.`);
    if (!redirectUri) return bad('Missing redirect_uri.');
    if (!app.redirectUris.includes(redirectUri)) {
      return bad(`redirect_uri "${redirectUri}" is not registered for this app (安全设置 → 重定向URL; exact match).`);
    }
    if (q.get('response_type') !== 'code') return bad('response_type must be "code".');
    const scopes = (q.get('scope') ?? '').split(/[\s,]+/).filter(Boolean);
    if (!scopes.includes('openid')) return bad('scope must contain "openid".');
    if (q.get('prompt') !== 'consent') return bad('prompt must be "consent" (固定填写 consent).');

    const id = randomBytes(18).toString('base64url');
    const state = q.get('state') ?? undefined;
    consentRequests.set(id, { clientId, redirectUri, scopes, state, expiresAt: now() + CONSENT_TTL_MS });

    const options = [...users.values()]
      .map((u) => `<option value="${escapeHtml(u.unionId)}">${escapeHtml(u.nick)} (${escapeHtml(u.unionId)})</option>`)
      .join('');
    const body = `
<p>应用 <strong>${escapeHtml(app.name ?? app.clientId)}</strong> 申请访问你的钉钉账号<br>
The app <strong>${escapeHtml(app.name ?? app.clientId)}</strong> asks to access your DingTalk account.</p>
<p>Requested scopes:</p>
<ul>${scopes.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('')}</ul>
<form method="post" action="/oauth2/auth/decision">
  <input type="hidden" name="consent_request" value="${escapeHtml(id)}">
  <label>Which DingTalk account is signed in in this browser:
    <select name="unionId">${options}</select>
  </label>
  <p>
    <button type="submit" name="decision" value="allow">同意授权 · Allow</button>
    <button type="submit" name="decision" value="deny">拒绝 · Deny</button>
  </p>
</form>
<p class="note">DingTalk emulator (sandbox). Redirects to ${escapeHtml(redirectUri)}</p>`;
    sendHtml(res, 200, page('钉钉授权 · DingTalk authorization (emulator)', body));
    return 200;
  }

  async function decision(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const bad = (msg: string) => {
      sendHtml(res, 400, page('授权请求无效 · Invalid authorization request', `<p>${escapeHtml(msg)}</p>`));
      return 400;
    };
    let form: URLSearchParams;
    try {
      form = new URLSearchParams((await readBody(req)).toString('utf8'));
    } catch {
      return bad('Could not read the form.');
    }
    const id = form.get('consent_request') ?? '';
    const consent = consentRequests.get(id);
    consentRequests.delete(id); // single use
    if (!consent || consent.expiresAt <= now()) {
      return bad('This authorization request is unknown, was already answered, or has expired. Start again from the app.');
    }
    const choice = form.get('decision');
    const target = new URL(consent.redirectUri);
    if (choice === 'deny') {
      target.searchParams.set('error', 'access_denied');
    } else if (choice === 'allow') {
      const unionId = form.get('unionId') ?? '';
      if (!users.has(unionId)) return bad('Unknown DingTalk account.');
      const code = randomBytes(16).toString('hex');
      authCodes.set(code, {
        clientId: consent.clientId,
        redirectUri: consent.redirectUri,
        unionId,
        scopes: consent.scopes,
        expiresAt: now() + AUTH_CODE_TTL_MS,
      });
      target.searchParams.set('authCode', code); // reference §2.1: the parameter is `authCode`
    } else {
      return bad('decision must be "allow" or "deny".');
    }
    if (consent.state !== undefined) target.searchParams.set('state', consent.state);
    res.writeHead(302, { location: target.toString(), 'cache-control': 'no-store', 'content-length': '0' });
    res.end();
    return 302;
  }

  // ---- /sandbox ---------------------------------------------------------------------------------------------------

  async function handleSandbox(req: IncomingMessage, res: ServerResponse, method: string, path: string): Promise<void> {
    if (path === '/sandbox/faults') {
      if (method === 'GET') {
        sendJson(res, 200, { faults: faults.map((f) => ({ ...f, remaining: Number.isFinite(f.remaining) ? f.remaining : 'Infinity' })) });
        return;
      }
      if (method === 'DELETE') {
        faults = [];
        sendJson(res, 200, { faults: [] });
        return;
      }
      if (method === 'POST') {
        // JSON only: a browser page cannot send application/json cross-origin without a preflight we never allow.
        if (!String(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
          sendJson(res, 415, { error: 'send the fault as application/json' });
          return;
        }
        try {
          const body = await readJson(req);
          const t = body['times'];
          const times = t === undefined || t === null || t === 'Infinity' || t === 'infinity' ? Infinity : Number(t);
          const match = body['match'];
          const fault: FaultSpec = {
            status: Number(body['status']),
            code: typeof body['code'] === 'string' ? body['code'] : 'unknownError',
            times,
          };
          if (typeof body['message'] === 'string') fault.message = body['message'];
          if (match === 'overwriteContent' || match === 'users/me' || match === 'token' || match === 'any') fault.match = match;
          else if (match !== undefined) throw new Error('match must be overwriteContent, users/me, token or any');
          if (typeof body['delayMs'] === 'number') fault.delayMs = body['delayMs'];
          if (typeof body['rawBody'] === 'string') fault.rawBody = body['rawBody'];
          if (Array.isArray(body['requiredScopes'])) fault.requiredScopes = body['requiredScopes'].map(String);
          injectFault(fault);
          sendJson(res, 201, { ok: true, fault: { ...fault, times: Number.isFinite(times) ? times : 'Infinity' } });
        } catch (err) {
          sendJson(res, 400, {
            error: err instanceof Error ? err.message : 'bad fault',
            example: { status: 403, code: 'Forbidden.AccessDenied.QpsLimitForAppkeyAndApi', times: 2, match: 'overwriteContent' },
          });
        }
        return;
      }
      sendJson(res, 405, { error: 'use GET, POST or DELETE' });
      return;
    }

    if (method === 'GET' && path === '/sandbox/docs') {
      const items = [...documents.values()]
        .map((d) => `<li><a href="/sandbox/docs/${encodeURIComponent(d.id)}">${escapeHtml(d.title)}</a> <code>${escapeHtml(d.id)}</code></li>`)
        .join('');
      sendHtml(res, 200, page('Documents (DingTalk emulator)', `<ul>${items}</ul>`));
      return;
    }

    const m = /^\/sandbox\/docs\/([^/]+?)(\.md)?$/.exec(path);
    if (method === 'GET' && m) {
      const id = safeDecode(m[1] ?? '') ?? '';
      const doc = documents.get(id);
      if (m[2]) {
        if (!doc) {
          res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('no such document\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/markdown; charset=utf-8', 'cache-control': 'no-store' });
        res.end(doc.content);
        return;
      }
      if (!doc) {
        sendHtml(res, 404, page('Not found', `<p>No document <code>${escapeHtml(id)}</code>.</p>`));
        return;
      }
      const last = doc.writes[doc.writes.length - 1];
      const who = last
        ? `<p class="note">Last written by ${escapeHtml(users.get(last.unionId)?.nick ?? last.unionId)} at ${escapeHtml(last.at.toISOString())} (${doc.writes.length} write(s)).</p>`
        : '<p class="note">Never written.</p>';
      sendHtml(
        res,
        200,
        page(doc.title, `<p><code>${escapeHtml(doc.id)}</code> · <a href="/sandbox/docs/${encodeURIComponent(doc.id)}.md">raw markdown</a></p>${who}<pre>${escapeHtml(doc.content)}</pre>`),
      );
      return;
    }
    sendJson(res, 404, { error: 'unknown sandbox path' });
  }

  // ---- lifecycle ----------------------------------------------------------------------------------------------------

  const url = await listen(server, host, options.port);

  return {
    url,
    requests,
    users: [...users.values()],
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await shutdown(server);
    },
    addApp(app) {
      apps.set(app.clientId, app);
    },
    seedDocument,
    getDocument(id) {
      const d = documents.get(id);
      return d ? { ...d, writes: d.writes.map((w) => ({ ...w })) } : undefined;
    },
    injectFault,
    clearFaults() {
      faults = [];
    },
    revokeAccessToken(token) {
      accessTokens.delete(token);
    },
    revokeTokensForUser(unionId) {
      for (const [t, r] of accessTokens) if (r.unionId === unionId) accessTokens.delete(t);
      for (const [t, r] of refreshTokens) if (r.unionId === unionId) refreshTokens.delete(t);
    },
    advanceTime(ms) {
      offsetMs += ms;
    },
    now,
    issueTokens(clientId, unionId) {
      if (!apps.has(clientId)) throw new Error(`unknown clientId ${clientId}`);
      if (!users.has(unionId)) throw new Error(`unknown unionId ${unionId}`);
      return issueTokens(clientId, unionId);
    },
  };
}

// ---- helpers --------------------------------------------------------------------------------------------------------

function newRequestId(): string {
  // DingTalk request ids look like UUIDs in upper case (MODELED).
  return randomBytes(16).toString('hex').toUpperCase().replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'RequestEntityTooLarge', 'request body too large')); // MODELED
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = (await readBody(req)).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'InvalidParameter', 'The request body is not valid JSON.'); // MODELED
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError(400, 'InvalidParameter', 'The request body must be a JSON object.'); // MODELED
  }
  return parsed as Record<string, unknown>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json;charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    // No scripts, no external assets; the form posts to our own origin and is then redirected.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(html);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
pre{background:#f5f5f5;padding:1rem;white-space:pre-wrap;word-break:break-word}.note{color:#666;font-size:.9em}
button{margin-right:.5rem;padding:.4rem 1rem}</style></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}
