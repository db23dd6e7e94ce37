/**
 * DingTalk OpenAPI transport for both token families (docs/architecture.md decision 12): the user-token ("个人授权") calls
 * here, the app-token calls in app-api.ts through `send`.
 *
 * - The user's access token goes ONLY in the `x-acs-dingtalk-access-token` header (docs/reference/dingtalk.md §2.1 step 5);
 *   it never appears in a URL, a log line or an error message.
 * - Bounded retries with exponential backoff + jitter for the QPS-limit codes, HTTP 429, 5xx and network errors
 *   (reference §4, §5). Overwrite replaces the whole document, so repeating it is idempotent and safe; calls that
 *   are not idempotent (append, create) are retried only on answers that mean "not processed" (QPS limit, 429).
 * - Errors are mapped to DingTalkError (reference §4 error shape `{code, requestid, message}`).
 */
import type { Agent } from 'undici';
import { silentLogger } from '../log.js';
import type { Logger } from '../log.js';
import { AttemptTimeout, exchange } from './exchange.js';
import { DingTalkError } from './types.js';
import type { DingTalkErrorKind, OverwriteResult } from './types.js';

export interface DingTalkClientOptions {
  /** Default https://api.dingtalk.com (international: https://api.dingtalk.io). */
  baseUrl?: string;
  /** Per-attempt timeout (connect + response + body). Default 15000. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 3 (so at most 4 attempts). */
  maxRetries?: number;
  /** Base of the exponential backoff. Default 1000 (DingTalk advises waiting ~1 s after a QPS limit, §5). */
  retryBaseDelayMs?: number;
  logger?: Logger;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** Documented limit of `content` for overwrite (reference §3.1 (a); assumed the same for (b), UNVERIFIED). */
export const MAX_OVERWRITE_CHARS = 50_000;

const QPS_CODES = new Set(['Forbidden.AccessDenied.QpsLimitForAppkeyAndApi', 'Forbidden.AccessDenied.QpsLimitForApi']);

const OVERWRITE_SCOPE = 'Document.Document.Write';
const USER_SCOPE = 'Contact.User.Read';

/** One DingTalk request, described well enough to retry it safely and to explain its failure. */
export interface Operation {
  /** The SDK action, for logs: `DocBlocksQuery`, `GetAccessToken`… */
  name: string;
  method: 'GET' | 'POST';
  /** Path and query; ids already encoded. */
  path: string;
  body?: string;
  /** The permission the operation needs when DingTalk does not say (reference §3.6). */
  scope: string;
  /** Which token goes in `x-acs-dingtalk-access-token`; `none` for the token endpoints themselves. */
  family: 'user' | 'app' | 'none';
  /** What the call does, for messages: "reading DingTalk document X". */
  what: string;
  /** Safe to repeat after a 5xx or a lost answer. */
  idempotent: boolean;
  documentId?: string;
  /** What the signed-in user needs on `documentId`, for a 403/404 message. */
  needs?: 'read' | 'edit';
}

interface ParsedError {
  status: number;
  code?: string;
  message?: string;
  requestId?: string;
  requiredScopes?: string[];
  /** The per-IP ban page `{"status":1111,"wait":5,"punish":"deny",...}` (reference §5). */
  ipBanWaitMinutes?: number;
}

interface RawResponse {
  status: number;
  text: string;
  requestId?: string;
}

export class DingTalkClient {
  private readonly origin: string;
  /** The base URL's path, without a trailing slash ('' for most): every operation's path follows it. */
  private readonly pathPrefix: string;
  private readonly host: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly logger: Logger;
  private undici?: Promise<Agent>;
  /** The pool once loaded: later attempts use it without awaiting the import again. */
  private agent?: Agent;
  private closed = false;

  constructor(options: DingTalkClientOptions = {}) {
    const base = new URL(options.baseUrl ?? 'https://api.dingtalk.com');
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error('DingTalk baseUrl must be http(s)');
    if (base.username || base.password) throw new Error('DingTalk baseUrl must not contain credentials');
    this.origin = base.origin;
    this.pathPrefix = base.pathname.replace(/\/+$/, '');
    this.host = base.host;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.maxRetries = Math.max(0, Math.floor(options.maxRetries ?? 3));
    this.retryBaseDelayMs = Math.max(0, options.retryBaseDelayMs ?? 1000);
    this.logger = (options.logger ?? silentLogger).child({ component: 'dingtalk' });
  }

