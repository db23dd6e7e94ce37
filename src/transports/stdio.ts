import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { configuredUser, type Runtime } from '../runtime.js';
import { createServer } from '../server.js';

/**
 * stdio: one local user (AGENT_IDENTITY_USER_ID or AGENT_IDENTITY_USER_JWT, else the OS user name); the browser pages
 * (/connect, /callback) are the shared local pages host's, on loopback at APP_REDIRECT_URI's port.
 */
export function serveStdioTransport(runtime: Runtime): { close(): Promise<void> } {
  const { config, logger } = runtime;
  const user = configuredUser(config);
  if (!config.userJwt && config.userIdFromOs && !config.sandbox) {
    // Agent Identity keys DingTalk authorizations by this id: two people who share a workload
    // identity and an OS user name would share one DingTalk authorization.
    logger.warn(
      `AGENT_IDENTITY_USER_ID is not set: acting as the OS user "${config.userId}". Set AGENT_IDENTITY_USER_ID to an id unique to you (or AGENT_IDENTITY_USER_JWT) if others use the same workload identity.`,
    );
  }

  const deps = runtime.toolDeps(() => user);
  const connection = serveStdio(() => createServer(deps), {
    onerror: (error) => logger.warn('stdio transport error', { error: error.message }),
  });
  logger.info('serving MCP over stdio', { user: userSource(config) });

  // The browser pages are served by this user's shared local pages host (src/local/), which outlives this copy
  // and serves every local copy's links. Looked for (or started) right after start, so `initialize` need not
  // wait; every link waits for it (LadderDeps.callbackProblem), so a call right after start never races it.
  const pages = runtime.pages;
  if (!pages) throw new Error('stdio needs the local pages host (src/local/)');
  runtime.callbackProblem = undefined;
  warnIfNotLoopback(runtime);
  setImmediate(() => {
    // After initialize has been answered: the first write must not pay for loading undici.
    runtime.warmUp();
    void pages.ensure().then((problem) => {
      if (problem) logger.error('authorization pages not listening; tools work only while Agent Identity already holds a DingTalk token', { reason: problem });
      else logger.info('authorization pages listening', { callback: config.callbackUrl, host: `local pages host pid ${pages.pid ?? '?'}` });
    });
  });

  return {
    async close() {
      await connection.close().catch(() => {});
    },
  };
}

/** Where the acting user came from, for the start line: the OS user name is not AGENT_IDENTITY_USER_ID. */
export function userSource(config: Runtime['config']): string {
  if (config.userJwt) return 'from AGENT_IDENTITY_USER_JWT';
  return config.userIdFromOs ? 'the OS user name (AGENT_IDENTITY_USER_ID is not set)' : 'from AGENT_IDENTITY_USER_ID';
}

function warnIfNotLoopback(runtime: Runtime): void {
  const redirect = new URL(runtime.config.appRedirectUri);
  if (!['localhost', '127.0.0.1', '[::1]'].includes(redirect.hostname)) {
    runtime.logger.warn(
      'APP_REDIRECT_URI is not a loopback address, but stdio mode listens on 127.0.0.1 only; put a tunnel or proxy in front, or use http://localhost:<port>',
      { appRedirectUri: runtime.config.appRedirectUri },
    );
  }
}
