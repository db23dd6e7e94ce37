import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The OAuth `state` we hand Agent Identity as `CustomState`: it comes back on /callback, so it is
 * signed (HMAC-SHA256) and carries its own expiry. Single use is enforced by the pending store.
 * Format: base64url(JSON{p, e}) "." base64url(hmac).
 */
export class SignedState {
  private readonly key: Buffer;

  constructor(secret?: string) {
    this.key = secret ? Buffer.from(secret, 'utf8') : randomBytes(32);
  }

  /** The raw key bytes, shared with the MCP requestState codec. */
  get keyBytes(): Uint8Array {
    return new Uint8Array(this.key);
  }

  sign(pendingId: string, expiresAt: number): string {
    const payload = Buffer.from(JSON.stringify({ p: pendingId, e: Math.floor(expiresAt / 1000) })).toString('base64url');
    return `${payload}.${this.mac(payload)}`;
  }

  /** The pending id, or why the state is not acceptable. */
  verify(state: string, now = Date.now()): { ok: true; pendingId: string } | { ok: false; reason: 'malformed' | 'forged' | 'expired' } {
    const [payload, mac, extra] = state.split('.');
    if (!payload || !mac || extra !== undefined) return { ok: false, reason: 'malformed' };
    const expected = Buffer.from(this.mac(payload));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'forged' };
    let decoded: { p?: unknown; e?: unknown };
    try {
      decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (typeof decoded.p !== 'string' || typeof decoded.e !== 'number') return { ok: false, reason: 'malformed' };
    if (decoded.e * 1000 <= now) return { ok: false, reason: 'expired' };
    return { ok: true, pendingId: decoded.p };
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update('oauth-state:').update(payload).digest('base64url');
  }
}
