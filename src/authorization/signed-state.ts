import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Signer } from './signer.js';

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

  /** A state for one Agent Identity session of a pending authorization, and its tag (for the pending record). */
  sign(pendingId: string, expiresAt: number): { state: string; tag: string } {
    const tag = randomBytes(16).toString('base64url');
    return { state: this.signer.seal('oauth-state', { p: pendingId, t: tag }, expiresAt), tag };
  }

  /** The pending id and the session's tag, or why the state is not acceptable. */
  verify(state: string, now = Date.now()): { ok: true; pendingId: string; tag: string } | { ok: false; reason: 'malformed' | 'forged' | 'expired' } {
    const opened = this.signer.open<{ p?: unknown; t?: unknown }>('oauth-state', state, now);
    if (!opened.ok) return opened;
    const { p, t } = opened.value ?? {};
    return typeof p === 'string' && typeof t === 'string' ? { ok: true, pendingId: p, tag: t } : { ok: false, reason: 'malformed' };
  }

  /** Whether a callback's tag is the one the record keeps (constant time). */
  static sameTag(given: string, kept: string | undefined): boolean {
    if (kept === undefined) return false;
    const [a, b] = [Buffer.from(given), Buffer.from(kept)];
    return a.length === b.length && timingSafeEqual(a, b);
  }
}
