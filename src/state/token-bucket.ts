/**
 * Per-key token bucket: `limit` tokens per `windowMs`, refilled continuously, in this process;
 * entries of idle keys are dropped as they refill. Shared across replicas: src/state/redis.ts.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take `n` tokens: 0 when allowed, otherwise the milliseconds until they would be. */
  take(key: string, n = 1): number {
    const now = this.now();
    const rate = this.limit / this.windowMs;
    const bucket = this.buckets.get(key) ?? { tokens: this.limit, at: now };
    bucket.tokens = Math.min(this.limit, bucket.tokens + (now - bucket.at) * rate);
    bucket.at = now;
    if (bucket.tokens >= n) {
      bucket.tokens -= n;
      this.buckets.set(key, bucket);
      if (this.buckets.size > 10_000) this.prune(now);
      return 0;
    }
    this.buckets.set(key, bucket);
    return Math.ceil((n - bucket.tokens) / rate);
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) if (b.tokens + (now - b.at) * (this.limit / this.windowMs) >= this.limit) this.buckets.delete(key);
  }
}
