import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import type { GenerationRequest } from "../../src/core/generation.js";
import type { GenerateOptions, GenerationOutcome } from "../../src/inference/engine.js";
import { createTopics } from "../../src/mqtt/topics.js";
import type { IncomingMessage } from "../../src/mqtt/transport.js";
import { ConversationStore } from "../../src/serving/conversation-store.js";
import { RequestService } from "../../src/serving/request-service.js";
import { ServingStats } from "../../src/serving/serving-stats.js";
import { REQUEST_LIMITS, useFakeClock } from "../helpers/fakes.js";

/**
 * RequestService over MQTT messages, as a table: a fake generator that streams one chunk and waits
 * to be finished or aborted, fake time, and the journal of generations and answers in order.
 */
type Step =
  | { request: string; fields?: Record<string, unknown>; expirySeconds?: number; raw?: string }
  | { cancel: string }
  | { finish: string }
  | { advance: number }
  | { open: number }
  | "drain";

interface Case {
  name: string;
  slots: number;
  maxQueue: number;
  steps: Step[];
  journal: string[];
}

function message(topic: string, payload: string, expirySeconds?: number): IncomingMessage {
  return {
    topic,
    payload: Buffer.from(payload),
    responseTopic: undefined,
    correlationData: undefined,
    messageExpirySeconds: expirySeconds,
    userProperties: undefined,
    retained: false,
    receivedAt: performance.now(),
  };
}

