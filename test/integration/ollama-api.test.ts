import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import { Ollama } from "ollama";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OllamaServer } from "../../src/http/ollama-server.js";
import type { InferenceEngine } from "../../src/inference/engine.js";
import { createTopics } from "../../src/mqtt/topics.js";
import { ConversationStore } from "../../src/serving/conversation-store.js";
import { RequestService } from "../../src/serving/request-service.js";
import { ServingStats } from "../../src/serving/serving-stats.js";
import { curl } from "../helpers/curl.js";
import { startTinyEngine } from "../helpers/engine.js";

const LIMITS = {
  maxPayloadBytes: 65536,
  maxPromptBytes: 16384,
  maxMessages: 64,
  defaultMaxTokens: 8,
  maxTokensCap: 400,
  defaultTemperature: 0.7,
  defaultTimeoutMs: 60_000,
  maxTimeoutMs: 600_000,
  systemPrompt: "You are brief.",
};
const MODEL = "synthetic-tiny-q8_0:latest";
const SWITCH_SCHEMA = {
  type: "object",
  properties: { action: { type: "string", enum: ["on", "off"] } },
  required: ["action"],
};

/**
 * The real engine on the tiny model behind the real RequestService and OllamaServer, driven by the
 * official `ollama` npm client and curl. One slot and no queue, so a second request meets a full queue.
 */
