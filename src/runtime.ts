import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequestStateCodec, type ServerContext } from '@modelcontextprotocol/server';
import type { Config } from './config.js';
import type { AuthRequestState, LadderDeps } from './authorization/ladder.js';
import { PendingAuthorizations } from './authorization/pending.js';
import { SignedState } from './authorization/signed-state.js';
import { DingTalkAppApi } from './dingtalk/app-api.js';
import { AgentIdentityAppSecret, AppTokenSource, EnvironmentAppSecret, type AppSecretSource } from './dingtalk/app-token.js';
import { DingTalkClient } from './dingtalk/client.js';
import { MineWorkspaces } from './dingtalk/mine-workspace.js';
import { OperatorDirectory } from './dingtalk/operator.js';
import { AgentIdentityClient } from './identity/agent-identity-client.js';
import { AgentIdentityBroker } from './identity/broker.js';
import type { IdentityBroker, UserIdentity } from './identity/types.js';
import { configureUserLabels, createLogger, type Logger } from './log.js';
import type { ToolDeps } from './tools/define-tool.js';
import { selectTools } from './tools/index.js';
import { InFlight } from './in-flight.js';
import { createMemoryStore } from './state/memory.js';
import { passwordOf as redisPassword } from './state/redis-url.js';
import type { StateStore } from './state/types.js';

/** Ways to replace the real upstreams (the sandbox, tests). */
export interface RuntimeOverrides {
  /** A @alicloud/credentials Credential; default: the default credential chain. */
  credential?: ConstructorParameters<typeof AgentIdentityClient>[0]['credential'];
  broker?: IdentityBroker;
  logger?: Logger;
  /** The shared state store (Redis, or stdio's local files); default in memory. See createStateStore. */
  store?: StateStore;
  /** Base of the links we print, when not APP_REDIRECT_URI (stdio: the literal 127.0.0.1 for `localhost`). */
  linkBase?: string;
  /** stdio: the user's shared pages host (src/local/), found or started before a link is printed. */
  pages?: BrowserPages;
}

/** Where /connect and /callback are served: `ensure()` is undefined once they are, otherwise why they cannot be. */
export interface BrowserPages {
  ensure(): Promise<string | undefined>;
  /** The process serving them, once known (for the start log). */
  readonly pid?: number;
}

export interface Runtime {
  config: Config;
  logger: Logger;
  broker: IdentityBroker;
  pending: PendingAuthorizations;
  /** Where pending authorizations, rate limits and sign-in marks live (memory, or Redis shared by replicas). */
  store: StateStore;
  state: SignedState;
  /** DingTalk writes in progress: graceful shutdown waits for them. */
  writes: InFlight;
  /** Why the browser pages cannot be reached, if they cannot (set by the transport). */
  callbackProblem: string | undefined;
  /** stdio: the shared pages host, asked before every link (see RuntimeOverrides.pages). */
  pages: BrowserPages | undefined;
  /** Load what the first call would otherwise wait for (undici); transports call it once serving. */
  warmUp(): void;
  /** The tool dependencies, given how this transport identifies the caller. */
  toolDeps(resolveUser: (ctx: ServerContext) => UserIdentity): ToolDeps;
  close(): Promise<void>;
}

