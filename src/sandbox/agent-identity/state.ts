/**
 * The Agent Identity emulator's state: what it was seeded with (AccessKeys, workload identities, credential
 * providers), what it issued (workload tokens, STS credentials, authorization sessions) and the token vault,
 * with the lookups the handlers share. The public types of the emulator are declared here.
 */
import { randomUUID } from 'node:crypto';
import { AcsError } from '../acs-rpc.js';
import { FaultQueue } from '../http.js';

export interface EmulatorAccessKey {
  accessKeyId: string;
  accessKeySecret: string;
  /** Actions this AccessKey's RAM identity may call. Default '*'. */
  allowedActions?: string[] | '*';
}

export interface EmulatorWorkloadIdentity {
  name: string;
  allowedReturnUrls: string[];
  /** Default `acs:ram::<account>:role/agentidentityrole-<name>`. */
  roleArn?: string;
}

export interface EmulatorOAuth2Provider {
  name: string;
  clientId: string;
  clientSecret: string;
  /** e.g. the DingTalk emulator's `/oauth2/auth`. */
  authorizationEndpoint: string;
  /** e.g. the DingTalk emulator's `/v1.0/oauth2/userAccessToken` (DingTalk JSON dialect). */
  tokenEndpoint: string;
  /** The id in `<emulator>/oauth2/callback/<id>`; default a random UUID. */
  callbackId?: string;
}

export interface EmulatorApiKeyProvider {
  name: string;
  apiKey: string;
}

export interface JwtClaims {
  sub: string;
  iss?: string;
  aud?: string | string[];
  exp?: number;
  [claim: string]: unknown;
}

export interface AgentIdentityEmulatorOptions {
  host?: string;
  port?: number;
  accessKeys: EmulatorAccessKey[];
  workloadIdentities: EmulatorWorkloadIdentity[];
  providers: EmulatorOAuth2Provider[];
  apiKeyProviders?: EmulatorApiKeyProvider[];
  /**
   * For GetWorkloadAccessTokenForJWT. Any well-formed, unexpired JWT with a `sub` is accepted unless
   * `issuers` is given (then `iss` must be listed) or `verify` says no (e.g. a JWKS check).
   */
  trustedJwtIssuers?: { issuers?: string[]; verify?: (jwt: string, claims: JwtClaims) => boolean | Promise<boolean> };
  /** Default 900. */
  workloadTokenTtlSeconds?: number;
  /** Overrides the requested DurationSeconds of AssumeRoleForWorkloadIdentity when set. */
  stsTtlSeconds?: number;
  /** Lifetime of an authorization session. Default 600. */
  sessionTtlSeconds?: number;
  /** Milliseconds since the epoch; drives every expiry (not the signature clock-skew check). Default Date.now. */
  now?: () => number;
  /** Account id used in ARNs. */
  accountId?: string;
}

export type CallSigner =
  | { type: 'accessKey'; accessKeyId: string }
  | { type: 'sts'; accessKeyId: string; workloadIdentityName: string; user: string }
  | { type: 'anonymous' };

export interface EmulatorCall {
  action: string;
  /** Raw parameters as received (query + form body, system parameters removed). */
  params: Record<string, string>;
  signedBy: CallSigner;
  signatureVersion: 'v3' | 'v2' | 'none';
  status: number;
  code?: string;
  requestId: string;
}

export interface VaultEntry {
  workloadIdentityName: string;
  /** `uid:<userId>` or `jwt:<iss>:<sub>` (the same shape as `userKey()`). */
  user: string;
  providerName: string;
  accessToken: string;
  refreshToken?: string;
  /** ms since epoch */
  expiresAt: number;
  scopes: string[];
  corpId?: string;
}

export interface SessionInfo {
  sessionUri: string;
  status: 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';
  workloadIdentityName: string;
  user: string;
  artifact: { kind: 'userId'; userId: string } | { kind: 'jwt'; jwt: string };
  providerName: string;
  returnUrl: string;
  customState?: string;
  scopes: string[];
  customParameters: Record<string, string>;
  authorizeUsed: boolean;
  callbackReceived: boolean;
  hasProviderToken: boolean;
  expiresAt: number;
}

export interface InjectedFault {
  action: string;
  status: number;
  code: string;
  message?: string;
  /** How many calls fail; default 1. */
  times?: number;
}

export interface VaultFilter {
  user: string;
  providerName?: string;
  workloadIdentityName?: string;
}

/** Who signed a call and which actions that identity may call. */
export interface Principal {
  signer: CallSigner;
  allowedActions: string[] | '*';
}

export interface WorkloadTokenRecord {
  workloadIdentityName: string;
  user: string | undefined;
  artifact: SessionInfo['artifact'] | undefined;
  jwtClaims?: JwtClaims;
  expiresAt: number;
}

export interface StsRecord {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken: string;
  expiresAt: number;
  workloadIdentityName: string;
  user: string | undefined;
}

/** A token the provider (IdP) issued, held by a session until CompleteResourceTokenAuth vaults it. */
export interface ProviderToken {
  accessToken: string;
  refreshToken?: string;
  expiresAt: number;
  corpId?: string;
}

