import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { GenerationResult } from "../../src/core/generation.js";
import { EdgeError } from "../../src/errors.js";
import { ReplyChannel } from "../../src/serving/reply-channel.js";

/** ReplyChannel as a table: what a sequence of calls publishes, in order. */
type Call = { chunk: string } | "final" | { error: EdgeError };

interface Case {
  name: string;
  stream: boolean;
  /** Messages on the reply topic the fake broker refuses as too large (by their order there). */
  tooLarge?: number[];
  calls: Call[];
  published: string[];
  settled: boolean[];
}

const RESULT: GenerationResult = {
  id: "r1",
  text: "hello",
  finishReason: "stop",
  usage: { promptTokens: 3, completionTokens: 2, promptTokensEvaluated: 1 },
  timings: { queueMs: 1, ttftMs: 2, totalMs: 3, tokensPerSecond: 4 },
  model: "tiny.gguf",
  node: "n",
};

const CASES: Case[] = [
  {
    name: "chunks are numbered, then exactly one final",
    stream: true,
    calls: [{ chunk: "he" }, { chunk: "" }, { chunk: "llo" }, "final", "final", { chunk: "late" }],
    published: [
      'r/stream {"id":"r1","seq":0,"text":"he"}',
      'r/stream {"id":"r1","seq":1,"text":"llo"}',
      'r {"id":"r1","status":"ok","text":"hello","finish_reason":"stop","usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_evaluated":1},"timings":{"queue_ms":1,"ttft_ms":2,"total_ms":3,"tokens_per_second":4},"model":"tiny.gguf","node":"n"}',
    ],
    settled: [true],
  },
  {
    name: "no stream topic: chunks are not published",
    stream: false,
    calls: [{ chunk: "he" }, { error: new EdgeError("cancelled", "cancelled before it started") }],
    published: [
      'r {"id":"r1","status":"error","error":{"code":"cancelled","message":"cancelled before it started"},"node":"n"}',
    ],
    settled: [false],
  },
  {
    name: "an error settles it: a later final is suppressed; busy carries retry_after_ms",
    stream: true,
    calls: [{ error: new EdgeError("busy", "queue full", { details: { retryAfterMs: 1234.4 } }) }, "final"],
    published: [
      'r {"id":"r1","status":"error","error":{"code":"busy","message":"queue full"},"node":"n","retry_after_ms":1234}',
    ],
    settled: [false],
  },
  {
    name: "a final larger than the broker takes is replaced by a short payload_too_large",
    stream: false,
    tooLarge: [0],
    calls: ["final"],
    published: [
      "r (refused)",
      expect.stringMatching(
        /^r \{"id":"r1","status":"error","error":\{"code":"payload_too_large",/,
      ) as unknown as string,
    ],
    settled: [true],
  },
];

describe("ReplyChannel", () => {
  it.each(CASES)("$name", async ({ stream, tooLarge = [], calls, published, settled }) => {
    const sent: string[] = [];
    const settles: boolean[] = [];
    let onReplyTopic = 0;
    const channel = new ReplyChannel({
      id: "r1",
      topic: "r",
      streamTopic: stream ? "r/stream" : null,
      correlationData: undefined,
      streamQos: 0,
      node: "n",
      logger: pino({ level: "silent" }),
      onSettled: (ok) => settles.push(ok),
      publish: async (topic, payload) => {
        if (topic === "r" && tooLarge.includes(onReplyTopic++)) {
          sent.push(`${topic} (refused)`);
          return false;
        }
        sent.push(`${topic} ${payload}`);
        return true;
      },
    });
    for (const call of calls) {
      if (call === "final") channel.final(RESULT);
      else if ("chunk" in call) channel.chunk(call.chunk);
      else channel.error(call.error);
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual(published);
    expect(settles).toEqual(settled);
    expect(channel.isSettled).toBe(true);
  });

  it("sends the correlation data with every message of the reply", async () => {
    const seen: Array<Buffer | undefined> = [];
    const correlation = Buffer.from("c-1");
    const channel = new ReplyChannel({
      id: "r1",
      topic: "r",
      streamTopic: "r/stream",
      correlationData: correlation,
      streamQos: 0,
      node: "n",
      logger: pino({ level: "silent" }),
      onSettled: () => undefined,
      publish: async (_topic, _payload, options) => {
        seen.push(options.correlationData);
        return true;
      },
    });
    channel.chunk("a");
    channel.final(RESULT);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([correlation, correlation]);
  });
});
