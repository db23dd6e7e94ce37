/**
 * Bearer tokens whose signature, issuer, audience and expiry were verified, remembered so the next
 * request with the same token skips the signature check. An entry lives until the token's own
 * expiry but never longer than `maxAgeMs` (default 5 minutes, shorter than the 10 minutes for which
 * `jose` keeps a JWKS: a key the identity provider withdrew stops being honoured no later than it
 * would without the cache). Bounded: past `maxEntries` the oldest entries go first.
 */
export class VerifiedTokens<T> {
  private readonly entries = new Map<string, { value: T; until: number }>();

  constructor(private readonly options: { maxEntries?: number; maxAgeMs?: number; now?: () => number } = {}) {}

  get(token: string): T | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (entry.until <= this.now()) {
      this.entries.delete(token);
      return undefined;
    }
    return entry.value;
  }

  /** Remember `value` for `token` until `expiresAtMs` (the token's `exp`), capped at maxAgeMs from now. */
  set(token: string, value: T, expiresAtMs: number): void {
    const now = this.now();
    const until = Math.min(expiresAtMs, now + (this.options.maxAgeMs ?? 5 * 60_000));
    if (until <= now) return;
    this.entries.delete(token);
    this.entries.set(token, { value, until });
    const max = this.options.maxEntries ?? 10_000;
    if (this.entries.size > max) {
      // Map iteration is insertion order: the first key is the oldest.
      for (const oldest of this.entries.keys()) {
        this.entries.delete(oldest);
        if (this.entries.size <= max) break;
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }
}
