/**
 * The DingTalk app access token (docs/architecture.md decision 13): cached until shortly before `expireIn`, fetched
 * single-flight, refetched once when DingTalk rejects it. The app secret it is minted from comes from an
 * Agent Identity API-key credential provider (GetResourceAPIKey, what the Python kit's `requires_api_key` does)
 * or, in development, from DINGTALK_CLIENT_SECRET. Neither the secret nor the token is ever logged.
 */
import type { UserIdentity } from '../identity/types.js';
import { silentLogger, type Logger } from '../log.js';
import type { DingTalkAppApi } from './app-api.js';
import { DingTalkError } from './types.js';

/** Where the app secret comes from. `user` is the caller whose workload token may fetch it. */
export interface AppSecretSource {
  /** For messages and `doctor`: "Agent Identity API-key provider X" or "DINGTALK_CLIENT_SECRET". */
  readonly description: string;
  get(user: UserIdentity): Promise<string>;
  /** DingTalk refused the secret: forget any cached copy. */
  invalidate(): void;
}

/** Agent Identity fetches it (GetResourceAPIKey); a copy is kept for `ttlMs` so a rotation is picked up. */
export class AgentIdentityAppSecret implements AppSecretSource {
  readonly description: string;
  private cached?: { value: string; expiresAt: number };
  private inflight?: Promise<string>;

  constructor(
    private readonly fetch: (user: UserIdentity) => Promise<string>,
    providerName: string,
    private readonly ttlMs = 3_600_000,
    private readonly now: () => number = Date.now,
  ) {
    this.description = `the Agent Identity API-key credential provider "${providerName}"`;
  }

  get(user: UserIdentity): Promise<string> {
    if (this.cached && this.cached.expiresAt > this.now()) return Promise.resolve(this.cached.value);
    // Shared by every caller waiting, so no one caller's cancellation aborts it.
    this.inflight ??= this.fetch(user)
      .then((value) => {
        this.cached = { value, expiresAt: this.now() + this.ttlMs };
        return value;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  invalidate(): void {
    this.cached = undefined;
  }
}

/** Development fallback: the secret from the environment. */
export class EnvironmentAppSecret implements AppSecretSource {
  readonly description = 'DINGTALK_CLIENT_SECRET';
  constructor(private readonly secret: string) {}
  get(): Promise<string> {
    return Promise.resolve(this.secret);
  }
  invalidate(): void {}
}

/** Refresh this long before DingTalk's `expireIn` runs out. */
const EXPIRY_MARGIN_MS = 5 * 60_000;

export class AppTokenSource {
  private cached?: { token: string; expiresAt: number };
  private inflight?: Promise<string>;
  private readonly logger: Logger;

  constructor(private readonly options: { clientId: string; secret: AppSecretSource; api: DingTalkAppApi; now?: () => number; logger?: Logger }) {
    this.logger = (options.logger ?? silentLogger).child({ component: 'dingtalk-app-token' });
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  get(user: UserIdentity, signal?: AbortSignal): Promise<string> {
    if (this.cached && this.cached.expiresAt > this.now()) return Promise.resolve(this.cached.token);
    signal?.throwIfAborted();
    // Shared by every caller waiting, so no one caller's cancellation aborts it.
    this.inflight ??= this.fetch(user).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** DingTalk rejected `token`: drop it (unless a newer one replaced it already). */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  private async fetch(user: UserIdentity): Promise<string> {
    const { clientId, secret, api } = this.options;
    let appSecret = await secret.get(user);
    let answer: { accessToken: string; expireInSeconds: number };
    try {
      answer = await api.getAccessToken(clientId, appSecret);
    } catch (e) {
      // A rotated secret: the cached copy is stale. Ask its source once more.
      if (!(e instanceof DingTalkError) || e.kind !== 'app_credentials' || secret instanceof EnvironmentAppSecret) throw e;
      secret.invalidate();
      appSecret = await secret.get(user);
      answer = await api.getAccessToken(clientId, appSecret).catch((again: unknown) => {
        if (again instanceof DingTalkError && again.kind === 'app_credentials') secret.invalidate();
        throw again;
      });
    }
    const lifetimeMs = answer.expireInSeconds * 1000;
    this.cached = { token: answer.accessToken, expiresAt: this.now() + Math.max(lifetimeMs - EXPIRY_MARGIN_MS, lifetimeMs / 2) };
    this.logger.debug('dingtalk app token obtained', { expireInSeconds: answer.expireInSeconds });
    return answer.accessToken;
  }
}
