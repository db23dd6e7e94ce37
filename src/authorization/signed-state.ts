import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Signer } from './signer.js';

/** A random tag for a session's state, or to retire one (nobody holds a state with a new random tag). */
export const newStateTag = (): string => randomBytes(16).toString('base64url');

/**
 * The OAuth `state` we hand Agent Identity as `CustomState`: it comes back on /callback, so it is
 * signed and carries its own expiry. Single use is enforced by the pending store.
 *
 * Each state also carries a random tag, and the pending record keeps the tag of its current session:
 * the callback must bring that session's own state. Agent Identity's AuthorizationURL carries only a
 * `request_uri`, never the state, so the tag is seen only by the browser that session sends back. Without
 * it, someone who went through one session of their own link (and so saw its state) could hand another
 * person a later session's consent URL and replay that person's approval with the state they already had.
 */
export class SignedState {
  private readonly key: Buffer;
  /** Shared by everything else that signs browser round-trips (cookies), under other purposes. */
  readonly signer: Signer;

  constructor(secret?: string) {
    this.key = secret ? Buffer.from(secret, 'utf8') : randomBytes(32);
    this.signer = new Signer(this.key);
  }

  /** The raw key bytes, from which the MCP requestState codec derives its own key. */
  get keyBytes(): Uint8Array {
    return new Uint8Array(this.key);
  }

  /**
   * A state for one Agent Identity session of a pending authorization, and its tag (for the pending record). The
   * tag sits beside the pending id, so a replica or pages host of the previous version still reads the id.
   */
  sign(pendingId: string, expiresAt: number): { state: string; tag: string } {
    const tag = newStateTag();
    return { state: this.signer.seal('oauth-state', pendingId, expiresAt, tag), tag };
  }

  /** The pending id and the session's tag (none in a state of the previous version), or why the state is not acceptable. */
  verify(state: string, now = Date.now()): { ok: true; pendingId: string; tag?: string } | { ok: false; reason: 'malformed' | 'forged' | 'expired' } {
    const opened = this.signer.open<unknown>('oauth-state', state, now);
    if (!opened.ok) return opened;
    if (typeof opened.value !== 'string') return { ok: false, reason: 'malformed' };
    return { ok: true, pendingId: opened.value, ...(opened.tag !== undefined ? { tag: opened.tag } : {}) };
  }

  /**
   * Whether a callback's state belongs to the record's current session (constant time). A record without a tag was
   * written by the previous version (a rolling upgrade): it completes as it did then, on the signature alone.
   */
  static sameTag(given: string | undefined, kept: string | undefined): boolean {
    if (kept === undefined) return true;
    if (given === undefined) return false;
    const [a, b] = [Buffer.from(given), Buffer.from(kept)];
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
