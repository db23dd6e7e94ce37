/**
 * Local consent that survives how local clients behave (stdio): the built `dingtalk-mcp` copies share one detached
 * pages host per port and one file store per user (src/local/). A one-shot client's link works after the copy exited
 * and the next run writes; two copies on the default port both get working links; a call right after `initialize`
 * never meets pages still starting; links carry the literal 127.0.0.1; the state files are private and a planted
 * link is refused. The emulated Agent Identity and DingTalk run in this test process, so they outlive the copies.
 * Every test has its own state folder and ends the pages hosts it caused.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { alive, CLI, connectServer, pagesHostPids, startStack, stopPagesHosts, textOf, waitFor, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack.close();
});

const doc = () => stack.sandbox.sampleDocumentId;
const linkIn = (text: string) => /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(text)?.[1];
const granted = (body: string) => expect(body).toContain('DingTalk access granted');

describe('a one-shot client (qwen -p, Gemini headless, inspector --cli)', () => {
  it('the link works after the client ended the server, and the next run writes without a new consent', async () => {
    const first = await connectServer(stack, { urlElicitation: false, userId: 'oneshot-user' });
    const answer = await first.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'one-shot' } });
    const url = linkIn(textOf(answer));
    expect(url).toMatch(new RegExp(`^${stack.appRedirectUri}/connect/`));
    await first.close();
    await waitFor(() => first.stderr().includes('shutting down why=stdin closed'), 'the first run to end');

    // The run is over; the user opens the printed link only now.
    const visit = await followAuthorizationLink(url!);
    expect(visit.status).toBe(200);
    granted(visit.body);
    expect(stack.sandbox.agentIdentity.vault.get('uid:oneshot-user')).toBeDefined();

    const second = await connectServer(stack, { urlElicitation: false, userId: 'oneshot-user' });
    try {
      const result = await second.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'written by the next run' } });
      expect(textOf(result)).not.toContain('/connect/');
      expect(result.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('written by the next run');
    } finally {
      await second.close();
    }
  });
});

describe('a link opened twice (a refresh, a second device, the back button)', () => {
  it('each visit reaches a working consent page; the older tab is told a newer link was opened; the waiting call writes', async () => {
    const copy = await connectServer(stack, { userId: 'twice-user' });
    try {
      const callback = `${stack.appRedirectUri}/callback`;
      const pages: Array<{ status: number; body: string }> = [];
      let newestTab = '';
      copy.client.setRequestHandler('elicitation/create', async (request) => {
        const url = (request.params as { url: string }).url;
        // Both tabs get through DingTalk's consent page; each holds the answer Agent Identity sends back.
        const first = await followAuthorizationLink(url, { stopAt: callback });
        const second = await followAuthorizationLink(url, { stopAt: callback });
        newestTab = second.finalUrl;
        for (const tab of [first, second]) {
          const res = await fetch(tab.finalUrl, { redirect: 'manual' });
          pages.push({ status: res.status, body: await res.text() });
        }
        return { action: 'accept' };
      });
      const result = await copy.client.callTool(
        { name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'written after the link was opened twice' } },
        { timeout: 60_000 },
      );
      expect(pages[0]?.status).toBe(409);
      expect(pages[0]?.body).toContain('A newer link was opened');
      expect(pages[0]?.body).toContain('Finish in the newest tab, or open the link from your assistant again.');
      expect(pages[1]?.status).toBe(200);
      granted(pages[1]!.body);
      expect(result.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('written after the link was opened twice');
      // After the waiting call wrote, a refresh of the newest tab still says access was granted (not "unknown or expired").
      const refreshed = await fetch(newestTab, { redirect: 'manual' });
      expect(refreshed.status).toBe(200);
      expect(await refreshed.text()).toContain('DingTalk access already granted');
    } finally {
      await copy.close();
    }
  });
});

describe('after an approval', () => {
  it('the pages host stays up while the approval lingers: a refresh past the idle grace still says "already granted"; then it exits', async () => {
    // Its own port and folder (a host of its own), short lifetimes: the link lives 12 s, the host's idle grace is 1 s.
    const stateDir = mkdtempSync(join(tmpdir(), 'dtmcp-linger-'));
    try {
      const base = `http://127.0.0.1:${await freePort()}`;
      stack.sandbox.allowCallbackUrl(`${base}/callback`);
      const copy = await connectServer(stack, {
        userId: 'refresh-later-user',
        env: { APP_REDIRECT_URI: base, DINGTALK_MCP_STATE_DIR: stateDir, DINGTALK_MCP_AUTH_TIMEOUT_SECONDS: '12', DINGTALK_MCP_LOCAL_PAGES_IDLE_SECONDS: '1' },
      });
      let successPage = '';
      try {
        copy.client.setRequestHandler('elicitation/create', async (request) => {
          const visit = await followAuthorizationLink((request.params as { url: string }).url, { stopAt: `${base}/callback` });
          successPage = visit.finalUrl;
          const res = await fetch(successPage, { redirect: 'manual' });
          granted(await res.text());
          return { action: 'accept' };
        });
        const result = await copy.client.callTool(
          { name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'refreshed later' } },
          { timeout: 60_000 },
        );
        expect(result.isError).toBeFalsy();
      } finally {
        await copy.close();
      }
      const [pid] = pagesHostPids(stateDir);
      expect(pid).toBeDefined();
      // Past the grace after the last request (and a copy's hold, twice the grace): no link is live any more.
      await new Promise((r) => setTimeout(r, 3000));
      expect(alive(pid!)).toBe(true);
      const refreshed = await fetch(successPage, { redirect: 'manual' });
      expect(refreshed.status).toBe(200);
      expect(await refreshed.text()).toContain('DingTalk access already granted');
      // Once the store forgets the record (its lifetime plus the linger, 24 s here), the host exits as before.
      await waitFor(() => !alive(pid!), 'the pages host to exit', 40_000);
      expect(pagesHostPids(stateDir)).toEqual([]);
    } finally {
      await stopPagesHosts(stateDir);
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('several local copies (Claude Desktop, Cursor and Claude Code at once)', () => {
  it('two copies on the same port both get working links and both write; one pages host serves both', async () => {
    const [a, b] = await Promise.all([connectServer(stack, { userId: 'twin-a' }), connectServer(stack, { userId: 'twin-b' })]);
    try {
      const links: string[] = [];
      for (const copy of [a, b]) {
        copy.client.setRequestHandler('elicitation/create', async (request) => {
          const url = (request.params as { url: string }).url;
          links.push(url);
          const visit = await followAuthorizationLink(url);
          granted(visit.body);
          return { action: 'accept' };
        });
      }
      const first = await a.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'from copy A' } }, { timeout: 60_000 });
      expect(first.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('from copy A');
      const second = await b.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'from copy B' } }, { timeout: 60_000 });
      expect(second.isError).toBeFalsy();
      expect(stack.sandbox.dingtalk.getDocument(doc())?.content).toBe('from copy B');
      expect(links).toHaveLength(2);
      for (const l of links) expect(l.startsWith(`${stack.appRedirectUri}/connect/`)).toBe(true);
      expect(pagesHostPids(stack.stateDir)).toHaveLength(1);
      expect(a.stderr()).not.toContain('already in use');
      expect(b.stderr()).not.toContain('already in use');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a copy with other settings on the same port is told so, with the actual callback URL', async () => {
    const a = await connectServer(stack, { userId: 'settings-a' });
    const b = await connectServer(stack, { userId: 'settings-b', urlElicitation: false, env: { AGENT_IDENTITY_DINGTALK_SCOPES: 'openid' } });
    try {
      const port = new URL(stack.appRedirectUri).port;
      const result = await b.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'x' } });
      expect(result.isError).toBe(true);
      const text = textOf(result);
      expect(text).toMatch(new RegExp(`port ${port} is used by another copy of this server with other settings \\(pid \\d+\\)`));
      expect(text).toContain(`${stack.appRedirectUri}/callback`);
      expect(text).not.toContain('<APP_REDIRECT_URI>');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('start-up race', () => {
  it('a call needing consent right after initialize gets a working link, never "not listening"', async () => {
    for (let round = 0; round < 3; round++) {
      // A fresh folder each round: no pages host exists yet, the call must wait for the one being started.
      const stateDir = mkdtempSync(join(tmpdir(), 'dtmcp-race-'));
      try {
        const port = await freePort();
        const base = `http://127.0.0.1:${port}`;
        stack.sandbox.allowCallbackUrl(`${base}/callback`);
        const copy = await connectServer(stack, {
          urlElicitation: false,
          userId: `race-${round}`,
          waitForPages: false,
          env: { APP_REDIRECT_URI: base, DINGTALK_MCP_STATE_DIR: stateDir },
        });
        try {
          const result = await copy.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: `race ${round}` } });
          const text = textOf(result);
          expect(text).not.toMatch(/not listening/);
          expect(result.isError).toBeFalsy();
          const visit = await followAuthorizationLink(linkIn(text)!);
          granted(visit.body);
        } finally {
          await copy.close();
        }
      } finally {
        await stopPagesHosts(stateDir);
        rmSync(stateDir, { recursive: true, force: true });
      }
    }
  });
});

/** Can this machine listen on [::1]? (Containers without IPv6 cannot; then nobody can take it either.) */
async function ipv6Loopback(): Promise<boolean> {
  const probe = createNetServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen({ port: 0, host: '::1', ipv6Only: true }, () => probe.close(() => resolve(true)));
  });
}

