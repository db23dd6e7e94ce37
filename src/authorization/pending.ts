import { randomBytes } from 'node:crypto';
import { userKey, type UserIdentity } from '../identity/types.js';
import type { PendingRecord, PendingRecords, Settlement } from '../state/types.js';

export type { Settlement } from '../state/types.js';
export type PendingAuthorization = PendingRecord;

type Listener = (settlement: Settlement) => void;

/** The failure message of an authorization the user cancelled on our page before DingTalk ("This was not me / Cancel"). */
export const CANCELLED_ON_PAGE = 'cancelled on the confirmation page';

/** The failure message of an authorization whose user's sign-in (HTTP mode: the client's JWT) expired before the consent. */
export const SIGN_IN_EXPIRED = 'sign-in expired before the consent';

/** Calls one user may have waiting for a consent in this process at once; past it a call is refused ('too_many'). */
export const MAX_WAITING_PER_USER = 8;

/**
 * Authorizations waiting for the user's browser. The records live in the state store (in memory,
 * or Redis shared by every replica: src/state/); the tool calls waiting on them live here, in this
 * process, and are woken by the store's settlement announcements, wherever the callback landed.
 */
export class PendingAuthorizations {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly unsubscribe: Array<() => void>;
  /** Set when this replica shuts down: its waiting calls end, the shared records stay for the others. */
  private closingMessage: string | undefined;

