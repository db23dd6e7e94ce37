/**
 * Everything the DingTalk emulator knows: apps, users, both token families, documents, injected faults and
 * the request log. The HTTP modules (consent.ts, openapi.ts, sandbox-pages.ts) only read and change this.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { DocumentStore, type Role } from './documents.js';
import { HttpError } from './wire.js';

export interface EmulatorApp {
  clientId: string;
  clientSecret: string;
  /** Registered redirect URLs (安全设置 → 重定向URL), matched exactly (docs/dingtalk-api.md). */
  redirectUris: string[];
  /** Shown on the consent page. Defaults to the clientId. */
  name?: string;
  /**
   * Permission codes the app has been granted in the developer console (docs/dingtalk-api.md).
   * Default: DEFAULT_PERMISSIONS. A call needing one the app lacks →
   * 403 Forbidden.AccessDenied.AccessTokenPermissionDenied with accessdenieddetail.requiredScopes.
   */
  permissions?: string[];
}

export interface EmulatorUser {
  unionId: string;
  nick: string;
}

/** Every permission the emulated APIs check (docs/dingtalk-api.md lists which API needs which). */
export const DEFAULT_PERMISSIONS = [
  'Contact.User.Read',
  'Document.Document.Write',
  'Storage.File.Read',
  'Storage.File.Write',
  'Storage.Dentry.Search',
  'Document.WorkspaceDocument.Write',
  'Wiki.Workspace.Read',
  'Wiki.Node.Read',
];

export type FaultMatch = ApiName | 'any';

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

export type ApiName =
  | 'overwriteContent'
  | 'users/me'
  | 'token'
  | 'appToken'
  | 'docBlocks'
  | 'insertContent'
  | 'createWorkspaceDoc'
  | 'mineWorkspace'
  | 'getNode'
  | 'listNodes'
  | 'searchDentries'
  | 'authorize'
  | 'decision'
  | 'unknown';

export const API_NAMES: ReadonlyArray<ApiName> = [
  'overwriteContent',
  'users/me',
  'token',
  'appToken',
  'docBlocks',
  'insertContent',
  'createWorkspaceDoc',
  'mineWorkspace',
  'getNode',
  'listNodes',
  'searchDentries',
];

export interface EmulatorRequestLog {
  at: Date;
  method: string;
  /** Path without the query string. */
  path: string;
  api: ApiName;
  /** unionId of the user whose (valid) user access token was presented, or null. */
  unionId: string | null;
  /** Which token family was presented (valid or not). */
  tokenFamily?: 'user' | 'app' | 'unknown';
  /** The operatorId an app-token call carried (query or body). */
  operatorId?: string;
  status: number;
  /** DingTalk error code of the answer, if it was an error. */
  code?: string;
  requestId: string;
  /** The document or node id from the path, when there is one. */
  documentId?: string;
  /** True when the answer came from an injected fault. */
  faulted?: boolean;
}

export interface UserTokenRecord {
  clientId: string;
  unionId: string;
  scopes: string[];
  expiresAt: number;
}
export interface AppTokenRecord {
  clientId: string;
  expiresAt: number;
}

export class EmulatorState {
  readonly apps: Map<string, EmulatorApp>;
  readonly users: Map<string, EmulatorUser>;
  readonly docs: DocumentStore;
  readonly userTokens = new Map<string, UserTokenRecord>();
  readonly refreshTokens = new Map<string, UserTokenRecord>();
  readonly appTokens = new Map<string, AppTokenRecord>();
  readonly requests: EmulatorRequestLog[] = [];
  /** Every token and refresh token ever issued, for tests' leak checks. */
  readonly issued: string[] = [];
  faults: Array<Omit<FaultSpec, 'times' | 'match'> & { remaining: number; match: FaultMatch }> = [];
  offsetMs = 0;

  constructor(
    apps: EmulatorApp[],
    users: ReadonlyArray<EmulatorUser>,
    private readonly clock: () => number,
    readonly userTokenTtlMs: number,
    readonly refreshTtlMs: number,
    readonly appTokenTtlMs: number,
    readonly corpId: string,
  ) {
    this.apps = new Map(apps.map((a) => [a.clientId, a]));
    this.users = new Map(users.map((u) => [u.unionId, { ...u }]));
    this.docs = new DocumentStore(() => this.now());
  }

  now(): number {
    return this.clock() + this.offsetMs;
  }

  issueUserTokens(clientId: string, unionId: string, scopes: string[] = ['openid', 'corpid']) {
    const accessToken = randomBytes(24).toString('hex');
    const refreshToken = randomBytes(24).toString('hex');
    this.userTokens.set(accessToken, { clientId, unionId, scopes, expiresAt: this.now() + this.userTokenTtlMs });
    this.refreshTokens.set(refreshToken, { clientId, unionId, scopes, expiresAt: this.now() + this.refreshTtlMs });
    this.issued.push(accessToken, refreshToken);
    return { accessToken, refreshToken, expireIn: Math.round(this.userTokenTtlMs / 1000) };
  }

