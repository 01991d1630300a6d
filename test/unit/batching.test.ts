import type { BatchItem } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { createFullBatchStrategy } from "../../src/inference/batching.js";

const item = (tokens: number): BatchItem => ({
  tokens: Array.from({ length: tokens }, (_, i) => i as never),
  logits: [],
  evaluationPriority: 5,
});

describe("full-batch strategy", () => {
  it("holds a decode while a sequence of the last batch has not queued its token, then takes everyone", () => {
    const all = [item(1), item(1), item(1), item(1)];
    const strategy = createFullBatchStrategy({ activeSequences: () => 4 });
    expect(strategy({ items: all, size: 512 })).toHaveLength(4);
    expect(strategy({ items: all.slice(0, 3), size: 512 })).toEqual([]);
    expect(strategy({ items: all, size: 512 }).map((p) => p.item)).toEqual(all);
  });

  it("does not wait for a running sequence that has not decoded yet (it may wait for the context lock)", () => {
    const items = [item(1), item(1)];
    const strategy = createFullBatchStrategy({ activeSequences: () => 3 });
    expect(strategy({ items, size: 512 })).toHaveLength(2);
    expect(strategy({ items, size: 512 })).toHaveLength(2);
  });

  it("goes on with what it has after maxHolds turns, so a finished sequence stalls nobody", () => {
    const two = [item(1), item(1)];
    const strategy = createFullBatchStrategy({ activeSequences: () => 2, maxHolds: 3 });
    expect(strategy({ items: two, size: 512 })).toHaveLength(2);
    const results = Array.from({ length: 4 }, () => strategy({ items: two.slice(0, 1), size: 512 }).length);
    expect(results).toEqual([0, 0, 0, 1]);
    // The last two batches had two sequences between them: one more wait, then one goes at once.
    const next = Array.from({ length: 4 }, () => strategy({ items: two.slice(0, 1), size: 512 }).length);
    expect(next).toEqual([0, 0, 0, 1]);
    expect(strategy({ items: two.slice(0, 1), size: 512 })).toHaveLength(1);
  });

  it("waits for every sequence of the last two batches: prompts that started apart join one rotation", () => {
    // A request reusing sequence 0 decoded its short prompt alone, three new ones theirs together;
    // the next step must wait for all four, or one of them misses every other batch for good
    // (seen: batches alternating {0,1,2} and {0,1,3}, 47 instead of 61 tokens/s).
    const [zero, one, two, three] = [item(1), item(16), item(16), item(16)];
    const ids = new Map([
      [zero, 0],
      [one, 1],
      [two, 2],
      [three, 3],
    ]);
    const strategy = createFullBatchStrategy({
      activeSequences: () => 4,
      sequenceIdsOf: (items) => items.map((i) => ids.get(i) ?? 0),
    });
    expect(strategy({ items: [zero], size: 512 })).toHaveLength(1);
    expect(strategy({ items: [one, two, three], size: 512 })).toHaveLength(3);
    expect(strategy({ items: [zero, one, two], size: 512 })).toEqual([]);
    expect(strategy({ items: [zero, one, two, three], size: 512 })).toHaveLength(4);
  });

  it("puts generation steps before prompts and splits a prompt at the batch size", () => {
    const prompt = item(300);
    const step = item(1);
    const strategy = createFullBatchStrategy({ activeSequences: () => 2 });
    const batch = strategy({ items: [prompt, step], size: 256 });
    expect(batch.map((p) => [p.item, p.processAmount])).toEqual([
      [step, 1],
      [prompt, 255],
    ]);
  });

  it("orders the batch by sequence id, so llama.cpp decodes consecutive sequences in one micro-batch", () => {
    const items = [item(1), item(1), item(1), item(1)];
    const ids = [1, 2, 3, 0];
    const strategy = createFullBatchStrategy({ activeSequences: () => 4, sequenceIdsOf: () => ids });
    const batch = strategy({ items, size: 512 });
    expect(batch.map((p) => ids[items.indexOf(p.item)])).toEqual([0, 1, 2, 3]);
  });
});
