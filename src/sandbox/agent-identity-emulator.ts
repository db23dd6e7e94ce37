/**
 * A protocol-faithful emulator of the Alibaba Cloud Agent Identity data plane (AgentIdentityData 2025-11-27)
 * and its OAuth consent redirect, for the tests, `--sandbox` and the demo. Loopback only.
 *
 * Wire shape (docs/reference/agent-identity.md §1, §1.1, §3; VERIFIED there): RPC `POST /` with a form body,
 * `Version=2025-11-27`, JSON responses that always carry `RequestId`, JSON-string params
 * (`Scopes`, `CustomParameters`, `UserIdentifier`), `SessionURI = urn:ietf:params:oauth:request_uri:<uuid>`,
 * `AuthorizationURL = <host>/oauth2/authorize?request_uri=<SessionURI>`, IdP callback
 * `<host>/oauth2/callback/<id>`, then a redirect to `ResourceOAuth2ReturnURL?session_uri=…&state=<CustomState>`.
 *
 * Signatures are verified (./acs-rpc.ts, shared with the control-plane emulator) with an independent implementation of Alibaba Cloud's V3 scheme
 * (`ACS3-HMAC-SHA256`: canonical request → SHA-256 → HMAC-SHA256, headers `Authorization`, `x-acs-date`,
 * `x-acs-signature-nonce`, `x-acs-content-sha256`, `x-acs-action`, `x-acs-version`, `x-acs-security-token`)
 * and of the V2 RPC scheme (`HMAC-SHA1`, `Signature` query parameter), as @alicloud/openapi-client sends them.
 *
 * Everything about data-plane *errors* is MODELED/UNVERIFIED (no documented codes, §1.3): codes follow the
 * usual Alibaba Cloud POP naming; the ones marked MODELED are our guesses.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import querystring from 'node:querystring';
import {
  AcsError as RpcError,
  createSignatureVerifier,
  firstHeader,
  isStringArray,
  jsonParam,
  readBody,
  requiredParam,
  safeEqual,
  toSingleValues,
  V2_SYSTEM_PARAMS,
} from './acs-rpc.js';
import { listen, shutdown } from './http.js';

export const EMULATED_API_VERSION = '2025-11-27';

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

export interface AgentIdentityEmulator {
  readonly url: string;
  readonly calls: EmulatorCall[];
  readonly vault: {
    list(): VaultEntry[];
    get(user: string, providerName?: string, workloadIdentityName?: string): VaultEntry | undefined;
    has(user: string, providerName?: string, workloadIdentityName?: string): boolean;
  };
  /** Remove vaulted tokens of a user (all providers/workloads unless narrowed). Returns how many. */
  revokeVaultToken(filter: { user: string; providerName?: string; workloadIdentityName?: string }): number;
  /** Mark vaulted tokens expired by time, so the next use refreshes them through the provider. */
  expireVaultToken(filter: { user: string; providerName?: string; workloadIdentityName?: string }): number;
  sessions(): SessionInfo[];
  /** Every secret the emulator handed out (STS secrets and security tokens, vaulted access and refresh tokens), for leak checks. */
  issuedSecrets(): string[];
  /** The `<emulator>/oauth2/callback/<id>` URL of a provider (to register at the IdP). */
  callbackUrl(providerName: string): string;
  injectFault(fault: InjectedFault): void;
  clearFaults(): void;
  close(): Promise<void>;
}

// ------------------------------------------------------------------------------------------------

interface Principal {
  signer: CallSigner;
  allowedActions: string[] | '*';
}

interface WorkloadTokenRecord {
  workloadIdentityName: string;
  user: string | undefined;
  artifact: SessionInfo['artifact'] | undefined;
  jwtClaims?: JwtClaims;
  expiresAt: number;
}

interface StsRecord {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken: string;
  expiresAt: number;
  workloadIdentityName: string;
  user: string | undefined;
}

interface ProviderToken {
  accessToken: string;
  refreshToken?: string;
  expiresAt: number;
  corpId?: string;
}

interface Session extends Omit<SessionInfo, 'hasProviderToken'> {
  id: string;
  providerState: string;
  token?: ProviderToken;
}

