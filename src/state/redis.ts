import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { UserIdentity } from '../identity/types.js';
import { userKey } from '../identity/types.js';
import type { Logger } from '../log.js';
import { describeRedisUrl, passwordOf } from './redis-url.js';
import { Sealer } from './sealer.js';
import {
  StoreUnavailableError,
  type NewPendingRecord,
  type OnceMarks,
  type PendingRecord,
  type PendingRecords,
  type PendingRecordsOptions,
  type RateLimits,
  type Settlement,
  type StateStore,
  type StoreHealth,
} from './types.js';

/**
 * The shared store for several replicas: Redis (ApsaraDB for Redis / Tair in production). Key
 * schema, TTLs and sizes: docs/deployment-replicas.md. Single use and first-settlement-wins are Lua
 * scripts (atomic on the server, whichever replica sends them); settlements are announced on one
 * pub/sub channel that every replica subscribes to. Values that could identify or impersonate a
 * user are sealed (AES-256-GCM, see sealer.ts); key names carry keyed hashes only.
 *
 * Needs a standalone or master-replica Redis (scripts touch the keys of one user together).
 */
export interface RedisStoreOptions extends PendingRecordsOptions {
  url: string;
  /** DINGTALK_MCP_STATE_SECRET: the same on every replica. */
  secret: string;
  /** Prefix of every key and channel, so deployments can share one Redis. */
  prefix: string;
  logger: Logger;
  /** Milliseconds to wait for the first connection before start-up carries on without it. */
  connectWaitMs?: number;
}

const SETTLEMENTS = new Set<Settlement>(['completed', 'denied', 'expired', 'failed']);

// KEYS[1] record, KEYS[2] the user's index, KEYS[3] all records by expiry.
// ARGV: id, sealed data, expiresAt, removeAt, maxPerUser, (unused), record-key prefix, user name, channel, now
const INSERT = `
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[10])
local live = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local k = ARGV[7] .. id
  if redis.call('EXISTS', k) == 0 then
    redis.call('ZREM', KEYS[2], id)
  elseif redis.call('HEXISTS', k, 's') == 0 and tonumber(redis.call('HGET', k, 'e')) > tonumber(ARGV[10]) then
    table.insert(live, id)
  end
end
local retired = {}
for i = 1, #live - tonumber(ARGV[5]) + 1 do
  redis.call('HSET', ARGV[7] .. live[i], 's', 'expired')
  redis.call('PUBLISH', ARGV[9], live[i] .. ' expired')
  table.insert(retired, live[i])
end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'e', ARGV[3], 'u', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
-- Oldest first by the server's clock in microseconds (records of one millisecond keep their order).
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000000 + tonumber(t[2]), ARGV[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return retired
`;

// KEYS[1] record. ARGV: claimant. 1 claimed, 0 used, -1 missing.
const CLAIM = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local s = redis.call('HGET', KEYS[1], 's')
if s == 'expired' then return -1 end
if s then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'e')) <= tonumber(ARGV[2]) then return -1 end
return redis.call('HSETNX', KEYS[1], 'c', ARGV[1])
`;

// KEYS[1] record. ARGV: settlement, sealed failure or '', record-key prefix, user-index prefix, channel, id.
const SETTLE = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 's') == 1 then return {} end
redis.call('HSET', KEYS[1], 's', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'f', ARGV[2]) end
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. ARGV[1])
local out = {ARGV[6]}
if ARGV[1] == 'completed' then
  local index = ARGV[4] .. redis.call('HGET', KEYS[1], 'u')
  for _, sib in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local k = ARGV[3] .. sib
    if sib ~= ARGV[6] and redis.call('EXISTS', k) == 1 and redis.call('HEXISTS', k, 's') == 0 then
      redis.call('HSET', k, 's', 'completed', 'sib', '1')
      redis.call('PUBLISH', ARGV[5], sib .. ' completed')
      table.insert(out, sib)
    end
  end
end
return out
`;

