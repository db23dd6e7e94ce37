import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHttpApp } from '../http/app.js';
import { OidcProvider } from '../http/oidc.js';
import type { Runtime } from '../runtime.js';
import { httpListenProblem, isLoopback } from './http-listen-checks.js';

/** Streamable HTTP for many users: listen, warn loudly when unsafe, shut down gracefully. */
export async function serveHttpTransport(runtime: Runtime): Promise<{ url: string; close(): Promise<void> }> {
  const { config, logger } = runtime;
  const problem = httpListenProblem(config);
  if (problem) throw new Error(problem);
  const oidc = config.oidcIssuer ? new OidcProvider(config.oidcIssuer, logger) : undefined;
  if (oidc) {
    // Not fatal: the identity provider may come up later; requests will say what is wrong.
    await oidc.discover().catch((e: unknown) => logger.error('identity provider not reachable yet', { error: (e as Error).message }));
  }
  const http = createHttpApp(runtime, oidc);
  const server = createHttpServer(http.handler);
  // Limits on how long a request may take to *arrive* (slow-loris); answers may take minutes
  // (a call waiting for consent) and are not affected.
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          e.code === 'EADDRINUSE'
            ? `port ${config.port} on ${config.host} is already in use; pick another with --port`
            : `cannot listen on ${config.host}:${config.port}: ${e.message}`,
        ),
      ),
    );
    server.listen(config.port, config.host, () => resolve());
  });
  runtime.callbackProblem = undefined;
  runtime.warmUp();
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info('serving MCP over streamable HTTP', {
    listening: url,
    mcp: `${config.appRedirectUri}/mcp`,
    auth: config.trustedProxyHeader ? `trusted proxy header ${config.trustedProxyHeader}` : `bearer JWT from ${config.oidcIssuer}`,
  });
  if (!isLoopback(config.host) && !config.appRedirectUri.startsWith('https:')) {
    logger.warn(
      `!!! listening on ${config.host} without TLS (DINGTALK_MCP_ALLOW_INSECURE_HTTP): bearer tokens and authorization links cross the network in clear text. ` +
        'Put a TLS-terminating proxy in front and set APP_REDIRECT_URI to its https:// URL.',
    );
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    close() {
      closing ??= (async () => {
        // Stop taking connections, let writes already sent to DingTalk finish, then end sessions.
        const deadline = Date.now() + 30_000;
        // Requests still arriving on kept-alive connections get 503 + Connection: close, and
        // calls already running start no new authorization (it could not finish before exit).
        http.beginShutdown();
        runtime.callbackProblem = 'the server is shutting down; call the tool again in a moment';
        server.close();
        server.closeIdleConnections();
        // Calls waiting for a user's consent would wait minutes: end them now, with a clear message.
        runtime.pending.settleAll('failed', 'the server is restarting; call the tool again in a moment');
        if (!(await runtime.writes.drained(deadline - Date.now()))) logger.warn('shutdown: gave up waiting for in-flight DingTalk writes after 30 s');
        // Then let the answers reach their clients. A request pipelined behind the last answer is
        // dispatched just after it (and answered 503): drain until the connections stay quiet.
        for (;;) {
          if (!(await http.requests.drained(Math.max(1000, deadline - Date.now())))) {
            logger.warn('shutdown: some requests were still open');
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
          if (http.requests.size === 0 || Date.now() > deadline) break;
        }
        await http.close();
        server.closeAllConnections();
      })();
      return closing;
    },
  };
}
