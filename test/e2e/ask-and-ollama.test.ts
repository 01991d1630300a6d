import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { freePort } from "../../src/util/free-port.js";
import { curl } from "../helpers/curl.js";
import { BUILT_MAIN, type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { type JsonObject, MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const run = promisify(execFile);
const NODE = "asker";
const ASK = `tinyllama/${NODE}/ask`;
const ANSWER = `tinyllama/${NODE}/answer`;

/**
 * The built daemon with Home Assistant discovery and the HTTP API on, no temperature sensor, one
 * slot and no queue: asked over the ask topic (mosquitto_pub's way) and through the `ollama` npm
 * client and curl.
 */
describe("the ask topic and the Ollama-compatible API of the running daemon", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;
  let client: Ollama;
  let host: string;
  let model: string;

  const answers = () => probe.on(ANSWER).map((m) => m.json as JsonObject);
  /** Requests that ended cancelled: the slot is free again once this moves. */
  const cancelledRuns = () =>
    daemon.logs().filter((l) => l.msg === "request answered" && l.finishReason === "cancelled").length;
  const nextAnswer = async (match: (event: JsonObject) => boolean = () => true) =>
    (await probe.waitForJson(ANSWER, match, 30_000)).json as JsonObject;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url);
    await probe.subscribe(`tinyllama/${NODE}/#`, "homeassistant/#");
    const port = await freePort();
    host = `http://127.0.0.1:${port}`;
    daemon = startTinyDaemon(broker.url, NODE, [
      "--homeassistant.enabled",
      "true",
      "--thermal.sensorPath",
      "",
      "--http.enabled",
      "true",
      "--http.port",
      String(port),
      "--runtime.parallelSequences",
      "1",
      "--scheduler.maxQueue",
      "0",
      "--requests.maxPromptBytes",
      "200",
      "--requests.defaultMaxTokens",
      "400",
    ]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
    client = new Ollama({ host });
    model = (await client.list()).models[0]!.model;
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("answers a plain-text ask with one answer event, not retained", async () => {
    const before = answers().length;
    await probe.publish(ASK, "Is it cold outside?");
    const event = await nextAnswer((e) => e.prompt === "Is it cold outside?");
    expect(event).toMatchObject({ event_type: "answer", node: NODE });
    expect(event.id).toMatch(/^ask-/);
    expect(typeof event.text).toBe("string");
    expect(event.usage.completion_tokens).toBeGreaterThan(0);
    expect(event.timings.total_ms).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answers()).toHaveLength(before + 1);
    expect(probe.on(ANSWER).every((m) => !m.retain)).toBe(true);
  });

  it("answers an ask sent to the pool on the answer topic of the node that took it", async (context) => {
    if (!broker.supportsMqtt5) context.skip();
    await probe.publish("tinyllama/pool/ask", "Anyone there?");
    expect(await nextAnswer((e) => e.prompt === "Anyone there?")).toMatchObject({
      event_type: "answer",
      node: NODE,
    });
  });

  it("answers an empty, a non-UTF-8 and an oversized prompt with an error event and a code", async () => {
    const cases: Array<[Buffer | string, string]> = [
      ["", "invalid_request"],
      ["   \n", "invalid_request"],
      [Buffer.from([0x48, 0xff, 0xfe, 0x21]), "invalid_request"],
      ["x".repeat(201), "payload_too_large"],
    ];
    for (const [payload, code] of cases) {
      const before = answers().length;
      await probe.client.publishAsync(ASK, payload, { qos: 1 });
      await probe.waitFor(
        (m) => m.filter((x) => x.topic === ANSWER).length > before,
        10_000,
        "an error event",
      );
      const event = answers()[before]!;
      expect(event, String(payload)).toMatchObject({ event_type: "error", error: { code } });
      expect(event.error.message.length).toBeGreaterThan(0);
    }
    // Each with a log line (stdout may lag the broker a little).
    await vi.waitFor(() =>
      expect(daemon.logs().filter((l) => l.msg === "invalid ask")).toHaveLength(cases.length),
    );
  });

  it("shares the one slot: an ask meets a full queue; the Cancel topic stops the running ask", async () => {
    // A streamed HTTP chat holds the one slot while the test reads it.
    const holder = await client.chat({
      model,
      messages: [{ role: "user", content: "a long story" }],
      stream: true,
      options: { num_predict: 1000 },
    });
    expect((await holder[Symbol.asyncIterator]().next()).done).toBe(false);
    await probe.publish(ASK, "And one more thing?");
    const busy = await nextAnswer((e) => e.prompt === "And one more thing?");
    expect(busy).toMatchObject({ event_type: "error", error: { code: "busy" } });
    const cancelledBefore = cancelledRuns();
    holder.abort();
    await vi.waitFor(() => expect(cancelledRuns()).toBe(cancelledBefore + 1));

    const long = "Tell me everything.";
    const asksAccepted = () =>
      daemon.logs().filter((l) => l.msg === "request accepted" && l.origin === "ask:node").length;
    const asksBefore = asksAccepted();
    await probe.publish(ASK, long);
    await vi.waitFor(() => expect(asksAccepted()).toBe(asksBefore + 1));
    await probe.publish(`tinyllama/${NODE}/ask/cancel`, "cancel");
    const first = await nextAnswer((e) => e.prompt === long);
    expect(first).toMatchObject({ event_type: "answer", finish_reason: "cancelled" });
    await vi.waitFor(() =>
      expect(daemon.logs().some((l) => l.msg === "asks cancelled" && l.cancelled === 1)).toBe(true),
    );
    await probe.publish(ASK, "Still there?");
    expect((await nextAnswer((e) => e.prompt === "Still there?")).event_type).toBe("answer");
  });

  it("mosquitto_rr asks in one line (it speaks MQTT 5 only)", async (context) => {
    if (!broker.supportsMqtt5) context.skip();
    const port = String(broker.port);
    const { stdout } = await run("mosquitto_rr", [
      "-p",
      port,
      "-t",
      ASK,
      "-e",
      ANSWER,
      "-m",
      "Name a soup.",
      "-W",
      "30",
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ event_type: "answer", prompt: "Name a soup." });
  });

  it("publishes the entities to ask with, and no temperature or last answer on this node", async () => {
    const configs = await probe.waitFor(
      (m) => {
        const found = m.filter((x) => x.topic.startsWith("homeassistant/") && x.text.length > 0);
        return found.some((x) => x.topic.startsWith("homeassistant/button/")) ? found : undefined;
      },
      10_000,
      "discovery configs",
    );
    const byComponent = (component: string) =>
      configs
        .filter((x) => x.topic.startsWith(`homeassistant/${component}/`))
        .map((x) => x.json as JsonObject);
    expect(byComponent("notify")[0]).toMatchObject({ command_topic: ASK });
    expect(byComponent("text")[0]).toMatchObject({ command_topic: ASK, max: 255 });
    expect(byComponent("event")[0]).toMatchObject({ state_topic: ANSWER, event_types: ["answer", "error"] });
    expect(byComponent("button")[0]).toMatchObject({ command_topic: `tinyllama/${NODE}/ask/cancel` });
    const ids = configs.map((x) => (x.json as JsonObject).unique_id as string);
    expect(ids.some((id) => id.endsWith("_cpu_temperature"))).toBe(false);
    expect(ids.some((id) => id.endsWith("_last_answer"))).toBe(false);
    expect(probe.on(`tinyllama/${NODE}/last_answer`).every((m) => m.text === "")).toBe(true);
  });

  it("serves the ollama client: list, chat streamed and whole, generate", async () => {
    expect(model).toMatch(/:latest$/);
    expect((await client.ps()).models).toHaveLength(1);
    const stream = await client.chat({
      model,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      options: { num_predict: 8 },
    });
    let done = 0;
    let text = "";
    for await (const part of stream) {
      if (part.done) done++;
      else text += part.message.content;
    }
    expect(done).toBe(1);
    expect(text.length).toBeGreaterThan(0);
    const whole = await client.chat({
      model,
      messages: [{ role: "user", content: "hi" }],
      stream: false,
      options: { num_predict: 8 },
    });
    expect(whole.done).toBe(true);
    expect(whole.eval_count).toBeGreaterThan(0);
    const generated = await client.generate({ model, prompt: "hello", options: { num_predict: 4 } });
    expect(generated.done).toBe(true);
  });

  it("answers bad JSON 400, an unknown model 404 and a full queue 503; a disconnect cancels; it keeps serving", async () => {
    const bad = await curl(["-d", "{nope", `${host}/api/chat`]);
    expect(bad.status).toBe(400);
    expect(Object.keys(JSON.parse(bad.body))).toEqual(["error"]);
    const unknown = await curl(["-d", '{"model":"llama3.2","prompt":"x"}', `${host}/api/generate`]);
    expect(unknown.status).toBe(404);

    // A long streamed chat holds the one slot: an HTTP request then gets 503, an ask gets busy.
    const long = await client.chat({
      model,
      messages: [{ role: "user", content: "a long story" }],
      stream: true,
      options: { num_predict: 1000 },
    });
    const parts = long[Symbol.asyncIterator]();
    expect((await parts.next()).done).toBe(false);
    const full = await curl([
      "-d",
      JSON.stringify({ model, prompt: "x", stream: false }),
      `${host}/api/generate`,
    ]);
    expect(full.status).toBe(503);
    expect(JSON.parse(full.body).error).toBe(
      "server busy, please try again.  maximum pending requests exceeded",
    );
    await probe.publish(ASK, "Queue full?");
    expect(await nextAnswer((e) => e.prompt === "Queue full?")).toMatchObject({ error: { code: "busy" } });

    const cancelledBefore = cancelledRuns();
    long.abort();
    await vi.waitFor(() => expect(cancelledRuns()).toBe(cancelledBefore + 1));
    expect(daemon.logs().filter((l) => l.msg === "HTTP client went away: request cancelled")).toHaveLength(2);
    const after = await client.generate({
      model,
      prompt: "again",
      stream: false,
      options: { num_predict: 2 },
    });
    expect(after.done).toBe(true);
    await probe.publish(ASK, "And now?");
    expect((await nextAnswer((e) => e.prompt === "And now?")).event_type).toBe("answer");
  });

  it("tinyllama-edge forget (uninstall.sh --purge) removes the node's entities and retained state", async () => {
    await daemon.stop();
    const { stdout } = await run(process.execPath, [
      BUILT_MAIN,
      "forget",
      "--mqtt.url",
      broker.url,
      "--node.id",
      NODE,
    ]);
    expect(stdout).toContain(`removed node ${NODE}'s`);
    const late = await MqttProbe.connect(broker.url);
    try {
      await late.subscribe("homeassistant/#", `tinyllama/${NODE}/#`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(late.messages.filter((m) => m.retain && m.text.length > 0).map((m) => m.topic)).toEqual([]);
    } finally {
      await late.close();
    }
  });
});