/** The composition root: config → clients, caches, the authorization machinery. Transports add the rest. */
export function createRuntime(config: Config, overrides: RuntimeOverrides = {}): Runtime {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel, secrets: secretsOf(config) });
  const authTimeoutMs = config.authTimeoutSeconds * 1000;

  const broker =
    overrides.broker ??
    new AgentIdentityBroker({
      client: new AgentIdentityClient({
        regionId: config.regionId,
        endpoint: config.agentIdentityEndpoint,
        credential: overrides.credential,
        logger,
      }),
      workloadIdentityName: config.workloadIdentityName ?? '',
      providerName: config.providerName,
      scopes: config.scopes,
      useSts: config.useSts,
      logger,
    });

  const dingtalk = new DingTalkClient({
    baseUrl: config.dingtalkApiBase,
    timeoutMs: config.dingtalkTimeoutMs,
    maxRetries: config.dingtalkMaxRetries,
    retryBaseDelayMs: config.dingtalkRetryBaseDelayMs,
    logger,
  });

  const state = new SignedState(config.stateSecret);
  // Log labels of user ids are keyed by the state secret: stable across replicas that share it,
  // never reversible by someone who only has the logs.
  configureUserLabels(createHash('sha256').update(state.keyBytes).update('log-user-label').digest());
  const store = overrides.store ?? createMemoryStore(stateStoreOptions(config));
  const pending = new PendingAuthorizations(store.pending, { ttlMs: authTimeoutMs });
  const requestStateCodec = createRequestStateCodec<AuthRequestState>({
    // A key of its own, derived from the state secret, so the two signatures never mix.
    key: createHash('sha256').update(state.keyBytes).update('mcp-request-state').digest(),
    ttlSeconds: config.authTimeoutSeconds,
  });

  const ladder: LadderDeps = {
    broker,
    pending,
    state,
    requestStateCodec,
    callbackUrl: config.callbackUrl,
    connectUrl: (id) => `${overrides.linkBase ?? config.appRedirectUri}/connect/${id}`,
    authTimeoutMs,
    consentWaitMs: Math.min(config.consentWaitSeconds * 1000, authTimeoutMs),
    // The pages are awaited before a link is printed, so a call right after start never meets them still starting.
    callbackProblem: () => runtime.callbackProblem ?? runtime.pages?.ensure(),
    openBrowser: config.openBrowser && config.transport === 'stdio' ? (url) => openInBrowser(url, logger) : undefined,
    logger,
  };
  const writes = new InFlight();
  const operators = new OperatorDirectory(dingtalk);
  const app = appAccess(config, broker, dingtalk, logger);

  const runtime: Runtime = {
    config,
    logger,
    broker,
    pending,
    store,
    state,
    writes,
    callbackProblem: 'the authorization pages are not listening yet',
    pages: overrides.pages,
    warmUp: () => dingtalk.warmUp(),
    toolDeps: (resolveUser) => ({ ladder, dingtalk, resolveUser, logger, writes, operators, app, tools: selectTools(config, app !== undefined) }),
    async close() {
      pending.close();
      await store.close();
      await dingtalk.close();
    },
  };
  return runtime;
}

/**
 * The app-token family, when an app credential is configured: DINGTALK_CLIENT_ID plus the app secret from the
 * Agent Identity API-key provider (preferred) or DINGTALK_CLIENT_SECRET (development fallback).
 */
function appAccess(config: Config, broker: IdentityBroker, dingtalk: DingTalkClient, logger: Logger): ToolDeps['app'] {
  if (!config.dingtalkClientId) return undefined;
  let secret: AppSecretSource;
  const providerName = config.appSecretProvider;
  if (providerName && broker.getApiKey) {
    const getApiKey = broker.getApiKey.bind(broker);
    secret = new AgentIdentityAppSecret((user) => getApiKey(user, providerName), providerName);
  } else if (config.dingtalkClientSecret) {
    secret = new EnvironmentAppSecret(config.dingtalkClientSecret);
  } else {
    return undefined;
  }
  const api = new DingTalkAppApi(dingtalk);
  return { api, tokens: new AppTokenSource({ clientId: config.dingtalkClientId, secret, api, logger }), mine: new MineWorkspaces(api) };
}

/** How long records live and how many a user may hold, the same for every store. */
export function stateStoreOptions(config: Config): { lingerMs: number; maxPerUser: number } {
  // Settled records linger one more lifetime, so a late 2026-07-28 retry learns how they ended.
  return { lingerMs: config.authTimeoutSeconds * 1000, maxPerUser: 5 };
}

/** The stdio user: a JWT when one is configured (Agent Identity verifies it), else the user id. */
export function configuredUser(config: Config): UserIdentity {
  if (config.userJwt) {
    let subject = 'unknown';
    let issuer: string | undefined;
    try {
      const claims = JSON.parse(Buffer.from(config.userJwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; iss?: string };
      subject = claims.sub ?? subject;
      issuer = claims.iss;
    } catch {
      // Agent Identity will reject a malformed JWT with a clear error.
    }
    return { kind: 'jwt', jwt: config.userJwt, subject, issuer };
  }
  if (!config.userId) throw new Error('No user id: set AGENT_IDENTITY_USER_ID.');
  return { kind: 'userId', userId: config.userId };
}

export function secretsOf(config: Config): string[] {
  return [
    config.userJwt,
    config.stateSecret,
    config.oidcClientSecret,
    config.dingtalkClientSecret,
    config.redisUrl ? redisPassword(config.redisUrl) : undefined,
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET,
    process.env.ALIBABA_CLOUD_SECURITY_TOKEN,
  ].filter((s): s is string => typeof s === 'string' && s.length > 0);
}

/** stdio rung 3 of the ladder: open the link locally; failures are only logged. */
function openInBrowser(url: string, logger: Logger): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', (e) => logger.warn('could not open the browser', { error: e.message }));
    child.unref();
  } catch (e) {
    logger.warn('could not open the browser', { error: (e as Error).message });
  }
}