describe('loopback', () => {
  let sandbox: Sandbox;
  let port: number;
  let stateDir: string;
  beforeAll(async () => {
    port = await freePort();
    // The workload identity allows the default form of the callback: APP_REDIRECT_URI=http://localhost:<port>.
    sandbox = await startSandbox({ callbackUrl: `http://localhost:${port}/callback` });
    stateDir = mkdtempSync(join(tmpdir(), 'dtmcp-loopback-'));
  });
  afterAll(async () => {
    await stopPagesHosts(stateDir);
    await sandbox.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  const localStack = (): Stack => ({ sandbox, appRedirectUri: `http://localhost:${port}`, stateDir, close: async () => {} });

  it('with APP_REDIRECT_URI on localhost the link says 127.0.0.1, the callback stays localhost, and [::1] is ours too', async () => {
    const copy = await connectServer(localStack(), { urlElicitation: false, userId: 'loopback-user' });
    try {
      const result = await copy.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: sandbox.sampleDocumentId, content: 'loopback' } });
      const url = linkIn(textOf(result))!;
      expect(url.startsWith(`http://127.0.0.1:${port}/connect/`)).toBe(true);
      const visit = await followAuthorizationLink(url);
      granted(visit.body);
      // Agent Identity sent the browser back to the allowed callback, as registered.
      expect(visit.trail.some((t) => t.url.startsWith(`http://localhost:${port}/callback?`))).toBe(true);
      if (await ipv6Loopback()) {
        const res = await fetch(`http://[::1]:${port}/_dingtalk-mcp/pages-host?nonce=x`);
        expect(((await res.json()) as { service: string }).service).toBe('dingtalk-mcp-local-pages');
      }
    } finally {
      await copy.close();
    }
  });

  it('another program on [::1] of the port: the call says so instead of printing a link a browser could take there', async () => {
    if (!(await ipv6Loopback())) return;
    const otherPort = await freePort();
    sandbox.allowCallbackUrl(`http://localhost:${otherPort}/callback`);
    const squatter: NetServer = createNetServer((socket) => socket.resume());
    await new Promise<void>((resolve) => squatter.listen({ port: otherPort, host: '::1', ipv6Only: true }, resolve));
    try {
      const copy = await connectServer({ ...localStack(), appRedirectUri: `http://localhost:${otherPort}` }, { urlElicitation: false, userId: 'ipv6-user' });
      try {
        const result = await copy.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: sandbox.sampleDocumentId, content: 'x' } });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toContain(`port ${otherPort} on [::1] is held by another program`);
        expect(textOf(result)).toContain(`http://127.0.0.1:${otherPort}/callback`);
      } finally {
        await copy.close();
      }
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });
});

