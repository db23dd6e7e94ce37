/**
 * End to end over streamable HTTP: the built server is spawned with `--transport http` against the
 * emulated Agent Identity, DingTalk and identity provider; real MCP clients (2025-11-25 with
 * sessions, 2026-07-28 stateless, and the v1 SDK) connect with bearer JWTs; the test plays browsers.
 */
import { request as httpRequest } from 'node:http';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { freePort, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { startHttpServer as startHttpServerOn, type HttpServerProcess } from '../helpers/http-server.js';
import { allServerStderr, STATE_SECRET, textOf } from '../helpers/stack.js';

const ALICE = 'alice-1001';
const BOB = 'bob-2002';
const CAROL = 'carol-3003';
const DAVE = 'dave-4004';
const ERIN = 'erin-5005';
const FRANK = 'frank-6006';
const GINA = 'gina-7007';
const HANK = 'hank-8008';
const MALLORY = 'mallory-9009';
const VICTOR = 'victor-1010';
const DOC_ALICE = 'AliceDocument0001';
const DOC_BOB = 'BobDocument0002';

let sandbox: Sandbox;
let base: string;
let server: HttpServerProcess;

/** The built server over HTTP against this file's sandbox (test/helpers/http-server.ts). */
const startHttpServer = (url: string, env: Record<string, string> = {}) => startHttpServerOn(sandbox, url, env);

beforeAll(async () => {
  base = `http://127.0.0.1:${await freePort()}`;
  // One user per test that needs a first-time consent: the server caches each user's DingTalk token.
  const users = [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GINA, HANK, MALLORY, VICTOR].map((sub) => ({ sub, name: sub }));
  sandbox = await startSandbox({ callbackUrl: `${base}/callback`, oidc: { loginRedirectUri: `${base}/login/callback`, users } });
  sandbox.dingtalk.seedDocument(DOC_ALICE, { title: 'Alice', content: '' });
  sandbox.dingtalk.seedDocument(DOC_BOB, { title: 'Bob', content: '' });
  server = await startHttpServer(base);
});
afterAll(async () => {
  await server?.stop();
  // Nothing the HTTP servers wrote may contain a bearer JWT, a DingTalk or STS secret, or an AccessKey secret.
  const stderr = allServerStderr.join('');
  expect(stderr).toContain('serving MCP over streamable HTTP');
  const secrets = [
    ...bearers,
    sandbox.accessKeySecret,
    STATE_SECRET,
    ...sandbox.agentIdentity.issuedSecrets(),
    ...sandbox.agentIdentity.sessions().map((s) => s.sessionUri),
  ];
  expect(secrets.length).toBeGreaterThan(10);
  for (const secret of secrets) expect(stderr).not.toContain(secret);
  await sandbox?.close();
});

/** Every bearer token handed to a client, for the leak check at the end. */
const bearers: string[] = [];
const token = async (sub: string, extra: Partial<Parameters<NonNullable<Sandbox['oidc']>['mintAccessToken']>[0]> = {}) => {
  const minted = await sandbox.oidc!.mintAccessToken({ sub, ...extra });
  bearers.push(minted);
  return minted;
};
const aiCalls = (action: string) => sandbox.agentIdentity.calls.filter((c) => c.action === action);

async function connect(sub: string, options: { era?: 'legacy' | 'modern'; urlElicitation?: boolean; url?: string; bearer?: string } = {}) {
  const client = new Client(
    { name: `http-test-${sub}`, version: '1.0.0' },
    {
      capabilities: options.urlElicitation === false ? {} : { elicitation: { url: {} } },
      versionNegotiation: { mode: options.era === 'modern' ? 'auto' : 'legacy' },
    },
  );
  const transport = new StreamableHTTPClientTransport(new URL(`${options.url ?? base}/mcp`), {
    requestInit: { headers: { Authorization: `Bearer ${options.bearer ?? (await token(sub))}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

/** The elicitation handler of a user who opens the link in their own browser. */
function approveAs(client: Client, sub: string, unionId?: string) {
  client.setRequestHandler('elicitation/create', async (request) => {
    const visit = await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: sub, unionId });
    expect(visit.body).toContain('DingTalk access granted');
    return { action: 'accept' };
  });
}

function post(body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

describe('MCP authorization on /mcp', () => {
  it('publishes protected-resource metadata naming the identity provider', async () => {
    const res = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`);
    expect(await res.json()).toMatchObject({ resource: `${base}/mcp`, authorization_servers: [sandbox.oidc!.issuer] });
  });

  it.each([
    ['malformed', async () => 'not-a-jwt'],
    ['expired', () => token(ALICE, { expiresIn: -120 })],
    ['wrong issuer', () => token(ALICE, { iss: 'https://evil.example.com' })],
    ['wrong audience', () => token(ALICE, { aud: 'some-other-api' })],
    ['wrongly signed', () => token(ALICE, { foreignKey: true })],
  ])('%s token → 401 with WWW-Authenticate pointing at the metadata', async (_name, make) => {
    const bearer = await make();
    const res = await post(initialize, bearer ? { authorization: `Bearer ${bearer}` } : {});
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).toContain('invalid_token');
  });

  it('a bad Origin or Host → 403; an oversized body → 413', async () => {
    const good = `Bearer ${await token(ALICE)}`;
    expect((await post(initialize, { authorization: good, origin: 'https://evil.example.com' })).status).toBe(403);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${base}/healthz`, { headers: { host: 'rebound.evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
    const big = JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'write_dingtalk_doc', arguments: { document: DOC_ALICE, content: 'x'.repeat(1_100_000) } },
    });
    const res = await post(big, { authorization: good });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { message: expect.stringContaining('too large') } });
  });

  it('/healthz says whether Agent Identity credentials are usable without revealing them', async () => {
    const res = await fetch(`${base}/healthz`);
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(JSON.parse(text)).toMatchObject({ status: 'ok', agentIdentityCredentials: 'usable' });
    expect(text).not.toContain(sandbox.accessKeySecret);
    expect(text).not.toContain(sandbox.accessKeyId);
  });
});

describe('the whole flow over HTTP', () => {
  it('2026-07-28 client: input_required, the browser signs in as the same user, the retry writes', async () => {
    const { client } = await connect(ALICE, { era: 'modern' });
    try {
      approveAs(client, ALICE, sandbox.dingtalk.users[0]!.unionId);
      const result = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_ALICE, content: 'alice 2026' } }, { timeout: 60_000 });
      expect(textOf(result)).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(DOC_ALICE)?.content).toBe('alice 2026');
      // The artifact: the verified bearer JWT itself, for the workload token and the session binding.
      const minted = aiCalls('GetWorkloadAccessTokenForJWT').at(-1)!;
      const completed = aiCalls('CompleteResourceTokenAuth').at(-1)!;
      expect(JSON.parse(completed.params.UserIdentifier!)).toEqual({ UserJWT: minted.params.UserToken });
    } finally {
      await client.close();
    }
  });

  it('2025-11-25 client with a session: a forwarded link opened by Bob is refused; Carol completes it and her waiting call writes', async () => {
    const { client } = await connect(CAROL, { era: 'legacy' });
    try {
      const refusals: number[] = [];
      client.setRequestHandler('elicitation/create', async (request) => {
        const url = (request.params as { url: string }).url;
        const completesBefore = aiCalls('CompleteResourceTokenAuth').length;
        const bob = await followAuthorizationLink(url, { oidcSub: BOB });
        refusals.push(bob.status);
        expect(bob.body).toContain('belongs to someone else');
        expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completesBefore);
        const carol = await followAuthorizationLink(url, { oidcSub: CAROL, unionId: sandbox.dingtalk.users[0]!.unionId });
        expect(carol.body).toContain('DingTalk access granted');
        return { action: 'accept' };
      });
      const result = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_ALICE, content: 'carol 2025' } }, { timeout: 60_000 });
      expect(result.isError).toBeFalsy();
      expect(refusals).toEqual([403]);
      expect(sandbox.dingtalk.getDocument(DOC_ALICE)?.content).toBe('carol 2025');
      expect(sandbox.agentIdentity.vault.has(`jwt:${sandbox.oidc!.issuer}:${BOB}`)).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('/callback requires the binding cookie set by /connect: a replayed callback URL from another browser binds nothing and retires that session', async () => {
    const { client } = await connect(ERIN, { era: 'modern', urlElicitation: false });
    try {
      const first = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: 'x' } });
      const link = /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(textOf(first))?.[1];
      expect(link).toBeDefined();
      // Erin's browser signs in and consents, but stops before our /callback...
      const cookies = new Map<string, string>();
      const visit = await followAuthorizationLink(link!, { oidcSub: ERIN, cookies, stopAt: `${base}/callback` });
      const callbackUrl = visit.finalUrl;
      expect(new URL(callbackUrl).pathname).toBe('/callback');
      const completes = aiCalls('CompleteResourceTokenAuth').length;
      // ...and the callback URL, replayed from a browser without Erin's cookies, is refused.
      const stranger = await fetch(callbackUrl, { redirect: 'manual' });
      expect(stranger.status).toBe(403);
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completes);
      // That session's answer reached a browser that is not Erin's, so it can no longer complete anywhere, not even in
      // Erin's browser (were Agent Identity to take a second answer for it, that one could be someone else's)...
      const jar = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
      const own = await fetch(callbackUrl, { redirect: 'manual', headers: jar });
      expect(own.status).toBe(409);
      expect(await own.text()).toContain('Open the link from your assistant again to approve in this browser.');
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completes);
      // ...and opening the link again gives her a fresh session, which completes.
      const again = await followAuthorizationLink(link!, { oidcSub: ERIN, cookies });
      expect(again.status).toBe(200);
      expect(again.body).toContain('DingTalk access granted');
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completes + 1);
      expect(server.stderr()).toContain('a consent answer reached another browser');
    } finally {
      await client.close();
    }
  });

  it('one user with two links open in one browser: each keeps its own binding cookie', async () => {
    const { client } = await connect(FRANK, { era: 'modern', urlElicitation: false });
    try {
      const linkOf = async () =>
        /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(
          textOf(await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: 'x' } })),
        )![1]!;
      const first = await linkOf();
      const second = await linkOf();
      const alarms = () => server.stderr().split('authorization link opened by a different user').length;
      const alarmsBefore = alarms();
      const cookies = new Map<string, string>();
      const one = await followAuthorizationLink(first, { oidcSub: FRANK, cookies, stopAt: `${base}/callback` });
      const two = await followAuthorizationLink(second, { oidcSub: FRANK, cookies, stopAt: `${base}/callback` });
      const jar = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
      const done = await fetch(one.finalUrl, { headers: jar });
      expect(done.status).toBe(200);
      expect(await done.text()).toContain('DingTalk access granted');
      // The second link's authorization was settled by the first: already used, not "someone else".
      expect((await fetch(two.finalUrl, { headers: jar })).status).toBe(409);
      expect(alarms()).toBe(alarmsBefore); // no false "someone else" alarm for Frank
    } finally {
      await client.close();
    }
  });

  it('a link opened twice in one browser: the second visit gets a fresh consent, the older callback is told a newer link was opened, the waiting call writes', async () => {
    const { client } = await connect(GINA, { era: 'legacy' });
    try {
      const pages: Record<string, { status: number; body: string }> = {};
      let continueStatus = 0;
      client.setRequestHandler('elicitation/create', async (request) => {
        const url = (request.params as { url: string }).url;
        const cookies = new Map<string, string>();
        const first = await followAuthorizationLink(url, { oidcSub: GINA, cookies, stopAt: `${base}/callback` });
        // The Continue step keeps the same-user check: a browser nobody signed in to is sent to the sign-in.
        const stranger = await fetch(`${url}/continue`, { redirect: 'manual' });
        continueStatus = stranger.status;
        pages.strangerLocation = { status: stranger.status, body: stranger.headers.get('location') ?? '' };
        const second = await followAuthorizationLink(url, { oidcSub: GINA, cookies, stopAt: `${base}/callback` });
        const jar = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
        for (const [name, target] of [
          ['older', first.finalUrl],
          ['newer', second.finalUrl],
          ['refresh', second.finalUrl],
        ] as const) {
          const res = await fetch(target, { headers: jar });
          pages[name] = { status: res.status, body: await res.text() };
        }
        return { action: 'accept' };
      });
      const result = await client.callTool(
        { name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: 'gina, second visit' } },
        { timeout: 60_000 },
      );
      expect(textOf(result)).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(DOC_BOB)?.content).toBe('gina, second visit');
      expect(continueStatus).toBe(302);
      expect(pages.strangerLocation!.body.startsWith(sandbox.oidc!.issuer)).toBe(true);
      expect(pages.older).toMatchObject({ status: 409 });
      expect(pages.older!.body).toContain('A newer link was opened');
      expect(pages.newer).toMatchObject({ status: 200 });
      expect(pages.newer!.body).toContain(`Return to your assistant: it will finish writing to DingTalk document ${DOC_BOB}.`);
      expect(pages.refresh).toMatchObject({ status: 200 });
      expect(pages.refresh!.body).toContain('DingTalk access already granted');
    } finally {
      await client.close();
    }
  });

  it("a newer session's consent URL handed to someone else: their approval cannot be replayed into the link owner's authorization", async () => {
    const { client } = await connect(MALLORY, { era: 'modern', urlElicitation: false });
    try {
      const [victorsAccount, mallorysAccount] = sandbox.dingtalk.users;
      const link = /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(textOf(await client.callTool({ name: 'get_dingtalk_account', arguments: {} })))![1]!;
      const cookies = new Map<string, string>();
      // Mallory's first visit stops at Agent Identity's consent. Her second (a fresh session) goes through DingTalk with
      // her own account and stops before our /callback, so she holds a state of her own link. Her third visit's consent
      // URL (another fresh session) she does not open: she hands it to Victor.
      await followAuthorizationLink(link, { oidcSub: MALLORY, cookies, stopAt: sandbox.agentIdentityUrl });
      const own = await followAuthorizationLink(link, {
        oidcSub: MALLORY,
        cookies,
        unionId: mallorysAccount!.unionId,
        decision: 'deny',
        stopAt: `${base}/callback`,
      });
      const heldState = new URL(own.finalUrl).searchParams.get('state')!;
      const handed = (await followAuthorizationLink(link, { oidcSub: MALLORY, cookies, stopAt: sandbox.agentIdentityUrl })).finalUrl;
      const handedSession = new URL(handed).searchParams.get('request_uri')!;
      expect(handed).not.toContain(encodeURIComponent(heldState));
      const completes = aiCalls('CompleteResourceTokenAuth').length;
      // Victor approves with his DingTalk account; his browser is not Mallory's, so our callback refuses him.
      const victor = await followAuthorizationLink(handed, { oidcSub: VICTOR, unionId: victorsAccount!.unionId });
      expect(victor.status).toBe(403);
      // Mallory replays the callback of that session with the state she held, from her own browser: refused.
      const replay = await fetch(`${base}/callback?session_uri=${encodeURIComponent(handedSession)}&state=${encodeURIComponent(heldState)}`, {
        headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
        redirect: 'manual',
      });
      expect(replay.status).toBe(409);
      expect(await replay.text()).toContain('This approval can no longer finish the authorization');
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completes);
      expect(server.stderr()).toContain('state of another session');
      // Mallory is still not connected to any DingTalk account, least of all Victor's.
      const after = textOf(await client.callTool({ name: 'get_dingtalk_account', arguments: {} }));
      expect(after).not.toContain('Connected to the DingTalk account');
      expect(after).toContain('/connect/');
    } finally {
      await client.close();
    }
  });

  it("a link opened again after the user's sign-in expired: a 410 page says so, and the waiting call ends saying to call again for a new link", async () => {
    // A short-lived bearer: valid for the call, expired by the time the user opens the link a second time.
    const bearer = await token(HANK, { expiresIn: 3 });
    const expiresAt = (JSON.parse(Buffer.from(bearer.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number }).exp * 1000;
    const { client } = await connect(HANK, { era: 'legacy', bearer });
    try {
      const before = sandbox.dingtalk.getDocument(DOC_BOB)?.content;
      // The browser's visits, read once the call has answered (it may answer while this browser is still busy).
      let visits: Promise<{ second: { status: number; body: string }; reload: { status: number; body: string } }> | undefined;
      client.setRequestHandler('elicitation/create', async (request) => {
        const url = (request.params as { url: string }).url;
        visits = (async () => {
          const cookies = new Map<string, string>();
          await followAuthorizationLink(url, { oidcSub: HANK, cookies, stopAt: `${base}/callback` });
          await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 250));
          const second = await followAuthorizationLink(url, { oidcSub: HANK, cookies });
          const reload = await followAuthorizationLink(url, { oidcSub: HANK, cookies });
          return { second, reload };
        })();
        await visits.catch(() => {});
        return { action: 'accept' };
      });
      const result = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: 'hank, too late' } }, { timeout: 60_000 });
      const { second, reload } = await visits!;
      expect(second.status).toBe(410);
      expect(second.body).toContain('Sign-in expired');
      expect(second.body).toContain('Your sign-in to the assistant expired before DingTalk access was approved, so this link can no longer be used.');
      expect(second.body).toContain('ask it to call the tool again');
      expect(second.body).not.toContain('Reload this page');
      // The link is finished: reloading it never leads to a consent that could not complete.
      expect(reload.status).toBeGreaterThanOrEqual(400);
      expect(reload.body).not.toContain('Reload this page');
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain(
        'Your sign-in to this assistant expired before DingTalk access was approved, so the authorization link can no longer complete and nothing was written.',
      );
      expect(textOf(result)).toContain('Call the tool again to get a new link');
      expect(sandbox.dingtalk.getDocument(DOC_BOB)?.content).toBe(before);
      expect(sandbox.agentIdentity.vault.has(`jwt:${sandbox.oidc!.issuer}:${HANK}`)).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('DELETE ends a 2025 session', async () => {
    const { client, transport } = await connect(ALICE, { era: 'legacy' });
    const sessionId = transport.sessionId!;
    const headers = { authorization: `Bearer ${await token(ALICE)}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
    expect((await fetch(`${base}/mcp`, { method: 'DELETE', headers })).status).toBe(200);
    expect((await post({ jsonrpc: '2.0', id: 5, method: 'tools/list' }, headers)).status).toBe(404);
    await client.close().catch(() => {});
  });

  it('a v1 SDK client (2025-11-25) completes the flow too', async () => {
    const { Client: V1Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { StreamableHTTPClientTransport: V1Transport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
    const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const client = new V1Client({ name: 'v1', version: '1' }, { capabilities: { elicitation: { url: {} } } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: BOB, unionId: sandbox.dingtalk.users[1]!.unionId });
      return { action: 'accept' };
    });
    await client.connect(new V1Transport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${await token(BOB)}` } } }));
    try {
      const result = await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: 'bob via v1' } }, undefined, {
        timeout: 60_000,
      });
      expect(result.isError).toBeFalsy();
      expect(sandbox.dingtalk.getDocument(DOC_BOB)?.content).toBe('bob via v1');
    } finally {
      await client.close();
    }
  });

  it("a session id replayed with another user's token is refused; the owner keeps it", async () => {
    const { client, transport } = await connect(ALICE, { era: 'legacy' });
    try {
      const sessionId = transport.sessionId!;
      expect(sessionId).toBeTruthy();
      const res = await post(
        { jsonrpc: '2.0', id: 9, method: 'tools/list' },
        { authorization: `Bearer ${await token(BOB)}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      );
      expect(res.status).toBe(404);
      expect(server.stderr()).toContain("session id presented with another user's token");
      const still = await client.listTools();
      expect(still.tools.map((t) => t.name)).toContain('write_dingtalk_doc');
    } finally {
      await client.close();
    }
  });

  it('two users writing concurrently: 50 interleaved calls, each with only their own DingTalk token', async () => {
    const alice = await connect(ALICE, { era: 'legacy' });
    const bob = await connect(BOB, { era: 'modern' });
    try {
      approveAs(alice.client, ALICE, sandbox.dingtalk.users[0]!.unionId);
      approveAs(bob.client, BOB, sandbox.dingtalk.users[1]!.unionId);
      const start = sandbox.dingtalk.requests.length;
      const calls = Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? alice.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_ALICE, content: `alice #${i}` } }, { timeout: 60_000 })
          : bob.client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: `bob #${i}` } }, { timeout: 60_000 }),
      );
      const results = await Promise.all(calls);
      expect(results.filter((r) => r.isError)).toEqual([]);
      const writes = sandbox.dingtalk.requests.slice(start).filter((r) => r.api === 'overwriteContent' && r.status === 200);
      expect(writes).toHaveLength(50);
      for (const w of writes) {
        expect(w.unionId).toBe(w.documentId === DOC_ALICE ? sandbox.dingtalk.users[0]!.unionId : sandbox.dingtalk.users[1]!.unionId);
      }
      expect(sandbox.dingtalk.getDocument(DOC_ALICE)?.content).toMatch(/^alice #\d+$/);
      expect(sandbox.dingtalk.getDocument(DOC_BOB)?.content).toMatch(/^bob #\d+$/);
    } finally {
      await alice.client.close();
      await bob.client.close();
    }
  });
});

