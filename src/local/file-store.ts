/**
 * Pending authorizations in files of the per-user local state folder (./private-files.ts), shared by every local
 * stdio copy of this user and by the pages host that serves /connect and /callback for them (./pages-host.ts), so a
 * link works whichever copy printed it and after that copy exited (docs/architecture.md decision 17).
 *
 * One record per authorization, `<id>.rec`: `{u, e, d}` with `u` a keyed hash of the user, `e` the expiry and `d` the
 * record sealed (AES-256-GCM, src/state/sealer.ts) under the state secret, so the files carry neither the user's JWT
 * nor the Agent Identity session in clear. The one-shot steps are exclusive creations: `<id>.claim` (the callback's
 * single use, `wx`), `<id>.open` (the link's first visit, `wx`) and `<id>.done` (the first settlement, written then hard-linked, so it appears whole or not at
 * all). Other processes' settlements are seen through fs.watch, with a short poll while a settlement is awaited.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, open, readdir, unlink, constants as fsConstants } from 'node:fs/promises';
import { join } from 'node:path';
import { userKey } from '../identity/types.js';
import { Sealer } from '../state/sealer.js';
import { MemoryOnceMarks, MemoryRateLimits } from '../state/memory.js';
import type { NewPendingRecord, PendingRecord, PendingRecords, PendingRecordsOptions, Settlement, StateStore, StoreHealth } from '../state/types.js';
import { createPrivate, ensurePrivateDir, NOFOLLOW, readPrivate, replacePrivate } from './private-files.js';

/** Pending ids are base64url (src/authorization/pending.ts); anything else never becomes a path. */
const ID = /^[A-Za-z0-9_-]{16,64}$/;
/** How often a process that awaits a settlement looks, in case a watch event was missed (consent-to-write stays fast). */
const POLL_MS = 40;

interface RecordFile {
  v: 1;
  /** Keyed hash of the user (the per-user limit and sibling completion need no decryption). */
  u: string;
  e: number;
  /** When it was written, sub-millisecond (the oldest links are retired first, in the order they were made). */
  t: number;
  d: string;
}
interface DoneFile {
  settlement: Settlement;
  failureMessage?: string;
  completedBySibling?: boolean;
}

export interface FileStoreOptions extends PendingRecordsOptions {
  /** The folder of the records (created 0700). */
  dir: string;
  /** The state secret: records are sealed under it. */
  secret: string;
  /** Watch for other processes' settlements (default true; the pages host settles everything itself). */
  watch?: boolean;
  now?: () => number;
}

/** The stdio store: pending authorizations in files shared by the user's copies; rate limits and once-marks per process. */
export function createLocalStore(options: FileStoreOptions): StateStore {
  const pending = new FilePendingRecords(options);
  return {
    backend: 'file',
    pending,
    rateLimits: new MemoryRateLimits(options.now),
    once: new MemoryOnceMarks(options.now),
    health: (): StoreHealth => ({ backend: 'file', status: 'ready' }),
    async close() {
      pending.close();
    },
  };
}

type SettledListener = (id: string, settlement: Settlement) => void;

