import {
  type BatchItem,
  type Llama,
  LlamaCompletion,
  type LlamaContext,
  type LlamaModel,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFullBatchStrategy } from "../../src/inference/batching.js";
import { LlamaInternals, VERIFIED_NODE_LLAMA_CPP } from "../../src/inference/llama-internals.js";
import { openTestLlama } from "../helpers/engine.js";
import { TINY_MODEL_PATH } from "../helpers/models.js";

describe("batch order on node-llama-cpp's real decode queue", () => {
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;
  const seen: Array<number[] | null> = [];
  const decoded: number[][] = [];
  let running = 0;

  beforeAll(async () => {
    llama = await openTestLlama();
    model = await llama.loadModel({ modelPath: TINY_MODEL_PATH });
    let internals: LlamaInternals | undefined;
    const idsOf = (items: readonly BatchItem[]) => internals?.sequenceIdsOf(items) ?? null;
    const strategy = createFullBatchStrategy({
      activeSequences: () => running,
      sequenceIdsOf: (items) => {
        const ids = idsOf(items);
        seen.push(ids);
        return ids;
      },
    });
    context = await model.createContext({
      contextSize: 256,
      sequences: 3,
      threads: 1,
      batching: {
        itemPrioritizationStrategy: (input) => {
          const batch = strategy(input);
          const ids = idsOf(input.items);
          if (batch.length > 0 && ids) decoded.push(batch.map((p) => ids[input.items.indexOf(p.item)]!));
          return batch;
        },
      },
    });
    internals = LlamaInternals.inspect(context, {
      expectedVersion: VERIFIED_NODE_LLAMA_CPP,
      onFallback: (reason) => {
        throw new Error(reason);
      },
    });
  });

  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
  });

  it("finds each item's sequence and decodes the sequences in ascending order", async () => {
    const sequences = [context.getSequence(), context.getSequence(), context.getSequence()];
    running = sequences.length;
    // Started in reverse, so the queue order is not already the sequence order.
    await Promise.all(
      [...sequences].reverse().map(async (sequence, i) => {
        await new LlamaCompletion({ contextSequence: sequence }).generateCompletion(`hello ${i}`, {
          maxTokens: 8,
          seed: i,
        });
        running--;
      }),
    );
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((ids) => ids !== null)).toBe(true);
    expect(decoded.some((ids) => ids.length === 3)).toBe(true);
    for (const ids of decoded) expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(decoded.flat())).toEqual(new Set([0, 1, 2]));
  });
});