describe('the local state folder', () => {
  it('every folder is 0700 and every file 0600, the persisted state secret included', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'dtmcp-modes-'));
    try {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      stack.sandbox.allowCallbackUrl(`${base}/callback`);
      // No DINGTALK_MCP_STATE_SECRET: the per-user secret is made and kept in the folder.
      const copy = await connectServer(stack, {
        urlElicitation: false,
        userId: 'modes-user',
        env: { APP_REDIRECT_URI: base, DINGTALK_MCP_STATE_DIR: stateDir, DINGTALK_MCP_STATE_SECRET: '' },
      });
      try {
        const result = await copy.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(), content: 'x' } });
        expect(linkIn(textOf(result))).toBeDefined();
      } finally {
        await copy.close();
      }
      const seen: string[] = [];
      const walk = (dir: string) => {
        expect(lstatSync(dir).mode & 0o777).toBe(0o700);
        for (const name of readdirSync(dir)) {
          const path = join(dir, name);
          const stat = lstatSync(path);
          seen.push(name);
          if (stat.isDirectory()) walk(path);
          else expect([name, stat.mode & 0o777]).toEqual([name, 0o600]);
        }
      };
      walk(stateDir);
      expect(seen).toEqual(expect.arrayContaining(['state-secret', 'pending', 'pages-host.log', `pages-host-${port}.json`]));
      expect(seen.some((n) => n.endsWith('.rec'))).toBe(true);
    } finally {
      await stopPagesHosts(stateDir);
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('a symbolic link planted as the state secret is refused at start, and its target is never used', () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'dtmcp-planted-'));
    try {
      mkdirSync(join(stateDir, 'elsewhere'));
      const known = join(stateDir, 'elsewhere', 'known-secret');
      writeFileSync(known, `${'a'.repeat(64)}\n`, { mode: 0o600 });
      symlinkSync(known, join(stateDir, 'state-secret'));
      const run = spawnSync(process.execPath, [CLI], {
        encoding: 'utf8',
        input: '',
        timeout: 30_000,
        env: stack.sandbox.serverEnv(stack.appRedirectUri, { AGENT_IDENTITY_USER_ID: 'planted', DINGTALK_MCP_STATE_DIR: stateDir }),
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`Refusing the local state file ${join(stateDir, 'state-secret')}: it is a symbolic link`);
      expect(pagesHostPids(stateDir).filter(alive)).toEqual([]);
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
