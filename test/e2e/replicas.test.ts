/**
 * Several replicas on one Redis, end to end: three built servers (`--transport http`, the same
 * DINGTALK_MCP_REDIS_URL and DINGTALK_MCP_STATE_SECRET) behind a small load balancer (round-robin;
 * sticky by Mcp-Session-Id), a real redis-server, the emulated Agent Identity, DingTalk and identity
 * provider, real MCP clients of both protocol eras, and a scripted browser whose every step may land
 * on another replica.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followAuthorizationLink } from '../../examples/shared/browser.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { startReplicaProxy, type ReplicaProxy } from '../helpers/replica-proxy.js';
import { startReplica, type Replica } from '../helpers/replicas.js';
import { dumpRedis, redisServerAvailable, startRedisServer, type RedisServer } from '../helpers/redis-server.js';
import { allServerStderr, STATE_SECRET, textOf, waitFor } from '../helpers/stack.js';

if (!redisServerAvailable()) throw new Error('redis-server is not installed: `apt-get install -y redis-server` (.ci/run does it)');

const REDIS_PASSWORD = 'redis-pw-never-shown-7Gq2';
const RATE_LIMIT = 60;
const LOAD_USERS = Array.from({ length: 50 }, (_, i) => `load-user-${String(i).padStart(2, '0')}`);
// Distinctive names, so that finding one in Redis cannot be chance.
const NAMED = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan'].map((n) => `${n}-of-the-replicas`);
const [ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HEIDI, IVAN] = NAMED as [string, string, string, string, string, string, string, string, string];
const union = (sub: string) => `union-${sub}`;
const doc = (sub: string) => `Doc${sub.replace(/[^A-Za-z0-9]/g, '')}0001`;

let redis: RedisServer;
let sandbox: Sandbox;
let proxy: ReplicaProxy;
let replicas: Replica[] = [];
let base: string;

beforeAll(async () => {
  redis = await startRedisServer({ password: REDIS_PASSWORD, persistent: true });
  proxy = await startReplicaProxy(() => replicas.map((r) => r.url));
  base = proxy.url;
  const subs = [...NAMED, ...LOAD_USERS];
  sandbox = await startSandbox({
    callbackUrl: `${base}/callback`,
    oidc: { loginRedirectUri: `${base}/login/callback`, users: subs.map((sub) => ({ sub, name: sub })) },
    dingtalkUsers: subs.map((sub) => ({ unionId: union(sub), nick: sub })),
  });
  for (const sub of subs) sandbox.dingtalk.seedDocument(doc(sub), { title: sub, content: '' });
  const env = { DINGTALK_MCP_REDIS_URL: redis.url, DINGTALK_MCP_RATE_LIMIT: String(RATE_LIMIT) };
  replicas = await Promise.all([0, 1, 2].map((i) => startReplica(i, sandbox, base, env)));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(replicas.map((r) => r.stop()));
  const stderr = allServerStderr.join('');
  for (const secret of [REDIS_PASSWORD, STATE_SECRET, sandbox.accessKeySecret, ...bearers, ...sandbox.agentIdentity.issuedSecrets()])
    expect(stderr).not.toContain(secret);
  await proxy?.close();
  await sandbox?.close();
  await redis?.close();
});

const bearers: string[] = [];
async function bearer(sub: string): Promise<string> {
  const token = await sandbox.oidc!.mintAccessToken({ sub });
  bearers.push(token);
  return token;
}
const aiCalls = (action: string) => sandbox.agentIdentity.calls.filter((c) => c.action === action);
const consentsOf = (sub: string) => sandbox.agentIdentity.sessions().filter((s) => JSON.stringify(s).includes(sub)).length;

async function connect(sub: string, options: { era: 'legacy' | 'modern'; urlElicitation?: boolean }) {
  const client = new Client(
    { name: `replica-test-${sub}`, version: '1.0.0' },
    {
      capabilities: options.urlElicitation === false ? {} : { elicitation: { url: {} } },
      versionNegotiation: { mode: options.era === 'modern' ? 'auto' : 'legacy' },
    },
  );
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${await bearer(sub)}` } } });
  await client.connect(transport);
  return client;
}
const write = (client: Client, sub: string, content: string, timeout = 30_000) =>
  client.callTool({ name: 'write_dingtalk_doc', arguments: { document: doc(sub), content } }, { timeout });
const linkIn = (text: string) => /(http:\/\/\S+\/connect\/[A-Za-z0-9_-]+)/.exec(text)?.[1];

/** Pin browser steps to replicas: /connect, /login/callback and /callback each where the test says. */
function pinBrowser(pins: { connect: number; login: number; callback: number }) {
  proxy.route = (req) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (path.startsWith('/connect/')) return pins.connect;
    if (path === '/login/callback') return pins.login;
    if (path === '/callback') return pins.callback;
    return undefined;
  };
}
const servedBy = (path: string, since: number) =>
  proxy.log
    .slice(since)
    .filter((e) => e.path.startsWith(path))
    .map((e) => e.replica);