// KEYS[1] record. ARGV: sealed data. Only while unsettled and unclaimed.
const REPLACE = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 's') == 1 or redis.call('HEXISTS', KEYS[1], 'c') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'r', '1')
return 1
`;

// KEYS[1] record. ARGV: now. 1 first visit, 0 a later one, -1 missing (unknown, settled or expired).
const OPENED = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 's') == 1 then return -1 end
if tonumber(redis.call('HGET', KEYS[1], 'e')) <= tonumber(ARGV[1]) then return -1 end
return redis.call('HSETNX', KEYS[1], 'o', '1')
`;

// KEYS[1] bucket. ARGV: limit, windowMs, n. The server's clock, so replicas' clocks do not matter.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rate = limit / window
local b = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = tonumber(b[1]) or limit
local at = tonumber(b[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= n then tokens = tokens - n else wait = math.ceil((n - tokens) / rate) end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
redis.call('PEXPIRE', KEYS[1], window)
return wait
`;

interface SealedRecord {
  user: UserIdentity;
  sessionUri: string;
  stateTag?: string;
  authorizationUrl: string;
  createdAt: number;
  purpose?: string;
  rung?: 'elicitation' | 'link';
  client?: string;
}

/** What the consent pages show about a record (src/browser/routes.ts): never a secret. */
const about = (r: Pick<PendingRecord, 'purpose' | 'rung' | 'client'>) => ({
  ...(r.purpose !== undefined ? { purpose: r.purpose } : {}),
  ...(r.rung !== undefined ? { rung: r.rung } : {}),
  ...(r.client !== undefined ? { client: r.client } : {}),
});

export async function createRedisStore(options: RedisStoreOptions): Promise<StateStore> {
  const { prefix, logger } = options;
  const endpoint = describeRedisUrl(options.url);
  const password = passwordOf(options.url);
  const sealer = new Sealer(options.secret);
  const replica = createHash('sha256').update(`${process.pid}:${Math.random()}`).digest('hex').slice(0, 8);
  const log = logger.child({ component: 'state-store' });

  let problem: string | undefined;
  let everReady = false;
  const safe = (message: string) => (password ? message.split(password).join('[redacted]') : message);
  const common = {
    // Reconnect forever with capped exponential backoff plus jitter.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5_000) + Math.floor(Math.random() * 200),
    connectTimeout: 5_000,
    lazyConnect: true,
  };
  // Commands fail fast while disconnected (a tool call gets a clear error instead of hanging).
  const main = new Redis(options.url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 3_000 });
  const subscriber = new Redis(options.url, { ...common, autoResubscribe: true });

  const channel = `${prefix}settled`;
  const settledListeners = new Set<(id: string, s: Settlement) => void>();
  const resyncListeners = new Set<() => void>();

  main.on('error', (e: Error) => {
    const message = safe(e.message);
    if (message !== problem) log.warn('Redis unavailable; reconnecting with backoff', { endpoint: endpoint.text, error: message });
    problem = message;
  });
  main.on('ready', () => {
    if (problem) log.info('Redis reachable again', { endpoint: endpoint.text });
    problem = undefined;
    everReady = true;
  });
  subscriber.on('error', () => {}); // reported through `main`
  let subscribedOnce = false;
  subscriber.on('ready', () => {
    // After a reconnect, settlements published meanwhile were missed: once subscribed again
    // (SUBSCRIBE is idempotent; its reply means we listen), waiters look again.
    if (!subscribedOnce) return;
    subscriber.subscribe(channel).then(
      () => {
        for (const l of [...resyncListeners]) l();
      },
      () => {},
    );
  });
  subscriber.on('message', (ch: string, message: string) => {
    if (ch !== channel) return;
    const [id, settlement] = message.split(' ');
    if (!id || !SETTLEMENTS.has(settlement as Settlement)) return;
    for (const l of [...settledListeners]) l(id, settlement as Settlement);
  });

  const unavailable = (e: unknown): StoreUnavailableError => {
    if (e instanceof StoreUnavailableError) return e;
    const message = safe((e as Error)?.message ?? String(e));
    return new StoreUnavailableError(`The shared state store (Redis at ${endpoint.text}) is unavailable: ${message}. Try again in a few seconds.`);
  };
  const scripts = new Map<string, string>();
  async function run(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    let sha = scripts.get(script);
    if (!sha) scripts.set(script, (sha = createHash('sha1').update(script).digest('hex')));
    try {
      return await main.evalsha(sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!/NOSCRIPT/.test((e as Error).message)) throw unavailable(e);
      try {
        return await main.eval(script, keys.length, ...keys, ...args);
      } catch (e2) {
        throw unavailable(e2);
      }
    }
  }
  const call = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (e) {
      throw unavailable(e);
    }
  };

  const recordKey = (id: string) => `${prefix}pa:${id}`;
  const userIndexPrefix = `${prefix}pu:`;
  const allKey = `${prefix}pending`;

  const pending: PendingRecords = {
    async insert(record: NewPendingRecord): Promise<string[]> {
      const key = recordKey(record.id);
      const name = sealer.name(userKey(record.user));
      const sealed = sealer.seal(
        JSON.stringify({
          user: record.user,
          sessionUri: record.sessionUri,
          stateTag: record.stateTag,
          authorizationUrl: record.authorizationUrl,
          createdAt: record.createdAt,
          ...about(record),
        } satisfies SealedRecord),
        key,
      );
      const removeAt = record.expiresAt + options.lingerMs;
      const retired = await run(
        INSERT,
        [key, userIndexPrefix + name, allKey],
        [record.id, sealed, record.expiresAt, removeAt, options.maxPerUser, record.createdAt, `${prefix}pa:`, name, channel, Date.now()],
      );
      return (retired as string[]) ?? [];
    },

    async get(id: string): Promise<PendingRecord | undefined> {
      const key = recordKey(id);
      const h = await call(() => main.hgetall(key));
      if (!h.d || !h.e) return undefined;
      const opened = sealer.open(h.d, key);
      if (!opened) {
        log.warn("security: a pending authorization in Redis does not open with this replica's state secret; ignored", { pending: id.slice(0, 6) });
        return undefined;
      }
      const data = JSON.parse(opened) as SealedRecord;
      const expiresAt = Number(h.e);
      const settlement = SETTLEMENTS.has(h.s as Settlement) ? (h.s as Settlement) : expiresAt <= Date.now() ? 'expired' : undefined;
      return {
        id,
        ...data,
        expiresAt,
        callbackConsumed: h.c !== undefined,
        ...(settlement ? { settlement } : {}),
        ...(h.f ? { failureMessage: sealer.open(h.f, `${key}:f`) } : {}),
        ...(h.sib ? { completedBySibling: true } : {}),
        ...(h.r ? { reissued: true } : {}),
      };
    },

    async replaceSession(id: string, sessionUri: string, authorizationUrl: string, stateTag: string): Promise<boolean> {
      const current = await pending.get(id);
      if (!current || current.settlement || current.callbackConsumed) return false;
      const key = recordKey(id);
      const sealed = sealer.seal(
        JSON.stringify({ user: current.user, sessionUri, stateTag, authorizationUrl, createdAt: current.createdAt, ...about(current) } satisfies SealedRecord),
        key,
      );
      return (await run(REPLACE, [key], [sealed])) === 1;
    },

    async markLinkOpened(id: string) {
      const r = await run(OPENED, [recordKey(id)], [Date.now()]);
      return r === 1 ? 'first' : r === 0 ? 'again' : 'missing';
    },

    async claimCallback(id: string) {
      const r = await run(CLAIM, [recordKey(id)], [replica, Date.now()]);
      return r === 1 ? 'claimed' : r === 0 ? 'used' : 'missing';
    },

    async settle(id: string, settlement: Settlement, failureMessage?: string): Promise<string[]> {
      const key = recordKey(id);
      const sealedFailure = failureMessage ? sealer.seal(failureMessage, `${key}:f`) : '';
      return ((await run(SETTLE, [key], [settlement, sealedFailure, `${prefix}pa:`, userIndexPrefix, channel, id])) as string[]) ?? [];
    },

    async delete(id: string): Promise<void> {
      const key = recordKey(id);
      const name = await call(() => main.hget(key, 'u'));
      await call(() => {
        const multi = main.multi().del(key).zrem(allKey, id);
        if (name) multi.zrem(userIndexPrefix + name, id);
        return multi.exec();
      });
    },

    onSettled(listener) {
      settledListeners.add(listener);
      return () => settledListeners.delete(listener);
    },
    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
    async count(): Promise<number> {
      return call(async () => {
        await main.zremrangebyscore(allKey, '-inf', Date.now());
        return main.zcard(allKey);
      });
    },
  };

  const rateLimits: RateLimits = {
    async take(key: string, n: number, limit: number, windowMs: number): Promise<number> {
      return Number(await run(TAKE, [`${prefix}rl:${sealer.name(key)}`], [limit, windowMs, n]));
    },
  };

  const once: OnceMarks = {
    async claim(purpose: string, value: string, ttlMs: number): Promise<boolean> {
      const r = await call(() => main.set(`${prefix}once:${purpose}:${sealer.name(value)}`, replica, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'));
      return r === 'OK';
    },
  };

  // Start-up: wait a little for Redis; refuse to start on a wrong password or user (that never heals),
  // carry on (serving clear 503s, reconnecting) when it is merely unreachable.
  const firstConnect = Promise.all([
    main.connect(),
    subscriber
      .connect()
      .then(() => subscriber.subscribe(channel))
      .then(() => {
        subscribedOnce = true;
      }),
  ]);
  firstConnect.catch(() => {});
  const waited = await Promise.race([
    firstConnect.then(
      () => 'ready' as const,
      (e: Error) => e,
    ),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), options.connectWaitMs ?? 5_000).unref()),
  ]);
  const refusal = [problem, waited instanceof Error ? safe(waited.message) : undefined].find(
    (m) => m && /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i.test(m),
  );
  if (refusal) {
    main.disconnect();
    subscriber.disconnect();
    throw new Error(`Redis at ${endpoint.text} refused this server's credentials (${refusal}): check the user and password in DINGTALK_MCP_REDIS_URL.`);
  }
  if (waited !== 'ready') {
    log.error('Redis not reachable at start-up; serving anyway and reconnecting with backoff (tool calls that need it get a clear error)', {
      endpoint: endpoint.text,
      error: problem ?? (waited instanceof Error ? safe(waited.message) : 'timed out'),
    });
    // A first connection that failed outright is retried by ioredis itself only after a successful one; make sure it keeps trying.
    if (waited instanceof Error) void keepConnecting(main, subscriber, channel, () => (subscribedOnce = true));
  } else {
    log.info('shared state store: Redis', { endpoint: endpoint.text, replica });
  }

  return {
    backend: 'redis',
    pending,
    rateLimits,
    once,
    health(): StoreHealth {
      const status = main.status === 'ready' ? 'ready' : everReady || problem ? 'unavailable' : 'connecting';
      return { backend: 'redis', status, endpoint: endpoint.text, tls: endpoint.tls, ...(status !== 'ready' && problem ? { problem } : {}) };
    },
    async close() {
      settledListeners.clear();
      resyncListeners.clear();
      await Promise.allSettled([main.quit(), subscriber.quit()]);
      main.disconnect();
      subscriber.disconnect();
    },
  };
}

/** ioredis reconnects after a lost connection on its own; a first connect that failed is ours to repeat. */
async function keepConnecting(main: Redis, subscriber: Redis, channel: string, onSubscribed: () => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (main.status === 'end' || main.status === 'wait') await main.connect().catch(() => {});
    if (subscriber.status === 'end' || subscriber.status === 'wait')
      await subscriber
        .connect()
        .then(() => subscriber.subscribe(channel))
        .then(onSubscribed, () => {});
    if (main.status === 'ready' && subscriber.status === 'ready') return;
    await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** Math.min(attempt, 6), 5_000)).unref());
  }
}
