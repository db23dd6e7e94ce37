/**
 * The local file store's own guarantees (the shared contract is in state-store.test.ts): private modes, links
 * planted by another user refused, ids that are not ours never becoming paths, and the persisted state secret.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLocalStore } from '../../src/local/file-store.js';
import { ensurePrivateDir, persistedStateSecret } from '../../src/local/private-files.js';
import { StoreUnavailableError, type NewPendingRecord } from '../../src/state/types.js';

const root = mkdtempSync(join(tmpdir(), 'dtmcp-local-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const SECRET = 'local-store-secret-0123456789abcdef0123';
let n = 0;
const fresh = () => join(root, `case-${++n}`);
const id = () => randomBytes(18).toString('base64url');
const record = (overrides: Partial<NewPendingRecord> = {}): NewPendingRecord => ({
  id: id(),
  user: { kind: 'userId', userId: 'alice' },
  sessionUri: 'session-uri-0123',
  stateTag: 'state-tag-0123',
  authorizationUrl: 'https://agentidentity.example.com/authorize',
  createdAt: Date.now(),
  expiresAt: Date.now() + 600_000,
  ...overrides,
});

describe('local file store', () => {
  it('creates its folder 0700 and tightens a wider existing one', () => {
    const dir = fresh();
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    ensurePrivateDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('refuses a folder that is a symbolic link', () => {
    const target = fresh();
    mkdirSync(target);
    const dir = fresh();
    symlinkSync(target, dir);
    expect(() => createLocalStore({ dir, secret: SECRET, lingerMs: 1000, maxPerUser: 3 })).toThrow(/is not a directory \(a symbolic link\?\)/);
  });

  it('refuses a record planted as a symbolic link, without reading or writing its target', async () => {
    const dir = fresh();
    const store = createLocalStore({ dir, secret: SECRET, lingerMs: 1000, maxPerUser: 3 });
    try {
      const victim = join(root, `victim-${n}`);
      writeFileSync(victim, 'do not touch');
      const planted = id();
      symlinkSync(victim, join(dir, `${planted}.rec`));
      const error = await store.pending.get(planted).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toMatch(/Refusing the local state file .*: it is a symbolic link/);
      // A link planted where a settlement would be written is never written through.
      const r = record();
      await store.pending.insert(r);
      symlinkSync(victim, join(dir, `${r.id}.done`));
      expect(await store.pending.settle(r.id, 'completed').catch((e: unknown) => e)).toEqual([]);
      expect(readFileSync(victim, 'utf8')).toBe('do not touch');
    } finally {
      await store.close();
    }
  });

  it('an id that is not one of ours never becomes a path', async () => {
    const dir = fresh();
    const store = createLocalStore({ dir, secret: SECRET, lingerMs: 1000, maxPerUser: 3 });
    try {
      writeFileSync(join(root, 'outside.rec'), '{}');
      for (const bad of ['../outside', '..%2Foutside', 'a/b', '', 'short']) {
        expect(await store.pending.get(bad)).toBeUndefined();
        expect(await store.pending.claimCallback(bad)).toBe('missing');
        expect(await store.pending.settle(bad, 'completed')).toEqual([]);
      }
      await expect(store.pending.insert(record({ id: '../escape-0123456789' }))).rejects.toThrow(/invalid pending id/);
      expect(existsSync(join(root, 'escape-0123456789.rec'))).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('a record does not open under another secret', async () => {
    const dir = fresh();
    const mine = createLocalStore({ dir, secret: SECRET, lingerMs: 1000, maxPerUser: 3 });
    const theirs = createLocalStore({ dir, secret: `${SECRET}-other`, lingerMs: 1000, maxPerUser: 3 });
    try {
      const r = record();
      await mine.pending.insert(r);
      expect(await theirs.pending.get(r.id)).toBeUndefined();
      expect(await theirs.pending.settle(r.id, 'completed')).toEqual([]);
      expect((await mine.pending.get(r.id))?.settlement).toBeUndefined();
    } finally {
      await Promise.all([mine.close(), theirs.close()]);
    }
  });

  it('another process’s settlement reaches a waiter without a watch event (the poll)', async () => {
    const dir = fresh();
    // The waiter's store watches; the settling one does not: the poll or the watch must find it.
    const waiter = createLocalStore({ dir, secret: SECRET, lingerMs: 1000, maxPerUser: 3 });
    const host = createLocalStore({ dir, secret: SECRET, lingerMs: 1000, maxPerUser: 3, watch: false });
    try {
      const r = record();
      await waiter.pending.insert(r);
      const heard = new Promise<string>((resolve) => waiter.pending.onSettled((i, s) => i === r.id && resolve(s)));
      expect(await host.pending.claimCallback(r.id)).toBe('claimed');
      await host.pending.settle(r.id, 'completed');
      expect(await heard).toBe('completed');
    } finally {
      await Promise.all([waiter.close(), host.close()]);
    }
  });
});

describe('persisted state secret', () => {
  it('is made once, 0600, and the same for every later reader', () => {
    const dir = fresh();
    const first = persistedStateSecret(dir);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(persistedStateSecret(dir)).toBe(first);
    expect(statSync(join(dir, 'state-secret')).mode & 0o777).toBe(0o600);
  });

  it('refuses a planted symbolic link and a file other users can read', () => {
    const dir = fresh();
    mkdirSync(dir, { mode: 0o700 });
    const elsewhere = join(root, `known-${n}`);
    writeFileSync(elsewhere, `${'a'.repeat(64)}\n`, { mode: 0o600 });
    symlinkSync(elsewhere, join(dir, 'state-secret'));
    expect(() => persistedStateSecret(dir)).toThrow(/Refusing the local state file .*state-secret: it is a symbolic link/);

    const other = fresh();
    mkdirSync(other, { mode: 0o700 });
    writeFileSync(join(other, 'state-secret'), `${'b'.repeat(64)}\n`, { mode: 0o644 });
    chmodSync(join(other, 'state-secret'), 0o644);
    expect(() => persistedStateSecret(other)).toThrow(/other users can read it/);
  });
});