  /**
   * Load undici now, off the path of any call (the transports call this once they are serving):
   * the first write after a consent must not wait for it.
   */
  warmUp(): void {
    void this.http().catch(() => {});
  }

  /** undici is loaded on the first call or warmUp(), not at start-up: the stdio server answers `initialize` sooner. */
  private http(): Promise<Agent> {
    this.undici ??= import('undici').then(
      (m) => (this.agent = new m.Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000, connections: 32, connect: { timeout: this.timeoutMs } })),
    );
    return this.undici;
  }

  /**
   * Replace the whole content of a document with markdown, as the user who owns `accessToken`.
   * docs/reference/dingtalk.md §3.1 (b): POST /v2.0/doc/me/suites/documents/{docKey}/overwriteContent,
   * header x-acs-dingtalk-access-token (user token, no operatorId), body {content, dataType:"markdown"} → {data}.
   * If `signal` aborts, the call stops at once (no further retries) and rejects with the signal's reason.
   */
  async overwriteDocument(documentId: string, markdown: string, accessToken: string, options: CallOptions = {}): Promise<OverwriteResult> {
    // doc_2_0 DocUpdateContentWithDelegatedPermission
    const res = await this.call(
      {
        name: 'DocUpdateContentWithDelegatedPermission',
        method: 'POST',
        path: `/v2.0/doc/me/suites/documents/${encodeURIComponent(documentId)}/overwriteContent`,
        body: JSON.stringify({ content: markdown, dataType: 'markdown' }),
        scope: OVERWRITE_SCOPE,
        family: 'user',
        what: `writing DingTalk document "${documentId}"`,
        idempotent: true,
        documentId,
        needs: 'edit',
      },
      accessToken,
      options.signal,
    );
    const result: OverwriteResult = { documentId, charactersWritten: markdown.length };
    if (res.requestId) result.requestId = res.requestId;
    return result;
  }

  /** reference §2.1 step 3: GET /v1.0/contact/users/me with the user token → {nick, unionId, ...}. */
  async getCurrentUser(accessToken: string, options: CallOptions = {}): Promise<{ unionId: string; nick?: string }> {
    // contact_1_0 GetUser with unionId "me"
    const res = await this.call(
      {
        name: 'GetUser',
        method: 'GET',
        path: '/v1.0/contact/users/me',
        scope: USER_SCOPE,
        family: 'user',
        what: 'reading the signed-in DingTalk user',
        idempotent: true,
      },
      accessToken,
      options.signal,
    );
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      body = undefined;
    }
    const record = isRecord(body) ? body : {};
    const unionId = record['unionId'];
    if (typeof unionId !== 'string' || unionId === '') {
      throw new DingTalkError(
        'DingTalk answered /v1.0/contact/users/me without a unionId; cannot tell which DingTalk user signed in.',
        'unknown',
        undefined,
        res.status,
        res.requestId,
      );
    }
    const nick = record['nick'];
    return typeof nick === 'string' ? { unionId, nick } : { unionId };
  }

  /**
   * Send one request and parse its JSON answer (app-api.ts builds the operations). `token` is the user or app
   * token as `op.family` says; `secrets` are redacted from any error message (e.g. an app secret in the body).
   */
  async send(op: Operation, token: string, signal?: AbortSignal, secrets: string[] = []): Promise<{ body: Record<string, unknown>; requestId?: string }> {
    let res: RawResponse;
    try {
      res = await this.call(op, token, signal);
    } catch (e) {
      if (e instanceof DingTalkError) throw redactError(e, secrets);
      throw e;
    }
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      body = undefined;
    }
    if (!isRecord(body)) {
      throw new DingTalkError(`DingTalk answered ${op.what} with something that is not JSON.`, 'unknown', undefined, res.status, res.requestId, op.family);
    }
    return res.requestId ? { body, requestId: res.requestId } : { body };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.undici) await (await this.undici).close();
  }

  // ---------------------------------------------------------------------------------------------------------------

  private async call(op: Operation, accessToken: string, signal?: AbortSignal): Promise<RawResponse> {
    if (this.closed) throw new Error('DingTalkClient is closed');
    if (op.family !== 'none' && (typeof accessToken !== 'string' || accessToken.trim() === '')) {
      throw new DingTalkError('No DingTalk access token is available for this user; the user must authorize DingTalk (again).', 'invalid_token');
    }
    const attempts = this.maxRetries + 1;
    let lastNetworkError: { reason: string; attempt: number } | undefined;

    for (let attempt = 1; attempt <= attempts; attempt++) {
      throwIfAborted(signal);
      let res: RawResponse;
      try {
        res = await this.attempt(op, accessToken, signal);
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        const reason = err instanceof AttemptTimeout ? err.message : describeNetworkError(err);
        lastNetworkError = { reason, attempt };
        // A call that is not idempotent may have been applied although the answer was lost: never repeat it.
        if (attempt < attempts && (op.idempotent || /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(reason))) {
          const delayMs = this.backoff(attempt);
          this.logger.warn('DingTalk request failed (network); retrying', {
            op: op.name,
            host: this.host,
            reason,
            attempt,
            maxAttempts: attempts,
            delayMs,
          });
          await sleep(delayMs, signal);
          continue;
        }
        break;
      }

      if (res.status >= 200 && res.status < 300) {
        if (attempt > 1) this.logger.debug('DingTalk request succeeded after retry', { op: op.name, attempt });
        return res;
      }

      const parsed = parseErrorBody(res);
      const retryable = isRetryable(parsed) && (op.idempotent || notProcessed(parsed));
      if (retryable && attempt < attempts) {
        const delayMs = this.backoff(attempt);
        this.logger.warn('DingTalk request failed; retrying', {
          op: op.name,
          status: parsed.status,
          code: parsed.code ?? '(none)',
          requestId: parsed.requestId,
          attempt,
          maxAttempts: attempts,
          delayMs,
        });
        await sleep(delayMs, signal);
        continue;
      }
      const error = this.mapError(op, parsed, attempt, accessToken);
      this.logger.info('DingTalk request failed', {
        op: op.name,
        status: parsed.status,
        code: parsed.code ?? '(none)',
        kind: error.kind,
        requestId: parsed.requestId,
        attempt,
      });
      throw error;
    }

    const tried = lastNetworkError?.attempt ?? attempts;
    throw new DingTalkError(
      `Could not reach DingTalk at ${this.host}: ${lastNetworkError?.reason ?? 'network error'} ` +
        `(${tried} attempt${tried === 1 ? '' : 's'}, timeout ${this.timeoutMs} ms each). ` +
        (op.idempotent
          ? 'Check the server’s network access to DingTalk and try again.'
          : `The answer was lost, so ${op.what} may or may not have happened: check before trying again.`),
      'network',
    );
  }

  private async attempt(op: Operation, accessToken: string, signal?: AbortSignal): Promise<RawResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (op.family !== 'none') headers['x-acs-dingtalk-access-token'] = accessToken;
    if (op.body !== undefined) headers['content-type'] = 'application/json';
    const agent = this.agent ?? (await this.http());
    const request = { origin: this.origin, path: this.pathPrefix + op.path, method: op.method, headers, ...(op.body !== undefined ? { body: op.body } : {}) };
    return exchange(agent, request, this.timeoutMs, signal);
  }

  /** Exponential backoff with jitter: base·2^(n-1), scaled by a random factor in [0.5, 1). */
  private backoff(attempt: number): number {
    const exp = this.retryBaseDelayMs * 2 ** (attempt - 1);
    return Math.round(exp * (0.5 + Math.random() * 0.5));
  }

  private mapError(op: Operation, e: ParsedError, attempts: number, accessToken: string): DingTalkError {
    const { kind, message } = describe(op, e, attempts, this.host);
    const suffix = e.requestId ? ` (DingTalk requestid ${e.requestId})` : '';
    return new DingTalkError(redact(message + suffix, accessToken), kind, e.code, e.status, e.requestId, op.family);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Error parsing and mapping (docs/reference/dingtalk.md §4, §5)

function parseErrorBody(res: RawResponse): ParsedError {
  const out: ParsedError = { status: res.status };
  if (res.requestId) out.requestId = res.requestId;
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    return out; // HTML or plain text (e.g. a proxy page): map by HTTP status alone.
  }
  if (!isRecord(body)) return out;
  // DingTalk answers in lower case (`code`, `requestid`, `accessdenieddetail`); the official gateway
  // (@alicloud/gateway-dingtalk) also meets the capitalised spellings (`Code`, `Message`, `RequestId`,
  // `AccessDeniedDetail`): read both, lower case first.
  const field = (...names: string[]): unknown => names.map((n) => body[n]).find((v) => v !== undefined && v !== null && v !== '');
  const code = field('code', 'Code');
  if (typeof code === 'string' && code !== '') out.code = code;
  else if (typeof code === 'number') out.code = String(code);
  const message = field('message', 'Message');
  if (typeof message === 'string') out.message = message.slice(0, 300);
  const requestId = field('requestid', 'requestId', 'RequestId');
  if (typeof requestId === 'string' && requestId !== '') out.requestId = requestId;
  const detail = field('accessdenieddetail', 'accessDeniedDetail', 'AccessDeniedDetail');
  const scopes = isRecord(detail) ? (detail['requiredScopes'] ?? detail['RequiredScopes']) : undefined;
  if (Array.isArray(scopes)) out.requiredScopes = scopes.filter((s): s is string => typeof s === 'string');
  // Per-IP ban page (§5): {"status":1111,"wait":5,"source":"x5","punish":"deny",...}, no DingTalk code.
  if (out.code === undefined && (body['status'] === 1111 || body['punish'] !== undefined)) {
    const wait = body['wait'];
    out.ipBanWaitMinutes = typeof wait === 'number' && wait > 0 && wait < 1000 ? wait : 5;
  }
  return out;
}

