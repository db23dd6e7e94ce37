/** Spawn the built server with `--transport http` against a sandbox, and connect MCP clients with bearer JWTs. */
import { spawn, type ChildProcess } from 'node:child_process';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { expect } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { allServerStderr, CLI, STATE_SECRET, waitFor } from './stack.js';

export interface HttpServerProcess {
  child: ChildProcess;
  stderr: () => string;
  /** Send `signal` (default SIGTERM) and wait for the exit; its code. HTTP mode never writes to stdout, checked here. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startHttpServer(sandbox: Sandbox, url: string, env: Record<string, string> = {}): Promise<HttpServerProcess> {
  const child = spawn(process.execPath, [CLI, '--transport', 'http', '--port', new URL(url).port], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: sandbox.serverEnv(url, {
      DINGTALK_RETRY_BASE_DELAY_MS: '5',
      DINGTALK_MCP_STATE_SECRET: STATE_SECRET,
      DINGTALK_MCP_RATE_LIMIT: '10000',
      DINGTALK_MCP_LOG_LEVEL: 'debug',
      ...env,
    }),
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    allServerStderr.push(c.toString());
  });
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  await waitFor(() => stderr.includes('serving MCP over streamable HTTP') || child.exitCode !== null, 'the HTTP server to listen');
  if (child.exitCode !== null) throw new Error(`server exited: ${stderr}`);
  return {
    child,
    stderr: () => stderr,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => {
          expect(stdout).toBe(''); // HTTP mode never writes to stdout either
          resolve(code);
        });
        child.kill(signal);
      }),
  };
}

/** A 2025-11-25 client signed in as `sub`, whose browser consents as DingTalk account `unionId`. */
export async function connectHttpAs(sandbox: Sandbox, base: string, sub: string, unionId: string, bearers: string[] = []): Promise<Client> {
  const bearer = await sandbox.oidc!.mintAccessToken({ sub });
  bearers.push(bearer);
  const client = new Client({ name: `http-${sub}`, version: '1.0.0' }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: 'legacy' } });
  client.setRequestHandler('elicitation/create', async (request) => {
    await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: sub, unionId });
    return { action: 'accept' };
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
  return client;
}
