/** The HTTP transport in this test's process against a sandbox, its log lines kept (debug) for the test to read. */
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { SANDBOX, type Sandbox } from '../../src/sandbox/index.js';
import { serveHttpTransport } from '../../src/transports/http.js';

export interface Served {
  /** APP_REDIRECT_URI: where the server says it is. */
  base: string;
  runtime: Runtime;
  logs: string[];
  close(): Promise<void>;
}

/**
 * Serve with `--transport http` plus `argv`, and the sandbox's environment for `redirectUri` (the sandbox's sign-in
 * client as the audience) under `env`. A transport that does not start leaves no runtime behind.
 */
export async function serveInProcess(sandbox: Sandbox, redirectUri: string, argv: string[], env: Record<string, string>): Promise<Served> {
  const config = loadConfig({
    argv: ['--transport', 'http', ...argv],
    env: { ...sandbox.serverEnv(redirectUri), OIDC_AUDIENCE: SANDBOX.oidcClientId, ...env },
    cwd: '/nonexistent',
  });
  const logs: string[] = [];
  const runtime = createRuntime(config, { credential: sandbox.credential, logger: createLogger({ level: 'debug', write: (l) => logs.push(l) }) });
  try {
    const transport = await serveHttpTransport(runtime);
    return {
      base: config.appRedirectUri,
      runtime,
      logs,
      close: async () => {
        await transport.close();
        await runtime.close();
      },
    };
  } catch (e) {
    await runtime.close();
    throw e;
  }
}
