import { describe, expect, it } from "vitest";
import type { GenerationRequest } from "../../src/core/generation.js";
import { generationRequest, useTinyEngine } from "../helpers/engine.js";

function rawRequest(id: string, text: string, maxTokens: number): GenerationRequest {
  return generationRequest({ id, input: { kind: "raw", text }, stream: true, maxTokens });
}

describe("a request starting while another generates", () => {
  const tiny = useTinyEngine({ contextSize: 1024, sequences: 3 });

  const run = (request: GenerationRequest, times: number[]) =>
    tiny.engine.generate(request, {
      signal: new AbortController().signal,
      onText: () => times.push(performance.now()),
    });

  it("gets its reused sequence trimmed and generates beside the running ones, not after them", async () => {
    // Every sequence holds cached text that the next prompts do not start with: each must be trimmed
    // (under node-llama-cpp's context lock) before it can decode.
    await Promise.all(
      ["alpha", "beta", "gamma"].map((word) => run(rawRequest(word, `${word} ${word}`, 4), [])),
    );

    // Two running requests: the decode loop then always finds one of them queued again, and never
    // lets go of the lock by itself.
    const longTimes: number[][] = [[], []];
    const longs = longTimes.map((times, i) => run(rawRequest(`long-${i}`, `long ${i} one two`, 600), times));
    while (longTimes[0]!.length < 20) await new Promise((resolve) => setImmediate(resolve));
    const lateTimes: number[] = [];
    const late = await run(rawRequest("late", "delta four five six", 8), lateTimes);
    const longOutcomes = await Promise.all(longs);

    expect(longOutcomes.map((o) => o.completionTokens > 100)).toEqual([true, true]);
    expect(late.completionTokens).toBeGreaterThan(0);
    // The late request ended while the long ones were still generating.
    expect(lateTimes.at(-1)!).toBeLessThan(Math.min(longTimes[0]!.at(-1)!, longTimes[1]!.at(-1)!));
  });
});
