import { randomBytes } from 'node:crypto';
import { Signer } from './signer.js';

/**
 * The OAuth `state` we hand Agent Identity as `CustomState`: it comes back on /callback, so it is
 * signed and carries its own expiry. Single use is enforced by the pending store.
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

  sign(pendingId: string, expiresAt: number): string {
    return this.signer.seal('oauth-state', pendingId, expiresAt);
  }

  /** The pending id, or why the state is not acceptable. */
  verify(state: string, now = Date.now()): { ok: true; pendingId: string } | { ok: false; reason: 'malformed' | 'forged' | 'expired' } {
    const opened = this.signer.open<unknown>('oauth-state', state, now);
    if (!opened.ok) return opened;
    return typeof opened.value === 'string' ? { ok: true, pendingId: opened.value } : { ok: false, reason: 'malformed' };
  }
}
