import type { Logger } from '../log.js';
import { createMemoryStore } from './memory.js';
import type { PendingRecordsOptions, StateStore } from './types.js';

export type { StateStore, StoreHealth, PendingRecord, PendingRecords, NewPendingRecord, Settlement, RateLimits, OnceMarks } from './types.js';
export { StoreUnavailableError } from './types.js';

export interface StateStoreSettings extends PendingRecordsOptions {
  /** DINGTALK_MCP_REDIS_URL; the in-memory store when unset. */
  redisUrl?: string;
  /** DINGTALK_MCP_STATE_SECRET (required with Redis; config validation enforces it). */
  stateSecret?: string;
  redisKeyPrefix: string;
  logger: Logger;
  connectWaitMs?: number;
}

/** The store the settings ask for. The Redis client is loaded only when Redis is configured. */
export async function createStateStore(settings: StateStoreSettings): Promise<StateStore> {
  if (!settings.redisUrl) return createMemoryStore(settings);
  if (!settings.stateSecret) throw new Error('DINGTALK_MCP_STATE_SECRET is required with DINGTALK_MCP_REDIS_URL');
  const { createRedisStore } = await import('./redis.js');
  return createRedisStore({
    url: settings.redisUrl,
    secret: settings.stateSecret,
    prefix: settings.redisKeyPrefix,
    logger: settings.logger,
    lingerMs: settings.lingerMs,
    maxPerUser: settings.maxPerUser,
    connectWaitMs: settings.connectWaitMs,
  });
}
