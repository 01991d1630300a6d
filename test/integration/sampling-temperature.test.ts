import { describe, expect, it } from "vitest";
import type { GenerationRequest } from "../../src/core/generation.js";
import { generationRequest, useTinyEngine } from "../helpers/engine.js";
import { FUZZED_SAMPLING, SWITCH_SCHEMA } from "../helpers/fuzzed-sampling.js";

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

// What happens when llama.cpp's sampler fails anyway: test/integration/llama-internals.test.ts.
describe("a vanishing temperature with a JSON-schema grammar, through the engine", () => {
  const tiny = useTinyEngine();

  it("runs as greedy sampling, so the grammar gets a token it accepts", async () => {
    const outcomes = [];
    for (const seed of SEEDS) {
      const outcome = await tiny.engine.generate(request(seed), {
        signal: new AbortController().signal,
        onText: () => undefined,
      });
      outcomes.push(outcome.stopReason);
    }
    expect(outcomes.every((reason) => reason === "stop" || reason === "length")).toBe(true);
  });
});
