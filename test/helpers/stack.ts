import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';

export const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does it for you)`);

/** Everything any spawned server wrote to stderr during this test file, for the no-secrets check. */
export const allServerStderr: string[] = [];

export const STATE_SECRET = 'test-state-secret-0123456789abcdef0123456789';

export interface Stack {
  sandbox: Sandbox;
  appRedirectUri: string;
  close(): Promise<void>;
}

/** Emulated upstreams plus a free callback port, as a deployment would configure them. */
export async function startStack(): Promise<Stack> {
  const appRedirectUri = `http://127.0.0.1:${await freePort()}`;
  const sandbox = await startSandbox({ callbackUrl: `${appRedirectUri}/callback` });
  return { sandbox, appRedirectUri, close: () => sandbox.close() };
}

export interface ServerHandle {
  client: Client;
  stderr: () => string;
  close(): Promise<void>;
}

export interface ConnectOptions {
  era?: 'legacy' | 'modern';
  /** Declare `elicitation.url` (default true). */
  urlElicitation?: boolean;
  userId?: string;
  env?: Record<string, string>;
}

/** Spawn the built server over stdio, configured against the stack, and connect a real MCP client. */
export async function connectServer(stack: Stack, options: ConnectOptions = {}): Promise<ServerHandle> {
  const { sandbox } = stack;
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI],
    stderr: 'pipe',
    env: sandbox.serverEnv(stack.appRedirectUri, {
      DINGTALK_RETRY_BASE_DELAY_MS: '5',
      AGENT_IDENTITY_USER_ID: options.userId ?? 'alice',
      DINGTALK_MCP_STATE_SECRET: STATE_SECRET,
      DINGTALK_MCP_LOG_LEVEL: 'debug',
      ...options.env,
    }),
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    allServerStderr.push(chunk.toString());
  });
  const client = new Client(
    { name: 'e2e-test', version: '1.0.0' },
    {
      capabilities: options.urlElicitation === false ? {} : { elicitation: { url: {} } },
      versionNegotiation: { mode: options.era === 'modern' ? 'auto' : 'legacy' },
    },
  );
  await client.connect(transport);
  await waitFor(() => stderr.includes('authorization pages listening') || stderr.includes('not listening'), 'the callback listener');
  return {
    client,
    stderr: () => stderr,
    close: async () => {
      await client.close().catch(() => {});
    },
  };
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function textOf(result: { content?: unknown }): string {
  return ((result.content ?? []) as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
}
