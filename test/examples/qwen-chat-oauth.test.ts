/**
 * Item 4 of the Qwen chat: an MCP server in HTTP mode answers 401 with protected-resource metadata; the chat runs the
 * OAuth login (discovery, dynamic registration, PKCE, loopback redirect, state check) with the authorization server it
 * names, keeps the tokens in a 0600 file, and reuses them next time. Stand-ins: a tiny authorization server and a
 * protected MCP server, both in this file, on 127.0.0.1. The test plays the user and the browser.
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod/v4';
import { McpHub } from '../../examples/qwen-chat/mcp-hub.js';
import { TokenFile, TokenFileError } from '../../examples/qwen-chat/oauth.js';
import { scriptedTerminal } from '../../examples/qwen-chat/terminal.js';

interface StandIn {
  mcpUrl: string;
  issuer: string;
  /** Requests that reached the authorization endpoint, with their parameters. */
  authorizeRequests: URLSearchParams[];
  tokensIssued: string[];
  registrations: number;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (c: Buffer) => (s += c.toString()));
    req.on('end', () => resolve(s));
  });
}

async function startStandIns(): Promise<StandIn> {
  const codes = new Map<string, { challenge: string; redirectUri: string; clientId: string }>();
  const state: StandIn = { mcpUrl: '', issuer: '', authorizeRequests: [], tokensIssued: [], registrations: 0, close: async () => {} };
  const json = (res: import('node:http').ServerResponse, status: number, value: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };

  // The identity provider (an OAuth 2.1 authorization server with dynamic registration).
  const as = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', state.issuer);
    if (url.pathname === '/.well-known/oauth-authorization-server' || url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer: state.issuer,
        authorization_endpoint: `${state.issuer}/authorize`,
        token_endpoint: `${state.issuer}/token`,
        registration_endpoint: `${state.issuer}/register`,
        response_types_supported: ['code'],
        grant_types_supported: ['authorization_code', 'refresh_token'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['none'],
      });
    }
    if (url.pathname === '/register' && req.method === 'POST') {
      state.registrations += 1;
      const meta = JSON.parse(await body(req)) as Record<string, unknown>;
      return json(res, 201, { ...meta, client_id: `client-${state.registrations}`, client_id_issued_at: Math.floor(Date.now() / 1000) });
    }
    if (url.pathname === '/authorize') {
      // A signed-in user who approves at once.
      state.authorizeRequests.push(url.searchParams);
      const code = randomBytes(12).toString('hex');
      codes.set(code, {
        challenge: url.searchParams.get('code_challenge') ?? '',
        redirectUri: url.searchParams.get('redirect_uri') ?? '',
        clientId: url.searchParams.get('client_id') ?? '',
      });
      const back = new URL(url.searchParams.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href }).end();
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const form = new URLSearchParams(await body(req));
      const grant = codes.get(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      if (
        !grant ||
        form.get('grant_type') !== 'authorization_code' ||
        form.get('redirect_uri') !== grant.redirectUri ||
        createHash('sha256').update(verifier).digest('base64url') !== grant.challenge
      ) {
        return json(res, 400, { error: 'invalid_grant' });
      }
      codes.delete(form.get('code')!);
      const token = `at-${randomBytes(16).toString('hex')}`;
      state.tokensIssued.push(token);
      return json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600, refresh_token: `rt-${randomBytes(8).toString('hex')}` });
    }
    res.writeHead(404).end();
  });
  state.issuer = await listen(as);

  // The protected MCP server (what issue 3's HTTP mode looks like from outside).
  const mcp = toNodeHandler(
    createMcpHandler(() => {
      const server = new McpServer({ name: 'protected', version: '1.0.0' });
      server.registerTool('whoami', { description: 'who is signed in', inputSchema: z.object({}) }, async () => ({
        content: [{ type: 'text', text: 'signed in as alice' }],
      }));
      return server;
    }),
  );
  let origin = '';
  const rs = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/.well-known/oauth-protected-resource/mcp') {
      return json(res, 200, { resource: `${origin}/mcp`, authorization_servers: [state.issuer], bearer_methods_supported: ['header'] });
    }
    if (path !== '/mcp') return void res.writeHead(404).end();
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !state.tokensIssued.includes(token)) {
      res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"` });
      res.end();
      return;
    }
    void mcp(req, res);
  });
  origin = await listen(rs);
  state.mcpUrl = `${origin}/mcp`;
  state.close = async () => {
    for (const s of [as, rs]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  };
  return state;
}

let standIn: StandIn;
let tokenPath: string;
beforeAll(async () => {
  standIn = await startStandIns();
  tokenPath = join(mkdtempSync(join(tmpdir(), 'qwen-chat-oauth-')), 'nested', 'oauth.json');
});
afterAll(async () => {
  await standIn.close();
});