/** Answers that mean DingTalk refused the request before doing anything: safe to repeat even an append. */
function notProcessed(e: ParsedError): boolean {
  return (e.code !== undefined && QPS_CODES.has(e.code)) || e.status === 429;
}

function isRetryable(e: ParsedError): boolean {
  if (e.ipBanWaitMinutes !== undefined) return false; // minutes-long ban: retrying within seconds only prolongs it
  if (e.code && QPS_CODES.has(e.code)) return true;
  if (e.status === 429) return true;
  return e.status >= 500 && e.status <= 599;
}

function describe(op: Operation, e: ParsedError, attempts: number, host: string): { kind: DingTalkErrorKind; message: string } {
  const code = e.code ?? '';
  const tag = e.code ? `${e.code}, HTTP ${e.status}` : `HTTP ${e.status}`;
  const what = op.what;
  const doc = op.documentId !== undefined ? `DingTalk document "${op.documentId}"` : undefined;
  const right = op.needs === 'edit' ? 'edit' : 'read';
  const dtMessage = e.message ? ` DingTalk said: "${e.message}".` : '';
  const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;

  if (e.ipBanWaitMinutes !== undefined) {
    return {
      kind: 'rate_limited',
      message:
        `DingTalk has temporarily blocked this server's egress IP for sending too many requests (${tag}). ` +
        `Wait about ${e.ipBanWaitMinutes} minutes and try again.`,
    };
  }
  if (code === 'invalidClientIdOrSecret') {
    return {
      kind: 'app_credentials',
      message:
        `DingTalk refused the DingTalk app's credentials while ${what} (${tag}). Check DINGTALK_CLIENT_ID (the app's Client ID / AppKey) and the app secret ` +
        '(held by the Agent Identity API-key credential provider AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER, or DINGTALK_CLIENT_SECRET in development).',
    };
  }
  if (code === 'MissingoperatorId') {
    return { kind: 'invalid_request', message: `DingTalk refused ${what} because it carried no operatorId (${tag}); this is a bug in the server.` };
  }
  if ((code === 'InvalidAuthentication' || e.status === 401) && op.family === 'app') {
    return {
      kind: 'invalid_token',
      message: `DingTalk rejected the app access token while ${what} (${tag}): it is invalid or expired, and a fresh one is fetched on the next call.`,
    };
  }
  if (code === 'InvalidAuthentication' || e.status === 401) {
    return {
      kind: 'invalid_token',
      message:
        `DingTalk rejected the user's access token while ${what} (${tag}): it is invalid, expired or revoked. ` + 'The user must authorize DingTalk again.',
    };
  }
  if (code === 'AuthenticationFailed.MissingParameter') {
    return {
      kind: 'invalid_token',
      message: `DingTalk did not receive an access token while ${what} (${tag}). The user must authorize DingTalk again.`,
    };
  }
  if (code === 'Forbidden.AccessDenied.AccessTokenPermissionDenied') {
    const scopes = e.requiredScopes && e.requiredScopes.length > 0 ? e.requiredScopes : [op.scope];
    const list = scopes.join(', ');
    return {
      kind: 'permission_denied',
      message:
        `DingTalk denied ${what}: the DingTalk app lacks the permission ${list} (${tag}). ` +
        `An admin of the DingTalk app must grant ${list} to the app (open-dev.dingtalk.com → the app → 权限管理), ` +
        (op.family === 'app' ? 'then try again.' : 'then the user must authorize DingTalk again so the new token carries it.'),
    };
  }
  if (code === 'Forbidden.AccessDenied.ApiCountLimitForOrg') {
    return {
      kind: 'quota_exceeded',
      message:
        `The organization's monthly DingTalk API call quota is used up (${tag}); standard-edition orgs get 5,000 calls ` +
        'a month shared by all internal apps. Wait for next month or have the org upgrade its DingTalk edition.',
    };
  }
  if (code === 'Forbidden.AccessDenied.IpNotInWhiteList') {
    return {
      kind: 'permission_denied',
      message:
        `DingTalk refused the call because this server's egress IP is not on the DingTalk app's IP allow-list (${tag}). ` +
        "An admin must add the server's egress IP address to the app's allow-list (open-dev.dingtalk.com → the app → 安全设置/服务器出口IP).",
    };
  }
  if (QPS_CODES.has(code) || e.status === 429) {
    return {
      kind: 'rate_limited',
      message: `DingTalk's rate limit was hit while ${what} (${tag}) and still hit after ${tries}. Wait a few seconds and try again.`,
    };
  }
  if (e.status === 404) {
    return {
      kind: 'not_found',
      message: doc
        ? `${doc} was not found (${tag}). Check the link; the signed-in DingTalk user must be able to ${right} it.`
        : `DingTalk answered "not found" while ${what} (${tag}).`,
    };
  }
  if (e.status >= 500) {
    return {
      kind: 'server_error',
      message: `DingTalk (${host}) returned a server error while ${what} (${tag}) ${attempts === 1 ? 'on 1 attempt' : `on all ${tries}`}. Try again later.${dtMessage}`,
    };
  }
  if (e.status === 403 || code.startsWith('Forbidden')) {
    return {
      kind: 'permission_denied',
      message:
        `DingTalk refused ${what} (${tag}).${dtMessage} ` +
        (doc
          ? `The signed-in DingTalk user has no permission to ${right} ${doc}: ask its owner to share it with them.`
          : 'The DingTalk app or the signed-in user lacks access.'),
    };
  }
  if (e.status >= 400 && e.status < 500) {
    const tooLong = /too\s*long|exceed|length|limit|超过|过长/i.test(`${code} ${e.message ?? ''}`);
    return {
      kind: 'invalid_request',
      message:
        `DingTalk rejected the request while ${what} (${tag}).${dtMessage}` +
        (tooLong && op.needs === 'edit'
          ? ` The content may be too long: DingTalk accepts at most ${MAX_OVERWRITE_CHARS.toLocaleString('en-US')} characters.`
          : ''),
    };
  }
  return { kind: 'unknown', message: `DingTalk answered unexpectedly while ${what} (${tag}).${dtMessage}` };
}

