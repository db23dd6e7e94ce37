/**
 * Who the end user is, and the artifact that proves it to Agent Identity.
 *
 * The same artifact must mint the workload access token
 * (GetWorkloadAccessTokenForUserId / ForJWT) and later complete the
 * authorization session (CompleteResourceTokenAuth, `UserIdentifier`):
 * Agent Identity binds the session to it (docs/reference/agent-identity.md §1.1, §1.3, §3).
 */
export type UserIdentity =
  | { kind: 'userId'; userId: string }
  | { kind: 'jwt'; jwt: string /** the verified `sub` claim */; subject: string /** the verified `iss` claim */; issuer?: string };

/** A stable key for per-user state (caches, pending authorizations). Never a token. */
export function userKey(user: UserIdentity): string {
  return user.kind === 'userId' ? `uid:${user.userId}` : `jwt:${user.issuer ?? ''}:${user.subject}`;
}

/** What Agent Identity answered to GetResourceOAuth2Token. */
export type DingTalkTokenOutcome =
  | { status: 'token'; accessToken: string }
  | {
      status: 'authorization_required';
      /** Agent Identity's consent URL (never shown to the client directly: we wrap it in /connect/<id>). */
      authorizationUrl: string;
      sessionUri: string;
    };

export interface GetDingTalkTokenOptions {
  /** Our callback, `<APP_REDIRECT_URI>/callback`; must be in the workload identity's AllowedResourceOAuth2ReturnURLs. */
  returnUrl: string;
  /** Echoed back to the callback as `state`. */
  customState: string;
  /** Poll a session started earlier (after the callback completed it). */
  sessionUri?: string;
  /** Ask for a fresh consent even when the vault has a token. */
  forceAuthentication?: boolean;
  signal?: AbortSignal;
}

/**
 * Everything the tools need from Agent Identity. Implemented by `AgentIdentityBroker`
 * (caching, single-flight) on top of `AgentIdentityClient` (the raw RPC calls).
 */
export interface IdentityBroker {
  /** A DingTalk user access token for this user, or the authorization the user must complete first. */
  getDingTalkToken(user: UserIdentity, options: GetDingTalkTokenOptions): Promise<DingTalkTokenOutcome>;
  /** CompleteResourceTokenAuth with the same artifact that minted the workload token. */
  completeAuthorization(sessionUri: string, user: UserIdentity): Promise<void>;
  /** The API key an Agent Identity API-key credential provider holds (GetResourceAPIKey), fetched with this user's workload token. */
  getApiKey?(user: UserIdentity, providerName: string): Promise<string>;
  /** DingTalk said the token is invalid or expired: forget it so the next call asks Agent Identity again. */
  dropDingTalkToken(user: UserIdentity): void;
  /** Whether the server's own Alibaba Cloud credentials can be found, never revealing them (for /healthz). */
  checkCredentials?(): Promise<{ ok: true; type: string } | { ok: false; reason: string }>;
}

/** An Agent Identity call failed. `message` is safe to show to a user: it never contains a token or secret. */
export class AgentIdentityError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly action: string,
    readonly requestId?: string,
    readonly httpStatus?: number,
  ) {
    super(message);
    this.name = 'AgentIdentityError';
  }
}