describe('each step of a consent on another replica', () => {
  it('2025-11-25: the call waits on one replica, /connect lands on a second, /callback on a third, and it writes', async () => {
    const since = proxy.log.length;
    const client = await connect(ALICE, { era: 'legacy' });
    try {
      const home = proxy.log.slice(since).find((e) => e.path === '/mcp' && e.session)!.replica;
      const [second, third] = [(home + 1) % 3, (home + 2) % 3];
      pinBrowser({ connect: second, login: home, callback: third });
      client.setRequestHandler('elicitation/create', async (request) => {
        const visit = await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: ALICE, unionId: union(ALICE) });
        expect(visit.body).toContain('DingTalk access granted');
        return { action: 'accept' };
      });
      const result = await write(client, ALICE, 'alice across three replicas');
      expect(textOf(result)).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(doc(ALICE))?.content).toBe('alice across three replicas');
      expect(new Set(servedBy('/mcp', since))).toEqual(new Set([home]));
      // /connect three times: before the sign-in, the confirmation page after it, and its Continue step.
      expect(servedBy('/connect/', since)).toEqual([second, second, second]);
      expect(servedBy('/login/callback', since)).toEqual([home]);
      expect(servedBy('/callback', since)).toEqual([third]);
    } finally {
      proxy.route = undefined;
      await client.close();
    }
  });

  it('2026-07-28: the call, the browser steps and the retry are spread over the replicas, and it writes', async () => {
    const since = proxy.log.length;
    const client = await connect(BOB, { era: 'modern' });
    try {
      pinBrowser({ connect: 1, login: 2, callback: 0 });
      client.setRequestHandler('elicitation/create', async (request) => {
        const visit = await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: BOB, unionId: union(BOB) });
        expect(visit.body).toContain('DingTalk access granted');
        return { action: 'accept' };
      });
      const result = await write(client, BOB, 'bob across replicas');
      expect(textOf(result)).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(doc(BOB))?.content).toBe('bob across replicas');
      expect(new Set(servedBy('/mcp', since)).size).toBeGreaterThan(1);
      expect([servedBy('/connect/', since), servedBy('/login/callback', since), servedBy('/callback', since)]).toEqual([[1, 1, 1], [2], [0]]);
    } finally {
      proxy.route = undefined;
      await client.close();
    }
  });

  it('2026-07-28: a retry waiting on one replica resumes the moment /callback completes on another', async () => {
    const client = await connect(IVAN, { era: 'modern' });
    const since = proxy.log.length;
    let visit: Promise<string> | undefined;
    try {
      // Every /mcp request on replica 2; the browser on replicas 0 and 1.
      proxy.route = (req) => {
        const path = (req.url ?? '').split('?')[0]!;
        if (path === '/mcp') return 2;
        if (path.startsWith('/connect/') || path === '/login/callback') return 0;
        if (path === '/callback') return 1;
        return undefined;
      };
      client.setRequestHandler('elicitation/create', async (request) => {
        const url = (request.params as { url: string }).url;
        // Accept at once (the client retries and waits); the user finishes in the browser a moment later.
        visit = new Promise((r) => setTimeout(r, 1_000)).then(() => followAuthorizationLink(url, { oidcSub: IVAN, unionId: union(IVAN) })).then((v) => v.body);
        return { action: 'accept' };
      });
      const result = await write(client, IVAN, 'ivan waited on replica 2');
      expect(textOf(result)).toContain('Wrote');
      expect(await visit).toContain('DingTalk access granted');
      // Info lines reach stderr up to 25 ms later (gathered, docs/troubleshooting.md).
      await waitFor(() => /tool call tool=write_dingtalk_doc .*outcome=ok/.test(replicas[2]!.stderr()), 'the tool call line of replica 2', 5_000);
      expect(new Set(servedBy('/mcp', since))).toEqual(new Set([2]));
      expect(servedBy('/callback', since)).toEqual([1]);
      expect(consentsOf(IVAN)).toBe(1);
    } finally {
      proxy.route = undefined;
      await client.close();
    }
  });

  it("a 2025 session held by another replica gets the spec's 404, so the client starts a new one", async () => {
    const token = await bearer(CAROL);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const init = await fetch(`${replicas[0]!.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, host: new URL(base).host },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }),
    });
    const session = init.headers.get('mcp-session-id')!;
    expect(session).toBeTruthy();
    await init.text();
    const elsewhere = await fetch(`${replicas[1]!.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    expect(elsewhere.status).toBe(404);
    expect(await elsewhere.json()).toMatchObject({ error: { code: -32001 } });
  });
});

