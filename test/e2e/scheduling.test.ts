import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe, type ReceivedMessage } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "sched";
const REQ = `tinyllama/${NODE}/request`;
const reply = (id: string) => `tinyllama/${NODE}/response/${id}`;

// biome-ignore lint/suspicious/noExplicitAny: replies are checked field by field
type Reply = Record<string, any>;

describe("scheduling: queue, parallel sequences, cancel, deadlines, prefix reuse, conversations", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    await probe.subscribe(`tinyllama/${NODE}/#`);
    daemon = startTinyDaemon(broker.url, NODE, [
      "--runtime.parallelSequences",
      "2",
      "--runtime.contextSize",
      "1024",
      "--scheduler.maxQueue",
      "8",
    ]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  const finalOf = (id: string) =>
    probe.waitForJson(reply(id), () => true, 60_000).then((m) => m.json as Reply);

  it("answers 20 concurrent requests exactly once each: results or busy, none lost", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    await Promise.all(ids.map((id) => probe.publish(REQ, { id, prompt: `question ${id}`, max_tokens: 64 })));
    const finals = await Promise.all(ids.map(finalOf));
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const id of ids) expect(probe.on(reply(id)), id).toHaveLength(1);
    const ok = finals.filter((f) => f.status === "ok");
    const busy = finals.filter((f) => f.status === "error" && f.error.code === "busy");
    expect(ok.length + busy.length).toBe(20);
    // 2 running + 8 queued are accepted at once; the rest are told when to come back.
    expect(ok.length).toBeGreaterThanOrEqual(10);
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) expect(b.retry_after_ms).toBeGreaterThan(0);
  });

  it("runs two requests at once on separate sequences", async () => {
    await Promise.all(
      ["par-a", "par-b"].map((id) => probe.publish(REQ, { id, prompt: "go", max_tokens: 400 })),
    );
    const [a, b] = await Promise.all([finalOf("par-a"), finalOf("par-b")]);
    // The second did not wait for the first: both started right away.
    expect(a!.timings.queue_ms).toBeLessThan(200);
    expect(b!.timings.queue_ms).toBeLessThan(200);
  });

  it("cancels a running request with its partial text, and a queued one with an error", async () => {
    // Two long requests fill both sequences; the third waits in the queue.
    for (const id of ["long-1", "long-2", "queued-1"])
      await probe.publish(REQ, { id, prompt: "story", max_tokens: 2000 });
    await probe.waitFor(
      (m: ReceivedMessage[]) => m.some((x) => x.topic === `${reply("long-1")}/stream`),
      30_000,
    );
    await probe.publish(`tinyllama/${NODE}/cancel`, { id: "queued-1" });
    await probe.publish(`tinyllama/${NODE}/cancel`, { id: "long-1" });
    const queued = await finalOf("queued-1");
    expect(queued).toMatchObject({ status: "error", error: { code: "cancelled" } });
    const running = await finalOf("long-1");
    expect(running.status).toBe("ok");
    expect(running.finish_reason).toBe("cancelled");
    expect(running.usage.completion_tokens).toBeLessThan(2000);
    const chunks = probe.on(`${reply("long-1")}/stream`).map((m) => (m.json as { text: string }).text);
    expect(chunks.join("")).toBe(running.text);
    await probe.publish(`tinyllama/${NODE}/cancel`, { id: "long-2" });
    expect((await finalOf("long-2")).finish_reason).toBe("cancelled");
  });

  it("times out a running request with partial text, and an expired queued one with an error", async () => {
    for (const id of ["slow-1", "slow-2"])
      await probe.publish(REQ, { id, prompt: "story", max_tokens: 2000, timeout_ms: 400 });
    await probe.publish(REQ, { id: "expires-in-queue", prompt: "x", max_tokens: 5, timeout_ms: 100 });
    const slow = await finalOf("slow-1");
    expect(slow.status).toBe("ok");
    expect(slow.finish_reason).toBe("timeout");
    expect(slow.text.length).toBeGreaterThan(0);
    const expired = await finalOf("expires-in-queue");
    expect(expired).toMatchObject({ status: "error", error: { code: "timeout" } });
    await finalOf("slow-2");
  });

  it("reuses a cached system prompt: the second request evaluates far fewer prompt tokens", async () => {
    const system = `You are the house assistant. ${"Rooms: kitchen, hall, attic, garden, garage. ".repeat(20)}`;
    await probe.publish(REQ, { id: "prefix-1", system, prompt: "lights on", max_tokens: 4 });
    const first = await finalOf("prefix-1");
    await probe.publish(REQ, { id: "prefix-2", system, prompt: "lights off", max_tokens: 4 });
    const second = await finalOf("prefix-2");
    expect(first.usage.prompt_tokens).toBeGreaterThan(200);
    expect(second.usage.prompt_tokens).toBeGreaterThan(200);
    expect(second.usage.prompt_tokens_evaluated).toBeLessThan(first.usage.prompt_tokens_evaluated / 4);
  });

  it("returns JSON that parses and follows the schema", async () => {
    const schema = {
      type: "object",
      properties: { action: { type: "string", enum: ["on", "off"] }, confirm: { type: "boolean" } },
      required: ["action", "confirm"],
    };
    await probe.publish(REQ, {
      id: "json-1",
      prompt: "dim the lights",
      json_schema: schema,
      max_tokens: 200,
      seed: 5,
    });
    const result = await finalOf("json-1");
    expect(result.status).toBe("ok");
    expect(result.finish_reason).toBe("stop");
    expect(JSON.parse(result.text)).toEqual(result.json);
    expect(["on", "off"]).toContain(result.json.action);
    expect(typeof result.json.confirm).toBe("boolean");
  });

  it("refuses an invalid JSON schema with invalid_request", async () => {
    await probe.publish(REQ, {
      id: "json-bad",
      prompt: "x",
      json_schema: { type: "object", properties: { a: { type: "frobnicate" } } },
    });
    expect(await finalOf("json-bad")).toMatchObject({ status: "error", error: { code: "invalid_request" } });
  });

  it("continues a conversation: the follow-up's prompt holds the earlier turns", async () => {
    await probe.publish(REQ, {
      id: "conv-1",
      conversation_id: "kitchen",
      prompt: "remember the word teapot",
      max_tokens: 8,
    });
    const first = await finalOf("conv-1");
    await probe.publish(REQ, {
      id: "conv-2",
      conversation_id: "kitchen",
      prompt: "which word?",
      max_tokens: 8,
    });
    const second = await finalOf("conv-2");
    await probe.publish(REQ, { id: "conv-3", prompt: "which word?", max_tokens: 8 });
    const stateless = await finalOf("conv-3");
    // The follow-up carries the first exchange (its question and the answer) in its prompt.
    expect(second.usage.prompt_tokens).toBeGreaterThan(
      stateless.usage.prompt_tokens + first.usage.completion_tokens,
    );
    // And it is served from the cache: only the new turn is evaluated.
    expect(second.usage.prompt_tokens_evaluated).toBeLessThan(second.usage.prompt_tokens / 2);
  });

  it("answers context_overflow for a prompt longer than the context", async () => {
    await probe.publish(REQ, { id: "too-long", prompt: "word ".repeat(1500), max_tokens: 4 });
    const result = await finalOf("too-long");
    expect(result).toMatchObject({ status: "error", error: { code: "context_overflow" } });
    expect(result.error.message).toContain("1024");
  });

  it("answers queued requests with shutting_down and ends the running ones on SIGTERM", async () => {
    for (const id of ["end-1", "end-2", "end-3"])
      await probe.publish(REQ, { id, prompt: "story", max_tokens: 2000 });
    await probe.waitFor(
      (m: ReceivedMessage[]) => m.some((x) => x.topic === `${reply("end-1")}/stream`),
      30_000,
    );
    expect(await daemon.stop("SIGTERM")).toBe(0);
    const [a, b, c] = await Promise.all(["end-1", "end-2", "end-3"].map(finalOf));
    expect(a!.finish_reason).toBe("shutdown");
    expect(b!.finish_reason).toBe("shutdown");
    expect(c).toMatchObject({ status: "error", error: { code: "shutting_down" } });
  });
});
