import { randomBytes } from 'node:crypto';
import type { UserIdentity } from '../identity/types.js';
import { userKey } from '../identity/types.js';

/** How an authorization ended, as far as the waiting tool call is concerned. */
export type Settlement = 'completed' | 'denied' | 'expired' | 'failed';

export interface PendingAuthorization {
  /** Unguessable, single-use; the only thing in the /connect URL (docs/architecture.md decision 4). */
  id: string;
  user: UserIdentity;
  sessionUri: string;
  authorizationUrl: string;
  createdAt: number;
  expiresAt: number;
  /** Set once, by the callback: the state is single-use. */
  callbackConsumed: boolean;
  settlement?: Settlement;
  failureMessage?: string;
  /** Completed because another authorization of the same user completed: its token is in the vault. */
  completedBySibling?: boolean;
}

type Listener = (settlement: Settlement) => void;

/**
 * Authorizations waiting for the user's browser, in memory (docs/architecture.md decision 9: behind a small
 * interface so a shared store can replace it later). Entries expire and are swept.
 */
export class PendingAuthorizations {
  private readonly entries = new Map<string, PendingAuthorization>();
  /** Ids per user, oldest first. */
  private readonly byUser = new Map<string, Set<string>>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly options: { ttlMs: number; maxPerUser?: number; now?: () => number },
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, Math.max(1_000, options.ttlMs / 4)));
    this.sweeper.unref();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** A fresh id, reserved before Agent Identity is asked (it goes into the signed CustomState). */
  newId(): string {
    return randomBytes(18).toString('base64url');
  }

  add(id: string, user: UserIdentity, sessionUri: string, authorizationUrl: string): PendingAuthorization {
    const now = this.now();
    const entry: PendingAuthorization = {
      id, user, sessionUri, authorizationUrl, createdAt: now, expiresAt: now + this.options.ttlMs, callbackConsumed: false,
    };
    // Bound memory per user: past the limit, the user's oldest links are retired first.
    const key = userKey(user);
    const mine = [...(this.byUser.get(key) ?? [])];
    const max = this.options.maxPerUser ?? 5;
    for (const old of mine.slice(0, Math.max(0, mine.length - max + 1))) {
      this.settle(old, 'expired');
      this.delete(old);
    }
    this.entries.set(id, entry);
    let ids = this.byUser.get(key);
    if (!ids) this.byUser.set(key, (ids = new Set()));
    ids.add(id);
    return entry;
  }

  /** The entry if it exists and has not expired. */
  get(id: string): PendingAuthorization | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (!entry.settlement && entry.expiresAt <= this.now()) this.settle(id, 'expired');
    return entry;
  }

  settle(id: string, settlement: Settlement, failureMessage?: string): void {
    const entry = this.entries.get(id);
    if (!entry || entry.settlement) return;
    this.finish(entry, settlement, failureMessage);
    if (settlement === 'completed') {
      // Calls of the same user waiting on other links need not wait any more: the vault has the token.
      for (const sibling of this.byUser.get(userKey(entry.user)) ?? []) {
        const other = this.entries.get(sibling);
        if (other && !other.settlement) {
          other.completedBySibling = true;
          this.finish(other, 'completed');
        }
      }
    }
  }

  private finish(entry: PendingAuthorization, settlement: Settlement, failureMessage?: string): void {
    entry.settlement = settlement;
    entry.failureMessage = failureMessage;
    const listeners = this.listeners.get(entry.id);
    this.listeners.delete(entry.id);
    for (const l of listeners ?? []) l(settlement);
  }

  /** Calls `listener` once when the entry settles (immediately if it already has). */
  onSettled(id: string, listener: Listener): () => void {
    const entry = this.get(id);
    if (!entry) {
      listener('expired');
      return () => {};
    }
    if (entry.settlement) {
      listener(entry.settlement);
      return () => {};
    }
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Wait until the user finishes in the browser, the link expires, `timeoutMs` passes or `signal` aborts.
   * Resolves with the settlement, or 'expired' on timeout; rejects only on abort.
   */
  wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<Settlement> {
    return new Promise((resolve, reject) => {
      const entry = this.get(id);
      if (!entry) return resolve('expired');
      const remaining = Math.min(timeoutMs, entry.expiresAt - this.now());
      let unsubscribe: () => void = () => {};
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => finish(() => reject(signal?.reason ?? new Error('aborted')));
      const timer = setTimeout(() => finish(() => {
        // Past the link's own lifetime it can never complete: retire it.
        if (this.now() >= entry.expiresAt) this.settle(id, 'expired');
        resolve(entry.settlement ?? 'expired');
      }), Math.max(0, remaining));
      unsubscribe = this.onSettled(id, (s) => finish(() => resolve(s)));
      if (done) return;
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** End every unsettled authorization (shutdown): waiting calls return at once with `message`. */
  settleAll(settlement: Settlement, message: string): void {
    for (const entry of this.entries.values()) if (!entry.settlement) this.settle(entry.id, settlement, message);
  }

  /** Forget an entry whose outcome has been used. */
  delete(id: string): void {
    const entry = this.entries.get(id);
    this.entries.delete(id);
    this.listeners.delete(id);
    if (!entry) return;
    const key = userKey(entry.user);
    const ids = this.byUser.get(key);
    ids?.delete(id);
    if (ids?.size === 0) this.byUser.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.entries) {
      if (!entry.settlement && entry.expiresAt <= now) this.settle(id, 'expired');
      // An expired link can never be used again; settled ones linger briefly so a late 2026-07-28
      // retry can still learn how they ended.
      if (entry.settlement === 'expired' || entry.expiresAt + this.options.ttlMs <= now) this.delete(id);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
