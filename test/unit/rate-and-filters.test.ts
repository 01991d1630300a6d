import { describe, expect, it } from "vitest";
import { isValidTopicFilter, topicMatches } from "../../src/mqtt/topic-filter.js";
import { RateLimiter } from "../../src/serving/rate-limiter.js";

describe("topic filters", () => {
  it("matches + and # like a broker", () => {
    expect(topicMatches("#", "a/b")).toBe(true);
    expect(topicMatches("home/+/llm", "home/kitchen/llm")).toBe(true);
    expect(topicMatches("home/+/llm", "home/kitchen/x/llm")).toBe(false);
    expect(topicMatches("home/#", "home")).toBe(true);
    expect(topicMatches("home/#", "office/x")).toBe(false);
    expect(topicMatches("a/b", "a/b/c")).toBe(false);
  });

  it("validates filters", () => {
    for (const ok of ["#", "a/+/b", "a/#", "+"]) expect(isValidTopicFilter(ok)).toBe(true);
    for (const bad of ["", "a/#/b", "a+/b", "a/b#"]) expect(isValidTopicFilter(bad)).toBe(false);
  });
});

describe("RateLimiter", () => {
  it("allows bursts up to the rate, then tells how long to wait, and refills", () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 3, now: () => now });
    expect([limiter.take("a"), limiter.take("a"), limiter.take("a")]).toEqual([0, 0, 0]);
    const wait = limiter.take("a");
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(20_000);
    expect(limiter.take("b")).toBe(0);
    now += 20_000;
    expect(limiter.take("a")).toBe(0);
  });

  it("is off at 0 and bounded in senders", () => {
    const off = new RateLimiter({ perMinute: 0 });
    for (let i = 0; i < 100; i++) expect(off.take("x")).toBe(0);
    const small = new RateLimiter({ perMinute: 1, maxSenders: 2, now: () => 0 });
    small.take("a");
    small.take("b");
    small.take("c");
    // "a" was forgotten, so it starts with a full bucket again.
    expect(small.take("a")).toBe(0);
  });
});
