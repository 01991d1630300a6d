import { describe, expect, it } from "vitest";
import { generationRequest, useTinyEngine } from "../helpers/engine.js";

// max_tokens is a hard ceiling, with greedy sampling and with sampling alike.
describe("max_tokens through the engine", () => {
  const tiny = useTinyEngine();

  for (const temperature of [0, 0.8]) {
    it(`never generates more than max_tokens at temperature ${temperature}`, async () => {
      const counts: number[] = [];
      for (const seed of [1, 2, 3, 4, 5, 6]) {
        for (const kind of ["chat", "raw"] as const) {
          const outcome = await tiny.engine.generate(
            generationRequest({
              id: `mt-${seed}-${kind}`,
              input:
                kind === "chat"
                  ? { kind, messages: [{ role: "user", content: "tell me a story" }] }
                  : { kind, text: "Once upon a time" },
              maxTokens: 8,
              temperature,
              seed,
            }),
            { signal: new AbortController().signal, onText: () => undefined },
          );
          counts.push(outcome.completionTokens);
          if (outcome.stopReason === "length") expect(outcome.completionTokens).toBe(8);
        }
      }
      expect(Math.max(...counts), counts.join(",")).toBeLessThanOrEqual(8);
    });
  }
});
