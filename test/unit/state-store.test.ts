/**
 * The shared state store against a real redis-server (and the same contract in memory): atomic
 * single use across replicas, first settlement wins, pub/sub completion events, shared rate limits,
 * sealed values, and what happens while Redis is down or restarting.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { createStateStore } from '../../src/state/index.js';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalStore } from '../../src/local/file-store.js';
import { createMemoryStore } from '../../src/state/memory.js';
import { StoreUnavailableError, type NewPendingRecord, type Settlement, type StateStore } from '../../src/state/types.js';
import { dumpRedis, redisServerAvailable, startRedisServer, type RedisServer } from '../helpers/redis-server.js';

const SECRET = 'replica-shared-secret-0123456789abcdef';
// Any JWT, not just ours: two base64url JSON segments. (The bare letters 'eyJ' are no test: random ciphertext holds them by chance.)
const JWT_SHAPE = /eyJ[\w-]{2,}\.eyJ[\w-]{2,}\./;
const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9.c2lnbmF0dXJlLW9mLXRoZS1qd3Q';
const SESSION_URI = 'sessionuri-secret-0123456789abcdefghij';
const logLines: string[] = [];
const logger = createLogger({ level: 'debug', write: (l) => logLines.push(l) });

if (!redisServerAvailable()) throw new Error('redis-server is not installed: `apt-get install -y redis-server` (.ci/run does it)');

let redis: RedisServer;
const stores: StateStore[] = [];
beforeAll(async () => {
  redis = await startRedisServer({ aclUser: { name: 'dtmcp', password: 'acl-password-Qx7!' } });
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await redis?.close();
});

const localDir = mkdtempSync(join(tmpdir(), 'dtmcp-file-store-'));
afterAll(() => rmSync(localDir, { recursive: true, force: true }));
function fileStore(): StateStore {
  const store = createLocalStore({ dir: join(localDir, 'pending'), secret: SECRET, lingerMs: 60_000, maxPerUser: 3 });
  stores.push(store);
  return store;
}

async function replica(options: { secret?: string; url?: string } = {}): Promise<StateStore> {
  const store = await createStateStore({
    redisUrl: options.url ?? redis.url,
    stateSecret: options.secret ?? SECRET,
    redisKeyPrefix: 'dtmcp:',
    logger,
    lingerMs: 60_000,
    maxPerUser: 3,
    connectWaitMs: 3_000,
  });
  stores.push(store);
  return store;
}

const id = () => randomBytes(18).toString('base64url');
function record(overrides: Partial<NewPendingRecord> = {}): NewPendingRecord {
  const now = Date.now();
  return {
    id: id(),
    user: { kind: 'jwt', jwt: JWT, subject: 'alice@example.com', issuer: 'https://idp.example.com' },
    sessionUri: SESSION_URI,
    stateTag: 'state-tag-of-the-session',
    authorizationUrl: `https://agentidentity.example.com/authorize?session=${SESSION_URI}`,
    createdAt: now,
    expiresAt: now + 600_000,
    ...overrides,
  };
}
const settledEvents = (store: StateStore) => {
  const seen: Array<[string, Settlement]> = [];
  store.pending.onSettled((i, s) => seen.push([i, s]));
  return seen;
};
const eventually = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe.each([
  ['memory', async () => [createMemoryStore({ lingerMs: 60_000, maxPerUser: 3 })]],
  ['redis', async () => [await replica(), await replica()]],
  // Two stores on one folder, as two local copies (or a copy and the pages host) share it.
  ['file', async () => [fileStore(), fileStore()]],
] as const)('pending authorizations (%s)', (backend, make) => {
  let a: StateStore;
  let b: StateStore;
  beforeAll(async () => {
    const made = await make();
    a = made[0]!;
    b = made[1] ?? a;
  });

  it('a record written by one replica reads the same on another', async () => {
    const r = record();
    expect(await a.pending.insert(r)).toEqual([]);
    expect(await b.pending.get(r.id)).toEqual({ ...r, callbackConsumed: false });
    expect(await b.pending.get(id())).toBeUndefined();
  });

  it('the callback is claimed exactly once, however many replicas race for it', async () => {
    const r = record();
    await a.pending.insert(r);
    const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).pending.claimCallback(r.id)));
    expect(claims.filter((c) => c === 'claimed')).toHaveLength(1);
    expect(claims.filter((c) => c === 'used')).toHaveLength(19);
    expect((await a.pending.get(r.id))?.callbackConsumed).toBe(true);
    expect(await b.pending.claimCallback(id())).toBe('missing');
  });

  it('the first settlement wins and every replica hears of it', async () => {
    // A user of its own: a 'completed' would also complete this user's other waiting links.
    const r = record({ user: { kind: 'userId', userId: `gina-${id()}` } });
    await a.pending.insert(r);
    const heardByB = settledEvents(b);
    const [first, second] = await Promise.all([a.pending.settle(r.id, 'denied', 'DingTalk answered "access_denied"'), b.pending.settle(r.id, 'completed')]);
    expect([first, second].filter((x) => x.length === 1)).toHaveLength(1);
    const winner = first.length === 1 ? 'denied' : 'completed';
    await eventually(() => heardByB.some(([i]) => i === r.id), 'the settlement event');
    expect(heardByB.filter(([i]) => i === r.id)).toEqual([[r.id, winner]]);
    expect((await b.pending.get(r.id))?.settlement).toBe(winner);
    if (winner === 'denied') expect((await b.pending.get(r.id))?.failureMessage).toBe('DingTalk answered "access_denied"');
    expect(await b.pending.claimCallback(r.id)).toBe('used');
  });

  it("a completion completes the same user's other waiting links, not other users'", async () => {
    const user = { kind: 'userId', userId: `carol-${id()}` } as const;
    const [one, two] = [record({ user }), record({ user })];
    const other = record({ user: { kind: 'userId', userId: `dave-${id()}` } });
    for (const r of [one, two, other]) await a.pending.insert(r);
    const heard = settledEvents(b);
    expect((await b.pending.settle(one.id, 'completed')).sort()).toEqual([one.id, two.id].sort());
    expect(await a.pending.get(two.id)).toMatchObject({ settlement: 'completed', completedBySibling: true });
    expect((await a.pending.get(other.id))?.settlement).toBeUndefined();
    await eventually(() => heard.length >= 2, 'both events');
    expect(heard.map(([i]) => i).sort()).toEqual([one.id, two.id].sort());
  });

  it('past its lifetime a record reads as expired and its callback is refused', async () => {
    const r = record({ expiresAt: Date.now() - 1 });
    await a.pending.insert(r);
    expect((await b.pending.get(r.id))?.settlement).toBe('expired');
    expect(await b.pending.claimCallback(r.id)).toBe('missing');
  });

  it("a user's links beyond the limit retire the oldest, announced to every replica", async () => {
    const user = { kind: 'userId', userId: `erin-${id()}` } as const;
    const heard = settledEvents(b);
    const rs = [record({ user }), record({ user }), record({ user }), record({ user })];
    const retired: string[][] = [];
    for (const r of rs) retired.push(await a.pending.insert(r));
    expect(retired).toEqual([[], [], [], [rs[0]!.id]]);
    await eventually(() => heard.some(([i]) => i === rs[0]!.id), 'the retirement event');
    expect((await b.pending.get(rs[0]!.id))?.settlement).toBe('expired');
  });

  it('a link opened again points the record at a fresh session, only while unsettled', async () => {
    const r = record();
    await a.pending.insert(r);
    expect(await b.pending.replaceSession(r.id, 'fresh-session', 'https://agentidentity.example.com/authorize?session=fresh', 'fresh-tag')).toBe(true);
    expect(await a.pending.get(r.id)).toMatchObject({
      sessionUri: 'fresh-session',
      stateTag: 'fresh-tag',
      authorizationUrl: 'https://agentidentity.example.com/authorize?session=fresh',
    });
    await a.pending.settle(r.id, 'completed');
    expect(await b.pending.replaceSession(r.id, 'later', 'https://x.example.com', 'later-tag')).toBe(false);
  });

  it('once a callback claimed the record, a link opened again cannot point it at another session', async () => {
    const r = record();
    await a.pending.insert(r);
    expect(await a.pending.claimCallback(r.id)).toBe('claimed');
    expect(await b.pending.replaceSession(r.id, 'fresh-session', 'https://agentidentity.example.com/authorize?session=fresh', 'fresh-tag')).toBe(false);
    expect(await a.pending.get(r.id)).toMatchObject({ sessionUri: SESSION_URI, stateTag: 'state-tag-of-the-session' });
  });

  it('a link\'s first visit is granted to one replica or process only; later visits are "again", a settled link "missing"', async () => {
    const r = record();
    await a.pending.insert(r);
    const visits = await Promise.all([a.pending.markLinkOpened(r.id), b.pending.markLinkOpened(r.id), a.pending.markLinkOpened(r.id)]);
    expect(visits.filter((v) => v === 'first')).toHaveLength(1);
    expect(visits.filter((v) => v === 'again')).toHaveLength(2);
    expect((await a.pending.get(r.id))?.reissued).toBeFalsy();
    await b.pending.replaceSession(r.id, 'fresh-session', 'https://agentidentity.example.com/authorize?session=fresh', 'fresh-tag');
    expect(await a.pending.get(r.id)).toMatchObject({ sessionUri: 'fresh-session', reissued: true });
    await a.pending.settle(r.id, 'completed');
    expect(await b.pending.markLinkOpened(r.id)).toBe('missing');
    expect(await a.pending.markLinkOpened(id())).toBe('missing');
  });

  it('delete forgets the record everywhere', async () => {
    const r = record();
    await a.pending.insert(r);
    await b.pending.delete(r.id);
    expect(await a.pending.get(r.id)).toBeUndefined();
  });

  // Rate limits and sign-in once-marks serve HTTP mode only; the local file store keeps them per process.
  it.skipIf(backend === 'file')('rate limits hold across replicas together', async () => {
    const key = `uid:frank-${id()}`;
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await (i % 2 ? a : b).rateLimits.take(key, 1, 5, 60_000));
    expect(results.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    expect(results[5]).toBeGreaterThan(0);
    expect(results[5]).toBeLessThanOrEqual(12_000);
    expect(await a.rateLimits.take(`uid:other-${id()}`, 1, 5, 60_000)).toBe(0);
  });

  it.skipIf(backend === 'file')('a once-mark is granted to one replica only', async () => {
    const value = id();
    const grants = await Promise.all([
      a.once.claim('oidc-login', value, 60_000),
      b.once.claim('oidc-login', value, 60_000),
      a.once.claim('oidc-login', value, 60_000),
    ]);
    expect(grants.filter(Boolean)).toHaveLength(1);
    expect(await b.once.claim('other-purpose', value, 60_000)).toBe(true);
  });

  it.runIf(backend === 'file')('nothing in the files is a token, a session or a user id in clear, and every file is 0600', async () => {
    const dir = join(localDir, 'pending');
    const names = readdirSync(dir);
    expect(names.some((n) => n.endsWith('.rec'))).toBe(true);
    expect(names.some((n) => n.endsWith('.done'))).toBe(true);
    const text = names.map((n) => `${n}\n${readFileSync(join(dir, n), 'utf8')}`).join('\n');
    for (const secret of [JWT, SESSION_URI, 'alice@example.com', 'carol-', SECRET, 'access_denied']) expect(text).not.toContain(secret);
    expect(JWT).toMatch(JWT_SHAPE);
    expect(text).not.toMatch(JWT_SHAPE);
    const { statSync } = await import('node:fs');
    for (const n of names) expect(statSync(join(dir, n)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it.runIf(backend === 'redis')('nothing in Redis is a token, a session, a user id or the secret in clear', async () => {
    const admin = redis.admin();
    const { keys, text } = await dumpRedis(admin);
    expect(keys.length).toBeGreaterThan(5);
    for (const secret of [JWT, SESSION_URI, 'alice@example.com', 'carol-', 'frank-', SECRET, 'access_denied']) expect(text).not.toContain(secret);
    expect(JWT).toMatch(JWT_SHAPE);
    expect(text).not.toMatch(JWT_SHAPE);
    for (const key of keys) expect(key.startsWith('dtmcp:')).toBe(true);
    // Every key expires, except the one index of all records (whose entries are trimmed by time).
    for (const key of keys) if (key !== 'dtmcp:pending') expect(await admin.pttl(key)).toBeGreaterThan(0);
  });
});

describe('Redis specifics', () => {
  it('a record sealed under another secret does not open (and the key name carries no user id)', async () => {
    const a = await replica();
    const stranger = await replica({ secret: 'a-different-secret-0123456789abcdefgh' });
    const r = record();
    await a.pending.insert(r);
    expect(await stranger.pending.get(r.id)).toBeUndefined();
    expect(logLines.join('\n')).toContain("does not open with this replica's state secret");
  });

  it('refuses to start with a wrong Redis password, saying so without echoing it', async () => {
    const wrong = redis.url.replace('acl-password-Qx7!', 'not-the-password-42');
    const error = await createStateStore({ redisUrl: wrong, stateSecret: SECRET, redisKeyPrefix: 'dtmcp:', logger, lingerMs: 1000, maxPerUser: 3 }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).toMatch(/refused this server's credentials.*DINGTALK_MCP_REDIS_URL/);
    expect(error?.message).not.toContain('not-the-password-42');
  });

  it('health names the endpoint, never the user or password', async () => {
    const store = await replica();
    const health = store.health();
    expect(health).toEqual({ backend: 'redis', status: 'ready', endpoint: `redis://127.0.0.1:${redis.port}`, tls: false });
    expect(JSON.stringify(health)).not.toContain('acl-password');
  });

  it('Redis down: clear errors at once, then recovery with the data it persisted and a resync', async () => {
    const persistent = await startRedisServer({ password: 'pw-for-restart-test', persistent: true });
    try {
      const a = await replica({ url: persistent.url });
      const b = await replica({ url: persistent.url });
      const r = record();
      await a.pending.insert(r);
      let resyncs = 0;
      b.pending.onResync(() => resyncs++);

      await persistent.stop();
      await eventually(() => a.health().status === 'unavailable', 'the store to notice');
      const started = Date.now();
      const error = await a.pending.get(r.id).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - started).toBeLessThan(2_000); // fails fast, no hanging tool call
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toMatch(
        /^The shared state store \(Redis at redis:\/\/127\.0\.0\.1:\d+\) is unavailable: .*Try again in a few seconds\.$/,
      );
      expect((error as Error).message).not.toContain('pw-for-restart-test');
      await expect(a.rateLimits.take('k', 1, 5, 60_000)).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(a.health()).toMatchObject({ backend: 'redis', status: 'unavailable' });
      expect(JSON.stringify(a.health())).not.toContain('pw-for-restart-test');

      await persistent.start();
      await eventually(() => a.health().status === 'ready' && b.health().status === 'ready', 'reconnection');
      await eventually(() => resyncs > 0, 'the subscriber to resync');
      expect((await b.pending.get(r.id))?.sessionUri).toBe(SESSION_URI);
      // Events flow again after the reconnect.
      const heard = settledEvents(b);
      await a.pending.settle(r.id, 'completed');
      await eventually(() => heard.length === 1, 'the settlement after the restart');
      expect(logLines.join('\n')).not.toContain('pw-for-restart-test');
    } finally {
      await persistent.close();
    }
  });
});
