/**
 * Several replicas on one Redis, on this machine, in one run:
 *   - the added latency per tool call of the Redis round trips (1 replica in memory vs 1 replica on Redis),
 *   - throughput of 1 replica against 2 replicas on one Redis (clients split over both),
 *   - Redis commands per steady-state call (INFO commandstats),
 *   - what one pending authorization costs in Redis memory.
 * Everything (emulators, Redis, replicas, clients) shares this machine's cores, so the 2-replica figure
 * says what sharing costs more than what a second machine would add.
 * Needs redis-server on PATH. Run: npm run build && node dist/bench/replicas.js
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Redis } from 'ioredis';
import { followAuthorizationLink } from '../examples/shared/browser.js';
import { freePort, startSandbox, type Sandbox } from '../src/sandbox/index.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 400);
const USERS = ['alice-1001', 'bob-2002', 'carol-3003', 'dave-4004'];
const PARALLEL = 8;
const SECRET = 'bench-state-secret-0123456789abcdef0123';
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

async function startRedis(): Promise<{ url: string; admin: Redis; close(): void }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const admin = new Redis(port, '127.0.0.1', { lazyConnect: true });
  admin.on('error', () => {});
  for (let i = 0; ; i++) {
    try {
      await admin.connect();
      break;
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url: `redis://127.0.0.1:${port}`, admin, close: () => (admin.disconnect(), child.kill()) };
}

async function startServer(sandbox: Sandbox, port: number, publicUrl: string, env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [CLI, '--transport', 'http', '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: sandbox.serverEnv(publicUrl, {
      DINGTALK_MCP_PUBLIC_URL_PROXIED: '1',
      DINGTALK_MCP_RATE_LIMIT: '100000',
      DINGTALK_MCP_LOG_LEVEL: 'warn',
      DINGTALK_MCP_STATE_SECRET: SECRET,
      ...env,
    }),
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
    const timer = setInterval(
      () =>
        fetch(`${url}/healthz`).then(
          (r) => r.ok && (clearInterval(timer), resolve()),
          () => {},
        ),
      100,
    );
  });
  return { url, child };
}
const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGTERM'))));

async function connect(sandbox: Sandbox, url: string, sub: string, i: number): Promise<Client> {
  const client = new Client({ name: `bench-${sub}`, version: '1' }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: 'auto' } });
  client.setRequestHandler('elicitation/create', async (request) => {
    await followAuthorizationLink((request.params as { url: string }).url, { oidcSub: sub, unionId: sandbox.dingtalk.users[i % 2]!.unionId });
    return { action: 'accept' };
  });
  const bearer = await sandbox.oidc!.mintAccessToken({ sub });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
  return client;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const portA = await freePort();
  const portB = await freePort();
  const base = `http://127.0.0.1:${portA}`;
  const sandbox = await startSandbox({
    callbackUrl: `${base}/callback`,
    oidc: { loginRedirectUri: `${base}/login/callback`, users: [...USERS, 'pending-user'].map((sub) => ({ sub, name: sub })) },
  });
  const args = { document: sandbox.sampleDocumentId, content: '# bench\n\n' + 'lorem ipsum '.repeat(200) };

  /** Calls per second and mean latency over `clients`, `parallel` in flight. */
  const measure = async (clients: Client[], parallel: number) => {
    for (const c of clients) for (let i = 0; i < 10; i++) await c.callTool({ name: 'write_dingtalk_doc', arguments: args }, { timeout: 60_000 });
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: parallel }, async (_, lane) => {
        while (next < CALLS) {
          next++;
          const r = await clients[lane % clients.length]!.callTool({ name: 'write_dingtalk_doc', arguments: args });
          if (r.isError) throw new Error('a call failed in the bench');
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { rate: CALLS / seconds, latencyMs: (seconds * 1000 * parallel) / CALLS };
  };
  // Commands the replicas send (not those a script runs inside Redis, which commandstats counts too).
  const SENT = new Set(['evalsha', 'eval', 'hgetall', 'hget', 'set', 'multi', 'exec', 'del', 'zrem', 'zremrangebyscore', 'zcard', 'subscribe', 'publish']);
  const commands = async () => {
    const stats = await redis.admin.info('commandstats');
    return [...stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)].reduce((n, m) => n + (SENT.has(m[1]!) ? Number(m[2]) : 0), 0);
  };

  // 1 replica in memory (the baseline) and 1 replica on Redis, alternating on the same port (the vault
  // keeps the consents); the best of three rounds each, since this machine's cores are shared.
  const results: Record<string, { rate: number; latencyMs: number }> = {};
  const best = (key: string, m: { rate: number; latencyMs: number }) => {
    if (!results[key] || results[key]!.rate < m.rate) results[key] = m;
  };
  let commandsPerCall = 0;
  for (let round = 0; round < 3; round++) {
    for (const mode of ['memory', 'redis'] as const) {
      const server = await startServer(sandbox, portA, base, mode === 'redis' ? { DINGTALK_MCP_REDIS_URL: redis.url } : {});
      const clients = await Promise.all(USERS.map((sub, i) => connect(sandbox, server.url, sub, i)));
      best(`${mode}-seq`, await measure(clients.slice(0, 1), 1));
      const before = await commands();
      best(`${mode}-par`, await measure(clients, PARALLEL));
      if (mode === 'redis') commandsPerCall = ((await commands()) - before) / (CALLS + 10 * USERS.length);
      await Promise.allSettled(clients.map((c) => c.close()));
      await stop(server.child);
    }
  }

  // One Redis round trip as the server makes it (the rate-limit script), timed alone.
  const { createStateStore } = await import('../src/state/index.js');
  const { silentLogger } = await import('../src/log.js');
  const store = await createStateStore({
    redisUrl: redis.url,
    stateSecret: SECRET,
    redisKeyPrefix: 'dtmcp:',
    logger: silentLogger,
    lingerMs: 60_000,
    maxPerUser: 5,
  });
  for (let i = 0; i < 200; i++) await store.rateLimits.take('uid:bench', 1, 1e9, 60_000);
  const rttStarted = process.hrtime.bigint();
  for (let i = 0; i < 2000; i++) await store.rateLimits.take('uid:bench', 1, 1e9, 60_000);
  const roundTripMs = Number(process.hrtime.bigint() - rttStarted) / 1e6 / 2000;
  await store.close();

  // 2 replicas on one Redis, clients split over both (best of three passes).
  const a = await startServer(sandbox, portA, base, { DINGTALK_MCP_REDIS_URL: redis.url });
  const b = await startServer(sandbox, portB, base, { DINGTALK_MCP_REDIS_URL: redis.url });
  const clients = await Promise.all(USERS.map((sub, i) => connect(sandbox, i % 2 ? b.url : a.url, sub, i)));
  for (let round = 0; round < 3; round++) best('two-par', await measure(clients, PARALLEL));

  // What pending authorizations cost in Redis: 50 links handed out and left waiting.
  const memoryBefore = Number(/used_memory:(\d+)/.exec(await redis.admin.info('memory'))![1]);
  const waiting = new Client({ name: 'bench-pending', version: '1' }, { capabilities: {}, versionNegotiation: { mode: 'auto' } });
  await waiting.connect(
    new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${await sandbox.oidc!.mintAccessToken({ sub: 'pending-user' })}` } },
    }),
  );
  const PENDING = 50;
  // One user holds at most 5 waiting links; this measures the per-record cost with 5 live and the rest retired.
  for (let i = 0; i < PENDING; i++) await waiting.callTool({ name: 'write_dingtalk_doc', arguments: args });
  const memoryAfter = Number(/used_memory:(\d+)/.exec(await redis.admin.info('memory'))![1]);
  const recordKeys = await redis.admin.keys('dtmcp:pa:*');
  const recordBytes = Number(await redis.admin.call('MEMORY', 'USAGE', recordKeys[0]!));
  const ttl = await redis.admin.pttl(recordKeys[0]!);
  await waiting.close();

  const r = results as Record<string, { rate: number; latencyMs: number }>;
  const added = r['redis-seq']!.latencyMs - r['memory-seq']!.latencyMs;
  process.stdout.write(
    `Replicas on one Redis, this machine (${CALLS} calls each, token cached, 2.4 KB of markdown; ${USERS.length} users, ${PARALLEL} in flight):\n` +
      `  1 replica, in memory, sequential                 ${r['memory-seq']!.rate.toFixed(0)} calls/s  ${r['memory-seq']!.latencyMs.toFixed(2)} ms/call  (baseline)\n` +
      `  1 replica, Redis, sequential                     ${r['redis-seq']!.rate.toFixed(0)} calls/s  ${r['redis-seq']!.latencyMs.toFixed(2)} ms/call  (added ${added.toFixed(2)} ms/call, ratio ${(r['redis-seq']!.latencyMs / r['memory-seq']!.latencyMs).toFixed(2)}x)\n` +
      `  1 replica, in memory, ${PARALLEL} in flight              ${r['memory-par']!.rate.toFixed(0)} calls/s\n` +
      `  1 replica, Redis, ${PARALLEL} in flight                  ${r['redis-par']!.rate.toFixed(0)} calls/s  (ratio to memory ${(r['redis-par']!.rate / r['memory-par']!.rate).toFixed(2)}x)\n` +
      `  2 replicas, one Redis, ${PARALLEL} in flight             ${r['two-par']!.rate.toFixed(0)} calls/s  (ratio to 1 replica on Redis ${(r['two-par']!.rate / r['redis-par']!.rate).toFixed(2)}x)\n` +
      `  Redis round trips per steady-state tool call     ${commandsPerCall.toFixed(2)} (one rate-limit script; ${roundTripMs.toFixed(3)} ms each, timed alone)\n` +
      `  one pending authorization in Redis               ${recordBytes} B (MEMORY USAGE of its hash; TTL ${Math.round(ttl / 1000)} s), ` +
      `${Math.round((memoryAfter - memoryBefore) / PENDING)} B of used_memory per link handed out\n`,
  );
  await Promise.allSettled(clients.map((c) => c.close()));
  await Promise.all([stop(a.child), stop(b.child)]);
  await sandbox.close();
  redis.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
