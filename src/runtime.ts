import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createRequestStateCodec } from '@modelcontextprotocol/server';
import type { Config } from './config.js';
import type { AuthRequestState, LadderDeps } from './authorization/ladder.js';
import { PendingAuthorizations } from './authorization/pending.js';
import { SignedState } from './authorization/signed-state.js';
import { DingTalkClient } from './dingtalk/client.js';
import { browserRoutes } from './http/browser-routes.js';
import { AgentIdentityClient } from './identity/agent-identity-client.js';
import { AgentIdentityBroker } from './identity/broker.js';
import type { IdentityBroker, UserIdentity } from './identity/types.js';
import { createLogger, type Logger } from './log.js';
import type { ToolDeps } from './tools/write-dingtalk-doc.js';

/** Ways to replace the real upstreams (the sandbox, tests). */
export interface RuntimeOverrides {
  /** A @alicloud/credentials Credential; default: the default credential chain. */
  credential?: ConstructorParameters<typeof AgentIdentityClient>[0]['credential'];
  broker?: IdentityBroker;
  logger?: Logger;
}

export interface Runtime {
  config: Config;
  logger: Logger;
  toolDeps: ToolDeps;
  /** The loopback listener serving /connect and /callback (stdio mode). */
  browserListener?: HttpServer;
  close(): Promise<void>;
}

/** The composition root: config → clients, caches, the authorization machinery. */
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
  const pending = new PendingAuthorizations({ ttlMs: authTimeoutMs });
  const requestStateCodec = createRequestStateCodec<AuthRequestState>({
    // A key of its own, derived from the state secret, so the two signatures never mix.
    key: createHash('sha256').update(state.keyBytes).update('mcp-request-state').digest(),
    ttlSeconds: config.authTimeoutSeconds,
  });

  let callbackProblem: string | undefined = 'the authorization pages are not listening yet';
  const ladder: LadderDeps = {
    broker,
    pending,
    state,
    requestStateCodec,
    callbackUrl: config.callbackUrl,
    connectUrl: (id) => `${config.appRedirectUri}/connect/${id}`,
    authTimeoutMs,
    callbackProblem: () => callbackProblem,
    openBrowser: config.openBrowser ? (url) => openInBrowser(url, logger) : undefined,
    logger,
  };

  const user = configuredUser(config);
  const toolDeps: ToolDeps = { ladder, dingtalk, resolveUser: () => user, logger };

  const app = express();
  app.disable('x-powered-by');
  app.use(browserRoutes({ pending, state, broker, logger }));
  const browserListener = createHttpServer(app);
  const port = Number(new URL(config.appRedirectUri).port || (config.appRedirectUri.startsWith('https:') ? 443 : 80));
  // Loopback only (DESIGN decision 5): the callback must never be reachable from the network in stdio mode.
  browserListener.once('error', (e: NodeJS.ErrnoException) => {
    callbackProblem =
      e.code === 'EADDRINUSE'
        ? `port ${port} on 127.0.0.1 is already in use (is another copy of this server running?). Stop it, or set APP_REDIRECT_URI to another port and allow <APP_REDIRECT_URI>/callback on the workload identity.`
        : `the authorization pages could not listen on 127.0.0.1:${port} (${e.code ?? e.message}).`;
    logger.error('authorization pages not listening; tools will work only while Agent Identity already holds a DingTalk token', { reason: callbackProblem });
  });
  browserListener.listen(port, '127.0.0.1', () => {
    callbackProblem = undefined;
    logger.info('authorization pages listening', { url: config.appRedirectUri, bound: `127.0.0.1:${(browserListener.address() as AddressInfo).port}` });
  });
  const host = new URL(config.appRedirectUri).hostname;
  if (!['localhost', '127.0.0.1', '[::1]'].includes(host)) {
    logger.warn('APP_REDIRECT_URI is not a loopback address, but stdio mode listens on 127.0.0.1 only; put a tunnel or proxy in front, or use http://localhost:<port>', { appRedirectUri: config.appRedirectUri });
  }

  return {
    config,
    logger,
    toolDeps,
    browserListener,
    async close() {
      pending.close();
      await dingtalk.close();
      await new Promise<void>((resolve) => (browserListener.listening ? browserListener.close(() => resolve()) : resolve()));
      browserListener.closeAllConnections?.();
    },
  };
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

function secretsOf(config: Config): string[] {
  return [config.userJwt, config.stateSecret, process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET, process.env.ALIBABA_CLOUD_SECURITY_TOKEN].filter(
    (s): s is string => typeof s === 'string' && s.length > 0,
  );
}

/** stdio rung 3 of the ladder: open the link locally; failures are only logged. */
function openInBrowser(url: string, logger: Logger): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  try {
    const child = spawn(cmd as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', (e) => logger.warn('could not open the browser', { error: e.message }));
    child.unref();
  } catch (e) {
    logger.warn('could not open the browser', { error: (e as Error).message });
  }
}