export class FilePendingRecords implements PendingRecords {
  private readonly dir: string;
  private readonly sealer: Sealer;
  private readonly listeners = new Set<SettledListener>();
  /** Unsettled ids this process wrote or read: polled for, in case a watch event is missed (the watch hears every id). */
  private readonly interest = new Map<string, number>();
  /** Settlements already announced here (each is announced once per process). */
  private readonly announced = new Set<string>();
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: FileStoreOptions) {
    this.dir = options.dir;
    ensurePrivateDir(this.dir);
    this.sealer = new Sealer(options.secret);
    if (options.watch !== false) {
      try {
        this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
          const file = typeof name === 'string' ? name : undefined;
          if (file?.endsWith('.done')) void this.look(file.slice(0, -5));
        });
        this.watcher.on('error', () => this.watcher?.close());
      } catch {
        // No watch on this file system: the poll below still finds settlements.
      }
    }
    this.sweeper = setInterval(() => void this.sweep().catch(() => {}), 30_000);
    this.sweeper.unref();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private path(id: string, kind: 'rec' | 'claim' | 'open' | 'done'): string {
    return join(this.dir, `${id}.${kind}`);
  }

  async insert(record: NewPendingRecord): Promise<string[]> {
    if (!ID.test(record.id)) throw new Error('invalid pending id');
    const u = this.sealer.name(userKey(record.user));
    const now = this.now();
    const live: Array<{ id: string; t: number }> = [];
    for (const id of await this.ids()) {
      // A scan skips what it cannot use (a planted link): only a direct read of that id is refused.
      const file = await this.readRecordFile(id).catch(() => undefined);
      if (!file || file.u !== u || file.e <= now || (await this.exists(this.path(id, 'done')))) continue;
      if (this.open(id, file)) live.push({ id, t: file.t });
    }
    live.sort((a, b) => a.t - b.t);
    const retired: string[] = [];
    for (const old of live.slice(0, Math.max(0, live.length - this.options.maxPerUser + 1))) {
      if (await this.writeDone(old.id, { settlement: 'expired' })) retired.push(old.id);
    }
    await this.writeRecord(record.id, u, record);
    this.interest.set(record.id, record.expiresAt);
    this.startPolling();
    for (const id of retired) this.announce(id, 'expired');
    return retired;
  }

  async get(id: string): Promise<PendingRecord | undefined> {
    if (!ID.test(id)) return undefined;
    const file = await this.readRecordFile(id);
    const base = file && this.open(id, file);
    if (!base) return undefined;
    const done = await this.readDone(id);
    const record: PendingRecord = { ...base, callbackConsumed: await this.exists(this.path(id, 'claim')) };
    if (done) {
      record.settlement = done.settlement;
      if (done.failureMessage !== undefined) record.failureMessage = done.failureMessage;
      if (done.completedBySibling) record.completedBySibling = true;
      return record;
    }
    if (record.expiresAt <= this.now()) return { ...record, settlement: 'expired' };
    if (!this.announced.has(id)) {
      this.interest.set(id, record.expiresAt);
      this.startPolling();
    }
    return record;
  }

  async replaceSession(id: string, sessionUri: string, authorizationUrl: string, stateTag: string): Promise<boolean> {
    if (!ID.test(id)) return false;
    const file = await this.readRecordFile(id);
    const record = file && this.open(id, file);
    if (!file || !record || record.expiresAt <= this.now()) return false;
    if ((await this.exists(this.path(id, 'done'))) || (await this.exists(this.path(id, 'claim')))) return false;
    await this.writeRecord(id, file.u, { ...record, sessionUri, stateTag, authorizationUrl, reissued: true }, file.t);
    return true;
  }

  async markLinkOpened(id: string): Promise<'first' | 'again' | 'missing'> {
    const record = await this.get(id);
    if (!record || record.settlement) return 'missing';
    try {
      const handle = await open(this.path(id, 'open'), fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | NOFOLLOW, 0o600);
      await handle.close();
      return 'first';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'again';
      throw e;
    }
  }

  async claimCallback(id: string): Promise<'claimed' | 'used' | 'missing'> {
    const record = await this.get(id);
    if (!record || record.settlement === 'expired') return 'missing';
    if (record.callbackConsumed || record.settlement) return 'used';
    try {
      const handle = await open(this.path(id, 'claim'), fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | NOFOLLOW, 0o600);
      await handle.close();
      return 'claimed';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'used';
      throw e;
    }
  }

  async settle(id: string, settlement: Settlement, failureMessage?: string): Promise<string[]> {
    if (!ID.test(id)) return [];
    const file = await this.readRecordFile(id);
    if (!file || !this.open(id, file)) return [];
    if (!(await this.writeDone(id, { settlement, ...(failureMessage !== undefined ? { failureMessage } : {}) }))) return [];
    const settled = [id];
    if (settlement === 'completed') {
      // The user's token is in the vault now: their other waiting links are done too.
      for (const other of await this.ids()) {
        if (other === id) continue;
        const sibling = await this.readRecordFile(other).catch(() => undefined);
        if (sibling?.u !== file.u || !this.open(other, sibling)) continue;
        if (await this.writeDone(other, { settlement: 'completed', completedBySibling: true })) settled.push(other);
      }
    }
    for (const s of settled) this.announce(s, s === id ? settlement : 'completed');
    return settled;
  }

  async delete(id: string): Promise<void> {
    if (!ID.test(id)) return;
    this.interest.delete(id);
    this.announced.delete(id);
    await Promise.all((['rec', 'claim', 'open', 'done'] as const).map((kind) => unlink(this.path(id, kind)).catch(() => {})));
  }

  onSettled(listener: SettledListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onResync(): () => void {
    return () => {}; // a settlement file stays: nothing can be missed for good
  }

  async count(): Promise<number> {
    return (await this.ids()).length;
  }

  /** Unsettled records that can still complete (the pages host stays up while there is one). */
  async liveCount(): Promise<number> {
    const now = this.now();
    let n = 0;
    for (const id of await this.ids()) {
      const file = await this.readRecordFile(id).catch(() => undefined);
      if (file && file.e > now && !(await this.exists(this.path(id, 'done')))) n += 1;
    }
    return n;
  }

  /**
   * Completed records the store still keeps (their lifetime plus the linger): a refresh of their success page answers
   * "already granted", so the pages host stays up for them too. A sibling completed along with another has no page.
   */
  async grantedCount(): Promise<number> {
    const now = this.now();
    let n = 0;
    for (const id of await this.ids()) {
      const file = await this.readRecordFile(id).catch(() => undefined);
      if (!file || file.e + this.options.lingerMs <= now) continue;
      const done = await this.readDone(id).catch(() => undefined);
      if (done?.settlement === 'completed' && !done.completedBySibling) n += 1;
    }
    return n;
  }

  close(): void {
    clearInterval(this.sweeper);
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
    this.watcher?.close();
  }

  private announce(id: string, settlement: Settlement): void {
    if (this.announced.has(id)) return;
    // Ids deleted by another process are never forgotten here otherwise; a bound keeps the set small.
    if (this.announced.size > 10_000) this.announced.clear();
    this.announced.add(id);
    this.interest.delete(id);
    for (const l of [...this.listeners]) l(id, settlement);
  }

  /** A settlement written by another process, if there is one now. */
  private async look(id: string): Promise<void> {
    if (this.announced.has(id) || !ID.test(id)) return;
    const done = await this.readDone(id).catch(() => undefined);
    if (done) this.announce(id, done.settlement);
  }

  private startPolling(): void {
    if (this.poller || this.options.watch === false) return;
    this.poller = setInterval(() => {
      const now = this.now();
      for (const [id, expiresAt] of this.interest) {
        if (expiresAt <= now) this.interest.delete(id);
        else void this.look(id);
      }
      if (this.interest.size === 0 && this.poller) {
        clearInterval(this.poller);
        this.poller = undefined;
      }
    }, POLL_MS);
    this.poller.unref();
  }

  private async ids(): Promise<string[]> {
    const names = await readdir(this.dir);
    return names
      .filter((n) => n.endsWith('.rec'))
      .map((n) => n.slice(0, -4))
      .filter((id) => ID.test(id));
  }

  private async exists(path: string): Promise<boolean> {
    try {
      await lstat(path);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }

  private async readRecordFile(id: string): Promise<RecordFile | undefined> {
    const text = await readPrivate(this.path(id, 'rec'));
    if (text === undefined) return undefined;
    try {
      const file = JSON.parse(text) as RecordFile;
      return file.v === 1 && typeof file.u === 'string' && typeof file.e === 'number' && typeof file.t === 'number' && typeof file.d === 'string'
        ? file
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** The record, if it opens under our secret for this very id (a file copied under another name does not). */
  private open(id: string, file: RecordFile): Omit<PendingRecord, 'callbackConsumed'> | undefined {
    const plain = this.sealer.open(file.d, `rec:${id}`);
    if (plain === undefined) return undefined;
    const record = JSON.parse(plain) as NewPendingRecord;
    return record.id === id ? record : undefined;
  }

  private async readDone(id: string): Promise<DoneFile | undefined> {
    const text = await readPrivate(this.path(id, 'done'));
    const plain = text === undefined ? undefined : this.sealer.open(text, `done:${id}`);
    return plain === undefined ? undefined : (JSON.parse(plain) as DoneFile);
  }

  /** Write the record whole (replaced, never through a link). */
  private async writeRecord(
    id: string,
    u: string,
    record: NewPendingRecord & { reissued?: boolean },
    t = performance.timeOrigin + performance.now(),
  ): Promise<void> {
    const { id: rid, user, sessionUri, stateTag, authorizationUrl, createdAt, expiresAt, reissued, purpose, rung, client } = record;
    const body: RecordFile = {
      v: 1,
      u,
      e: expiresAt,
      t,
      d: this.sealer.seal(
        JSON.stringify({
          id: rid,
          user,
          sessionUri,
          stateTag,
          authorizationUrl,
          createdAt,
          expiresAt,
          purpose,
          rung,
          client,
          ...(reissued ? { reissued } : {}),
        }),
        `rec:${id}`,
      ),
    };
    await replacePrivate(this.path(id, 'rec'), this.dir, JSON.stringify(body));
  }

  /** The first settlement wins: `<id>.done` is created whole, or not at all when it exists. */
  private writeDone(id: string, done: DoneFile): Promise<boolean> {
    return createPrivate(this.path(id, 'done'), this.dir, this.sealer.seal(JSON.stringify(done), `done:${id}`));
  }

  /** Forget records a lifetime past their expiry (like the other stores), and temporary files a crash left behind. */
  private async sweep(): Promise<void> {
    const now = this.now();
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.startsWith('.tmp-')) {
        const stat = await lstat(path).catch(() => undefined);
        if (stat && now - stat.mtimeMs > 60_000) await unlink(path).catch(() => {});
        continue;
      }
      const [id, kind] = name.split('.');
      if (!id || !ID.test(id)) continue;
      if (kind === 'rec') {
        const file = await this.readRecordFile(id).catch(() => undefined);
        if (!file || file.e + this.options.lingerMs <= now) await this.delete(id);
      } else if (kind === 'claim' || kind === 'open' || kind === 'done') {
        // A marker whose record is gone (deleted by another process between our steps).
        if (!(await this.exists(this.path(id, 'rec')))) {
          const stat = await lstat(path).catch(() => undefined);
          if (stat && now - stat.mtimeMs > 60_000) await unlink(path).catch(() => {});
        }
      }
    }
  }
}
