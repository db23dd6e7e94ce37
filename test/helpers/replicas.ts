import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, type Sandbox } from '../../src/sandbox/index.js';
import { allServerStderr, CLI, STATE_SECRET, waitFor } from './stack.js';

/** One `dingtalk-mcp --transport http` process of a multi-replica deployment. */
export interface Replica {
  index: number;
  /** Its own address (tests that bypass the load balancer). */
  url: string;
  stderr(): string;
  /** Stop it: SIGTERM drains, SIGKILL is a crash. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Start it again on the same port. */
  start(): Promise<void>;
}

export async function startReplica(index: number, sandbox: Sandbox, publicUrl: string, env: Record<string, string>): Promise<Replica> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let stderr = '';
  const start = async () => {
    const from = stderr.length;
    const proc = spawn(process.execPath, [CLI, '--transport', 'http', '--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: sandbox.serverEnv(publicUrl, {
        DINGTALK_RETRY_BASE_DELAY_MS: '5',
        // The load balancer on 127.0.0.1 forwards its port to this replica's.
        DINGTALK_MCP_PUBLIC_URL_PROXIED: '1',
        DINGTALK_MCP_STATE_SECRET: STATE_SECRET,
        DINGTALK_MCP_LOG_LEVEL: 'debug',
        ...env,
      }),
    });
    child = proc;
    proc.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
      allServerStderr.push(c.toString());
    });
    await waitFor(() => stderr.slice(from).includes('serving MCP over streamable HTTP') || proc.exitCode !== null, `replica ${index} to listen`, 30_000);
    if (proc.exitCode !== null) throw new Error(`replica ${index} exited: ${stderr}`);
  };
  await start();
  return {
    index,
    url: `http://127.0.0.1:${port}`,
    stderr: () => stderr,
    start,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        const c = child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill(signal);
      }),
  };
}
