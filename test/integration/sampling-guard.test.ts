import {
  getLlama,
  type Llama,
  LlamaCompletion,
  type LlamaContext,
  LlamaLogLevel,
  type LlamaModel,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferenceEngine } from "../../src/inference/engine.js";
import { guardSampling } from "../../src/inference/sampling-guard.js";
import type { GenerationRequest } from "../../src/mqtt/messages.js";
import { generationRequest, startTinyEngine } from "../helpers/engine.js";
import { TINY_MODEL_PATH } from "../helpers/models.js";

const SWITCH_SCHEMA = {
  type: "object",
  properties: { action: { type: "string", enum: ["on", "off"] } },
  required: ["action"],
};
/** The fuzz payload's sampling; its temperature, a float32 subnormal, makes llama.cpp's logits ±infinity. */
const FUZZED_SAMPLING = {
  temperature: 1.9727931609900015e-41,
  topP: 0.9999999999999984,
  topK: 997,
  minP: 3.990457230644063e-191,
};
const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7];

function request(seed: number): GenerationRequest {
  return generationRequest({
    id: `seed-${seed}`,
    input: { kind: "chat", messages: [{ role: "user", content: "hello" }] },
    system: "[",
    maxTokens: 4,
    ...FUZZED_SAMPLING,
    seed,
    jsonSchema: SWITCH_SCHEMA,
  });
}

describe("token sampling that llama.cpp cannot do", () => {
  let llama: Llama;

  beforeAll(async () => {
    llama = await getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: LlamaLogLevel.error });
  });
  afterAll(async () => {
    await llama?.dispose();
  });

  describe("straight through node-llama-cpp, on a guarded context", () => {
    let model: LlamaModel;
    let context: LlamaContext;
    const failures: string[] = [];

    beforeAll(async () => {
      model = await llama.loadModel({ modelPath: TINY_MODEL_PATH });
      context = await model.createContext({ contextSize: 512, threads: 1 });
      guardSampling(context, (error) => failures.push(error.message));
    });
    afterAll(async () => {
      await context?.dispose();
      await model?.dispose();
    });

    it("fails the generation that asked for the token, and the context serves the next one", async () => {
      const grammar = await llama.createGrammarForJsonSchema(SWITCH_SCHEMA as never);
      const outcomes: string[] = [];
      for (const seed of SEEDS) {
        const sequence = context.getSequence();
        try {
          const completion = new LlamaCompletion({ contextSequence: sequence });
          await completion.generateCompletion("hello", {
            grammar,
            maxTokens: 4,
            ...FUZZED_SAMPLING,
            seed,
          });
          outcomes.push("ok");
        } catch (err) {
          outcomes.push((err as Error).message);
        } finally {
          await sequence.dispose();
        }
      }
      // Without the guard the first of these rejects outside any generation (an unhandled rejection,
      // which vitest reports) and the generation waits forever.
      expect(outcomes).toEqual(SEEDS.map(() => "Failed to sample next token"));
      expect(failures).toHaveLength(SEEDS.length);
      expect(failures[0]).toMatch(/grammar stack/);

      const sequence = context.getSequence();
      const text = await new LlamaCompletion({ contextSequence: sequence }).generateCompletion("hello", {
        grammar,
        maxTokens: 4,
        temperature: 0.7,
        seed: 1,
      });
      await sequence.dispose();
      expect(text.length).toBeGreaterThan(0);
    });
  });

  describe("through the engine", () => {
    let engine: InferenceEngine;

    beforeAll(async () => {
      engine = await startTinyEngine(llama);
    });
    afterAll(async () => {
      await engine?.stop();
    });

    it("runs a vanishing temperature as greedy sampling, so the grammar gets a token it accepts", async () => {
      const outcomes = [];
      for (const seed of SEEDS) {
        const outcome = await engine.generate(request(seed), {
          signal: new AbortController().signal,
          onText: () => undefined,
        });
        outcomes.push(outcome.stopReason);
      }
      expect(outcomes.every((reason) => reason === "stop" || reason === "length")).toBe(true);
    });
  });
});