describe('the bundled Qwen chat client against this HTTP mode', () => {
  it('signs in through the 401 and protected-resource metadata, then a write goes through the consent flow', async () => {
    const { McpHub } = await import('../../examples/qwen-chat/mcp-hub.js');
    const { TokenFile } = await import('../../examples/qwen-chat/oauth.js');
    const { scriptedTerminal } = await import('../../examples/qwen-chat/terminal.js');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const terminal = scriptedTerminal(() => 'y');
    const pages: string[] = [];
    // One browser for both: the identity provider's sign-in (OAuth) and this server's /connect link.
    const opener = async (url: string) => {
      const visit = await followAuthorizationLink(url, { oidcSub: DAVE, unionId: sandbox.dingtalk.users[1]!.unionId });
      pages.push(visit.body);
    };
    const hub = new McpHub({ consent: { terminal, opener }, tokenFile: new TokenFile(join(mkdtempSync(join(tmpdir(), 'chat-http-')), 'oauth.json')) });
    try {
      await hub.connectAll([{ name: 'dingtalk', missing: [], entry: { url: `${base}/mcp` } }]);
      expect(hub.failures).toEqual([]);
      const outcome = await hub.callTool('dingtalk__write_dingtalk_doc', { document: DOC_ALICE, content: 'via the Qwen chat client' });
      expect(outcome).toMatchObject({ isError: false });
      expect(sandbox.dingtalk.getDocument(DOC_ALICE)?.content).toBe('via the Qwen chat client');
      expect(pages).toHaveLength(2);
      expect(pages[1]).toContain('DingTalk access granted');
      // The model-facing text never carries a token.
      for (const v of sandbox.agentIdentity.vault.list()) expect(outcome.text).not.toContain(v.accessToken);
    } finally {
      await hub.close();
    }
  });
});