  constructor(
    private readonly records: PendingRecords,
    private readonly options: { ttlMs: number; now?: () => number },
  ) {
    this.unsubscribe = [
      records.onSettled((id, settlement) => this.dispatch(id, settlement)),
      // Announcements may have been missed while the store was unreachable: look again.
      records.onResync(() => {
        for (const id of [...this.listeners.keys()]) {
          void records.get(id).then(
            (r) => r?.settlement && this.dispatch(id, r.settlement),
            () => {},
          );
        }
      }),
    ];
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** A fresh id, reserved before Agent Identity is asked (it goes into the signed CustomState). */
  newId(): string {
    return randomBytes(18).toString('base64url');
  }

  async add(
    id: string,
    user: UserIdentity,
    session: { sessionUri: string; authorizationUrl: string; stateTag: string },
    about: Pick<PendingAuthorization, 'purpose' | 'rung' | 'client'> = {},
  ): Promise<PendingAuthorization> {
    const now = this.now();
    const { sessionUri, authorizationUrl, stateTag } = session;
    const record = { id, user, sessionUri, stateTag, authorizationUrl, createdAt: now, expiresAt: now + this.options.ttlMs, ...about };
    // Bounded per user: past the limit the store retires the user's oldest links (announced as 'expired').
    await this.records.insert(record);
    return { ...record, callbackConsumed: false };
  }

  /** The entry if it exists (an unsettled one past its expiry reads as 'expired'). */
  async get(id: string): Promise<PendingAuthorization | undefined> {
    const record = await this.records.get(id);
    if (record && !record.settlement && this.closingMessage) return { ...record, settlement: 'failed', failureMessage: this.closingMessage };
    return record;
  }

  /** A visit of the /connect link (first or again), atomic across replicas and processes (src/state/types.ts). */
  markLinkOpened(id: string): Promise<'first' | 'again' | 'missing'> {
    return this.records.markLinkOpened(id);
  }

  /** Point the entry at a fresh Agent Identity session and its state's tag; false when it settled, expired or was claimed meanwhile. */
  replaceSession(id: string, sessionUri: string, authorizationUrl: string, stateTag: string): Promise<boolean> {
    return this.records.replaceSession(id, sessionUri, authorizationUrl, stateTag);
  }

  /** The callback's single use, atomic across replicas. */
  claimCallback(id: string): Promise<'claimed' | 'used' | 'missing'> {
    return this.records.claimCallback(id);
  }

  async settle(id: string, settlement: Settlement, failureMessage?: string): Promise<void> {
    // Waiters here are woken by the store's announcement (the same path as for other replicas).
    await this.records.settle(id, settlement, failureMessage);
  }

  private dispatch(id: string, settlement: Settlement): void {
    const listeners = this.listeners.get(id);
    this.listeners.delete(id);
    for (const l of listeners ?? []) l(settlement);
  }

  /** Calls `listener` once when the entry settles (at once if it already has, or is unknown: 'expired'). */
  onSettled(id: string, listener: Listener): () => void {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    let fired = false;
    const once: Listener = (s) => {
      if (fired) return;
      fired = true;
      set.delete(once);
      listener(s);
    };
    set.add(once);
    // Listening first, then looking: a settlement in between is not missed.
    this.get(id).then(
      (entry) => {
        if (!entry) once('expired');
        else if (entry.settlement) once(entry.settlement);
      },
      () => {}, // the store is unreachable: the waiter's own timer or the resync ends it
    );
    return () => {
      set.delete(once);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    };
  }

  /**
   * Wait until the user finishes in the browser, the link expires, `timeoutMs` passes or `signal` aborts.
   * Resolves with the settlement, or 'expired' on timeout; rejects on abort or when the store is unreachable.
   * One waiter per authorization in this process: a newer wait on the same id (a 2026-07-28 client retrying the same
   * requestState) takes over, and the older resolves 'superseded', so retries cannot pile up calls; and at most
   * MAX_WAITING_PER_USER waiting calls per user ('too_many' past it).
   */
  async wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<Settlement | 'superseded' | 'too_many'> {
    const entry = await this.get(id);
    if (!entry) return 'expired';
    if (entry.settlement) return entry.settlement;
    const user = userKey(entry.user);
    const waiting = this.waitingByUser.get(user) ?? 0;
    if (!this.waiters.has(id) && waiting >= MAX_WAITING_PER_USER) return 'too_many';
    this.waitingByUser.set(user, waiting + 1);
    return new Promise((resolve, reject) => {
      const remaining = Math.min(timeoutMs, entry.expiresAt - this.now());
      let unsubscribe: () => void = () => {};
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        this.closeWaiters.delete(onClose);
        if (this.waiters.get(id) === onSuperseded) this.waiters.delete(id);
        const left = (this.waitingByUser.get(user) ?? 1) - 1;
        if (left > 0) this.waitingByUser.set(user, left);
        else this.waitingByUser.delete(user);
        fn();
      };
      const onSuperseded = () => finish(() => resolve('superseded'));
      this.waiters.get(id)?.();
      this.waiters.set(id, onSuperseded);
      const onAbort = () => finish(() => reject(signal?.reason ?? new Error('aborted')));
      const onClose = () => finish(() => resolve('failed'));
      const timer = setTimeout(
        () =>
          finish(() => {
            // Past the link's own lifetime it can never complete: retire it.
            if (this.now() >= entry.expiresAt) void this.records.settle(id, 'expired').catch(() => {});
            resolve('expired');
          }),
        Math.max(0, remaining),
      );
      this.closeWaiters.add(onClose);
      unsubscribe = this.onSettled(id, (s) => finish(() => resolve(s)));
      if (done) return;
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private readonly closeWaiters = new Set<() => void>();
  /** The one call waiting on each authorization here; a newer one replaces it. */
  private readonly waiters = new Map<string, () => void>();
  /** How many calls each user (userKey) has waiting here. */
  private readonly waitingByUser = new Map<string, number>();

  /**
   * Shutdown of this replica: every call waiting here returns at once with `message`. The records
   * stay in the store, so a consent given afterwards still completes (on another replica, or after
   * the restart) and the client's next call finds the token.
   */
  settleAll(_settlement: 'failed', message: string): void {
    this.closingMessage = message;
    for (const close of [...this.closeWaiters]) close();
    for (const id of [...this.listeners.keys()]) this.dispatch(id, 'failed');
  }

  /** Forget an entry whose outcome has been used (never one still pending elsewhere, during shutdown). */
  async delete(id: string): Promise<void> {
    this.listeners.delete(id);
    if (this.closingMessage) {
      const record = await this.records.get(id).catch(() => undefined);
      if (record && !record.settlement) return;
    }
    await this.records.delete(id);
  }

  /** How many authorizations the store holds (every replica's, with Redis). */
  count(): Promise<number> {
    return this.records.count();
  }

  close(): void {
    for (const u of this.unsubscribe) u();
  }
}