describe("the Ollama-compatible API", () => {
  let llama: Llama;
  let engine: InferenceEngine;
  let service: RequestService;
  let server: OllamaServer;
  let host: string;
  let client: Ollama;
  const cancels: Array<{ id: string; found: boolean }> = [];

  beforeAll(async () => {
    llama = await getLlama({ gpu: false, logLevel: LlamaLogLevel.error });
    engine = await startTinyEngine(llama, { sequences: 1 });
    service = new RequestService({
      logger: pino({ level: "silent" }),
      topics: createTopics({ baseTopic: "t", nodeId: "n", poolGroup: "", discoveryPrefix: "homeassistant" }),
      limits: LIMITS,
      maxQueue: 0,
      replyTopicAllow: ["#"],
      fairness: "sender",
      ratePerMinute: 0,
      slots: 1,
      streamQos: 0,
      publish: async () => undefined,
      generator: engine,
      stats: new ServingStats(),
      conversations: new ConversationStore({ maxCount: 4, maxAgeMs: 60_000, maxMessages: 4, maxChars: 400 }),
      modelName: () => "synthetic-tiny-q8_0.gguf",
    });
    server = new OllamaServer({
      logger: pino({ level: "silent" }),
      host: "127.0.0.1",
      port: 0,
      limits: LIMITS,
      requests: {
        submit: (request, sink, from) => service.submit(request, sink, from),
        cancel: (id, requester) => {
          const found = service.cancel(id, requester);
          cancels.push({ id, found });
          return found;
        },
      },
      model: () => ({
        name: MODEL,
        fileName: "synthetic-tiny-q8_0.gguf",
        sizeBytes: 1234,
        modifiedAt: new Date("2026-01-01T00:00:00Z"),
        digest: "0".repeat(64),
        architecture: "llama",
        quantization: "Q8_0",
        contextLength: 512,
      }),
    });
    await server.start();
    host = `http://127.0.0.1:${server.address!.port}`;
    client = new Ollama({ host });
  });

  afterAll(async () => {
    await server?.stop();
    await service?.drain();
    await engine?.stop();
    await llama?.dispose();
  });

  it("answers version, tags, ps and show as Ollama does", async () => {
    expect((await client.version()).version).toMatch(/^\d+\.\d+\.\d+$/);
    const tags = await client.list();
    expect(tags.models.map((m) => m.model)).toEqual([MODEL]);
    expect(tags.models[0]!.details.quantization_level).toBe("Q8_0");
    const ps = await client.ps();
    expect(ps.models.map((m) => m.name)).toEqual([MODEL]);
    const show = await client.show({ model: "synthetic-tiny-q8_0" });
    expect(show.details.family).toBe("llama");
    expect(show.capabilities).toEqual(["completion"]);
  });

  it("chat streams NDJSON chunks and ends with one done object with counters", async () => {
    const stream = await client.chat({
      model: MODEL,
      messages: [{ role: "user", content: "hello" }],
      stream: true,
      options: { num_predict: 12, seed: 3, temperature: 0.5 },
    });
    const parts: string[] = [];
    const finals = [];
    for await (const part of stream) {
      if (part.done) finals.push(part);
      else parts.push(part.message.content);
    }
    expect(parts.length).toBeGreaterThan(0);
    expect(finals).toHaveLength(1);
    expect(finals[0]!.eval_count).toBeGreaterThan(0);
    expect(finals[0]!.prompt_eval_count).toBeGreaterThan(0);
    expect(finals[0]!.total_duration).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(finals[0]!.done_reason);
    // The same request without streaming gives the same text (same seed).
    const whole = await client.chat({
      model: MODEL,
      messages: [{ role: "user", content: "hello" }],
      stream: false,
      options: { num_predict: 12, seed: 3, temperature: 0.5 },
    });
    expect(whole.done).toBe(true);
    expect(whole.message.content).toBe(parts.join(""));
  });

  it("generate answers streaming and not; num_predict bounds the answer", async () => {
    const greedy = { temperature: 0, seed: 1 };
    const short = await client.generate({
      model: MODEL,
      prompt: "hi",
      options: { ...greedy, num_predict: 2 },
    });
    const longer = await client.generate({
      model: MODEL,
      prompt: "hi",
      options: { ...greedy, num_predict: 8 },
    });
    expect(short.done).toBe(true);
    expect(short.done_reason).toBe("length");
    const [shortText, longerText] = [short.response ?? "", longer.response ?? ""];
    expect(shortText.length).toBeGreaterThan(0);
    expect(longerText.startsWith(shortText)).toBe(true);
    expect(longerText.length).toBeGreaterThan(shortText.length);
    const stream = await client.generate({
      model: MODEL,
      prompt: "hi",
      stream: true,
      options: { num_predict: 3 },
    });
    let done = 0;
    for await (const part of stream) if (part.done) done++;
    expect(done).toBe(1);
  });

  it("takes the chat call Home Assistant's Ollama integration makes", async () => {
    // homeassistant/components/ollama/entity.py: list() and ps() every 30 s, then chat() with a
    // system prompt, keep_alive -1, options {num_ctx: 8192}, think as configured, streamed.
    const response = await fetch(`${host}/api/chat`, {
      method: "POST",
      body: JSON.stringify({
        model: MODEL,
        messages: [
          { role: "system", content: "You are a voice assistant for Home Assistant." },
          { role: "user", content: "Is the kitchen light on?" },
        ],
        stream: true,
        keep_alive: -1,
        options: { num_ctx: 8192, num_predict: 6 },
        think: false,
      }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await response.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { done: boolean; message: { role: string; content: string } });
    expect(lines.at(-1)!.done).toBe(true);
    expect(lines.every((line) => line.message.role === "assistant")).toBe(true);
    const withDuration = await client.chat({
      model: MODEL,
      messages: [{ role: "user", content: "hi" }],
      keep_alive: "300s",
      options: { num_predict: 2 },
    });
    expect(withDuration.done).toBe(true);
  });

  it("format as a JSON schema constrains the answer through the grammar path", async () => {
    const answer = await client.chat({
      model: MODEL,
      messages: [{ role: "user", content: "switch" }],
      format: SWITCH_SCHEMA,
      options: { num_predict: 40, seed: 1 },
    });
    expect(["on", "off"]).toContain((JSON.parse(answer.message.content) as { action: string }).action);
  });

  it("refuses what the model cannot do, an unknown model and bad bodies with Ollama-shaped errors", async () => {
    const failure = async (call: Promise<unknown>) => {
      try {
        await call;
      } catch (err) {
        // The client's ResponseError (not exported by the package).
        const refused = err as { name: string; status_code: number; error: string };
        expect(refused.name).toBe("ResponseError");
        return { status: refused.status_code, error: refused.error };
      }
      throw new Error("expected a refusal");
    };
    expect(
      await failure(client.chat({ model: "llama3.2", messages: [{ role: "user", content: "x" }] })),
    ).toEqual({
      status: 404,
      error: 'model "llama3.2" not found, try pulling it first',
    });
    expect((await failure(client.show({ model: "nope" }))).status).toBe(404);
    const tools = await failure(
      client.chat({
        model: MODEL,
        messages: [{ role: "user", content: "x" }],
        tools: [
          { type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } },
        ],
      }),
    );
    expect(tools).toEqual({ status: 400, error: `"${MODEL}" does not support tools` });
    const think = await failure(
      client.chat({ model: MODEL, messages: [{ role: "user", content: "x" }], think: true }),
    );
    expect(think.status).toBe(400);
    expect(think.error).toContain("does not support thinking");

    // curl, as a user would type it: bad JSON, then a body with no model.
    const badJson = await curl(["-d", "{not json", `${host}/api/chat`]);
    expect(badJson.status).toBe(400);
    expect(JSON.parse(badJson.body).error).toMatch(/^invalid JSON/);
    const noModel = await curl(["-d", '{"messages":[]}', `${host}/api/generate`]);
    expect(noModel.status).toBe(400);
    expect(Object.keys(JSON.parse(noModel.body))).toEqual(["error"]);
    const loaded = await curl(["-d", JSON.stringify({ model: MODEL }), `${host}/api/generate`]);
    expect(JSON.parse(loaded.body)).toMatchObject({ done: true, done_reason: "load" });
  });

  it("a full queue is answered 503 as Ollama does; a client that disconnects mid-stream cancels its request", async () => {
    const long = await client.chat({
      model: MODEL,
      messages: [{ role: "user", content: "tell me a long story" }],
      stream: true,
      options: { num_predict: 400, temperature: 1, seed: 5 },
    });
    const iterator = long[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);

    const busy = await curl([
      "-d",
      JSON.stringify({ model: MODEL, prompt: "x", stream: false }),
      `${host}/api/generate`,
    ]);
    expect(busy.status).toBe(503);
    expect(JSON.parse(busy.body)).toEqual({
      error: "server busy, please try again.  maximum pending requests exceeded",
    });

    long.abort();
    await expect(iterator.next()).rejects.toThrow();
    await expect.poll(() => cancels.length, { timeout: 5000 }).toBe(1);
    expect(cancels[0]!.found).toBe(true);
    await expect.poll(() => service.activeCount, { timeout: 5000 }).toBe(0);

    // And the node keeps serving.
    const after = await client.generate({ model: MODEL, prompt: "again", options: { num_predict: 2 } });
    expect(after.done).toBe(true);
  });
});