function harness(slots: number, maxQueue: number) {
  const journal: string[] = [];
  const answers = new Map<string, number>();
  const finishers = new Map<string, () => void>();
  const generator = {
    generate(request: GenerationRequest, options: GenerateOptions): Promise<GenerationOutcome> {
      journal.push(`run ${request.id}`);
      options.onText("partial");
      return new Promise((resolve) => {
        const end = (stopReason: GenerationOutcome["stopReason"], text: string) => {
          if (!finishers.delete(request.id)) return;
          resolve({
            text,
            stopReason,
            promptTokens: 3,
            evaluatedPromptTokens: 3,
            completionTokens: 2,
            firstTokenAt: performance.now(),
          });
        };
        finishers.set(request.id, () => end("stop", "partial answer"));
        options.signal.addEventListener("abort", () => end("abort", "partial"), { once: true });
      });
    },
  };
  const topics = createTopics({
    baseTopic: "t",
    nodeId: "n",
    poolGroup: "",
    discoveryPrefix: "homeassistant",
  });
  const service = new RequestService({
    logger: pino({ level: "silent" }),
    topics,
    limits: REQUEST_LIMITS,
    maxQueue,
    replyTopicAllow: ["#"],
    fairness: "sender",
    ratePerMinute: 0,
    slots,
    streamQos: 0,
    publish: async (topic, payload) => {
      if (topic.endsWith("/stream")) return true;
      const answer = JSON.parse(payload) as {
        id: string | null;
        status: string;
        finish_reason?: string;
        text?: string;
        error?: { code: string };
      };
      const key = `${answer.id}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
      journal.push(
        answer.status === "ok"
          ? `final ${answer.id} ${answer.finish_reason} "${answer.text}"`
          : `error ${answer.id} ${answer.error?.code}`,
      );
      return true;
    },
    generator,
    stats: new ServingStats(),
    conversations: new ConversationStore({ maxCount: 4, maxAgeMs: 60_000, maxMessages: 4, maxChars: 400 }),
    modelName: () => "tiny.gguf",
  });
  let draining: Promise<void> | undefined;
  async function step(s: Step): Promise<void> {
    if (s === "drain") draining = service.drain();
    else if ("request" in s) {
      const payload = s.raw ?? JSON.stringify({ id: s.request, prompt: "hi", ...s.fields });
      service.handleRequest(message(topics.nodeRequest, payload, s.expirySeconds));
    } else if ("cancel" in s)
      service.handleCancel(message(topics.nodeCancel, JSON.stringify({ id: s.cancel })));
    else if ("finish" in s) finishers.get(s.finish)?.();
    else if ("advance" in s) await vi.advanceTimersByTimeAsync(s.advance);
    else if ("open" in s) service.startServing(s.open);
    await vi.advanceTimersByTimeAsync(0);
  }
  return { service, journal, answers, step, drained: () => draining };
}

const CASES: Case[] = [
  {
    name: "admission: a valid request is generated and answered with its text",
    slots: 1,
    maxQueue: 2,
    steps: [{ request: "a" }, { finish: "a" }],
    journal: ["run a", 'final a stop "partial answer"'],
  },
  {
    name: "admission: bad input is answered with an error and never generated",
    slots: 1,
    maxQueue: 2,
    steps: [
      { request: "x", raw: "{not json" },
      { request: "b", fields: { max_tokens: "many" } },
      { request: "c", fields: { prompt: "p".repeat(20_000) } },
    ],
    journal: ["error null invalid_request", "error b invalid_request", "error c payload_too_large"],
  },
  {
    name: "requests wait while the model loads (zero slots) and start when serving opens",
    slots: 0,
    maxQueue: 2,
    steps: [{ request: "a" }, { request: "b" }, { open: 2 }, { finish: "b" }, { finish: "a" }],
    journal: ["run a", "run b", 'final b stop "partial answer"', 'final a stop "partial answer"'],
  },
  {
    name: "busy: beyond the slots and the queue a request is answered busy at once",
    slots: 1,
    maxQueue: 1,
    steps: [{ request: "a" }, { request: "b" }, { request: "c" }, { finish: "a" }, { finish: "b" }],
    journal: [
      "run a",
      "error c busy",
      'final a stop "partial answer"',
      "run b",
      'final b stop "partial answer"',
    ],
  },
  {
    name: "fairness: senders (reply topics) take turns",
    slots: 1,
    maxQueue: 8,
    steps: [
      { request: "x1", fields: { reply_to: "clients/x/1" } },
      { request: "x2", fields: { reply_to: "clients/x/2" } },
      { request: "x3", fields: { reply_to: "clients/x/3" } },
      { request: "y1", fields: { reply_to: "clients/y/1" } },
      { finish: "x1" },
      { finish: "x2" },
      { finish: "y1" },
      { finish: "x3" },
    ],
    journal: [
      "run x1",
      'final x1 stop "partial answer"',
      "run x2",
      'final x2 stop "partial answer"',
      "run y1",
      'final y1 stop "partial answer"',
      "run x3",
      'final x3 stop "partial answer"',
    ],
  },
  {
    name: "cancel: a queued request is answered cancelled, a running one ends with its partial text",
    slots: 1,
    maxQueue: 4,
    steps: [{ request: "a" }, { request: "b" }, { cancel: "b" }, { cancel: "a" }, { cancel: "gone" }],
    journal: ["run a", "error b cancelled", 'final a cancelled "partial"'],
  },
  {
    name: "deadlines: timeout_ms ends a running request with its partial text and expires a queued one",
    slots: 1,
    maxQueue: 4,
    steps: [
      { request: "a", fields: { timeout_ms: 5_000 } },
      { request: "b", fields: { timeout_ms: 2_000 } },
      { advance: 2_000 },
      { advance: 3_000 },
    ],
    journal: ["run a", "error b timeout", 'final a timeout "partial"'],
  },
  {
    name: "deadlines: an MQTT 5 message expiry shorter than timeout_ms bounds the wait",
    slots: 1,
    maxQueue: 4,
    steps: [{ request: "a" }, { request: "b", expirySeconds: 1 }, { advance: 1_000 }, { finish: "a" }],
    journal: ["run a", "error b timeout", 'final a stop "partial answer"'],
  },
  {
    name: "drain: queued requests get shutting_down, running ones end with their text, new ones are refused",
    slots: 1,
    maxQueue: 4,
    steps: [{ request: "a" }, { request: "b" }, "drain", { request: "c" }],
    journal: ["run a", "error b shutting_down", 'final a shutdown "partial"', "error c shutting_down"],
  },
];

describe("RequestService", () => {
  useFakeClock();

  it.each(CASES)("$name", async ({ slots, maxQueue, steps, journal }) => {
    const h = harness(slots, maxQueue);
    for (const s of steps) await h.step(s);
    await h.drained();
    expect(h.journal).toEqual(journal);
    // Exactly one answer per request, whatever happened to it.
    for (const [id, count] of h.answers) expect(count, `answers to ${id}`).toBe(1);
  });
});
