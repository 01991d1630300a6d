import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import type { GenerationRequest, GenerationResult } from "../../src/core/generation.js";
import type { EdgeError } from "../../src/errors.js";
import type { GenerateOptions, GenerationOutcome } from "../../src/inference/engine.js";
import { createTopics } from "../../src/mqtt/topics.js";
import { ConversationStore } from "../../src/serving/conversation-store.js";
import { type AnswerSink, RequestService } from "../../src/serving/request-service.js";
import { ServingStats } from "../../src/serving/serving-stats.js";
import { generationRequest } from "../helpers/engine.js";
import { REQUEST_LIMITS } from "../helpers/fakes.js";

/** A generator that emits two chunks and then waits until released or aborted (pure serving logic). */
function heldGenerator() {
  const releases: Array<() => void> = [];
  return {
    releases,
    generate(_request: GenerationRequest, options: GenerateOptions): Promise<GenerationOutcome> {
      options.onText("a");
      options.onText("b");
      return new Promise((resolve) => {
        const done = (stopReason: GenerationOutcome["stopReason"]) =>
          resolve({
            text: "ab",
            stopReason,
            promptTokens: 3,
            evaluatedPromptTokens: 1,
            completionTokens: 2,
            firstTokenAt: performance.now(),
          });
        releases.push(() => done("stop"));
        options.signal.addEventListener("abort", () => done("abort"), { once: true });
      });
    },
  };
}

function recordingSink() {
  const events: Array<{ kind: "chunk" | "final" | "error"; value: string | GenerationResult | EdgeError }> =
    [];
  const sink: AnswerSink = {
    chunk: (text) => events.push({ kind: "chunk", value: text }),
    final: (result) => events.push({ kind: "final", value: result }),
    error: (error) => events.push({ kind: "error", value: error }),
  };
  return { sink, events };
}

function service(maxQueue: number, generator = heldGenerator()) {
  const published: Array<{ topic: string; payload: string }> = [];
  const stats = new ServingStats();
  const requests = new RequestService({
    logger: pino({ level: "silent" }),
    topics: createTopics({ baseTopic: "t", nodeId: "n", poolGroup: "", discoveryPrefix: "homeassistant" }),
    limits: REQUEST_LIMITS,
    maxQueue,
    replyTopicAllow: ["#"],
    fairness: "sender",
    ratePerMinute: 0,
    slots: 1,
    streamQos: 0,
    publish: async (topic, payload) => {
      published.push({ topic, payload });
    },
    generator,
    stats,
    conversations: new ConversationStore({ maxCount: 4, maxAgeMs: 60_000, maxMessages: 4, maxChars: 400 }),
    modelName: () => "tiny.gguf",
  });
  return { requests, generator, published, stats };
}

const request = (id: string) =>
  generationRequest({ id, input: { kind: "chat", messages: [{ role: "user", content: "hi" }] } });

describe("RequestService.submit: requests that do not come from the JSON request topic", () => {
  it("streams chunks and settles once with the final result", async () => {
    const { requests, generator, stats } = service(4);
    const { sink, events } = recordingSink();
    requests.submit(request("s1"), sink, { sender: "http:127.0.0.1" });
    await vi.waitFor(() => expect(generator.releases.length === 1).toBe(true));
    generator.releases[0]!();
    await vi.waitFor(() => expect(events.some((e) => e.kind === "final")).toBe(true));
    expect(events.map((e) => e.kind)).toEqual(["chunk", "chunk", "final"]);
    expect((events[2]!.value as GenerationResult).text).toBe("ab");
    expect(stats.requests).toBe(1);
    // health's totals: the prompt's tokens, and apart from them the ones evaluated (a cached prefix is not).
    expect(stats.promptTokens).toBe(3);
    expect(stats.promptTokensEvaluated).toBe(1);
  });

  it("shares the queue with MQTT requests: a full queue answers busy", async () => {
    const { requests, generator } = service(1);
    const first = recordingSink();
    const second = recordingSink();
    const third = recordingSink();
    requests.submit(request("q1"), first.sink, { sender: "a" });
    requests.handleRequest({
      topic: "t/n/request",
      payload: Buffer.from(JSON.stringify({ id: "q2", prompt: "hi" })),
      receivedAt: performance.now(),
    } as Parameters<RequestService["handleRequest"]>[0]);
    requests.submit(request("q3"), third.sink, { sender: "b" });
    expect(requests.queueDepth).toBe(1);
    expect(third.events).toHaveLength(1);
    expect(third.events[0]!.kind).toBe("error");
    expect((third.events[0]!.value as EdgeError).code).toBe("busy");
    expect(second.events).toHaveLength(0);
    await vi.waitFor(() => expect(generator.releases.length === 1).toBe(true));
    generator.releases[0]!();
    await vi.waitFor(() => expect(generator.releases.length === 2).toBe(true));
    generator.releases[1]!();
  });

  it("cancel stops a running request: its final carries the partial text, finish_reason cancelled", async () => {
    const { requests, generator } = service(4);
    const { sink, events } = recordingSink();
    requests.submit(request("c1"), sink, { sender: "ask" });
    await vi.waitFor(() => expect(generator.releases.length === 1).toBe(true));
    expect(requests.cancel("c1", "ask")).toBe(true);
    await vi.waitFor(() => expect(events.some((e) => e.kind === "final")).toBe(true));
    expect((events.at(-1)!.value as GenerationResult).finishReason).toBe("cancelled");
    expect(requests.cancel("c1", "ask")).toBe(false);
  });

  it("cancel of a queued request answers it cancelled without running it", async () => {
    const { requests, generator } = service(4);
    const running = recordingSink();
    const queued = recordingSink();
    requests.submit(request("r1"), running.sink, { sender: "a" });
    requests.submit(request("r2"), queued.sink, { sender: "b" });
    expect(requests.cancel("r2", "b")).toBe(true);
    expect(queued.events.map((e) => e.kind)).toEqual(["error"]);
    expect((queued.events[0]!.value as EdgeError).code).toBe("cancelled");
    await vi.waitFor(() => expect(generator.releases.length === 1).toBe(true));
    generator.releases[0]!();
    await vi.waitFor(() => expect(running.events.some((e) => e.kind === "final")).toBe(true));
    expect(generator.releases).toHaveLength(1);
  });
});
