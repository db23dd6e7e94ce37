/**
 * AgentIdentityBroker: the IdentityBroker the tools use, on top of AgentIdentityClient.
 *
 * Caching to the physical minimum (docs/architecture.md decision 8): per identity artifact a workload access token and
 * (when `useSts`) the workload role's STS credentials, per user the DingTalk token. A cached DingTalk token
 * means zero Agent Identity calls. Every fetch is single-flight per key; failures are never cached.
 *
 * Which credential signs what (docs/architecture.md decision 6): workload-token calls and CompleteResourceTokenAuth use the
 * server's own credential (the client's); GetResourceOAuth2Token uses the STS credentials from
 * AssumeRoleForWorkloadIdentity when `useSts`, else the server's own.
 */
import { createHash, randomUUID } from 'node:crypto';
import { AgentIdentityError, userKey, type DingTalkTokenOutcome, type GetDingTalkTokenOptions, type IdentityBroker, type UserIdentity } from './types.js';
import type { AgentIdentityClient, CredentialCheck, GetResourceOAuth2TokenResult, StsCredentials } from './agent-identity-client.js';
import { hashUserId, silentLogger, type Logger } from '../log.js';

export interface AgentIdentityBrokerOptions {
  client: AgentIdentityClient;
  workloadIdentityName: string;
  /** The OAuth2 credential provider holding DingTalk (e.g. `test-provider-for-dingtalk`). Required. */
  providerName: string;
  /** e.g. `['openid', 'corpid']`. */
  scopes: string[];
  /** Extra parameters for the IdP authorize request (`CustomParameters`). */
  customParameters?: Record<string, string>;
  /** Sign GetResourceOAuth2Token with the workload role's STS credentials. Default true. */
  useSts?: boolean;
  /** DurationSeconds for AssumeRoleForWorkloadIdentity. Default 3600. */
  stsDurationSeconds?: number;
  /** How long a DingTalk token is reused without asking Agent Identity. Default 3600. */
  dingTalkTokenMaxAgeSeconds?: number;
  /** Milliseconds since the epoch. Default Date.now. */
  now?: () => number;
  logger?: Logger;
}

/** Refresh this long before a workload token / STS credential expires. */
const EXPIRY_MARGIN_MS = 60_000;
/** When a workload token's expiry cannot be read. */
const DEFAULT_WORKLOAD_TOKEN_TTL_MS = 5 * 60_000;

interface Expiring<T> {
  value: T;
  expiresAt: number;
}

/** Codes after which a cached workload token / STS credential is dropped and the call retried once. */
const STALE_WORKLOAD_TOKEN = /^InvalidWorkloadAccessToken/;
const STALE_STS = /^(InvalidSecurityToken|InvalidAccessKeyId)/;

export class AgentIdentityBroker implements IdentityBroker {
  private readonly client: AgentIdentityClient;
  private readonly workloadIdentityName: string;
  private readonly providerName: string;
  private readonly scopes: string[];
  private readonly customParameters: Record<string, string> | undefined;
  private readonly useSts: boolean;
  private readonly stsDurationSeconds: number;
  private readonly tokenMaxAgeMs: number;
  private readonly now: () => number;
  private readonly logger: Logger;

  private readonly workloadTokens = new Map<string, Expiring<string>>();
  private readonly stsCredentials = new Map<string, Expiring<StsCredentials>>();
  private readonly dingTalkTokens = new Map<string, Expiring<string>>();
  /** Bumped by dropDingTalkToken so a fetch that started before the drop does not re-cache its answer. */
  private readonly dingTalkGeneration = new Map<string, number>();

  private readonly inflightWorkload = new Map<string, Promise<string>>();
  private readonly inflightSts = new Map<string, Promise<StsCredentials>>();
  private readonly inflightToken = new Map<string, { options: GetDingTalkTokenOptions; promise: Promise<DingTalkTokenOutcome> }>();

  constructor(options: AgentIdentityBrokerOptions) {
    this.client = options.client;
    this.workloadIdentityName = options.workloadIdentityName;
    this.providerName = options.providerName;
    this.scopes = [...options.scopes];
    this.customParameters = options.customParameters;
    this.useSts = options.useSts ?? true;
    this.stsDurationSeconds = options.stsDurationSeconds ?? 3600;
    this.tokenMaxAgeMs = (options.dingTalkTokenMaxAgeSeconds ?? 3600) * 1000;
    this.now = options.now ?? Date.now;
    this.logger = (options.logger ?? silentLogger).child({ component: 'agent-identity-broker' });
  }