// ---------------------------------------------------------------------------------------------------------------
// helpers

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function redactError(e: DingTalkError, secrets: string[]): DingTalkError {
  const message = secrets.reduce(redact, e.message);
  if (message === e.message) return e;
  return new DingTalkError(message, e.kind, e.code, e.httpStatus, e.requestId, e.tokenFamily);
}

function redact(text: string, secret: string): string {
  return secret.length >= 4 ? text.split(secret).join('[redacted]') : text;
}

/** A short reason for a network failure: error code and class, never the URL. */
function describeNetworkError(err: unknown): string {
  if (isRecord(err) || err instanceof Error) {
    const e = err as { code?: unknown; name?: unknown; cause?: unknown };
    const code = typeof e.code === 'string' ? e.code : undefined;
    const causeCode = isRecord(e.cause) && typeof e.cause['code'] === 'string' ? (e.cause['code'] as string) : undefined;
    const name = typeof e.name === 'string' ? e.name : 'Error';
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return 'timed out';
    }
    return `connection failed (${causeCode ?? code ?? name})`;
  }
  return 'connection failed';
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortReason(signal);
}

function abortReason(signal: AbortSignal): unknown {
  const reason: unknown = signal.reason;
  return reason ?? new DOMException('The operation was aborted.', 'AbortError');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
