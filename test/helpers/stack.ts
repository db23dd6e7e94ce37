import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  /** The copies' local state folder (DINGTALK_MCP_STATE_DIR), of this stack alone. */
  stateDir: string;
  close(): Promise<void>;
}

/** Emulated upstreams plus a free callback port, as a deployment would configure them. */
export async function startStack(): Promise<Stack> {
  const appRedirectUri = `http://127.0.0.1:${await freePort()}`;
  const sandbox = await startSandbox({ callbackUrl: `${appRedirectUri}/callback` });
  const stateDir = mkdtempSync(join(tmpdir(), 'dtmcp-stack-state-'));
  return {
    sandbox,
    appRedirectUri,
    stateDir,
    close: async () => {
      await stopPagesHosts(stateDir);
      await sandbox.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** The pids of the local pages hosts serving from `stateDir` (their `pages-host-<port>.json`). */
export function pagesHostPids(stateDir: string): number[] {
  if (!existsSync(stateDir)) return [];
  return readdirSync(stateDir)
    .filter((n) => /^pages-host-\d+\.json$/.test(n))
    .flatMap((n) => {
      try {
        return [(JSON.parse(readFileSync(join(stateDir, n), 'utf8')) as { pid: number }).pid];
      } catch {
        return [];
      }
    });
}

/** Is `pid` a live pages host (not another process that got the pid of one that died)? */
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('__local-pages');
  } catch {
    return process.platform !== 'linux';
  }
};

/** End the detached pages hosts the stack's copies started (they would otherwise outlive the test for their links' lifetime). */
export async function stopPagesHosts(stateDir: string): Promise<void> {
  const pids = pagesHostPids(stateDir).filter(alive);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone already
    }
  }
  const deadline = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
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
  /** Wait for the start log to say the authorization pages are served (default true). */
  waitForPages?: boolean;
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
      DINGTALK_MCP_STATE_DIR: stack.stateDir,
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
  if (options.waitForPages !== false)
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