  injectFault(fault: FaultSpec): void {
    if (!Number.isInteger(fault.status) || fault.status < 100 || fault.status > 599) throw new Error('fault.status must be an HTTP status code');
    const times = fault.times ?? 1;
    if (!(times > 0)) throw new Error('fault.times must be > 0 (or Infinity)');
    const { times: _t, match, ...rest } = fault;
    this.faults.push({ ...rest, remaining: times, match: match ?? 'any' });
  }

  takeFault(api: ApiName) {
    const fault = this.faults.find((f) => f.remaining > 0 && (f.match === 'any' || f.match === api));
    if (!fault) return undefined;
    fault.remaining -= 1;
    this.faults = this.faults.filter((f) => f.remaining > 0);
    return fault;
  }

  private presented(req: IncomingMessage): string {
    const header = req.headers['x-acs-dingtalk-access-token'];
    const token = Array.isArray(header) ? header[0] : header;
    // docs/dingtalk-api.md step 5: only this header counts; `Authorization: Bearer` or `?access_token=` do not.
    if (!token) throw new HttpError(400, 'AuthenticationFailed.MissingParameter', '缺少参数：x-acs-dingtalk-access-token');
    return token;
  }

  private requirePermission(clientId: string, permission: string): void {
    const granted = this.apps.get(clientId)?.permissions ?? DEFAULT_PERMISSIONS;
    if (!granted.includes(permission)) {
      throw new HttpError(403, 'Forbidden.AccessDenied.AccessTokenPermissionDenied', `没有调用该接口的权限，接口权限申请参考：${permission}`, {
        accessdenieddetail: { requiredScopes: [permission] },
      });
    }
  }

  /**
   * A user-token ("个人授权") API. An app token here is refused like any token DingTalk does not accept for
   * the API (MODELED: DingTalk's exact answer for the wrong token family is not documented).
   */
  authenticateUser(req: IncomingMessage, permission: string, log: EmulatorRequestLog): UserTokenRecord {
    const token = this.presented(req);
    const record = this.userTokens.get(token);
    log.tokenFamily = record ? 'user' : this.appTokens.has(token) ? 'app' : 'unknown';
    if (!record || record.expiresAt <= this.now()) {
      if (record) this.userTokens.delete(token);
      throw new HttpError(400, 'InvalidAuthentication', '不合法的access_token');
    }
    log.unionId = record.unionId;
    this.requirePermission(record.clientId, permission);
    return record;
  }

  /**
   * An app-identity API: the app token plus `operatorId` (docs/dingtalk-api.md). A user token is refused (MODELED
   * answer, as above); a missing operatorId → 400 MissingoperatorId [3P live, docs/dingtalk-api.md].
   */
  authenticateApp(req: IncomingMessage, permission: string, operatorId: unknown, log: EmulatorRequestLog): { clientId: string; operator: EmulatorUser } {
    const token = this.presented(req);
    const record = this.appTokens.get(token);
    log.tokenFamily = record ? 'app' : this.userTokens.has(token) ? 'user' : 'unknown';
    if (!record || record.expiresAt <= this.now()) {
      if (record) this.appTokens.delete(token);
      throw new HttpError(400, 'InvalidAuthentication', '不合法的access_token');
    }
    if (typeof operatorId === 'string' && operatorId !== '') log.operatorId = operatorId;
    if (operatorId === undefined || operatorId === null || operatorId === '') {
      throw new HttpError(400, 'MissingoperatorId', 'operatorId is mandatory for this action.');
    }
    const operator = typeof operatorId === 'string' ? this.users.get(operatorId) : undefined;
    // MODELED: an operatorId that is no unionId of the organization.
    if (!operator) throw new HttpError(400, 'InvalidParameter.operatorId', 'operatorId is not a valid unionId in this organization.');
    this.requirePermission(record.clientId, permission);
    return { clientId: record.clientId, operator };
  }

  /** App token for `appKey`: within its validity the same token comes back, renewed (MODELED after §2.1's note). */
  appToken(clientId: string): { accessToken: string; expireIn: number } {
    for (const [token, record] of this.appTokens) {
      if (record.clientId === clientId && record.expiresAt > this.now()) {
        record.expiresAt = this.now() + this.appTokenTtlMs;
        return { accessToken: token, expireIn: Math.round(this.appTokenTtlMs / 1000) };
      }
    }
    const accessToken = randomBytes(24).toString('hex');
    this.appTokens.set(accessToken, { clientId, expiresAt: this.now() + this.appTokenTtlMs });
    this.issued.push(accessToken);
    return { accessToken, expireIn: Math.round(this.appTokenTtlMs / 1000) };
  }
}

export type { Role };