/** The user's browser: follows the authorization URL through the redirect back to the chat's loopback listener. */
const browser = (visited: string[]) => async (url: string) => {
  visited.push(url);
  const res = await fetch(url); // follows the 302 to http://127.0.0.1:<port>/callback
  expect(await res.text()).toContain('Signed in');
};

describe('OAuth login for an MCP server that answers 401 with protected-resource metadata', () => {
  it('asks, opens the identity provider, completes PKCE on a loopback redirect, stores tokens 0600, then works', async () => {
    const terminal = scriptedTerminal(['y']);
    const visited: string[] = [];
    const hub = new McpHub({ consent: { terminal, opener: browser(visited) }, tokenFile: new TokenFile(tokenPath) });
    try {
      await hub.connectAll([{ name: 'dingtalk-http', missing: [], entry: { url: standIn.mcpUrl } }]);
      expect(hub.failures).toEqual([]);
      expect(visited).toHaveLength(1);
      const authorize = new URL(visited[0]!);
      expect(authorize.origin + authorize.pathname).toBe(`${standIn.issuer}/authorize`);
      expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
      expect(authorize.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      expect(authorize.searchParams.get('resource')).toBe(standIn.mcpUrl);
      expect(terminal.questions).toEqual(['   Open this link in your browser? [y/N] ']);
      expect(terminal.output.join('')).toContain('needs you to sign in (OAuth)');
      expect(terminal.output.join('')).toContain('✓ Signed in to "dingtalk-http".');

      expect(await hub.callTool('dingtalk-http__whoami', {})).toMatchObject({ text: 'signed in as alice', isError: false });

      // Tokens on disk, owner-only; never on the screen.
      expect(statSync(tokenPath).mode & 0o777).toBe(0o600);
      expect(statSync(join(tokenPath, '..')).mode & 0o777).toBe(0o700);
      const stored = JSON.parse(readFileSync(tokenPath, 'utf8')) as Record<string, { tokens?: { access_token: string } }>;
      expect(stored[standIn.mcpUrl]?.tokens?.access_token).toBe(standIn.tokensIssued.at(-1));
      expect(terminal.output.join('')).not.toContain(standIn.tokensIssued.at(-1)!);
    } finally {
      await hub.close();
    }
  });

  it('next time, the stored token is used: no prompt, no browser', async () => {
    const terminal = scriptedTerminal([]);
    const visited: string[] = [];
    const hub = new McpHub({ consent: { terminal, opener: browser(visited) }, tokenFile: new TokenFile(tokenPath) });
    try {
      const authorizeBefore = standIn.authorizeRequests.length;
      await hub.connectAll([{ name: 'dingtalk-http', missing: [], entry: { url: standIn.mcpUrl } }]);
      expect(hub.failures).toEqual([]);
      expect(visited).toEqual([]);
      expect(terminal.questions).toEqual([]);
      expect(standIn.authorizeRequests.length).toBe(authorizeBefore);
      expect(standIn.registrations).toBe(1);
      expect((await hub.callTool('dingtalk-http__whoami', {})).text).toBe('signed in as alice');
    } finally {
      await hub.close();
    }
  });

  it('a declined sign-in reports the server as unavailable and opens nothing', async () => {
    const terminal = scriptedTerminal(['n']);
    const visited: string[] = [];
    const hub = new McpHub({ consent: { terminal, opener: browser(visited) }, tokenFile: new TokenFile(join(tokenPath, '..', 'other.json')) });
    try {
      await hub.connectAll([{ name: 'dingtalk-http', missing: [], entry: { url: standIn.mcpUrl } }]);
      expect(visited).toEqual([]);
      expect(hub.servers.size).toBe(0);
      expect(hub.failures).toEqual([{ server: 'dingtalk-http', error: 'it requires sign-in (OAuth), which did not complete' }]);
    } finally {
      await hub.close();
    }
  });
});

describe('the loopback callback', () => {
  it('a request with the wrong state (or none) gets a 400 and does not end the sign-in; the right one does', async () => {
    const terminal = scriptedTerminal(['y']);
    const strays: number[] = [];
    const opener = async (url: string) => {
      const callback = new URL(new URL(url).searchParams.get('redirect_uri')!);
      // Another local process or a web page gets there first.
      for (const query of ['?code=attacker&state=wrong', '', '?error=access_denied&state=wrong']) {
        strays.push((await fetch(`${callback.href}${query}`)).status);
      }
      await browser([])(url);
    };
    const hub = new McpHub({ consent: { terminal, opener }, tokenFile: new TokenFile(join(mkdtempSync(join(tmpdir(), 'qwen-chat-oauth-')), 'oauth.json')) });
    try {
      await hub.connectAll([{ name: 'dingtalk-http', missing: [], entry: { url: standIn.mcpUrl } }]);
      expect(strays).toEqual([400, 400, 400]);
      expect(hub.failures).toEqual([]);
      expect(terminal.output.join('')).toContain('✓ Signed in to "dingtalk-http".');
      expect((await hub.callTool('dingtalk-http__whoami', {})).text).toBe('signed in as alice');
    } finally {
      await hub.close();
    }
  });
});

describe('the token file', () => {
  const entry = (token: string) => ({ tokens: { access_token: token, token_type: 'Bearer' } });

  it('a directory it creates is 0700 whatever the umask; an existing directory open to others gets a warning', () => {
    const root = mkdtempSync(join(tmpdir(), 'qwen-chat-tokens-'));
    // mkdir's mode goes through the umask: with this one a plain mkdir(0o700) gives 0500.
    const previous = process.umask(0o277);
    try {
      new TokenFile(join(root, 'created', 'oauth.json'), () => expect.fail('no warning for a directory we created')).update('https://a/mcp', () => entry('a'));
    } finally {
      process.umask(previous);
    }
    expect(statSync(join(root, 'created')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'created', 'oauth.json')).mode & 0o777).toBe(0o600);

    const open = join(root, 'open');
    mkdirSync(open);
    chmodSync(open, 0o755);
    const warnings: string[] = [];
    const file = new TokenFile(join(open, 'oauth.json'), (m) => warnings.push(m));
    file.update('https://a/mcp', () => entry('a'));
    file.update('https://b/mcp', () => entry('b'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${open}, is accessible to other users (mode 755)`);
  });

  it('a file that does not parse is never overwritten: a clear error naming it, nothing written', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'qwen-chat-tokens-')), 'oauth.json');
    const damaged = '{"https://a/mcp": {"tokens": {"access_token": "a"'; // truncated
    writeFileSync(path, damaged, { mode: 0o600 });
    const file = new TokenFile(path, () => {});
    expect(() => file.update('https://b/mcp', () => entry('b'))).toThrow(TokenFileError);
    expect(() => file.get('https://b/mcp')).toThrow(`the OAuth token file ${path} is not a JSON object`);
    expect(readFileSync(path, 'utf8')).toBe(damaged);
  });

  it('an entry another process saved between our read and our write is kept; no temporary file is left', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwen-chat-tokens-'));
    const path = join(dir, 'oauth.json');
    const ours = new TokenFile(path, () => {});
    const theirs = new TokenFile(path, () => {});
    ours.update('https://a/mcp', () => entry('a1'));
    ours.update('https://a/mcp', (old) => {
      theirs.update('https://b/mcp', () => entry('b')); // the other process writes while we compute our change
      return { ...old, ...entry('a2') };
    });
    const stored = JSON.parse(readFileSync(path, 'utf8')) as Record<string, { tokens?: { access_token: string } }>;
    expect(stored['https://a/mcp']?.tokens?.access_token).toBe('a2');
    expect(stored['https://b/mcp']?.tokens?.access_token).toBe('b');
    expect(readdirSync(dir)).toEqual(['oauth.json']);
  });
});

describe('--yes outside the sandbox', () => {
  it('never starts a browser: the sign-in link is printed, and the login completes when the user opens it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qwen-chat-yes-'));
    // A stand-in for the system browser that records being started and then follows the link, as a real one would.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const started = join(dir, 'browser-started');
    for (const name of ['xdg-open', 'open']) {
      writeFileSync(
        join(bin, name),
        `#!/bin/sh\necho "$1" > '${started}'\nexec '${process.execPath}' -e 'fetch(process.argv[1]).then((r) => r.text())' "$1"\n`,
        { mode: 0o755 },
      );
    }
    const config = join(dir, 'mcp.json');
    writeFileSync(config, JSON.stringify({ mcpServers: { protected: { url: standIn.mcpUrl } } }));
    const main = fileURLToPath(new URL('../../dist/examples/qwen-chat/main.js', import.meta.url));
    const child = spawn(process.execPath, [main, '--config', config, '--yes', '--token-file', join(dir, 'tokens', 'oauth.json')], {
      env: { PATH: bin, HOME: dir, DASHSCOPE_API_KEY: 'sk-not-used' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let printed: string | undefined;
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      const link = /Open it yourself \(--no-browser\): (\S+)/.exec(stdout)?.[1];
      if (link && !printed) {
        printed = link;
        void browser([])(link); // the user opens the printed link
      }
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(existsSync(started)).toBe(false);
    expect(stderr).toBe('');
    expect(printed).toMatch(new RegExp(`^${standIn.issuer}/authorize\\?`));
    expect(stdout).toContain('--yes without --sandbox: links are printed for you to open; no browser is started.');
    expect(stdout).toContain('✓ Signed in to "protected".');
    expect(code).toBe(0);
  });
});