describe('single use and completion across replicas', () => {
  it('the same callback reaching two replicas at once completes exactly once', async () => {
    const client = await connect(DAVE, { era: 'modern', urlElicitation: false });
    try {
      const link = linkIn(textOf(await write(client, DAVE, 'x')))!;
      expect(link.startsWith(`${base}/connect/`)).toBe(true);
      const cookies = new Map<string, string>();
      const visit = await followAuthorizationLink(link, { oidcSub: DAVE, unionId: union(DAVE), cookies, stopAt: `${base}/callback` });
      const callback = new URL(visit.finalUrl);
      const jar = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '), host: new URL(base).host };
      const completes = aiCalls('CompleteResourceTokenAuth').length;
      const answers = await Promise.all(
        [replicas[1]!, replicas[2]!].map((r) => fetch(`${r.url}${callback.pathname}${callback.search}`, { headers: jar, redirect: 'manual' })),
      );
      // One replica completes. The other answers 409 if it arrives while that is under way, or, if it
      // arrives after, 200 "already granted" (the same callback as a refresh of the success page).
      const pages = await Promise.all(answers.map(async (a) => `${a.status} ${await a.text()}`));
      expect(pages.filter((p) => p.startsWith('200') && p.includes('DingTalk access granted'))).toHaveLength(1);
      expect(pages.filter((p) => p.startsWith('409') || (p.startsWith('200') && p.includes('DingTalk access already granted')))).toHaveLength(1);
      expect(aiCalls('CompleteResourceTokenAuth').length).toBe(completes + 1);
      expect(textOf(await write(client, DAVE, 'dave once'))).toContain('Wrote');
      expect(consentsOf(DAVE)).toBe(1);
    } finally {
      await client.close();
    }
  });

  it("the replica holding a waiting call is killed: the client's retry writes with no second consent", async () => {
    const since = proxy.log.length;
    const client = await connect(ERIN, { era: 'legacy' });
    const home = proxy.log.slice(since).find((e) => e.path === '/mcp' && e.session)!.replica;
    const decisions = () => sandbox.dingtalk.requests.filter((r) => r.api === 'decision').length;
    const decisionsBefore = decisions();
    let link = '';
    client.setRequestHandler('elicitation/create', async (request) => {
      link = (request.params as { url: string }).url;
      // The replica dies while the call waits; the user consents through the others.
      await replicas[home]!.stop('SIGKILL');
      proxy.setUp(home, false);
      const visit = await followAuthorizationLink(link, { oidcSub: ERIN, unionId: union(ERIN) });
      expect(visit.body).toContain('DingTalk access granted');
      return { action: 'accept' };
    });
    try {
      await expect(write(client, ERIN, 'never', 4_000)).rejects.toThrow();
    } finally {
      await client.close().catch(() => {});
    }
    expect(link).not.toBe('');
    const again = await connect(ERIN, { era: 'legacy' });
    try {
      const result = await write(again, ERIN, 'erin after a crash');
      expect(textOf(result)).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(doc(ERIN))?.content).toBe('erin after a crash');
      expect(decisions()).toBe(decisionsBefore + 1);
      expect(consentsOf(ERIN)).toBe(1);
    } finally {
      await again.close();
      await replicas[home]!.start();
      proxy.setUp(home, true);
    }
  });
  it('a rolling deploy (SIGTERM) ends the waiting call at once, but the authorization stays: the consent completes elsewhere and the retry writes', async () => {
    const since = proxy.log.length;
    const client = await connect(HEIDI, { era: 'legacy' });
    const home = proxy.log.slice(since).find((e) => e.path === '/mcp' && e.session)!.replica;
    let link = '';
    let stopped: Promise<void> | undefined;
    client.setRequestHandler('elicitation/create', async (request) => {
      link = (request.params as { url: string }).url;
      proxy.setUp(home, false);
      stopped = replicas[home]!.stop('SIGTERM');
      return { action: 'accept' };
    });
    try {
      const result = await write(client, HEIDI, 'never');
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain('the server is restarting; call the tool again in a moment');
    } finally {
      await client.close().catch(() => {});
    }
    await stopped;
    // The user approves after the replica has gone: another replica completes the authorization it started.
    const visit = await followAuthorizationLink(link, { oidcSub: HEIDI, unionId: union(HEIDI) });
    expect(visit.body).toContain('DingTalk access granted');
    const again = await connect(HEIDI, { era: 'legacy' });
    try {
      expect(textOf(await write(again, HEIDI, 'heidi after a deploy'))).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(doc(HEIDI))?.content).toBe('heidi after a deploy');
      expect(consentsOf(HEIDI)).toBe(1);
    } finally {
      await again.close();
      await replicas[home]!.start();
      proxy.setUp(home, true);
    }
  });
});

