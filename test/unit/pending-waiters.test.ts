import { describe, expect, it } from 'vitest';
import { PendingAuthorizations } from '../../src/authorization/pending.js';
import { MemoryPendingRecords } from '../../src/state/memory.js';

describe('pending authorizations: one waiting call per authorization', () => {
  it('a newer wait on the same authorization takes over; the older ends as superseded, the newer gets the settlement', async () => {
    const pending = new PendingAuthorizations(new MemoryPendingRecords({ lingerMs: 60_000, maxPerUser: 5 }), { ttlMs: 600_000 });
    const entry = await pending.add(
      pending.newId(),
      { kind: 'userId', userId: 'waiter-user' },
      { sessionUri: 'session-1', authorizationUrl: 'https://agentidentity.example/authorize', stateTag: 'tag' },
    );
    const older = pending.wait(entry.id, 60_000);
    await new Promise((r) => setTimeout(r, 10));
    const newer = pending.wait(entry.id, 60_000);
    expect(await older).toBe('superseded');
    await pending.settle(entry.id, 'completed');
    expect(await newer).toBe('completed');
    pending.close();
  });
});

describe('pending authorizations: calls waiting per user', () => {
  it(`at most ${8} calls of one user wait at once; another user is not affected; a finished wait frees a place`, async () => {
    const pending = new PendingAuthorizations(new MemoryPendingRecords({ lingerMs: 60_000, maxPerUser: 100 }), { ttlMs: 600_000 });
    const alice = { kind: 'userId' as const, userId: 'busy-alice' };
    const ids: string[] = [];
    for (let i = 0; i < 9; i++)
      ids.push(
        (await pending.add(pending.newId(), alice, { sessionUri: `s-${i}`, authorizationUrl: 'https://agentidentity.example/authorize', stateTag: 'tag' })).id,
      );
    const waits = ids.slice(0, 8).map((id) => pending.wait(id, 60_000));
    await new Promise((r) => setTimeout(r, 10));
    expect(await pending.wait(ids[8]!, 60_000)).toBe('too_many');
    const bob = await pending.add(
      pending.newId(),
      { kind: 'userId', userId: 'bob' },
      { sessionUri: 's-bob', authorizationUrl: 'https://agentidentity.example/authorize', stateTag: 'tag' },
    );
    const bobWait = pending.wait(bob.id, 60_000);
    await pending.settle(ids[0]!, 'denied');
    expect(await waits[0]).toBe('denied');
    const ninth = pending.wait(ids[8]!, 60_000);
    await pending.settle(ids[8]!, 'denied');
    expect(await ninth).toBe('denied');
    for (const id of [...ids.slice(1, 8), bob.id]) await pending.settle(id, 'denied');
    expect(await Promise.all([...waits.slice(1), bobWait])).toEqual(Array(8).fill('denied'));
    pending.close();
  });
});
