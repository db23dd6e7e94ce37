/**
 * `dingtalk-mcp --sandbox` over stdio shares one detached "sandbox services" process per user (docs/sandbox.md
 * "Shared sandbox services"): what one run wrote and the consent it got outlive the run, a consent link still opens
 * after the client ended the server, the services exit after their idle grace and remove their state file, and the
 * state file is never trusted blindly. Each test has its own XDG_STATE_HOME and stops its services at the end.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterEach, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { freePort } from '../../src/sandbox/index.js';
import { allServerStderr, CLI, STATE_SECRET, textOf, waitFor } from '../helpers/stack.js';

const DOC = 'SandboxDoc0001TeamNotes';
const link = `https://alidocs.dingtalk.com/i/nodes/${DOC}?utm_scene=team_space`;

interface Run {
  client: Client;
  stderr: () => string;
  elicitations: string[];
  close(): Promise<void>;
}

let stateHomes: string[] = [];
function newStateHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-services-'));
  stateHomes.push(dir);
  return dir;
}
const stateDir = (home: string) => join(home, 'agent-identity-dingtalk-mcp', 'sandbox');
const stateFile = (home: string) => join(stateDir(home), 'services.json');
const readState = (home: string) => JSON.parse(readFileSync(stateFile(home), 'utf8')) as { pid: number; agentIdentityUrl: string; dingtalkUrl: string };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function env(home: string, redirect: string, idleSeconds: number, userId = 'alice'): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    XDG_STATE_HOME: home,
    AGENT_IDENTITY_USER_ID: userId,
    APP_REDIRECT_URI: redirect,
    DINGTALK_MCP_STATE_SECRET: STATE_SECRET,
    DINGTALK_MCP_SANDBOX_IDLE_SECONDS: String(idleSeconds),
    DINGTALK_MCP_LOG_LEVEL: 'debug',
    DINGTALK_RETRY_BASE_DELAY_MS: '5',
  };
}

/** One run of `dingtalk-mcp --sandbox` driven by a 2025-11-25 client that declares URL elicitation. */
async function startRun(home: string, redirect: string, idleSeconds: number, onLink?: (url: string) => void, userId?: string): Promise<Run> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, '--sandbox'],
    stderr: 'pipe',
    env: env(home, redirect, idleSeconds, userId),
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    allServerStderr.push(chunk.toString());
  });
  const client = new Client({ name: 'one-shot', version: '1.0.0' }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: 'legacy' } });
  const elicitations: string[] = [];
  client.setRequestHandler('elicitation/create', async (request) => {
    const url = (request.params as { url: string }).url;
    elicitations.push(url);
    onLink?.(url);
    return { action: 'accept' };
  });
  await client.connect(transport);
  await waitFor(() => stderr.includes('authorization pages listening'), 'the authorization pages');
  return { client, stderr: () => stderr, elicitations, close: () => client.close().catch(() => {}) };
}

const viewer = (stderr: string) => /viewer=(\S+)/.exec(stderr)?.[1] ?? '';

afterEach(() => {
  for (const home of stateHomes) {
    // `dingtalk-mcp sandbox stop` is the user's way; a pid kill backs it up if a test failed half-way.
    spawnSync(process.execPath, [CLI, 'sandbox', 'stop'], { env: { ...process.env, XDG_STATE_HOME: home } });
    try {
      const { pid } = readState(home);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // No state file: nothing runs.
    }
    rmSync(home, { recursive: true, force: true });
  }
  stateHomes = [];
});

describe('a one-shot run, then the next run', () => {
  it('the second run writes without a new consent and sees what the first wrote; the viewer link outlives the first run', async () => {
    const home = newStateHome();
    const redirect = `http://127.0.0.1:${await freePort()}`;
    const first = await startRun(home, redirect, 60, (url) => void followAuthorizationLink(url));
    const written = `# Run one\n\nwritten by the first run ${Date.now()}`;
    const result = await first.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: link, content: written } }, { timeout: 30_000 });
    expect(result.isError).toBeFalsy();
    expect(first.elicitations).toHaveLength(1);
    const { pid } = readState(home);
    expect(first.stderr()).toContain(`started the shared sandbox services pid=${pid}`);
    const viewerUrl = viewer(first.stderr());
    await first.close();

    // The client ended the server; the services and what they hold did not end with it.
    expect(alive(pid)).toBe(true);
    const page = await (await fetch(viewerUrl)).text();
    expect(page).toContain('written by the first run');

    const second = await startRun(home, redirect, 60);
    try {
      expect(second.stderr()).toContain(`using the running shared sandbox services pid=${pid}`);
      expect(viewer(second.stderr())).toBe(viewerUrl);
      const read = await second.client.callTool({ name: 'read_dingtalk_doc', arguments: { document: link } });
      expect(textOf(read)).toContain('written by the first run');
      const again = await second.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: link, content: '# Run two\n\nno second consent' } });
      expect(again.isError).toBeFalsy();
      expect(second.elicitations).toEqual([]);
      expect(await (await fetch(viewerUrl)).text()).toContain('no second consent');
    } finally {
      await second.close();
    }
  });

  it('a consent link keeps the services alive past their idle grace, and its consent pages still answer after the run ended', async () => {
    const home = newStateHome();
    const redirect = `http://127.0.0.1:${await freePort()}`;
    let connectUrl = '';
    const first = await startRun(home, redirect, 1, (url) => {
      connectUrl = url;
    });
    const call = first.client
      .callTool({ name: 'write_dingtalk_doc', arguments: { document: link, content: 'never written' } }, { timeout: 30_000 })
      .catch((e: Error) => e);
    await waitFor(() => connectUrl !== '', 'the consent link');
    const { pid, agentIdentityUrl } = readState(home);
    // The user opens the link (our /connect page hands them to Agent Identity), then the client ends the run.
    const opened = await followAuthorizationLink(connectUrl, { stopAt: agentIdentityUrl });
    const authorizeUrl = opened.finalUrl;
    expect(authorizeUrl.startsWith(`${agentIdentityUrl}/oauth2/authorize?`)).toBe(true);
    await first.close();
    await call;

    // Well past the 1 s idle grace: the pending consent link (10 minutes) keeps the services.
    await new Promise((r) => setTimeout(r, 2500));
    expect(alive(pid)).toBe(true);
    const approved = await followAuthorizationLink(authorizeUrl, { stopAt: `${redirect}/callback` });
    expect(approved.trail.every((hop) => hop.status < 400)).toBe(true);
    expect(approved.trail.some((hop) => hop.url.includes('/oauth2/callback/'))).toBe(true);
    expect(approved.finalUrl).toMatch(new RegExp(`^${redirect}/callback\\?session_uri=`));
  });
});

