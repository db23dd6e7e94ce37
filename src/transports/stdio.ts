import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { configuredUser, type Runtime } from '../runtime.js';
import { createServer } from '../server.js';

/**
 * stdio: one local user (AGENT_IDENTITY_USER_ID or AGENT_IDENTITY_USER_JWT), and a loopback-only
 * listener for the browser pages (/connect, /callback) on the port of APP_REDIRECT_URI.
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

  // The browser pages start right after: `initialize` need not wait for the web stack to load.
  const listening = startBrowserPages(runtime).catch((e: unknown) => {
    runtime.callbackProblem = `the authorization pages could not start (${(e as Error).message}).`;
    logger.error('authorization pages not listening', { reason: runtime.callbackProblem });
    return undefined;
  });

  return {
    async close() {
      await connection.close().catch(() => {});
      const listener = await listening;
      if (listener?.listening) await new Promise<void>((resolve) => listener.close(() => resolve()));
      listener?.closeAllConnections();
    },
  };
}

/** Where the acting user came from, for the start line: the OS user name is not AGENT_IDENTITY_USER_ID. */
export function userSource(config: Runtime['config']): string {
  if (config.userJwt) return 'from AGENT_IDENTITY_USER_JWT';
  return config.userIdFromOs ? 'the OS user name (AGENT_IDENTITY_USER_ID is not set)' : 'from AGENT_IDENTITY_USER_ID';
}

async function startBrowserPages(runtime: Runtime): Promise<HttpServer> {
  const { config, logger } = runtime;
  const [{ default: express }, { hostHeaderValidation, originValidation }, { browserRoutes }] = await Promise.all([
    import('express'),
    import('@modelcontextprotocol/express'),
    import('../http/browser-routes.js'),
  ]);
  const app = express();
  app.disable('x-powered-by');
  // DNS rebinding: a web page must not reach these loopback pages under another name.
  const loopbackNames = ['localhost', '127.0.0.1', '[::1]'];
  app.use(hostHeaderValidation(loopbackNames), originValidation(loopbackNames));
  app.use(browserRoutes({ pending: runtime.pending, state: runtime.state, broker: runtime.broker, logger }));

  const listener = createHttpServer(app);
  const redirect = new URL(config.appRedirectUri);
  const port = Number(redirect.port || (redirect.protocol === 'https:' ? 443 : 80));
  // Loopback only (docs/architecture.md decision 5): the callback must never be reachable from the network in stdio mode.
  listener.once('error', (e: NodeJS.ErrnoException) => {
    runtime.callbackProblem =
      e.code === 'EADDRINUSE'
        ? `port ${port} on 127.0.0.1 is already in use (is another copy of this server running?). Stop it, or set APP_REDIRECT_URI to another port and allow that URL's /callback on the workload identity (now ${config.appRedirectUri}/callback).`
        : `the authorization pages could not listen on 127.0.0.1:${port} (${e.code ?? e.message}).`;
    logger.error('authorization pages not listening; tools will work only while Agent Identity already holds a DingTalk token', {
      reason: runtime.callbackProblem,
    });
  });
  listener.listen(port, '127.0.0.1', () => {
    runtime.callbackProblem = undefined;
    logger.info('authorization pages listening', { url: config.appRedirectUri, bound: `127.0.0.1:${port}` });
  });
  // After initialize has been answered and the pages are up: the first write must not pay for it.
  runtime.warmUp();
  if (!['localhost', '127.0.0.1', '[::1]'].includes(redirect.hostname)) {
    logger.warn(
      'APP_REDIRECT_URI is not a loopback address, but stdio mode listens on 127.0.0.1 only; put a tunnel or proxy in front, or use http://localhost:<port>',
      { appRedirectUri: config.appRedirectUri },
    );
  }
  return listener;
}
