/**
 * The web chat's back end over plain HTTP (no browser): same-origin and CSRF checks on every state-changing request,
 * the Host check, bounded bodies and messages, per-user limits, the sign-in callback's state check and session
 * rotation, and that nothing the page can fetch carries a token.
 */
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashScopeClient } from '../../examples/qwen-chat/dashscope.js';
import { startWebSandbox, type WebSandbox } from '../../examples/qwen-chat/web/sandbox.js';
import { startWebChat, type WebChat } from '../../examples/qwen-chat/web/server.js';
import { SignIn } from '../../examples/qwen-chat/web/sign-in.js';
import { lookAlikeWarnings, viewLink } from '../../examples/qwen-chat/web/url-safety.js';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import '../helpers/stack.js';

let sandbox: WebSandbox;
let web: WebChat;
let origin: string;

beforeAll(async () => {
  sandbox = await startWebSandbox({
    users: [
      ...['alice-1001', 'bob-2002', 'carol-3003', 'dave-4004'].map((sub) => ({
        sub,
        name: `${sub.split('-')[0]![0]!.toUpperCase()}${sub.split('-')[0]!.slice(1)} (sandbox)`,
      })),
      { sub: 'erin-5005', name: 'Erin (sandbox)' },
    ],
  });
  web = await startWebChat({
    llm: new DashScopeClient({ apiKey: sandbox.dashscope.apiKey, baseUrl: sandbox.dashscope.baseUrl, retryBaseDelayMs: 1 }),
    servers: sandbox.servers,
    signInServer: 'dingtalk',
    signIn: async (o) => new SignIn({ ...sandbox.registerWebClient(`${o}/auth/callback`), redirectUri: `${o}/auth/callback` }),
    port: 0,
    limits: { messagesPerMinute: 4, messageChars: 100, bodyBytes: 1024 },
    log: () => {},
  });
  origin = new URL(web.url).origin;
}, 60_000);

afterAll(async () => {
  await web?.close();
  await sandbox?.close();
});

interface Browserish {
  cookies: Map<string, string>;
  csrf: string;
}