export interface Session extends Omit<SessionInfo, 'hasProviderToken'> {
  id: string;
  providerState: string;
  token?: ProviderToken;
}

export type ProviderWithCallback = EmulatorOAuth2Provider & { callbackId: string };

export const SESSION_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:';

export class AgentIdentityState {
  /** `http://127.0.0.1:<port>`, set once the server listens. */
  baseUrl = '';
  readonly now: () => number;
  readonly accountId: string;
  readonly sessionTtlMs: number;
  readonly accessKeys: Map<string, EmulatorAccessKey>;
  readonly workloads: Map<string, EmulatorWorkloadIdentity>;
  readonly providers: Map<string, ProviderWithCallback>;
  readonly providersByCallback: Map<string, ProviderWithCallback>;
  readonly apiKeyProviders: Map<string, EmulatorApiKeyProvider>;
  readonly workloadTokens = new Map<string, WorkloadTokenRecord>(); // by jti
  readonly stsByAccessKeyId = new Map<string, StsRecord>();
  private readonly sessionsByUri = new Map<string, Session>();
  private readonly sessionsByState = new Map<string, Session>();
  readonly vault = new Map<string, VaultEntry>();
  readonly calls: EmulatorCall[] = [];
  readonly faults = new FaultQueue<InjectedFault>();

  constructor(readonly options: AgentIdentityEmulatorOptions) {
    this.now = options.now ?? Date.now;
    this.accountId = options.accountId ?? '1234567890123456';
    this.sessionTtlMs = (options.sessionTtlSeconds ?? 600) * 1000;
    this.accessKeys = new Map(options.accessKeys.map((k) => [k.accessKeyId, k]));
    this.workloads = new Map(options.workloadIdentities.map((w) => [w.name, w]));
    this.providers = new Map(options.providers.map((p) => [p.name, { ...p, callbackId: p.callbackId ?? randomUUID() }]));
    this.providersByCallback = new Map([...this.providers.values()].map((p) => [p.callbackId, p]));
    this.apiKeyProviders = new Map((options.apiKeyProviders ?? []).map((p) => [p.name, p]));
  }

  hostId(): string {
    return new URL(this.baseUrl).host;
  }

  vaultKey(workload: string, user: string, provider: string): string {
    return `${workload}\u0000${user}\u0000${provider}`;
  }

  workloadNamed(name: string): EmulatorWorkloadIdentity {
    const w = this.workloads.get(name);
    if (!w) throw new AcsError(404, 'EntityNotExists.WorkloadIdentity', `The workload identity "${name}" does not exist.`);
    return w;
  }

  addSession(session: Session): void {
    this.sessionsByUri.set(session.sessionUri, session);
    this.sessionsByState.set(session.providerState, session);
  }

  /** The session, unless it expired (then it is forgotten). */
  liveSession(sessionUri: string): Session | undefined {
    const s = this.sessionsByUri.get(sessionUri);
    if (!s) return undefined;
    if (s.expiresAt <= this.now()) {
      this.sessionsByUri.delete(sessionUri);
      this.sessionsByState.delete(s.providerState);
      return undefined;
    }
    return s;
  }

  /** The session a provider callback's `state` belongs to (expired ones included; check liveSession). */
  sessionByProviderState(state: string): Session | undefined {
    return this.sessionsByState.get(state);
  }

  authorizationUrlFor(session: Session): string {
    return `${this.baseUrl}/oauth2/authorize?request_uri=${encodeURIComponent(session.sessionUri)}`;
  }

  callbackUrlFor(provider: ProviderWithCallback): string {
    return `${this.baseUrl}/oauth2/callback/${provider.callbackId}`;
  }

  matchVault(filter: VaultFilter): Array<[string, VaultEntry]> {
    return [...this.vault.entries()].filter(
      ([, e]) =>
        e.user === filter.user &&
        (filter.providerName === undefined || e.providerName === filter.providerName) &&
        (filter.workloadIdentityName === undefined || e.workloadIdentityName === filter.workloadIdentityName),
    );
  }

  sessionInfos(): SessionInfo[] {
    return [...this.sessionsByUri.values()].map((s) => ({
      sessionUri: s.sessionUri,
      status: s.status,
      workloadIdentityName: s.workloadIdentityName,
      user: s.user,
      artifact: { ...s.artifact },
      providerName: s.providerName,
      returnUrl: s.returnUrl,
      ...(s.customState !== undefined ? { customState: s.customState } : {}),
      scopes: [...s.scopes],
      customParameters: { ...s.customParameters },
      authorizeUsed: s.authorizeUsed,
      callbackReceived: s.callbackReceived,
      hasProviderToken: s.token !== undefined,
      expiresAt: s.expiresAt,
    }));
  }

  issuedSecrets(): string[] {
    return [
      ...[...this.stsByAccessKeyId.values()].flatMap((r) => [r.accessKeySecret, r.securityToken]),
      ...[...this.vault.values()].flatMap((v) => [v.accessToken, v.refreshToken ?? '']).filter(Boolean),
    ];
  }
}