  async getDingTalkToken(user: UserIdentity, options: GetDingTalkTokenOptions): Promise<DingTalkTokenOutcome> {
    options.signal?.throwIfAborted();
    this.assertConfigured('GetResourceOAuth2Token');
    const key = userKey(user);
    // A fetch for a just-completed session always asks Agent Identity: the completion may have happened in another
    // process (stdio's shared pages host, another replica), whose drop of the old token never reached this cache.
    if (!options.forceAuthentication && !options.sessionUri) {
      const cached = this.dingTalkTokens.get(key);
      if (cached && cached.expiresAt > this.now()) return { status: 'token', accessToken: cached.value };
      if (cached) this.dingTalkTokens.delete(key);
    }

    // Single-flight per user and kind of request. A shared *token* answer serves every joiner; an
    // authorization answer belongs to the caller whose return URL / state started it.
    const flightKey = `${key}|${options.sessionUri ?? ''}|${options.forceAuthentication ? 'force' : ''}`;
    const existing = this.inflightToken.get(flightKey);
    if (existing) {
      const shared = await withSignal(existing.promise, options.signal);
      if (shared.status === 'token' || sameRequest(existing.options, options)) return shared;
      return withSignal(this.fetchDingTalkToken(user, options), options.signal);
    }
    const promise = this.fetchDingTalkToken(user, options).finally(() => {
      if (this.inflightToken.get(flightKey)?.promise === promise) this.inflightToken.delete(flightKey);
    });
    this.inflightToken.set(flightKey, { options, promise });
    return withSignal(promise, options.signal);
  }

  /** GetResourceAPIKey with this user's (cached) workload token, signed like GetResourceOAuth2Token. Not cached here. */
  async getApiKey(user: UserIdentity, providerName: string): Promise<string> {
    if (!this.workloadIdentityName) this.assertConfigured('GetResourceAPIKey');
    if (!providerName) {
      throw new AgentIdentityError(
        'No Agent Identity API-key credential provider is configured for the DingTalk app secret: set AGENT_IDENTITY_DINGTALK_APP_SECRET_PROVIDER.',
        'ConfigurationMissing',
        'GetResourceAPIKey',
      );
    }
    return this.withWorkloadToken(
      user,
      async (workloadAccessToken, signing) => (await this.client.getResourceAPIKey(workloadAccessToken, providerName, signing)).apiKey,
    );
  }

  async completeAuthorization(sessionUri: string, user: UserIdentity): Promise<void> {
    this.assertConfigured('CompleteResourceTokenAuth');
    const identifier = user.kind === 'userId' ? { UserId: user.userId } : { UserJWT: user.jwt };
    await this.client.completeResourceTokenAuth(sessionUri, identifier);
    // A new token is in the vault now; whatever we held for this user is stale.
    this.dropDingTalkToken(user);
    this.logger.info('authorization completed', { user: hashUserId(userKey(user)) });
  }

  dropDingTalkToken(user: UserIdentity): void {
    const key = userKey(user);
    this.dingTalkTokens.delete(key);
    this.dingTalkGeneration.set(key, (this.dingTalkGeneration.get(key) ?? 0) + 1);
    // Generations matter only while a fetch is in flight; forget the others so the map stays small.
    if (this.dingTalkGeneration.size > 1024) {
      const busy = new Set([...this.inflightToken.keys()].map((k) => k.slice(0, k.lastIndexOf('|', k.lastIndexOf('|') - 1))));
      for (const k of this.dingTalkGeneration.keys()) if (!busy.has(k)) this.dingTalkGeneration.delete(k);
    }
  }

  /** For a health check: does the server's credential chain yield credentials? Never reveals them. */
  checkCredentials(): Promise<CredentialCheck> {
    return this.client.checkCredentials();
  }