const cookieHeader = (b: Browserish) => [...b.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

async function anonymous(): Promise<Browserish> {
  const res = await fetch(`${origin}/api/session`);
  const cookies = new Map<string, string>();
  const [pair] = res.headers.getSetCookie()[0]!.split(';');
  cookies.set(pair!.split('=')[0]!, pair!.slice(pair!.indexOf('=') + 1));
  return { cookies, csrf: ((await res.json()) as { csrf: string }).csrf };
}

function post(b: Browserish, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${origin}${path}`, {
    method: 'POST',
    headers: { origin, 'content-type': 'application/json', 'x-csrf-token': b.csrf, cookie: cookieHeader(b), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Sign in as `sub` the way a browser does: the page's POST, the identity provider's form, our callback. */
async function signedIn(sub: string): Promise<Browserish & { before: string }> {
  const b = await anonymous();
  const before = b.cookies.get('qwc_session')!;
  const { url } = (await (await post(b, '/auth/login', {})).json()) as { url: string };
  const visit = await followAuthorizationLink(url, { oidcSub: sub, cookies: b.cookies });
  expect(visit.finalUrl).toBe(`${origin}/`);
  const session = (await (await fetch(`${origin}/api/session`, { headers: { cookie: cookieHeader(b) } })).json()) as { csrf: string; user: { sub: string } };
  expect(session.user.sub).toBe(sub);
  return { ...b, csrf: session.csrf, before };
}

function rawGet(path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, origin);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The page's steps, by hand: a session (cookie and CSRF token), sign-in through the identity provider's form as `sub`,
 * our callback, then the session's fresh CSRF token. `call` POSTs JSON as the page does.
 */
async function signIn(origin: string, sub: string) {
  const first = await fetch(`${origin}/api/session`);
  const cookies = new Map<string, string>();
  const [pair] = first.headers.getSetCookie()[0]!.split(';');
  cookies.set('qwc_session', pair!.slice(pair!.indexOf('=') + 1));
  let csrf = ((await first.json()) as { csrf: string }).csrf;
  const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const call = (path: string, body: unknown) =>
    fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json', 'x-csrf-token': csrf, cookie: cookie() },
      body: JSON.stringify(body),
    });
  const { url: loginUrl } = (await (await call('/auth/login', {})).json()) as { url: string };
  await followAuthorizationLink(loginUrl, { oidcSub: sub, cookies });
  csrf = ((await (await fetch(`${origin}/api/session`, { headers: { cookie: cookie() } })).json()) as { csrf: string }).csrf;
  return { loginUrl, cookie, call };
}

describe('back-end safety', () => {
  it('answers only requests addressed to it by name (DNS rebinding)', async () => {
    expect(await rawGet('/', new URL(origin).host)).toBe(200);
    expect(await rawGet('/', 'evil.example')).toBe(421);
    expect(await rawGet('/api/session', `localhost.evil.example:${new URL(origin).port}`)).toBe(421);
  });

  it("refuses state-changing requests that are cross-origin, cross-site, not JSON, or lack the session's CSRF token", async () => {
    const alice = await signedIn('alice-1001');
    const other = await anonymous();
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      ['no Origin', { origin: '' }, 403, /Cross-origin/],
      ['another origin', { origin: 'http://evil.example' }, 403, /Cross-origin/],
      ['another port of this host', { origin: 'http://127.0.0.1:1' }, 403, /Cross-origin/],
      ['cross-site fetch metadata', { 'sec-fetch-site': 'cross-site' }, 403, /Cross-site/],
      ['a form post', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /JSON/],
      ['no CSRF token', { 'x-csrf-token': '' }, 403, /CSRF/],
      ["another session's CSRF token", { 'x-csrf-token': other.csrf }, 403, /CSRF/],
    ];
    for (const [what, headers, status, message] of cases) {
      const res = await post(alice, '/api/chat', { message: 'hello' }, headers);
      expect([what, res.status]).toEqual([what, status]);
      expect((await res.json()) as { error: string }).toMatchObject({ error: expect.stringMatching(message) });
    }
    // Sign-out is state-changing too.
    expect((await post(alice, '/auth/logout', {}, { 'x-csrf-token': other.csrf })).status).toBe(403);
    expect(web.users().some((u) => u.sub === 'alice-1001')).toBe(true);
    // No message reached the model.
    expect(sandbox.dashscope.requests.filter((r) => JSON.stringify(r.body ?? {}).includes('hello'))).toHaveLength(0);
  });

  it('needs a signed-in session for the chat and its event stream', async () => {
    const b = await anonymous();
    expect((await post(b, '/api/chat', { message: 'hello' })).status).toBe(401);
    expect((await fetch(`${origin}/api/events`, { headers: { cookie: cookieHeader(b) } })).status).toBe(401);
    expect((await fetch(`${origin}/api/events`)).status).toBe(401);
  });

  it('bounds bodies and messages, and answers bad input with a clear error, never a 500', async () => {
    const bob = await signedIn('bob-2002');
    const big = await post(bob, '/api/chat', JSON.stringify({ message: 'x'.repeat(2000) }));
    expect(big.status).toBe(413);
    expect(await big.json()).toEqual({ error: 'Request body too large: at most 1024 bytes.' });
    const long = await post(bob, '/api/chat', { message: 'y'.repeat(101) });
    expect(long.status).toBe(413);
    expect(await long.json()).toEqual({ error: 'That message is too long: at most 100 characters.' });
    expect((await post(bob, '/api/chat', '{"message":')).status).toBe(400);
    expect((await post(bob, '/api/chat', { message: '   ' })).status).toBe(400);
    expect((await post(bob, '/api/chat', [1, 2])).status).toBe(400);
    expect((await post(bob, '/api/decide', { id: 'nope', answer: 'accept' })).status).toBe(409);
    expect((await post(bob, '/api/decide', { id: 'nope', answer: 'please' })).status).toBe(400);
    expect((await fetch(`${origin}/static/../package.json`)).status).toBe(404);
  });

  it('one turn at a time per user, and a per-user message rate limit that leaves others alone', async () => {
    const carol = await signedIn('carol-3003');
    const dave = await signedIn('dave-4004');
    // A write waits for the confirmation: the turn is in flight.
    expect((await post(carol, '/api/chat', { message: `Note hi in ${sandbox.documentLink}` })).status).toBe(202);
    const chat = web.users().find((u) => u.sub === 'carol-3003')!.chat;
    await expect.poll(() => chat.transcript.all().some((i) => i.kind === 'tool' && i.state === 'confirm')).toBe(true);
    const busy = await post(carol, '/api/chat', { message: 'and another' });
    expect(busy.status).toBe(409);
    expect(await post(carol, '/api/cancel', {}).then((r) => r.json())).toEqual({ ok: true });
    await expect.poll(() => chat.busy).toBe(false);
    // 4 per minute: one used above (a refusal while busy costs nothing), three more pass, the fifth is refused.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await post(carol, '/api/chat', { message: `hello ${i}` });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(((await res.json()) as { error: string }).error).toMatch(/^Too many messages: at most 4 per minute\. Try again in \d+ s\.$/);
      }
      await expect.poll(() => chat.busy).toBe(false);
    }
    expect(statuses).toEqual([202, 202, 202, 429]);
    expect((await post(dave, '/api/chat', { message: 'hello from dave' })).status).toBe(202);
  });

  it('the sign-in callback needs the state of a sign-in started in this browser; the session id changes at sign-in', async () => {
    const eve = await anonymous();
    const { url } = (await (await post(eve, '/auth/login', {})).json()) as { url: string };
    // Someone else's browser (no cookie) presenting the answer is refused.
    const stolen = await followAuthorizationLink(url, { oidcSub: 'alice-1001', stopAt: `${origin}/auth/callback` });
    const callback = stolen.finalUrl;
    const refused = await fetch(callback, { redirect: 'manual' });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('does not match a sign-in started in this browser');
    // A wrong state in the right browser is refused; the real answer still works there, once.
    const wrong = new URL(callback);
    wrong.searchParams.set('state', 'x'.repeat(22));
    expect((await fetch(wrong, { headers: { cookie: cookieHeader(eve) }, redirect: 'manual' })).status).toBe(400);
    const ok = await fetch(callback, { headers: { cookie: cookieHeader(eve) }, redirect: 'manual' });
    expect([ok.status, ok.headers.get('location')]).toEqual([303, '/']);
    expect((await fetch(callback, { headers: { cookie: cookieHeader(eve) }, redirect: 'manual' })).status).toBe(400);

    const frank = await signedIn('alice-1001');
    expect(frank.cookies.get('qwc_session')).not.toBe(frank.before);
    // The pre-sign-in session id is worthless now.
    const old = await fetch(`${origin}/api/session`, { headers: { cookie: `qwc_session=${frank.before}` } });
    expect(((await old.json()) as { user: unknown }).user).toBeNull();
  });

  it('at most 10 signed-in browser sessions per person: an 11th sign-in signs out the least recently used', async () => {
    const me = (b: Browserish) => fetch(`${origin}/api/session`, { headers: { cookie: cookieHeader(b) } }).then((r) => r.json() as Promise<{ user: unknown }>);
    const first = await signedIn('erin-5005');
    const second = await signedIn('erin-5005');
    for (let i = 0; i < 8; i++) await signedIn('erin-5005');
    expect((await me(first)).user).not.toBeNull(); // ten: all signed in, and `first` is now the most recently used
    const eleventh = await signedIn('erin-5005');
    expect((await me(second)).user).toBeNull();
    expect((await me(first)).user).not.toBeNull();
    expect((await me(eleventh)).user).not.toBeNull();
  });

  it('nothing the page can fetch carries a token', async () => {
    const alice = await signedIn('alice-1001');
    const session = await (await fetch(`${origin}/api/session`, { headers: { cookie: cookieHeader(alice) } })).text();
    const events = await fetch(`${origin}/api/events`, { headers: { cookie: cookieHeader(alice) } });
    const reader = events.body!.getReader();
    const snapshot = new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(snapshot).toMatch(/^data: \{"type":"snapshot"/);
    const secrets = web.heldSecrets();
    expect(secrets.length).toBeGreaterThan(0);
    for (const s of secrets) {
      expect(session).not.toContain(s);
      expect(snapshot).not.toContain(s);
    }
  });
});

describe('consent links: what the card shows', () => {
  it('highlights the host and warns about look-alike hosts, punycode and credentials', () => {
    expect(viewLink('https://mcp.example.com/connect/abc')).toMatchObject({
      ok: true,
      scheme: 'https://',
      host: 'mcp.example.com',
      rest: '/connect/abc',
      warnings: [],
    });
    expect(lookAlikeWarnings('login.dingtalk.com')).toEqual([]);
    expect(lookAlikeWarnings('signin.aliyun.com')).toEqual([]);
    expect(lookAlikeWarnings('dingtalk.com.evil.io')[0]).toMatch(/contains "dingtalk" but is not dingtalk\.com/);
    expect(lookAlikeWarnings('dingtaIk.com')[0]).toMatch(/looks like dingtalk\.com but is a different domain/);
    expect(lookAlikeWarnings('dlngtalk.com')[0]).toMatch(/looks like dingtalk\.com/);
    expect(lookAlikeWarnings('a1iyun.com')[0]).toMatch(/looks like aliyun\.com/);
    expect(lookAlikeWarnings('alibabac1oud.net')[0]).toMatch(/looks like alibabacloud\.com/);
    expect(lookAlikeWarnings('example.org')).toEqual([]);
    expect(viewLink('https://xn--dngtalk-9ya.com/x').warnings.join(' ')).toMatch(/punycode/);
    expect(viewLink('https://login.dingtalk.com@evil.example/x')).toMatchObject({ ok: false, refused: expect.stringMatching(/user name or password/) });
    expect(viewLink('javascript:alert(1)')).toMatchObject({ ok: false });
    expect(viewLink('http://evil.example/')).toMatchObject({ ok: false, refused: expect.stringMatching(/only https/) });
  });
});

describe('the command', () => {
  const main = fileURLToPath(new URL('../../dist/examples/qwen-chat/web/main.js', import.meta.url));
  const env = { PATH: process.env.PATH ?? '', HOME: '/tmp/web-chat-test-home' };

  it('--sandbox prints the URL, serves the page, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [main, '--sandbox', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await expect.poll(() => out.includes('Press Ctrl+C to stop.'), { timeout: 30_000 }).toBe(true);
      const url = /Web chat: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)![1]!;
      expect(out).toContain('Sign in as any test user: Alice (sandbox), Bob (sandbox)');
      expect(out).toContain("Try: Write last month's ECS costs into https://alidocs.dingtalk.com/i/nodes/SandboxDoc0001TeamNotes");
      const page = await fetch(url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<script src="/static/app.js" type="module"></script>');
      for (const asset of ['static/app.js', 'static/style.css', 'static/vendor/markdown-it.min.js', 'static/vendor/purify.min.js'])
        expect((await fetch(`${url}${asset}`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(err).toBe('');
  }, 60_000);

  it('without --sandbox: one clear message for a missing key, and for a config nobody can sign in to', () => {
    const config = fileURLToPath(new URL('../../examples/qwen-chat/mcp.example.json', import.meta.url));
    const noKey = spawnSync(process.execPath, [main, '--config', config], { env, encoding: 'utf8', timeout: 30_000 });
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toMatch(/^qwen-chat web: DASHSCOPE_API_KEY is not set\. .*--sandbox\.\n$/);
    const noSignIn = spawnSync(process.execPath, [main, '--config', config], {
      env: { ...env, DASHSCOPE_API_KEY: 'sk-test' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(noSignIn.status).toBe(2);
    expect(noSignIn.stdout).toContain('Skipping "dingtalk": a stdio server would act for every browser user as one identity.');
    expect(noSignIn.stderr).toMatch(/^qwen-chat web: No HTTP server without an Authorization header in the config/);
  });
});

describe('sign-in as an OAuth client', () => {
  it('code + PKCE gives an access token the MCP server accepts and a refresh token that renews it', async () => {
    const redirectUri = `${origin}/auth/callback`;
    const signIn = new SignIn({ ...sandbox.registerWebClient(redirectUri), redirectUri });
    const pending = await signIn.begin();
    expect(new URL(pending.url).searchParams.get('code_challenge_method')).toBe('S256');
    const stop = await followAuthorizationLink(pending.url, { oidcSub: 'bob-2002', stopAt: redirectUri });
    const code = new URL(stop.finalUrl).searchParams.get('code')!;
    // A wrong PKCE verifier is refused by the identity provider.
    await expect(signIn.finish(code, { ...pending, verifier: 'x'.repeat(43) })).rejects.toThrow('The identity provider refused the sign-in (invalid_grant).');
    const again = await signIn.begin();
    const code2 = new URL((await followAuthorizationLink(again.url, { oidcSub: 'bob-2002', stopAt: redirectUri })).finalUrl).searchParams.get('code')!;
    await expect(signIn.finish(code2, { ...again, nonce: 'another' })).rejects.toThrow('The ID token does not carry the nonce of this sign-in.');
    const third = await signIn.begin();
    const code3 = new URL((await followAuthorizationLink(third.url, { oidcSub: 'bob-2002', stopAt: redirectUri })).finalUrl).searchParams.get('code')!;
    const { user, tokens } = await signIn.finish(code3, third);
    expect(user).toMatchObject({ sub: 'bob-2002', name: 'Bob (sandbox)' });
    const renewed = await signIn.refresh(tokens);
    expect(renewed.accessToken).not.toBe(tokens.accessToken);
    expect(renewed.expiresAt).toBeGreaterThan(Date.now());
    // Both tokens open the MCP server's protected endpoint (401 without one).
    for (const token of [tokens.accessToken, renewed.accessToken]) {
      const res = await fetch(`${sandbox.mcpBase}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } },
        }),
      });
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    expect((await fetch(`${sandbox.mcpBase}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
  });
});

describe('without --sandbox: a config file, a DashScope key and a registered client id', () => {
  it('discovers the identity provider from the server, signs in, and completes a consented write through the events the page gets', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { freePort } = await import('../../src/sandbox/index.js');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const { clientId } = sandbox.registerWebClient(`${base}/auth/callback`);
    const billing = sandbox.servers.find((s) => s.name === 'billing')!.entry as { url: string; headers: Record<string, string> };
    const config = join(mkdtempSync(join(tmpdir(), 'web-chat-config-')), 'mcp.json');
    writeFileSync(
      config,
      JSON.stringify({
        mcpServers: { dingtalk: { url: `${sandbox.mcpBase}/mcp` }, billing: { url: billing.url, headers: { Authorization: '${BILLING_AUTH}' } } },
      }),
    );
    const main = fileURLToPath(new URL('../../dist/examples/qwen-chat/web/main.js', import.meta.url));
    const child = spawn(process.execPath, [main, '--config', config, '--client-id', clientId, '--port', String(port)], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: '/tmp/web-chat-test-home',
        DASHSCOPE_API_KEY: sandbox.dashscope.apiKey,
        DASHSCOPE_BASE_URL: sandbox.dashscope.baseUrl,
        BILLING_AUTH: billing.headers.Authorization!,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await expect.poll(() => out, { timeout: 30_000 }).toContain(`Web chat: ${base}/`);
      const at = (path: string) => `${base}${path}`;
      const { loginUrl: url, cookie, call } = await signIn(base, 'dave-4004');
      expect(url.startsWith(`${sandbox.upstream.oidc!.issuer}/`)).toBe(true); // found through the MCP server's metadata

      const items = new Map<string, Record<string, unknown>>();
      const deltas = new Map<string, number>();
      const stream = await fetch(at('/api/events'), { headers: { cookie: cookie() } });
      const reader = stream.body!.getReader();
      let buffer = '';
      void (async () => {
        for (;;) {
          const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
          if (done) return;
          buffer += new TextDecoder().decode(value);
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const line = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (!line.startsWith('data: ')) continue;
            const event = JSON.parse(line.slice(6)) as {
              type: string;
              item?: Record<string, unknown>;
              items?: Array<Record<string, unknown>>;
              id?: string;
              text?: string;
            };
            if (event.type === 'item') items.set(event.item!.id as string, event.item!);
            if (event.type === 'delta') {
              items.get(event.id!)!.text = `${items.get(event.id!)!.text as string}${event.text}`;
              deltas.set(event.id!, (deltas.get(event.id!) ?? 0) + 1);
            }
          }
        }
      })();
      const find = (pred: (i: Record<string, unknown>) => boolean) => [...items.values()].find(pred);

      expect((await call('/api/chat', { message: `Write last month's ECS costs into ${sandbox.documentLink}` })).status).toBe(202);
      await expect.poll(() => find((i) => i.kind === 'tool' && i.state === 'confirm')).toBeTruthy();
      await call('/api/decide', { id: find((i) => i.kind === 'tool' && i.state === 'confirm')!.id, answer: 'run' });
      await expect.poll(() => find((i) => i.kind === 'consent' && i.state === 'asking')).toBeTruthy();
      const card = find((i) => i.kind === 'consent')!;
      expect(card).toMatchObject({
        server: 'dingtalk',
        host: new URL(sandbox.mcpBase).host,
        serverHost: true,
        warnings: ['Plain http to this machine: expected for a server running locally.'],
      });
      await call('/api/decide', { id: card.id, answer: 'accept' });
      // The person's browser (its own cookies): the MCP server's same-user sign-in, DingTalk's consent page.
      const visit = await followAuthorizationLink(card.href as string, { oidcSub: 'dave-4004' });
      expect(visit.body).toContain('DingTalk access granted');
      await expect.poll(() => find((i) => i.kind === 'consent')!.state, { timeout: 20_000 }).toBe('completed');
      await expect.poll(() => find((i) => i.kind === 'assistant' && i.streaming === false && /^Done\./.test(String(i.text)))).toBeTruthy();
      // The answer arrived as it was generated: many small pieces, not one block at the end.
      expect(deltas.get(find((i) => i.kind === 'assistant')!.id as string)).toBeGreaterThan(3);
      expect(sandbox.upstream.dingtalk.getDocument(sandbox.upstream.sampleDocumentId)?.content).toContain('| cn-beijing | 1,234.56 |');
      await reader.cancel();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 90_000);
});

