import { createHmac, timingSafeEqual } from 'node:crypto';

export type Unsealed<T> = { ok: true; value: T; tag?: string } | { ok: false; reason: 'malformed' | 'forged' | 'expired' };

/**
 * Small signed (not encrypted) tokens for values that round-trip through a browser: the OAuth
 * `state`, and the login/binding cookies. HMAC-SHA256 over a purpose label and the payload, so a
 * token minted for one purpose is never accepted for another. Format: base64url(JSON{d,e}).mac
 */
export class Signer {
  constructor(private readonly key: Uint8Array) {}

  /** `tag`, when given, is signed along (a field beside the value, which readers that know no tags ignore). */
  seal<T>(purpose: string, value: T, expiresAt: number, tag?: string): string {
    const payload = Buffer.from(JSON.stringify({ d: value, e: Math.floor(expiresAt / 1000), ...(tag !== undefined ? { t: tag } : {}) })).toString('base64url');
    return `${payload}.${this.mac(purpose, payload)}`;
  }

  open<T>(purpose: string, token: string, now = Date.now()): Unsealed<T> {
    const [payload, mac, extra] = token.split('.');
    if (!payload || !mac || extra !== undefined) return { ok: false, reason: 'malformed' };
    const expected = Buffer.from(this.mac(purpose, payload));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'forged' };
    let decoded: { d?: T; e?: unknown; t?: unknown };
    try {
      decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (typeof decoded.e !== 'number' || decoded.d === undefined) return { ok: false, reason: 'malformed' };
    if (decoded.e * 1000 <= now) return { ok: false, reason: 'expired' };
    return { ok: true, value: decoded.d, ...(typeof decoded.t === 'string' ? { tag: decoded.t } : {}) };
  }

  private mac(purpose: string, payload: string): string {
    return createHmac('sha256', this.key).update(`${purpose}:`).update(payload).digest('base64url');
  }
}