  /** Forget every cached token and credential (e.g. on configuration reload). */
  clear(): void {
    this.workloadTokens.clear();
    this.stsCredentials.clear();
    for (const key of this.dingTalkTokens.keys()) {
      this.dingTalkGeneration.set(key, (this.dingTalkGeneration.get(key) ?? 0) + 1);
    }
    this.dingTalkTokens.clear();
  }

  // ---------------------------------------------------------------------------------------------

  /** Configuration gaps surface as an actionable error on use, not as a crash at start-up. */
  private assertConfigured(action: string): void {
    if (!this.workloadIdentityName) {
      throw new AgentIdentityError(
        'No Agent Identity workload identity is configured: set AGENT_IDENTITY_WORKLOAD_IDENTITY_NAME (or workload_identity_name in .config.json).',
        'ConfigurationMissing',
        action,
      );
    }
    if (!this.providerName) {
      throw new AgentIdentityError(
        'No Agent Identity OAuth2 credential provider is configured for DingTalk (the provider name, e.g. test-provider-for-dingtalk).',
        'ConfigurationMissing',
        action,
      );
    }
  }

  private async fetchDingTalkToken(user: UserIdentity, options: GetDingTalkTokenOptions): Promise<DingTalkTokenOutcome> {
    const key = userKey(user);
    const generation = this.dingTalkGeneration.get(key) ?? 0;
    const result = await this.requestResourceToken(user, options);

    if (result.accessToken) {
      if ((this.dingTalkGeneration.get(key) ?? 0) === generation) {
        remember(this.dingTalkTokens, key, { value: result.accessToken, expiresAt: this.now() + this.tokenMaxAgeMs }, this.now());
      }
      this.logger.debug('dingtalk token obtained', { user: hashUserId(key), requestId: result.requestId });
      return { status: 'token', accessToken: result.accessToken };
    }
    if (result.authorizationUrl) {
      if (!result.sessionUri) {
        throw new AgentIdentityError(
          `Agent Identity GetResourceOAuth2Token returned an AuthorizationURL without a SessionURI (RequestId ${result.requestId ?? 'unknown'}).`,
          'InvalidResponse',
          'GetResourceOAuth2Token',
          result.requestId,
        );
      }
      this.logger.debug('dingtalk authorization required', {
        user: hashUserId(key),
        sessionStatus: result.sessionStatus,
        requestId: result.requestId,
      });
      return { status: 'authorization_required', authorizationUrl: result.authorizationUrl, sessionUri: result.sessionUri };
    }
    const status = result.sessionStatus ? ` (SessionStatus ${result.sessionStatus})` : '';
    throw new AgentIdentityError(
      `Agent Identity GetResourceOAuth2Token returned neither an AccessToken nor an AuthorizationURL${status} (RequestId ${result.requestId ?? 'unknown'}). ` +
        'The authorization may have been denied or has failed: start it again.',
      result.sessionStatus ? `Session${result.sessionStatus}` : 'EmptyResponse',
      'GetResourceOAuth2Token',
      result.requestId,
    );
  }

  private requestResourceToken(user: UserIdentity, options: GetDingTalkTokenOptions): Promise<GetResourceOAuth2TokenResult> {
    return this.withWorkloadToken(user, (workloadAccessToken, signing) =>
      this.client.getResourceOAuth2Token(
        {
          workloadAccessToken,
          providerName: this.providerName,
          scopes: this.scopes,
          flow: 'USER_FEDERATION',
          returnUrl: options.returnUrl,
          customState: options.customState,
          ...(options.forceAuthentication !== undefined ? { forceAuthentication: options.forceAuthentication } : {}),
          ...(this.customParameters ? { customParameters: this.customParameters } : {}),
          ...(options.sessionUri !== undefined ? { sessionUri: options.sessionUri } : {}),
        },
        signing,
      ),
    );
  }

