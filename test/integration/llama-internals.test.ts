import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type BatchItem,
  type Llama,
  LlamaCompletion,
  type LlamaContext,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  installedNodeLlamaCppVersion,
  internalsMismatch,
  isSamplingFailure,
  LlamaInternals,
  VERIFIED_NODE_LLAMA_CPP,
} from "../../src/inference/llama-internals.js";
import { generationRequest, openTestLlama, startTinyEngine } from "../helpers/engine.js";
import { FUZZED_SAMPLING, SWITCH_SCHEMA } from "../helpers/fuzzed-sampling.js";
import { TINY_MODEL_PATH } from "../helpers/models.js";

/**
 * The contract between the engine and node-llama-cpp's private internals, on the real library: each
 * test fails when an upgrade changes one of them (then update llama-internals.ts and
 * VERIFIED_NODE_LLAMA_CPP together, or leave the engine on node-llama-cpp's own behaviour).
 */

const verified = { expectedVersion: VERIFIED_NODE_LLAMA_CPP };

describe("node-llama-cpp's internals the engine relies on", () => {
  let llama: Llama;
  let model: LlamaModel;

  beforeAll(async () => {
    llama = await openTestLlama();
    model = await llama.loadModel({ modelPath: TINY_MODEL_PATH });
  });
  afterAll(async () => {
    await model?.dispose();
    await llama?.dispose();
  });

  /** A context with `sequences` sequences; `strategy` sees every batch before node-llama-cpp decodes it. */
  async function openContext(
    sequences: number,
    strategy?: (items: readonly BatchItem[]) => void,
  ): Promise<LlamaContext> {
    return model.createContext({
      contextSize: 256,
      sequences,
      threads: 1,
      batching: strategy
        ? {
            itemPrioritizationStrategy: ({ items }) => {
              strategy(items);
              return items.map((item) => ({ item, processAmount: item.tokens.length }));
            },
          }
        : undefined,
    });
  }

  it("is the release they were checked against, and the one package.json pins", () => {
    const packageJson = JSON.parse(
      readFileSync(join(import.meta.dirname, "..", "..", "package.json"), "utf8"),
    );
    expect(installedNodeLlamaCppVersion()).toBe(VERIFIED_NODE_LLAMA_CPP);
    expect(packageJson.dependencies["node-llama-cpp"]).toBe(VERIFIED_NODE_LLAMA_CPP);
  });

  it("has the decode queue, the decode entry point and the native sampler on a fresh context", async () => {
    const context = await openContext(1);
    try {
      expect(internalsMismatch(context, verified)).toBeNull();
    } finally {
      await context.dispose();
    }
  });

  it("hands out llama.cpp's sequence ids 0, 1, 2 in order, and decodes each under its own id", async () => {
    const context = await openContext(3);
    try {
      const internals = LlamaInternals.inspect(context, { ...verified, onFallback: () => undefined });
      const decodedIds: number[] = [];
      internals.gateDecodes((sequenceId) => {
        decodedIds.push(sequenceId);
      });
      const sequences = [context.getSequence(), context.getSequence(), context.getSequence()];
      // -1: a wrong guess must not pass for the right one.
      expect(sequences.map((sequence) => internals.sequenceIdOf(sequence, -1))).toEqual([0, 1, 2]);
      for (const sequence of [...sequences].reverse()) {
        await sequence.evaluateWithoutGeneratingNewTokens(model.tokenize("hello there"));
      }
      expect(decodedIds).toEqual([2, 1, 0]);
    } finally {
      await context.dispose();
    }
  });

  it("builds the strategy's batch items from the decode queue, one by one, sharing the token arrays", async () => {
    // Prompts of different lengths tell the sequences apart in the items.
    const prompts = [5, 9, 13].map((length) => Array.from({ length }, (_, i) => (100 + i) as Token));
    const seen: Array<{ lengths: number[]; ids: number[] | null }> = [];
    let internals: LlamaInternals | undefined;
    const context = await openContext(3, (items) => {
      seen.push({ lengths: items.map((item) => item.tokens.length), ids: internals!.sequenceIdsOf(items) });
    });
    try {
      internals = LlamaInternals.inspect(context, { ...verified, onFallback: () => undefined });
      const sequences = [context.getSequence(), context.getSequence(), context.getSequence()];
      // Queued in reverse, so the queue order is not the sequence order.
      await Promise.all(
        [2, 1, 0].map((id) => sequences[id]!.evaluateWithoutGeneratingNewTokens(prompts[id]!)),
      );
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.some(({ lengths }) => lengths.length > 1)).toBe(true);
      const idOfLength = new Map(prompts.map((prompt, id) => [prompt.length, id]));
      for (const { lengths, ids } of seen)
        expect(ids).toEqual(lengths.map((length) => idOfLength.get(length)));
    } finally {
      await context.dispose();
    }
  });

  it("lets the decode entry point hold a sequence's decode until it is released", async () => {
    const context = await openContext(1);
    try {
      const internals = LlamaInternals.inspect(context, { ...verified, onFallback: () => undefined });
      let release: () => void = () => undefined;
      let held = 0;
      internals.gateDecodes(async () => {
        if (held++ > 0) return;
        await new Promise<void>((resolve) => (release = resolve));
      });
      const tokens: number[] = [];
      const generation = new LlamaCompletion({ contextSequence: context.getSequence() }).generateCompletion(
        "hello",
        { maxTokens: 4, seed: 1, onToken: (chunk) => tokens.push(...chunk) },
      );
      while (held === 0) await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(tokens).toEqual([]);
      release();
      await generation;
      expect(tokens.length).toBeGreaterThan(0);
    } finally {
      await context.dispose();
    }
  });

  it("fails the generation that asked for a token the native sampler could not give, with its message", async () => {
    const context = await openContext(1);
    try {
      const failures: string[] = [];
      const internals = LlamaInternals.inspect(context, { ...verified, onFallback: () => undefined });
      expect(internals.guardSampling((error) => failures.push(error.message))).toBe(true);
      const grammar = await llama.createGrammarForJsonSchema(SWITCH_SCHEMA as never);
      const errors: unknown[] = [];
      for (const seed of [0, 1, 2, 3]) {
        const sequence = context.getSequence();
        try {
          await new LlamaCompletion({ contextSequence: sequence }).generateCompletion("hello", {
            grammar,
            maxTokens: 4,
            ...FUZZED_SAMPLING,
            seed,
          });
        } catch (err) {
          errors.push(err);
        } finally {
          await sequence.dispose();
        }
      }
      // Without the guard the first of these rejects outside any generation (an unhandled rejection,
      // which vitest reports) and the generation waits forever.
      expect(errors).toHaveLength(4);
      expect(errors.every(isSamplingFailure)).toBe(true);
      expect(failures).toHaveLength(4);
      expect(failures[0]).toMatch(/grammar stack/);

      const sequence = context.getSequence();
      const text = await new LlamaCompletion({ contextSequence: sequence }).generateCompletion("hello", {
        grammar,
        maxTokens: 4,
        temperature: 0.7,
        seed: 1,
      });
      expect(text.length).toBeGreaterThan(0);
    } finally {
      await context.dispose();
    }
  });

  it("on another release, the engine says so in one line, touches nothing private and generates", async () => {
    const lines: Array<{ msg: string; reason?: string }> = [];
    const logger = pino(
      { level: "info" },
      { write: (line: string) => lines.push(JSON.parse(line) as { msg: string; reason?: string }) },
    );
    const engine = await startTinyEngine(llama, { llamaInternals: "0.0.1" }, logger);
    try {
      const outcomes = await Promise.all(
        ["a", "b"].map((id) =>
          engine.generate(
            generationRequest({ id, input: { kind: "raw", text: `hello ${id}` }, maxTokens: 6 }),
            {
              signal: new AbortController().signal,
              onText: () => undefined,
            },
          ),
        ),
      );
      expect(outcomes.every((outcome) => outcome.completionTokens > 0)).toBe(true);
      const fallbacks = lines.filter((line) => /internals not used/.test(line.msg));
      expect(fallbacks).toHaveLength(1);
      expect(fallbacks[0]!.reason).toMatch(
        `${VERIFIED_NODE_LLAMA_CPP} is installed; its internals were checked for 0.0.1`,
      );
    } finally {
      await engine.stop();
    }
  });
});
