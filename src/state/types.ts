import type { UserIdentity } from '../identity/types.js';

/**
 * The state several replicas must share (docs/architecture.md decision 16), behind one small interface with two
 * implementations: in memory (the default, one process) and Redis (`DINGTALK_MCP_REDIS_URL`).
 * docs/deployment-replicas.md lists the Redis keys, their TTLs and sizes.
 */
export interface StateStore {
  /** 'file': the stdio copies' per-user local folder (src/local/file-store.ts). */
  readonly backend: 'memory' | 'redis' | 'file';
  readonly pending: PendingRecords;
  readonly rateLimits: RateLimits;
  readonly once: OnceMarks;
  /** For /healthz: never includes a password. */
  health(): StoreHealth;
  close(): Promise<void>;
}

export type StoreHealth =
  | { backend: 'memory' | 'file'; status: 'ready' }
  | { backend: 'redis'; status: 'ready' | 'connecting' | 'unavailable'; endpoint: string; tls: boolean; problem?: string };

/** How an authorization ended, as far as a waiting tool call is concerned. */
export type Settlement = 'completed' | 'denied' | 'expired' | 'failed';

export interface PendingRecord {
  /** Unguessable, single-use; the only thing in the /connect URL (docs/architecture.md decision 4). */
  id: string;
  user: UserIdentity;
  sessionUri: string;
  /**
   * The random tag inside the current session's signed state (src/authorization/signed-state.ts); the callback must
   * bring it. Absent only in a record the previous version wrote.
   */
  stateTag?: string;
  authorizationUrl: string;
  createdAt: number;
  expiresAt: number;
  /** Set once, by the callback (atomically across replicas). */
  callbackConsumed: boolean;
  settlement?: Settlement;
  failureMessage?: string;
  /** Completed because another authorization of the same user completed: its token is in the vault. */
  completedBySibling?: boolean;
  /** The link was opened again and `sessionUri` now names a fresh session: older sessions' callbacks are superseded. */
  reissued?: boolean;
  /** What the user authorizes, for the pages ("writing to DingTalk document X"); never a secret. */
  purpose?: string;
  /** How the link reached the user: 'elicitation' (a tool call waits for it) or 'link' (the user calls again). */
  rung?: 'elicitation' | 'link';
  /** The MCP client's own name for itself (clientInfo.name), when known; shown on the interstitial page, escaped. */
  client?: string;
}

/** What a new record is made of: always with its session's state tag (only records of the previous version lack one). */
export type NewPendingRecord = Omit<PendingRecord, 'callbackConsumed' | 'settlement' | 'failureMessage' | 'completedBySibling' | 'reissued' | 'stateTag'> & {
  stateTag: string;
};

export interface PendingRecordsOptions {
  /** A settled or expired record stays readable this long after `expiresAt` (a late 2026-07-28 retry learns how it ended). */
  lingerMs: number;
  /** Unsettled records per user; past it, the user's oldest are retired ('expired'). */
  maxPerUser: number;
}

/**
 * Pending authorizations, shared by every replica. Every method may reject with
 * `StoreUnavailableError` when the shared store cannot be reached.
 */
export interface PendingRecords {
  /** Store a new record. Resolves with the ids of the user's older records it retired. */
  insert(record: NewPendingRecord): Promise<string[]>;
  /** The record, if it exists (an unsettled one past `expiresAt` reads as 'expired'). */
  get(id: string): Promise<PendingRecord | undefined>;
  /**
   * Point an unsettled, unclaimed record at a fresh Agent Identity session (a link opened again) and its state's tag;
   * marks it `reissued`. False once settled, expired or claimed by a callback (the claimed session is the one completing).
   */
  replaceSession(id: string, sessionUri: string, authorizationUrl: string, stateTag: string): Promise<boolean>;
  /**
   * A visit of the /connect link, atomic across replicas and processes: exactly one visit gets 'first' (it may use the
   * stored upstream link, which works once); every later one 'again'; 'missing' when unknown, settled or expired.
   */
  markLinkOpened(id: string): Promise<'first' | 'again' | 'missing'>;
  /**
   * The callback's single use: exactly one caller, on any replica, gets 'claimed'.
   * 'used' when claimed before or already settled; 'missing' when unknown or expired.
   */
  claimCallback(id: string): Promise<'claimed' | 'used' | 'missing'>;
  /**
   * Settle once (first settlement wins). 'completed' also completes the user's other unsettled
   * records (their token is in the vault now). Resolves with every id this call settled; each is
   * announced to `onSettled` listeners on every replica.
   */
  settle(id: string, settlement: Settlement, failureMessage?: string): Promise<string[]>;
  delete(id: string): Promise<void>;
  /** Every settlement, made by this replica or another one. */
  onSettled(listener: (id: string, settlement: Settlement) => void): () => void;
  /** Announcements may have been missed (the store reconnected): whoever waits should look again. */
  onResync(listener: () => void): () => void;
  /** How many records exist (for /healthz). */
  count(): Promise<number>;
}

/** Token buckets per key, enforced across every replica together. */
export interface RateLimits {
  /** Take `n` tokens of `limit` per `windowMs`: 0 when allowed, otherwise the milliseconds until they would be. */
  take(key: string, n: number, limit: number, windowMs: number): Promise<number>;
}

/** Marks that can be set once (e.g. a sign-in `state` used once, whichever replica it reaches). */
export interface OnceMarks {
  /** True for the first caller with this purpose and value within `ttlMs`, false for every later one. */
  claim(purpose: string, value: string, ttlMs: number): Promise<boolean>;
}

/** The shared store cannot be reached or refused the command. `message` is safe to show a user. */
export class StoreUnavailableError extends Error {
  /** Seconds a client should wait before trying again. */
  readonly retryAfterSeconds = 5;
  constructor(message: string) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}