describe('safe defaults', () => {
  it('per-user rate limit on tool calls → 429 with Retry-After; other users unaffected', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const limited = await startHttpServer(url, { DINGTALK_MCP_RATE_LIMIT: '2' });
    try {
      const call = async (sub: string, id: number) =>
        fetch(`${url}/mcp`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${await token(sub)}`,
            'mcp-protocol-version': '2026-07-28',
            'mcp-method': 'tools/call',
            'mcp-name': 'write_dingtalk_doc',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: {
              name: 'write_dingtalk_doc',
              arguments: { document: 'not a doc!', content: 'x' },
              _meta: {
                'io.modelcontextprotocol/protocolVersion': '2026-07-28',
                'io.modelcontextprotocol/clientCapabilities': {},
                'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
              },
            },
          }),
        });
      expect((await call(ALICE, 1)).status).toBe(200);
      expect((await call(ALICE, 2)).status).toBe(200);
      const third = await call(ALICE, 3);
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await call(BOB, 4)).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });

  it('identity-provider key rotation: a token signed with a new key is accepted at once, after one JWKS refetch', async () => {
    await sandbox.oidc!.rotateKey();
    const fetchesBefore = sandbox.oidc!.hits.get('/jwks') ?? 0;
    const res = await post(initialize, { authorization: `Bearer ${await token(ALICE)}` });
    expect(res.status).toBe(200);
    expect(sandbox.oidc!.hits.get('/jwks')).toBe(fetchesBefore + 1);
  });

  it('trusted-proxy mode (opt-in): the user comes from the gateway header, and only from the gateway', async () => {
    const tools = { jsonrpc: '2.0', id: 1, method: 'initialize', params: initialize.params };
    const ask = (url: string, headers: Record<string, string>) =>
      fetch(`${url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        body: JSON.stringify(tools),
      });
    for (const [proxies, expected] of [
      ['127.0.0.1', 200],
      ['10.9.8.7', 401],
    ] as const) {
      const url = `http://127.0.0.1:${await freePort()}`;
      const gated = await startHttpServer(url, {
        DINGTALK_MCP_TRUSTED_PROXY_HEADER: 'X-Authenticated-User',
        DINGTALK_MCP_TRUSTED_PROXIES: proxies,
        OIDC_ISSUER: '',
        OIDC_CLIENT_ID: '',
      });
      try {
        expect((await ask(url, { 'x-authenticated-user': 'gateway-user-1' })).status).toBe(expected);
        expect((await ask(url, {})).status).toBe(401);
      } finally {
        await gated.stop();
      }
    }
  });

  // Last: it stops the shared server.
  it('SIGTERM lets a write already sent to DingTalk finish, then exits 0', async () => {
    const draining = server;
    const { client } = await connect(BOB, { era: 'modern' });
    approveAs(client, BOB, sandbox.dingtalk.users[1]!.unionId);
    // A slow DingTalk: the first attempt hangs 1.5 s then fails with 503; the retry succeeds.
    sandbox.dingtalk.injectFault({ status: 503, code: 'ServiceUnavailable', times: 1, match: 'overwriteContent', delayMs: 1500 });
    const before = sandbox.dingtalk.requests.length;
    const pending = client.callTool({ name: 'write_dingtalk_doc', arguments: { document: DOC_BOB, content: 'written during shutdown' } }, { timeout: 60_000 });
    // The token is already in Agent Identity's vault, so the call reaches DingTalk at once.
    await new Promise((r) => setTimeout(r, 600));
    // The slow first attempt has arrived and is still hanging.
    expect(sandbox.dingtalk.requests.slice(before).filter((r) => r.api === 'overwriteContent')).toHaveLength(1);
    expect(sandbox.dingtalk.getDocument(DOC_BOB)?.content).not.toBe('written during shutdown');
    const exit = draining.stop('SIGTERM');
    const result = await pending;
    expect(result.isError).toBeFalsy();
    expect(sandbox.dingtalk.getDocument(DOC_BOB)?.content).toBe('written during shutdown');
    expect(await exit).toBe(0);
    await client.close().catch(() => {});
  });
});