describe('limits and faults', () => {
  it('the per-user rate limit holds across the replicas together', async () => {
    const client = await connect(FRANK, { era: 'modern' });
    try {
      const since = proxy.log.length;
      const started = Date.now();
      const outcomes: string[] = [];
      const total = RATE_LIMIT + 30;
      let sent = 0;
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          while (sent < total) {
            sent++;
            // Invalid arguments: answered at once, but counted like any tool call.
            outcomes.push(
              await client.callTool({ name: 'write_dingtalk_doc', arguments: { document: '', content: 'x' } }).then(
                () => 'answered',
                (e: Error) => e.message,
              ),
            );
          }
        }),
      );
      const elapsed = Date.now() - started;
      expect(
        new Set(
          proxy.log
            .slice(since)
            .filter((e) => e.path === '/mcp')
            .map((e) => e.replica),
        ),
      ).toEqual(new Set([0, 1, 2]));
      // Three separate limits would answer all 90; the shared bucket answers 60 plus what refilled meanwhile (one a second).
      const answered = outcomes.filter((o) => o === 'answered').length;
      expect(answered).toBeGreaterThanOrEqual(RATE_LIMIT);
      expect(answered).toBeLessThanOrEqual(RATE_LIMIT + Math.ceil(elapsed / (60_000 / RATE_LIMIT)) + 1);
      expect(answered).toBeLessThan(total);
      expect(outcomes.find((o) => o !== 'answered')).toMatch(/429|Too many tool calls/);
      expect(proxy.log.slice(since).some((e) => e.status === 429)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('Redis restarts mid-run: clear 503s and tool errors, then recovery without losing the waiting authorization', async () => {
    const client = await connect(GRACE, { era: 'modern', urlElicitation: false });
    try {
      const link = linkIn(textOf(await write(client, GRACE, 'x')))!;
      await redis.stop();
      await waitFor(() => replicas.every((r) => r.stderr().includes('Redis unavailable')), 'every replica to notice', 10_000);

      const health = await fetch(`${base}/healthz`);
      const healthText = await health.text();
      expect(health.status).toBe(503);
      expect(JSON.parse(healthText)).toMatchObject({
        status: 'degraded',
        store: { backend: 'redis', status: 'unavailable', endpoint: `redis://127.0.0.1:${redis.port}` },
      });
      expect(healthText).not.toContain(REDIS_PASSWORD);

      const token = await bearer(GRACE);
      const call = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 7,
          method: 'tools/call',
          params: { name: 'write_dingtalk_doc', arguments: { document: doc(GRACE), content: 'y' } },
        }),
      });
      expect(call.status).toBe(503);
      expect(call.headers.get('retry-after')).toBe('5');
      const body = (await call.json()) as { error: { message: string } };
      expect(body.error.message).toMatch(
        /The shared state store \(Redis at redis:\/\/127\.0\.0\.1:\d+\) is unavailable.*Try again in a few seconds\. Nothing was done\./,
      );
      expect(JSON.stringify(body)).not.toContain(REDIS_PASSWORD);
      await expect(write(client, GRACE, 'y')).rejects.toThrow(/503|shared state store/);
      // What needs no shared state keeps working.
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('write_dingtalk_doc');

      const page = await fetch(link, { redirect: 'manual' });
      expect(page.status).toBe(503);
      expect(page.headers.get('retry-after')).toBe('5');
      expect(await page.text()).toContain('Reload this page in 5 seconds');

      await redis.start();
      await waitFor(() => replicas.every((r) => r.stderr().includes('Redis reachable again')), 'every replica to reconnect', 15_000);
      const healthy = await fetch(`${base}/healthz`);
      expect(await healthy.json()).toMatchObject({ status: 'ok', store: { status: 'ready' } });

      const visit = await followAuthorizationLink(link, { oidcSub: GRACE, unionId: union(GRACE) });
      expect(visit.body).toContain('DingTalk access granted');
      expect(textOf(await write(client, GRACE, 'grace after the restart'))).toContain('Wrote');
      expect(sandbox.dingtalk.getDocument(doc(GRACE))?.content).toBe('grace after the restart');
      expect(consentsOf(GRACE)).toBe(1);
    } finally {
      await client.close();
    }
  });

  it("50 users, 2,000 interleaved calls over three replicas: no call ever carries another user's token", async () => {
    const clients = new Map<string, Client>();
    for (const sub of LOAD_USERS) clients.set(sub, await connect(sub, { era: 'modern', urlElicitation: false }));
    try {
      // Each user consents once (links handed out and completed on whichever replica), five browsers at a time.
      for (let i = 0; i < LOAD_USERS.length; i += 5) {
        await Promise.all(
          LOAD_USERS.slice(i, i + 5).map(async (sub) => {
            const link = linkIn(textOf(await write(clients.get(sub)!, sub, 'first')))!;
            const visit = await followAuthorizationLink(link, { oidcSub: sub, unionId: union(sub) });
            expect(visit.body).toContain('DingTalk access granted');
          }),
        );
      }
      const since = sandbox.dingtalk.requests.length;
      const jobs = LOAD_USERS.flatMap((sub) => Array.from({ length: 40 }, (_, j) => ({ sub, j }))).sort((a, b) => a.j - b.j || a.sub.localeCompare(b.sub));
      let next = 0;
      const failures: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < jobs.length) {
            const { sub, j } = jobs[next++]!;
            const result = await write(clients.get(sub)!, sub, `${sub} #${j}`);
            if (!textOf(result).includes('Wrote')) failures.push(`${sub} #${j}: ${textOf(result)}`);
          }
        }),
      );
      // On a loaded machine an emulator call may time out; such a call says so and writes nothing.
      // Anything else (or more than a few) fails the test.
      const unexpected = failures.filter((f) => !/Agent Identity .* failed: NetworkError .*Nothing was written\./.test(f));
      expect(unexpected).toEqual([]);
      expect(failures.length).toBeLessThanOrEqual(jobs.length / 100);
      const writes = sandbox.dingtalk.requests.slice(since).filter((r) => r.api === 'overwriteContent');
      expect(writes.length).toBe(jobs.length - failures.length);
      const crossed = writes.filter((w) => w.unionId !== union(LOAD_USERS.find((s) => doc(s) === w.documentId)!));
      expect(crossed).toEqual([]);
      for (const sub of LOAD_USERS)
        if (!failures.some((f) => f.startsWith(`${sub} #39:`))) expect(sandbox.dingtalk.getDocument(doc(sub))?.content).toBe(`${sub} #39`);
      expect(new Set(proxy.log.filter((e) => e.path === '/mcp').map((e) => e.replica))).toEqual(new Set([0, 1, 2]));
    } finally {
      await Promise.all([...clients.values()].map((c) => c.close()));
    }
  }, 300_000);
});

describe('what Redis holds', () => {
  it('no token, JWT, session, user id or secret, in any key or value', async () => {
    const admin = redis.admin();
    const { keys, text } = await dumpRedis(admin);
    expect(keys.length).toBeGreaterThan(10);
    const secrets = [
      ...bearers,
      ...sandbox.agentIdentity.issuedSecrets(),
      ...sandbox.agentIdentity.sessions().map((s) => s.sessionUri),
      STATE_SECRET,
      sandbox.accessKeySecret,
      REDIS_PASSWORD,
    ];
    expect(secrets.length).toBeGreaterThan(50);
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{5,}\./);
    for (const sub of [...NAMED, ...LOAD_USERS]) expect(text).not.toContain(sub);
    for (const key of keys) expect(key.startsWith('dtmcp:')).toBe(true);
  });
});