describe('lifetime and the state file', () => {
  it('with no consent link pending, the services exit after the idle grace and remove their state file', async () => {
    const home = newStateHome();
    const run = await startRun(home, `http://127.0.0.1:${await freePort()}`, 1);
    const { pid } = readState(home);
    expect(lstatSync(stateFile(home)).mode & 0o777).toBe(0o600);
    expect(lstatSync(stateDir(home)).mode & 0o777).toBe(0o700);
    await run.close();
    await waitFor(() => !existsSync(stateFile(home)) && !alive(pid), 'the services to exit', 15_000);
    expect(readFileSync(join(stateDir(home), 'services.log'), 'utf8')).toContain('sandbox services exiting why=idle and no consent link pending');
  });

  it('two copies started at once share one services process', async () => {
    const home = newStateHome();
    const follow = (url: string) => void followAuthorizationLink(url);
    const [a, b] = await Promise.all([
      startRun(home, `http://127.0.0.1:${await freePort()}`, 60, follow, 'user-a'),
      startRun(home, `http://127.0.0.1:${await freePort()}`, 60, follow, 'user-b'),
    ]);
    try {
      const { pid } = readState(home);
      expect(alive(pid)).toBe(true);
      for (const run of [a, b]) expect(run.stderr()).toMatch(new RegExp(`sandbox services pid=${pid} `));
      expect(viewer(a.stderr())).toBe(viewer(b.stderr()));
      // Each copy's own callback URL is allowed on the shared emulated workload identity: both consents complete.
      for (const run of [a, b]) {
        const result = await run.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: link, content: 'x' } }, { timeout: 30_000 });
        expect(result.isError, textOf(result)).toBeFalsy();
        expect(run.elicitations).toHaveLength(1);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a stale state file (dead pid, or a live pid that is not the services) is replaced', async () => {
    const home = newStateHome();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const stale = (pid: number) => ({
      version: 1,
      pid,
      instance: 'stale',
      startedAt: new Date().toISOString(),
      controlUrl: `http://127.0.0.1:${1}`,
      controlToken: 'x',
      agentIdentityUrl: 'http://127.0.0.1:1',
      dingtalkUrl: 'http://127.0.0.1:1',
      accessKeySecret: 'x',
      idleSeconds: 60,
    });
    for (const pid of [dead, process.pid]) {
      spawnSync(process.execPath, [CLI, 'sandbox', 'stop'], { env: { ...process.env, XDG_STATE_HOME: home } });
      expect(spawnSync('mkdir', ['-p', stateDir(home)]).status).toBe(0);
      writeFileSync(stateFile(home), JSON.stringify(stale(pid)), { mode: 0o600 });
      const run = await startRun(home, `http://127.0.0.1:${await freePort()}`, 60);
      try {
        const state = readState(home);
        expect(state.pid).not.toBe(pid);
        expect(alive(state.pid)).toBe(true);
        expect(run.stderr()).toContain(`started the shared sandbox services pid=${state.pid}`);
      } finally {
        await run.close();
      }
    }
  });

  it('a state file that is a symbolic link is refused, and its target is left alone', () => {
    const home = newStateHome();
    spawnSync('mkdir', ['-p', stateDir(home)]);
    const target = join(home, 'elsewhere.json');
    writeFileSync(target, 'not yours');
    symlinkSync(target, stateFile(home));
    const run = spawnSync(process.execPath, [CLI, '--sandbox'], { env: env(home, 'http://127.0.0.1:18999', 60), input: '', encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`refusing the sandbox state file ${stateFile(home)}: it is not a regular file (a symbolic link?). Remove it and try again.`);
    expect(readFileSync(target, 'utf8')).toBe('not yours');
    expect(lstatSync(stateFile(home)).isSymbolicLink()).toBe(true);
  });

  it('`dingtalk-mcp sandbox stop` ends the running services', async () => {
    const home = newStateHome();
    const run = await startRun(home, `http://127.0.0.1:${await freePort()}`, 60);
    const { pid } = readState(home);
    await run.close();
    const stop = spawnSync(process.execPath, [CLI, 'sandbox', 'stop'], { env: { ...process.env, XDG_STATE_HOME: home }, encoding: 'utf8' });
    expect(stop.stdout).toBe('dingtalk-mcp: the sandbox services are stopping.\n');
    await waitFor(() => !existsSync(stateFile(home)) && !alive(pid), 'the services to stop', 15_000);
    const again = spawnSync(process.execPath, [CLI, 'sandbox', 'stop'], { env: { ...process.env, XDG_STATE_HOME: home }, encoding: 'utf8' });
    expect(again.stdout).toBe('dingtalk-mcp: no sandbox services are running.\n');
  });
});
