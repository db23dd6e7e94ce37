import { RateLimiter } from './token-bucket.js';
import { userKey } from '../identity/types.js';
import type {
  NewPendingRecord,
  OnceMarks,
  PendingRecord,
  PendingRecords,
  PendingRecordsOptions,
  RateLimits,
  Settlement,
  StateStore,
  StoreHealth,
} from './types.js';

/** The default store: one process, nothing shared (docs/architecture.md decision 9). */
export function createMemoryStore(options: PendingRecordsOptions & { now?: () => number }): StateStore {
  const pending = new MemoryPendingRecords(options);
  const rateLimits = new MemoryRateLimits(options.now);
  const once = new MemoryOnceMarks(options.now);
  return {
    backend: 'memory',
    pending,
    rateLimits,
    once,
    health: (): StoreHealth => ({ backend: 'memory', status: 'ready' }),
    async close() {
      pending.close();
    },
  };
}

type SettledListener = (id: string, settlement: Settlement) => void;

export class MemoryPendingRecords implements PendingRecords {
  private readonly records = new Map<string, PendingRecord>();
  /** Ids per user, oldest first. */
  private readonly byUser = new Map<string, Set<string>>();
  private readonly listeners = new Set<SettledListener>();
  /** Ids whose /connect link was opened at least once. */
  private readonly opened = new Set<string>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: PendingRecordsOptions & { now?: () => number }) {
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  async insert(record: NewPendingRecord): Promise<string[]> {
    const key = userKey(record.user);
    const live = [...(this.byUser.get(key) ?? [])].filter((id) => !this.records.get(id)?.settlement && (this.records.get(id)?.expiresAt ?? 0) > this.now());
    const retired = live.slice(0, Math.max(0, live.length - this.options.maxPerUser + 1));
    for (const old of retired) this.settleOne(old, 'expired');
    this.records.set(record.id, { ...record, callbackConsumed: false });
    let ids = this.byUser.get(key);
    if (!ids) this.byUser.set(key, (ids = new Set()));
    ids.add(record.id);
    return retired;
  }

  async get(id: string): Promise<PendingRecord | undefined> {
    const record = this.records.get(id);
    if (!record) return undefined;
    if (!record.settlement && record.expiresAt <= this.now()) return { ...record, settlement: 'expired' };
    return { ...record };
  }

  async replaceSession(id: string, sessionUri: string, authorizationUrl: string, stateTag: string): Promise<boolean> {
    const record = this.records.get(id);
    if (!record || record.settlement || record.callbackConsumed || record.expiresAt <= this.now()) return false;
    record.sessionUri = sessionUri;
    record.stateTag = stateTag;
    record.authorizationUrl = authorizationUrl;
    record.reissued = true;
    return true;
  }

  async markLinkOpened(id: string): Promise<'first' | 'again' | 'missing'> {
    const record = this.records.get(id);
    if (!record || record.settlement || record.expiresAt <= this.now()) return 'missing';
    if (this.opened.has(id)) return 'again';
    this.opened.add(id);
    return 'first';
  }

  async claimCallback(id: string): Promise<'claimed' | 'used' | 'missing'> {
    const record = this.records.get(id);
    if (!record || (!record.settlement && record.expiresAt <= this.now()) || record.settlement === 'expired') return 'missing';
    if (record.callbackConsumed || record.settlement) return 'used';
    record.callbackConsumed = true;
    return 'claimed';
  }

  async settle(id: string, settlement: Settlement, failureMessage?: string): Promise<string[]> {
    const record = this.records.get(id);
    if (!record || record.settlement) return [];
    const settled = [id];
    record.settlement = settlement;
    record.failureMessage = failureMessage;
    if (settlement === 'completed') {
      for (const sibling of this.byUser.get(userKey(record.user)) ?? []) {
        const other = this.records.get(sibling);
        if (other && !other.settlement) {
          other.settlement = 'completed';
          other.completedBySibling = true;
          settled.push(sibling);
        }
      }
    }
    for (const s of settled) this.announce(s, this.records.get(s)!.settlement!);
    return settled;
  }

  private settleOne(id: string, settlement: Settlement): void {
    const record = this.records.get(id);
    if (!record || record.settlement) return;
    record.settlement = settlement;
    this.announce(id, settlement);
  }

  private announce(id: string, settlement: Settlement): void {
    for (const l of [...this.listeners]) l(id, settlement);
  }

  async delete(id: string): Promise<void> {
    const record = this.records.get(id);
    this.records.delete(id);
    this.opened.delete(id);
    if (!record) return;
    const key = userKey(record.user);
    const ids = this.byUser.get(key);
    ids?.delete(id);
    if (ids?.size === 0) this.byUser.delete(key);
  }

  onSettled(listener: SettledListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onResync(): () => void {
    return () => {}; // nothing is ever missed in one process
  }

  async count(): Promise<number> {
    return this.records.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, record] of this.records) if (record.expiresAt + this.options.lingerMs <= now) void this.delete(id);
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}

/** The in-process token buckets (src/state/token-bucket.ts), one set per limit and window. */
export class MemoryRateLimits implements RateLimits {
  private readonly limiters = new Map<string, RateLimiter>();

  constructor(private readonly now: () => number = Date.now) {}

  async take(key: string, n: number, limit: number, windowMs: number): Promise<number> {
    const id = `${limit}/${windowMs}`;
    let limiter = this.limiters.get(id);
    if (!limiter) this.limiters.set(id, (limiter = new RateLimiter(limit, windowMs, this.now)));
    return limiter.take(key, n);
  }
}

export class MemoryOnceMarks implements OnceMarks {
  private readonly marks = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async claim(purpose: string, value: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const key = `${purpose}\u0000${value}`;
    const until = this.marks.get(key);
    if (until !== undefined && until > now) return false;
    this.marks.set(key, now + ttlMs);
    if (this.marks.size > 10_000) for (const [k, t] of this.marks) if (t <= now) this.marks.delete(k);
    return true;
  }
}
