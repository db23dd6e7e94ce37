/** Why a DingTalk call failed, in terms the tool can act on. */
export type DingTalkErrorKind =
  | 'invalid_token' // InvalidAuthentication: drop the cached token and ask Agent Identity again
  | 'permission_denied' // the app or the user lacks a permission (e.g. Document.Document.Write)
  | 'not_found' // no such document (or no access to it)
  | 'invalid_request' // DingTalk rejected the input (e.g. content too long)
  | 'rate_limited' // QPS limits: retried, then surfaced
  | 'quota_exceeded' // monthly org quota: not retried
  | 'app_credentials' // invalidClientIdOrSecret: the DingTalk app's Client ID or secret is wrong
  | 'server_error' // 5xx: retried, then surfaced
  | 'network' // timeout, connection refused
  | 'unknown';

/** A DingTalk call failed. `message` is safe to show a user and says what to do; it never contains the token. */
export class DingTalkError extends Error {
  constructor(
    message: string,
    readonly kind: DingTalkErrorKind,
    readonly code?: string,
    readonly httpStatus?: number,
    readonly requestId?: string,
    /** Which token family the failed call carried: tells the tool which token to drop. */
    readonly tokenFamily?: 'user' | 'app' | 'none',
  ) {
    super(message);
    this.name = 'DingTalkError';
  }
}

export interface OverwriteResult {
  documentId: string;
  charactersWritten: number;
  /** DingTalk's request id, for support tickets. */
  requestId?: string;
}