  /** Run a credential fetch with the user's workload token (and STS signing); a stale token or STS credential is replaced once. */
  private async withWorkloadToken<T>(
    user: UserIdentity,
    fetch: (workloadAccessToken: string, signing?: StsCredentials) => Promise<T>,
    mayRetry = true,
  ): Promise<T> {
    const artifact = artifactKey(user);
    const workloadAccessToken = await this.getWorkloadToken(user);
    const signing = this.useSts ? await this.getSts(artifact, workloadAccessToken) : undefined;
    try {
      return await fetch(workloadAccessToken, signing);
    } catch (err) {
      if (mayRetry && err instanceof AgentIdentityError) {
        if (STALE_WORKLOAD_TOKEN.test(err.code)) {
          this.workloadTokens.delete(artifact);
          this.stsCredentials.delete(artifact);
          return this.withWorkloadToken(user, fetch, false);
        }
        if (signing && STALE_STS.test(err.code)) {
          this.stsCredentials.delete(artifact);
          return this.withWorkloadToken(user, fetch, false);
        }
      }
      throw err;
    }
  }

  private getWorkloadToken(user: UserIdentity): Promise<string> {
    const key = artifactKey(user);
    const cached = this.workloadTokens.get(key);
    if (cached && cached.expiresAt - EXPIRY_MARGIN_MS > this.now()) return Promise.resolve(cached.value);
    return singleFlight(this.inflightWorkload, key, async () => {
      const result =
        user.kind === 'userId'
          ? await this.client.getWorkloadAccessTokenForUserId(this.workloadIdentityName, user.userId)
          : await this.client.getWorkloadAccessTokenForJWT(this.workloadIdentityName, user.jwt);
      const token = result.workloadAccessToken;
      const exp = jwtExpiryMs(token);
      const expiresAt = exp ?? this.now() + DEFAULT_WORKLOAD_TOKEN_TTL_MS;
      remember(this.workloadTokens, key, { value: token, expiresAt }, this.now());
      // A new workload token makes STS credentials minted from the old one stale.
      this.stsCredentials.delete(key);
      return token;
    });
  }

  private getSts(artifact: string, workloadAccessToken: string): Promise<StsCredentials> {
    const cached = this.stsCredentials.get(artifact);
    if (cached && cached.expiresAt - EXPIRY_MARGIN_MS > this.now()) return Promise.resolve(cached.value);
    return singleFlight(this.inflightSts, artifact, async () => {
      const result = await this.client.assumeRoleForWorkloadIdentity(workloadAccessToken, {
        roleSessionName: `AgentIdentitySessionRole-${randomUUID()}`,
        durationSeconds: this.stsDurationSeconds,
      });
      const parsed = Date.parse(result.expiration);
      const expiresAt = Number.isFinite(parsed) ? parsed : this.now() + this.stsDurationSeconds * 1000;
      const value: StsCredentials = {
        accessKeyId: result.accessKeyId,
        accessKeySecret: result.accessKeySecret,
        securityToken: result.securityToken,
        expiration: result.expiration,
      };
      remember(this.stsCredentials, artifact, { value, expiresAt }, this.now());
      return value;
    });
  }
}

/** Caches are bounded: expired entries go when a map grows, and past the cap the oldest go first. */
const MAX_CACHED = 10_000;
const PRUNE_ABOVE = 1_024;

function remember<T>(map: Map<string, Expiring<T>>, key: string, entry: Expiring<T>, now: number): void {
  map.delete(key); // re-insert: Map order is then oldest-first
  map.set(key, entry);
  if (map.size > PRUNE_ABOVE) for (const [k, v] of map) if (v.expiresAt <= now) map.delete(k);
  while (map.size > MAX_CACHED) map.delete(map.keys().next().value as string);
}

/** The workload token and STS credentials belong to the exact artifact that minted them (never the raw JWT as key). */
function artifactKey(user: UserIdentity): string {
  return user.kind === 'userId' ? `uid:${user.userId}` : `jwt:${createHash('sha256').update(user.jwt).digest('base64url')}`;
}

function sameRequest(a: GetDingTalkTokenOptions, b: GetDingTalkTokenOptions): boolean {
  return a.returnUrl === b.returnUrl && a.customState === b.customState;
}

function singleFlight<T>(map: Map<string, Promise<T>>, key: string, fetch: () => Promise<T>): Promise<T> {
  const existing = map.get(key);
  if (existing) return existing;
  const promise = fetch().finally(() => {
    if (map.get(key) === promise) map.delete(key);
  });
  map.set(key, promise);
  return promise;
}

function withSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** The `exp` of a JWT-shaped token in ms, or undefined. No signature check: only used to schedule a refresh. */
export function jwtExpiryMs(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
