/**
 * The OAuth state (src/authorization/signed-state.ts): one per Agent Identity session, with a random tag the pending
 * record keeps; readable by the previous version (rolling upgrades), and its states still accepted where they belong.
 */
import { describe, expect, it } from 'vitest';
import { SignedState } from '../../src/authorization/signed-state.js';
import { Signer } from '../../src/authorization/signer.js';

const SECRET = 'signed-state-test-secret-0123456789abcdef';

describe('the OAuth state', () => {
  it('each session of one pending authorization gets its own state and tag', () => {
    const state = new SignedState(SECRET);
    const expiresAt = Date.now() + 60_000;
    const [a, b] = [state.sign('pending-1', expiresAt), state.sign('pending-1', expiresAt)];
    expect(a.state).not.toBe(b.state);
    expect(a.tag).not.toBe(b.tag);
    const verdict = state.verify(a.state);
    expect(verdict).toEqual({ ok: true, pendingId: 'pending-1', tag: a.tag });
    const given = verdict.ok ? verdict.tag : undefined;
    expect(SignedState.sameTag(given, a.tag)).toBe(true);
    expect(SignedState.sameTag(given, b.tag)).toBe(false);
  });

  it('a replica of the previous version still reads the pending id from a new state', () => {
    const { state } = new SignedState(SECRET).sign('pending-2', Date.now() + 60_000);
    // What the previous version did: open the state and take its value as the pending id.
    expect(new Signer(Buffer.from(SECRET, 'utf8')).open('oauth-state', state)).toMatchObject({ ok: true, value: 'pending-2' });
  });

  it('a state of the previous version (no tag) completes only a record of the previous version (no tag)', () => {
    const old = new Signer(Buffer.from(SECRET, 'utf8')).seal('oauth-state', 'pending-3', Date.now() + 60_000);
    const verdict = new SignedState(SECRET).verify(old);
    expect(verdict).toEqual({ ok: true, pendingId: 'pending-3' });
    const tag = verdict.ok ? verdict.tag : 'unreachable';
    expect(SignedState.sameTag(tag, undefined)).toBe(true);
    expect(SignedState.sameTag(tag, 'a-tag-of-a-current-session')).toBe(false);
  });
});
