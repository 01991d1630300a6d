import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { median, spreadPercent, summarize } from "../../src/stats.js";

describe("bench statistics", () => {
  it("takes the middle value, or the mean of the two middle values", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });

  it("does not reorder the caller's samples", () => {
    const samples = [3, 1, 2];
    median(samples);
    expect(samples).toEqual([3, 1, 2]);
  });

  it("gives the spread as (max - min) / median in percent", () => {
    expect(spreadPercent([90, 100, 110])).toBeCloseTo(20);
    expect(spreadPercent([16, 16.4, 17.2, 16.8, 16.5])).toBeCloseTo((1.2 / 16.5) * 100);
    expect(spreadPercent([5])).toBe(0);
    expect(spreadPercent([])).toBeNaN();
    expect(spreadPercent([0, 0, 0])).toBeNaN();
  });

  it("summarizes finite samples and gives null when there are none", () => {
    expect(summarize([2, Number.NaN, 4, 3])).toEqual({
      median: 3,
      min: 2,
      max: 4,
      spreadPercent: (2 / 3) * 100,
      samples: [2, 4, 3],
    });
    expect(summarize([])).toBeNull();
    expect(summarize([Number.POSITIVE_INFINITY])).toBeNull();
  });

  it("keeps the median between min and max", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.001, max: 1e6, noNaN: true }), { minLength: 1 }), (samples) => {
        const stats = summarize(samples)!;
        expect(stats.min).toBeLessThanOrEqual(stats.median);
        expect(stats.median).toBeLessThanOrEqual(stats.max);
        expect(stats.spreadPercent).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});