/** Actions the workload role's STS credentials may call (the CLI-created role policy, reference §4). */
const STS_ALLOWED_ACTIONS = new Set(['GetResourceOAuth2Token', 'GetResourceAPIKey']);
const KNOWN_ACTIONS = new Set([
  'GetWorkloadAccessToken',
  'GetWorkloadAccessTokenForJWT',
  'GetWorkloadAccessTokenForUserId',
  'GetResourceOAuth2Token',
  'CompleteResourceTokenAuth',
  'GetResourceAPIKey',
  'AssumeRoleForWorkloadIdentity',
]);
const ANONYMOUS_ACTIONS = new Set(['AssumeRoleForWorkloadIdentity']);
const SESSION_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:';

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export async function startAgentIdentityEmulator(options: AgentIdentityEmulatorOptions): Promise<AgentIdentityEmulator> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const accountId = options.accountId ?? '1234567890123456';
  const workloadTtlMs = (options.workloadTokenTtlSeconds ?? 900) * 1000;
  const sessionTtlMs = (options.sessionTtlSeconds ?? 600) * 1000;
  const signingKey = randomBytes(32);
  const keyId = randomUUID();

  const accessKeys = new Map(options.accessKeys.map((k) => [k.accessKeyId, k]));
  const workloads = new Map(options.workloadIdentities.map((w) => [w.name, w]));
  const providers = new Map(options.providers.map((p) => [p.name, { ...p, callbackId: p.callbackId ?? randomUUID() }]));
  const providersByCallback = new Map([...providers.values()].map((p) => [p.callbackId, p]));
  const apiKeyProviders = new Map((options.apiKeyProviders ?? []).map((p) => [p.name, p]));

  const workloadTokens = new Map<string, WorkloadTokenRecord>(); // by jti
  const stsByAccessKeyId = new Map<string, StsRecord>();
  const sessions = new Map<string, Session>(); // by SessionURI
  const sessionsByState = new Map<string, Session>();
  const vault = new Map<string, VaultEntry>();
  const calls: EmulatorCall[] = [];
  let faults: Array<InjectedFault & { remaining: number }> = [];
  let baseUrl = '';

  const vaultKey = (workload: string, user: string, provider: string) => `${workload}\u0000${user}\u0000${provider}`;
  const hostId = () => new URL(baseUrl).host;

  // ---- workload access tokens: JWT-shaped, HMAC-SHA256 signed by the emulator --------------------

  function mintWorkloadToken(record: Omit<WorkloadTokenRecord, 'expiresAt'>): string {
    const jti = randomUUID();
    const issuedAt = now();
    const expiresAt = issuedAt + workloadTtlMs;
    workloadTokens.set(jti, { ...record, expiresAt });
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: keyId }));
    const payload = b64url(
      JSON.stringify({
        iss: `${baseUrl}/`,
        aud: 'agentidentitydata',
        sub: record.user ?? `workload:${record.workloadIdentityName}`,
        wi: record.workloadIdentityName,
        iat: Math.floor(issuedAt / 1000),
        exp: Math.floor(expiresAt / 1000),
        jti,
      }),
    );
    const sig = createHmac('sha256', signingKey).update(`${header}.${payload}`).digest('base64url');
    return `${header}.${payload}.${sig}`;
  }

  // MODELED/UNVERIFIED: codes InvalidWorkloadAccessToken(.Expired), HTTP 401.
  function verifyWorkloadToken(token: string): WorkloadTokenRecord {
    const parts = token.split('.');
    if (parts.length !== 3) throw new RpcError(401, 'InvalidWorkloadAccessToken', 'The workload access token is malformed.');
    const [h, p, s] = parts as [string, string, string];
    const expected = createHmac('sha256', signingKey).update(`${h}.${p}`).digest('base64url');
    if (!safeEqual(expected, s)) throw new RpcError(401, 'InvalidWorkloadAccessToken', 'The workload access token is invalid.');
    let jti: unknown;
    try {
      jti = (JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { jti?: unknown }).jti;
    } catch {
      throw new RpcError(401, 'InvalidWorkloadAccessToken', 'The workload access token is malformed.');
    }
    const record = typeof jti === 'string' ? workloadTokens.get(jti) : undefined;
    if (!record) throw new RpcError(401, 'InvalidWorkloadAccessToken', 'The workload access token is invalid.');
    if (record.expiresAt <= now()) {
      throw new RpcError(401, 'InvalidWorkloadAccessToken.Expired', 'The workload access token has expired.');
    }
    if (!workloads.has(record.workloadIdentityName)) {
      throw new RpcError(404, 'EntityNotExists.WorkloadIdentity', 'The workload identity of this token no longer exists.');
    }
    return record;
  }

  // ---- user JWTs (GetWorkloadAccessTokenForJWT) ---------------------------------------------------

  // MODELED/UNVERIFIED: codes InvalidParameter.UserToken / InvalidUserToken.Expired / InvalidUserToken.
  async function verifyUserJwt(jwt: string): Promise<JwtClaims> {
    const parts = jwt.split('.');
    if (parts.length !== 3 || parts.some((x, i) => i < 2 && !/^[A-Za-z0-9_-]+$/.test(x))) {
      throw new RpcError(400, 'InvalidParameter.UserToken', 'The specified UserToken is not a well-formed JWT.');
    }
    let claims: JwtClaims;
    try {
      JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as JwtClaims;
    } catch {
      throw new RpcError(400, 'InvalidParameter.UserToken', 'The specified UserToken is not a well-formed JWT.');
    }
    if (!claims || typeof claims !== 'object' || typeof claims.sub !== 'string' || !claims.sub) {
      throw new RpcError(400, 'InvalidParameter.UserToken', 'The specified UserToken has no sub claim.');
    }
    if (claims.exp !== undefined && (typeof claims.exp !== 'number' || claims.exp * 1000 <= now())) {
      throw new RpcError(400, 'InvalidUserToken.Expired', 'The specified UserToken has expired.');
    }
    const trust = options.trustedJwtIssuers;
    if (trust?.issuers && (typeof claims.iss !== 'string' || !trust.issuers.includes(claims.iss))) {
      throw new RpcError(400, 'InvalidUserToken', 'The issuer of the specified UserToken is not trusted.');
    }
    if (trust?.verify && !(await trust.verify(jwt, claims))) {
      throw new RpcError(400, 'InvalidUserToken', 'The specified UserToken failed verification.');
    }
    return claims;
  }

  // ---- signature verification ------------------------------------------------------------------

  function principalForAccessKey(accessKeyId: string, securityToken: string | undefined): { secret: string; principal: Principal } {
    if (securityToken !== undefined || accessKeyId.startsWith('STS.')) {
      const sts = stsByAccessKeyId.get(accessKeyId);
      if (!sts) throw new RpcError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
      if (securityToken === undefined) throw new RpcError(400, 'MissingSecurityToken', 'SecurityToken is mandatory for this AccessKeyId.');
      if (!safeEqual(sts.securityToken, securityToken)) {
        throw new RpcError(400, 'InvalidSecurityToken.MismatchWithAccessKey', 'Specified SecurityToken mismatch with the AccessKey.');
      }
      if (sts.expiresAt <= now()) throw new RpcError(400, 'InvalidSecurityToken.Expired', 'Specified SecurityToken is expired.');
      return {
        secret: sts.accessKeySecret,
        principal: {
          signer: { type: 'sts', accessKeyId, workloadIdentityName: sts.workloadIdentityName, user: sts.user ?? '' },
          allowedActions: [...STS_ALLOWED_ACTIONS],
        },
      };
    }
    const key = accessKeys.get(accessKeyId);
    if (!key) throw new RpcError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    return {
      secret: key.accessKeySecret,
      principal: { signer: { type: 'accessKey', accessKeyId }, allowedActions: key.allowedActions ?? '*' },
    };
  }

  const { verifyV3, verifyV2 } = createSignatureVerifier(principalForAccessKey);

  // ---- provider (IdP) calls, in the DingTalk JSON dialect --------------------------------------

  async function providerToken(provider: EmulatorOAuth2Provider, grant: { code: string } | { refreshToken: string }): Promise<ProviderToken> {
    const body =
      'code' in grant
        ? { clientId: provider.clientId, clientSecret: provider.clientSecret, code: grant.code, grantType: 'authorization_code' }
        : { clientId: provider.clientId, clientSecret: provider.clientSecret, refreshToken: grant.refreshToken, grantType: 'refresh_token' };
    const res = await fetch(provider.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok || typeof json.accessToken !== 'string') {
      throw new Error(`token endpoint answered HTTP ${res.status}`);
    }
    const expireIn = typeof json.expireIn === 'number' ? json.expireIn : Number(json.expireIn ?? 7200);
    return {
      accessToken: json.accessToken,
      ...(typeof json.refreshToken === 'string' ? { refreshToken: json.refreshToken } : {}),
      expiresAt: now() + (Number.isFinite(expireIn) ? expireIn : 7200) * 1000,
      ...(typeof json.corpId === 'string' ? { corpId: json.corpId } : {}),
    };
  }

  // ---- actions -----------------------------------------------------------------------------------

  function workloadNamed(name: string): EmulatorWorkloadIdentity {
    const w = workloads.get(name);
    if (!w) throw new RpcError(404, 'EntityNotExists.WorkloadIdentity', `The workload identity "${name}" does not exist.`);
    return w;
  }

  const isStringMap = (v: unknown): v is Record<string, string> =>
    !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');

  function parseBool(params: Record<string, string>, name: string): boolean | undefined {
    const raw = params[name];
    if (raw === undefined || raw === '') return undefined;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw new RpcError(400, `InvalidParameter.${name}`, `The parameter ${name} must be true or false.`);
  }

  function authorizationUrlFor(session: Session): string {
    return `${baseUrl}/oauth2/authorize?request_uri=${encodeURIComponent(session.sessionUri)}`;
  }

  function liveSession(sessionUri: string): Session | undefined {
    const s = sessions.get(sessionUri);
    if (!s) return undefined;
    if (s.expiresAt <= now()) {
      sessions.delete(sessionUri);
      sessionsByState.delete(s.providerState);
      return undefined;
    }
    return s;
  }

  async function vaultedToken(entry: VaultEntry, key: string): Promise<VaultEntry | undefined> {
    if (entry.expiresAt > now()) return entry;
    const provider = providers.get(entry.providerName);
    if (!provider || !entry.refreshToken) {
      vault.delete(key);
      return undefined;
    }
    try {
      const t = await providerToken(provider, { refreshToken: entry.refreshToken });
      const updated: VaultEntry = {
        ...entry,
        accessToken: t.accessToken,
        refreshToken: t.refreshToken ?? entry.refreshToken,
        expiresAt: t.expiresAt,
        ...(t.corpId ? { corpId: t.corpId } : {}),
      };
      vault.set(key, updated);
      return updated;
    } catch {
      vault.delete(key);
      return undefined;
    }
  }

  type Handler = (params: Record<string, string>, principal: Principal) => Promise<Record<string, unknown>>;

  const handlers: Record<string, Handler> = {
    async GetWorkloadAccessToken(params) {
      const name = requiredParam(params, 'WorkloadIdentityName');
      workloadNamed(name);
      return { WorkloadAccessToken: mintWorkloadToken({ workloadIdentityName: name, user: undefined, artifact: undefined }) };
    },

    async GetWorkloadAccessTokenForUserId(params) {
      const name = requiredParam(params, 'WorkloadIdentityName');
      const userId = requiredParam(params, 'UserId');
      workloadNamed(name);
      return {
        WorkloadAccessToken: mintWorkloadToken({ workloadIdentityName: name, user: `uid:${userId}`, artifact: { kind: 'userId', userId } }),
      };
    },

    async GetWorkloadAccessTokenForJWT(params) {
      const name = requiredParam(params, 'WorkloadIdentityName');
      const jwt = requiredParam(params, 'UserToken');
      workloadNamed(name);
      const claims = await verifyUserJwt(jwt);
      return {
        WorkloadAccessToken: mintWorkloadToken({
          workloadIdentityName: name,
          user: `jwt:${typeof claims.iss === 'string' ? claims.iss : ''}:${claims.sub}`,
          artifact: { kind: 'jwt', jwt },
          jwtClaims: claims,
        }),
      };
    },

    async AssumeRoleForWorkloadIdentity(params) {
      const wt = verifyWorkloadToken(requiredParam(params, 'WorkloadAccessToken'));
      const roleSessionName = requiredParam(params, 'RoleSessionName');
      if (!/^[\w.@-]{2,64}$/.test(roleSessionName)) {
        throw new RpcError(400, 'InvalidParameter.RoleSessionName', 'The parameter RoleSessionName is invalid.');
      }
      let duration = 3600;
      if (params.DurationSeconds !== undefined && params.DurationSeconds !== '') {
        duration = Number(params.DurationSeconds);
        if (!Number.isInteger(duration) || duration < 900 || duration > 43200) {
          throw new RpcError(400, 'InvalidParameter.DurationSeconds', 'DurationSeconds must be an integer between 900 and 43200.');
        }
      }
      const ttl = (options.stsTtlSeconds ?? duration) * 1000;
      const workload = workloadNamed(wt.workloadIdentityName);
      const expiresAt = now() + ttl;
      const record: StsRecord = {
        accessKeyId: `STS.${randomBytes(12).toString('base64url')}`,
        accessKeySecret: randomBytes(24).toString('base64url'),
        securityToken: `CAIS${randomBytes(96).toString('base64')}`,
        expiresAt,
        workloadIdentityName: wt.workloadIdentityName,
        user: wt.user,
      };
      stsByAccessKeyId.set(record.accessKeyId, record);
      const roleArn = workload.roleArn ?? `acs:ram::${accountId}:role/agentidentityrole-${workload.name.toLowerCase()}`;
      const roleName = roleArn.split('/').pop() ?? 'role';
      const userContext =
        wt.artifact?.kind === 'userId'
          ? { UserId: wt.artifact.userId }
          : wt.jwtClaims
            ? {
                JwtClaims: {
                  Issuer: wt.jwtClaims.iss ?? '',
                  Subject: wt.jwtClaims.sub,
                  Audiences: Array.isArray(wt.jwtClaims.aud) ? wt.jwtClaims.aud : wt.jwtClaims.aud ? [wt.jwtClaims.aud] : [],
                },
              }
            : undefined;
      return {
        Credentials: {
          AccessKeyId: record.accessKeyId,
          AccessKeySecret: record.accessKeySecret,
          SecurityToken: record.securityToken,
          Expiration: isoSeconds(expiresAt),
        },
        AssumedRoleUser: {
          Arn: `acs:ram::${accountId}:assumed-role/${roleName}/${roleSessionName}`,
          AssumedRoleId: `${randomBytes(9).readUIntBE(0, 6)}:${roleSessionName}`,
        },
        WorkloadContextInfo: {
          WorkloadIdentityArn: `acs:agentidentity:cn-beijing:${accountId}:workloadidentitydirectory/default/workloadidentity/${workload.name}`,
          ...(userContext ? { UserContext: userContext } : {}),
        },
      };
    },

    async GetResourceOAuth2Token(params, principal) {
      const wt = verifyWorkloadToken(requiredParam(params, 'WorkloadAccessToken'));
      checkStsBinding(principal, wt);
      const providerName = requiredParam(params, 'ResourceCredentialProviderName');
      const flow = requiredParam(params, 'OAuth2Flow');
      // MODELED/UNVERIFIED: only USER_FEDERATION is known to exist (reference §2).
      if (flow !== 'USER_FEDERATION') throw new RpcError(400, 'InvalidParameter.OAuth2Flow', `The OAuth2Flow "${flow}" is not supported.`);
      const scopes = jsonParam(params, 'Scopes', isStringArray) ?? [];
      const customParameters = jsonParam(params, 'CustomParameters', isStringMap) ?? {};
      const force = parseBool(params, 'ForceAuthentication') ?? false;
      const returnUrl = params.ResourceOAuth2ReturnURL;
      const customState = params.CustomState;
      const sessionUri = params.SessionURI;
      const workload = workloadNamed(wt.workloadIdentityName);
      const provider = providers.get(providerName);
      if (!provider) {
        throw new RpcError(404, 'EntityNotExists.OAuth2CredentialProvider', `The OAuth2 credential provider "${providerName}" does not exist.`);
      }
      if (returnUrl !== undefined && returnUrl !== '' && !workload.allowedReturnUrls.includes(returnUrl)) {
        // MODELED/UNVERIFIED code.
        throw new RpcError(
          400,
          'InvalidParameter.ResourceOAuth2ReturnURL',
          'The specified ResourceOAuth2ReturnURL is not in the AllowedResourceOAuth2ReturnURLs of the workload identity.',
        );
      }
      if (!wt.user || !wt.artifact) {
        throw new RpcError(400, 'InvalidParameter.WorkloadAccessToken', 'USER_FEDERATION requires a workload access token bound to a user.');
      }
      const key = vaultKey(wt.workloadIdentityName, wt.user, providerName);

      if (sessionUri) {
        const session = liveSession(sessionUri);
        // MODELED/UNVERIFIED: an unknown or foreign session answers like CompleteResourceTokenAuth does.
        if (!session || session.workloadIdentityName !== wt.workloadIdentityName || session.user !== wt.user || session.providerName !== providerName) {
          throw new RpcError(400, 'InvalidParameter.SessionURI', 'Invalid or expired session.');
        }
        if (session.status === 'COMPLETED') {
          const entry = vault.get(key);
          const live = entry ? await vaultedToken(entry, key) : undefined;
          if (live) return { AccessToken: live.accessToken };
          throw new RpcError(400, 'InvalidParameter.SessionURI', 'Invalid or expired session.');
        }
        if (session.status === 'FAILED') {
          // MODELED/UNVERIFIED: SessionStatus values other than IN_PROGRESS are not documented.
          return { SessionURI: session.sessionUri, SessionStatus: 'FAILED' };
        }
        return { AuthorizationURL: authorizationUrlFor(session), SessionURI: session.sessionUri, SessionStatus: 'IN_PROGRESS' };
      }

      if (!force) {
        const entry = vault.get(key);
        // MODELED: a vaulted token granted for fewer scopes than asked starts a new consent.
        if (entry && scopes.every((s) => entry.scopes.includes(s))) {
          const live = await vaultedToken(entry, key);
          if (live) return { AccessToken: live.accessToken };
        }
      }

      if (!returnUrl) {
        throw new RpcError(
          400,
          'MissingParameter.ResourceOAuth2ReturnURL',
          'The input parameter "ResourceOAuth2ReturnURL" is mandatory to start an authorization session.',
        );
      }
      const id = randomUUID();
      const session: Session = {
        id,
        sessionUri: `${SESSION_URI_PREFIX}${id}`,
        status: 'IN_PROGRESS',
        workloadIdentityName: wt.workloadIdentityName,
        user: wt.user,
        artifact: wt.artifact,
        providerName,
        returnUrl,
        ...(customState !== undefined ? { customState } : {}),
        scopes,
        customParameters,
        authorizeUsed: false,
        callbackReceived: false,
        expiresAt: now() + sessionTtlMs,
        providerState: randomBytes(24).toString('base64url'),
      };
      sessions.set(session.sessionUri, session);
      sessionsByState.set(session.providerState, session);
      return { AuthorizationURL: authorizationUrlFor(session), SessionURI: session.sessionUri, SessionStatus: 'IN_PROGRESS' };
    },

    async CompleteResourceTokenAuth(params) {
      const sessionUri = requiredParam(params, 'SessionURI');
      const identifier = jsonParam(
        params,
        'UserIdentifier',
        (v): v is { UserId?: unknown; UserJWT?: unknown } => !!v && typeof v === 'object' && !Array.isArray(v),
      );
      if (!identifier) requiredParam(params, 'UserIdentifier');
      const userId = identifier?.UserId;
      const userJwt = identifier?.UserJWT;
      if (
        (userId !== undefined && typeof userId !== 'string') ||
        (userJwt !== undefined && typeof userJwt !== 'string') ||
        (userId === undefined && userJwt === undefined)
      ) {
        throw new RpcError(400, 'InvalidParameter.UserIdentifier', 'UserIdentifier must carry UserId or UserJWT.');
      }
      const session = liveSession(sessionUri);
      // Modeled on the AWS AgentCore analogue (reference §1.3), UNVERIFIED for Alibaba: same artifact or nothing.
      const invalid = () => new RpcError(400, 'InvalidParameter.SessionURI', 'Invalid or expired session.');
      if (session?.status !== 'IN_PROGRESS' || !session.token) throw invalid();
      const a = session.artifact;
      const matches = a.kind === 'userId' ? userId === a.userId : typeof userJwt === 'string' && safeEqual(userJwt, a.jwt);
      if (!matches) throw invalid();
      const t = session.token;
      vault.set(vaultKey(session.workloadIdentityName, session.user, session.providerName), {
        workloadIdentityName: session.workloadIdentityName,
        user: session.user,
        providerName: session.providerName,
        accessToken: t.accessToken,
        ...(t.refreshToken ? { refreshToken: t.refreshToken } : {}),
        expiresAt: t.expiresAt,
        scopes: session.scopes,
        ...(t.corpId ? { corpId: t.corpId } : {}),
      });
      session.status = 'COMPLETED';
      delete session.token;
      return {};
    },

    async GetResourceAPIKey(params, principal) {
      const wt = verifyWorkloadToken(requiredParam(params, 'WorkloadAccessToken'));
      checkStsBinding(principal, wt);
      const name = requiredParam(params, 'ResourceCredentialProviderName');
      const p = apiKeyProviders.get(name);
      if (!p) throw new RpcError(404, 'EntityNotExists.APIKeyCredentialProvider', `The API key credential provider "${name}" does not exist.`);
      return { APIKey: p.apiKey };
    },
  };

  /** STS credentials of a workload role act only for the workload + user of the token that minted them. */
  function checkStsBinding(principal: Principal, wt: WorkloadTokenRecord): void {
    if (principal.signer.type !== 'sts') return;
    if (principal.signer.workloadIdentityName !== wt.workloadIdentityName || principal.signer.user !== (wt.user ?? '')) {
      // MODELED/UNVERIFIED code.
      throw new RpcError(403, 'Forbidden.WorkloadIdentityMismatch', 'The STS credentials belong to another workload identity or user.');
    }
  }

  // ---- HTTP ----------------------------------------------------------------------------------------

  function sendJson(res: ServerResponse, status: number, body: Record<string, unknown>, requestId: string): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json;charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'x-acs-request-id': requestId,
    });
    res.end(text);
  }

  function sendError(res: ServerResponse, err: RpcError, requestId: string): void {
    sendJson(
      res,
      err.status,
      {
        RequestId: requestId,
        HostId: hostId(),
        Code: err.code,
        Message: err.message,
        Recommend: `https://api.aliyun.com/troubleshoot?q=${encodeURIComponent(err.code)}&product=AgentIdentityData`,
      },
      requestId,
    );
  }

  function sendPage(res: ServerResponse, status: number, title: string, text: string): void {
    const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`;
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) });
    res.end(html);
  }

  function redirect(res: ServerResponse, location: string): void {
    res.writeHead(302, { location, 'content-length': 0 });
    res.end();
  }

  async function handleRpc(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const requestId = randomUUID().toUpperCase();
    const rawQuery = url.search.startsWith('?') ? url.search.slice(1) : url.search;
    const query = toSingleValues(querystring.parse(rawQuery));
    const call: EmulatorCall = {
      action: firstHeader(req, 'x-acs-action') ?? query.Action ?? '',
      params: {},
      signedBy: { type: 'anonymous' },
      signatureVersion: 'none',
      status: 200,
      requestId,
    };
    try {
      const body = await readBody(req);
      const contentType = (firstHeader(req, 'content-type') ?? '').toLowerCase();
      const form =
        body.length > 0 && contentType.startsWith('application/x-www-form-urlencoded') ? toSingleValues(querystring.parse(body.toString('utf8'))) : {};
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(query)) if (!V2_SYSTEM_PARAMS.has(k)) params[k] = v;
      Object.assign(params, form);
      call.params = params;

      if (req.method !== 'POST' && req.method !== 'GET') {
        throw new RpcError(405, 'UnsupportedHTTPMethod', 'Specified HTTP method is not supported.');
      }
      const action = call.action;
      if (!action)
        throw new RpcError(400, 'MissingParameter.Action', 'The input parameter "Action" that is mandatory for processing this request is not supplied.');
      const version = firstHeader(req, 'x-acs-version') ?? query.Version;
      if (!version)
        throw new RpcError(400, 'MissingParameter.Version', 'The input parameter "Version" that is mandatory for processing this request is not supplied.');
      if (version !== EMULATED_API_VERSION) throw new RpcError(400, 'InvalidVersion', `Specified parameter Version "${version}" is not valid.`);
      if (query.Action !== undefined && firstHeader(req, 'x-acs-action') !== undefined && query.Action !== firstHeader(req, 'x-acs-action')) {
        throw new RpcError(400, 'InvalidParameter.Action', 'Action in the query and in x-acs-action differ.');
      }
      if (!KNOWN_ACTIONS.has(action)) throw new RpcError(404, 'InvalidAction.NotFound', 'Specified api is not found, please check your url and method.');

      let principal: Principal | undefined;
      const authorization = firstHeader(req, 'authorization');
      if (authorization) {
        call.signatureVersion = 'v3';
        principal = verifyV3(req, url.pathname, query, body, authorization);
      } else if (query.Signature !== undefined) {
        call.signatureVersion = 'v2';
        principal = verifyV2(req.method ?? 'POST', query, form);
      } else if (!ANONYMOUS_ACTIONS.has(action)) {
        // MODELED: the exact code for an unsigned request to a signed action.
        throw new RpcError(400, 'MissingAuthorization', 'This action requires a signed request (Authorization header).');
      }
      if (principal) call.signedBy = principal.signer;

      const fault = faults.find((f) => f.action === action || f.action === '*');
      if (fault) {
        fault.remaining -= 1;
        if (fault.remaining <= 0) faults = faults.filter((f) => f !== fault);
        throw new RpcError(fault.status, fault.code, fault.message ?? `Injected fault for ${action}.`);
      }

      if (principal && !ANONYMOUS_ACTIONS.has(action)) {
        const allowed = principal.allowedActions === '*' || principal.allowedActions.includes(action);
        if (!allowed) {
          throw new RpcError(403, 'NoPermission', `You are not authorized to do this operation. Action: agentidentitydata:${action}.`);
        }
      }
      const result = await handlers[action]!(params, principal ?? { signer: { type: 'anonymous' }, allowedActions: [] });
      sendJson(res, 200, { RequestId: requestId, ...result }, requestId);
    } catch (err) {
      const e = err instanceof RpcError ? err : new RpcError(500, 'InternalError', 'The request processing has failed due to some unknown error.');
      call.status = e.status;
      call.code = e.code;
      sendError(res, e, requestId);
    } finally {
      calls.push(call);
    }
  }

  function handleAuthorize(res: ServerResponse, url: URL): void {
    const requestUri = url.searchParams.get('request_uri') ?? '';
    const session = liveSession(requestUri);
    if (session?.status !== 'IN_PROGRESS') {
      sendPage(res, 400, 'Authorization failed', 'This authorization link is invalid or has expired.');
      return;
    }
    if (session.authorizeUsed) {
      sendPage(res, 400, 'Authorization failed', 'This authorization link has already been used.');
      return;
    }
    session.authorizeUsed = true;
    const provider = providers.get(session.providerName)!;
    const target = new URL(provider.authorizationEndpoint);
    target.searchParams.set('client_id', provider.clientId);
    target.searchParams.set('redirect_uri', `${baseUrl}/oauth2/callback/${provider.callbackId}`);
    target.searchParams.set('response_type', 'code');
    target.searchParams.set('scope', session.scopes.join(' '));
    target.searchParams.set('state', session.providerState);
    target.searchParams.set('prompt', 'consent');
    for (const [k, v] of Object.entries(session.customParameters)) target.searchParams.set(k, v);
    redirect(res, target.toString());
  }

  async function handleCallback(res: ServerResponse, url: URL, callbackId: string): Promise<void> {
    const provider = providersByCallback.get(callbackId);
    if (!provider) {
      sendPage(res, 404, 'Not found', 'Unknown callback.');
      return;
    }
    const state = url.searchParams.get('state') ?? '';
    const session = sessionsByState.get(state);
    if (!session || session.providerName !== provider.name || !liveSession(session.sessionUri)) {
      sendPage(res, 400, 'Authorization failed', 'The authorization session is invalid or has expired.');
      return;
    }
    if (session.callbackReceived || session.status !== 'IN_PROGRESS') {
      sendPage(res, 400, 'Authorization failed', 'This authorization has already been processed.');
      return;
    }
    session.callbackReceived = true;
    const back = new URL(session.returnUrl);
    const error = url.searchParams.get('error');
    const code = url.searchParams.get('authCode') ?? url.searchParams.get('code');
    let failure: string | undefined;
    if (error) {
      failure = /^[a-z_]{1,64}$/.test(error) ? error : 'access_denied';
    } else if (!code) {
      failure = 'invalid_request';
    } else {
      try {
        session.token = await providerToken(provider, { code });
      } catch {
        failure = 'server_error';
      }
    }
    if (failure) {
      // MODELED/UNVERIFIED: how Agent Identity reports a denied/failed consent to the return URL.
      session.status = 'FAILED';
      back.searchParams.set('error', failure);
    }
    back.searchParams.set('session_uri', session.sessionUri);
    if (session.customState !== undefined) back.searchParams.set('state', session.customState);
    redirect(res, back.toString());
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', baseUrl || 'http://localhost');
    const run = async () => {
      if (url.pathname === '/') return handleRpc(req, res, url);
      if (req.method === 'GET' && url.pathname === '/oauth2/authorize') return handleAuthorize(res, url);
      const cb = /^\/oauth2\/callback\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && cb) return handleCallback(res, url, decodeURIComponent(cb[1]!));
      sendPage(res, 404, 'Not found', 'No such page.');
    };
    run().catch(() => {
      if (!res.headersSent) sendPage(res, 500, 'Error', 'Internal error.');
      else res.destroy();
    });
  });

  baseUrl = await listen(server, host, options.port);

  const matchVault = (filter: { user: string; providerName?: string; workloadIdentityName?: string }) =>
    [...vault.entries()].filter(
      ([, e]) =>
        e.user === filter.user &&
        (filter.providerName === undefined || e.providerName === filter.providerName) &&
        (filter.workloadIdentityName === undefined || e.workloadIdentityName === filter.workloadIdentityName),
    );

  return {
    url: baseUrl,
    calls,
    vault: {
      list: () => [...vault.values()].map((e) => ({ ...e, scopes: [...e.scopes] })),
      get: (user, providerName, workloadIdentityName) => {
        const found = matchVault({ user, ...(providerName ? { providerName } : {}), ...(workloadIdentityName ? { workloadIdentityName } : {}) })[0];
        return found ? { ...found[1], scopes: [...found[1].scopes] } : undefined;
      },
      has: (user, providerName, workloadIdentityName) =>
        matchVault({ user, ...(providerName ? { providerName } : {}), ...(workloadIdentityName ? { workloadIdentityName } : {}) }).length > 0,
    },
    revokeVaultToken(filter) {
      const found = matchVault(filter);
      for (const [k] of found) vault.delete(k);
      return found.length;
    },
    expireVaultToken(filter) {
      const found = matchVault(filter);
      for (const [, e] of found) e.expiresAt = now() - 1;
      return found.length;
    },
    issuedSecrets: () => [
      ...[...stsByAccessKeyId.values()].flatMap((r) => [r.accessKeySecret, r.securityToken]),
      ...[...vault.values()].flatMap((v) => [v.accessToken, v.refreshToken ?? '']).filter(Boolean),
    ],
    sessions: () =>
      [...sessions.values()].map((s) => ({
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
      })),
    callbackUrl(providerName) {
      const p = providers.get(providerName);
      if (!p) throw new Error(`unknown provider ${providerName}`);
      return `${baseUrl}/oauth2/callback/${p.callbackId}`;
    },
    injectFault(fault) {
      faults.push({ ...fault, remaining: fault.times ?? 1 });
    },
    clearFaults() {
      faults = [];
    },
    close: () => shutdown(server),
  };
}