describe('token refresh', () => {
  it('a renewed access token is what the next MCP request carries', async () => {
    const { createServer } = await import('node:http');
    const { toNodeHandler } = await import('@modelcontextprotocol/node');
    const { createMcpHandler, McpServer } = await import('@modelcontextprotocol/server');
    const z = await import('zod/v4');
    const seen: string[] = [];
    const mcp = toNodeHandler(
      createMcpHandler(() => {
        const server = new McpServer({ name: 'recorder', version: '0.0.1' });
        server.registerTool('whoami', { description: 'who', inputSchema: z.object({}), annotations: { readOnlyHint: true } }, async () => ({
          content: [{ type: 'text', text: 'ok' }],
        }));
        return server;
      }),
    );
    const recorder = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      void mcp(req, res);
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(recorder.address() as import('node:net').AddressInfo).port}/mcp`;
    const chat = await startWebChat({
      llm: new DashScopeClient({ apiKey: sandbox.dashscope.apiKey, baseUrl: sandbox.dashscope.baseUrl, retryBaseDelayMs: 1 }),
      servers: [{ name: 'recorder', missing: [], entry: { url } }],
      signInServer: 'recorder',
      signIn: async (o) => new SignIn({ ...sandbox.registerWebClient(`${o}/auth/callback`), redirectUri: `${o}/auth/callback` }),
      port: 0,
      // Every message renews the token (the emulator's tokens live an hour).
      limits: { refreshMarginMs: 2 * 3600_000 },
      log: () => {},
    });
    try {
      const o = new URL(chat.url).origin;
      const { call } = await signIn(o, 'alice-1001');
      const atSignIn = chat.heldSecrets()[0]!;
      expect(seen.at(-1)).toBe(`Bearer ${atSignIn}`); // connecting used the token from the sign-in

      expect((await call('/api/chat', { message: 'call recorder__whoami {}' })).status).toBe(202);
      const user = chat.users()[0]!;
      await expect.poll(() => user.chat.transcript.all().some((i) => i.kind === 'tool' && i.state === 'done')).toBe(true);
      const renewed = chat.heldSecrets()[0]!;
      expect(renewed).not.toBe(atSignIn);
      expect(seen.at(-1)).toBe(`Bearer ${renewed}`);
    } finally {
      await chat.close();
      recorder.closeAllConnections();
      recorder.close();
    }
  });
});
