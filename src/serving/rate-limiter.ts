/**
 * A token bucket per sender: `perMinute` requests a minute on average, bursts up to the same number.
 * Senders are forgotten least-recently-used first, so a flood of made-up senders cannot grow memory.
 */
export class RateLimiter {
  private readonly perMinute: number;
  private readonly maxSenders: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: { perMinute: number; maxSenders?: number; now?: () => number }) {
    this.perMinute = options.perMinute;
    this.maxSenders = options.maxSenders ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /** 0 when the request may go ahead (and is counted), else the milliseconds until it may. */
  take(sender: string): number {
    if (this.perMinute <= 0) return 0;
    const now = this.now();
    const bucket = this.buckets.get(sender) ?? { tokens: this.perMinute, at: now };
    this.buckets.delete(sender);
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + ((now - bucket.at) * this.perMinute) / 60_000);
    bucket.at = now;
    this.buckets.set(sender, bucket);
    if (this.buckets.size > this.maxSenders) this.buckets.delete(this.buckets.keys().next().value as string);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 60_000) / this.perMinute);
  }
}
