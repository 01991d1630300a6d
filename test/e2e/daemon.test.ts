import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MALFORMED_CASES } from "../helpers/malformed-payloads.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "e2e";
const BASE = "tinyllama";

describe("the built daemon over MQTT", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    await probe.subscribe(
      `${BASE}/${NODE}/#`,
      "e2e/replies/#",
      "homeassistant/sensor/x/config",
      "$SYS/broker",
    );
    daemon = startTinyDaemon(broker.url, NODE, []);
    await probe.waitForJson(`${BASE}/${NODE}/status`, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("announces loading, then online, retained, with info", async () => {
    const states = probe.on(`${BASE}/${NODE}/status`).map((m) => (m.json as { state: string }).state);
    expect(states).toContain("online");
    // A fresh subscriber sees the retained state.
    const late = await MqttProbe.connect(broker.url);
    try {
      await late.subscribe(`${BASE}/${NODE}/status`, `${BASE}/${NODE}/info`);
      const status = await late.waitForJson(`${BASE}/${NODE}/status`);
      expect(status.retain).toBe(true);
      expect((status.json as { state: string }).state).toBe("online");
      const info = await late.waitForJson(`${BASE}/${NODE}/info`);
      expect(info.retain).toBe(true);
      expect(info.json).toMatchObject({ capabilities: { stream: true, cancel: true } });
    } finally {
      await late.close();
    }
  });

  it("streams tokens and sends one final whose text is the chunks joined", async () => {
    await probe.publish(`${BASE}/${NODE}/request`, { id: "t1", prompt: "hello", max_tokens: 16, seed: 3 });
    const final = await probe.waitForJson(`${BASE}/${NODE}/response/t1`);
    // biome-ignore lint/suspicious/noExplicitAny: checked field by field
    const result = final.json as Record<string, any>;
    expect(result.status).toBe("ok");
    expect(result.node).toBe(NODE);
    expect(result.usage.completion_tokens).toBeGreaterThan(0);
    expect(result.usage.prompt_tokens).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(result.finish_reason);
    expect(result.timings.total_ms).toBeGreaterThan(0);
    const chunks = probe
      .on(`${BASE}/${NODE}/response/t1/stream`)
      .map((m) => m.json as { id: string; seq: number; text: string });
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
    expect(chunks.every((c) => c.id === "t1")).toBe(true);
    expect(chunks.map((c) => c.text).join("")).toBe(result.text);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(probe.on(`${BASE}/${NODE}/response/t1`)).toHaveLength(1);
  });

  it("answers each of fifty-odd malformed payloads exactly once and keeps serving", async () => {
    const errorsTopic = `${BASE}/${NODE}/response/_errors`;
    const errorsBefore = probe.on(errorsTopic).length;
    for (const { payload } of MALFORMED_CASES) {
      await probe.publish(`${BASE}/${NODE}/request`, payload as string);
    }
    const expectedOnErrors = MALFORMED_CASES.filter((c) => c.id === null).length;
    await probe.waitFor(
      () => probe.on(errorsTopic).length - errorsBefore >= expectedOnErrors,
      30_000,
      "errors",
    );
    for (const c of MALFORMED_CASES.filter((m) => m.id !== null)) {
      const reply = await probe.waitForJson(`${BASE}/${NODE}/response/${c.id}`, () => true, 30_000);
      expect(reply.json, c.name).toMatchObject({ id: c.id, status: "error", error: { code: c.code } });
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const c of MALFORMED_CASES.filter((m) => m.id !== null)) {
      expect(probe.on(`${BASE}/${NODE}/response/${c.id}`), c.name).toHaveLength(1);
    }
    const unaddressed = probe.on(errorsTopic).slice(errorsBefore);
    expect(unaddressed).toHaveLength(expectedOnErrors);
    for (const m of unaddressed) expect(m.json).toMatchObject({ id: null, status: "error" });
    // A reply_to into Home Assistant discovery or $SYS is refused, and nothing is published there.
    expect(probe.on("homeassistant/sensor/x/config")).toHaveLength(0);
    expect(probe.messages.filter((m) => m.topic.startsWith("$SYS") && m.text.includes("m46"))).toHaveLength(
      0,
    );
    // Still serving.
    await probe.publish(`${BASE}/${NODE}/request`, { id: "after-bad", prompt: "hi", max_tokens: 4 });
    const ok = await probe.waitForJson(`${BASE}/${NODE}/response/after-bad`);
    expect((ok.json as { status: string }).status).toBe("ok");
  });

  it("honours reply_to, MQTT 5 Response Topic and Correlation Data", async () => {
    await probe.publish(`${BASE}/${NODE}/request`, {
      id: "r1",
      prompt: "hi",
      max_tokens: 3,
      reply_to: "e2e/replies/r1",
    });
    const viaField = await probe.waitForJson("e2e/replies/r1");
    expect((viaField.json as { id: string }).id).toBe("r1");
    if (!broker.supportsMqtt5) return;
    const correlation = Buffer.from("corr-123");
    await probe.publish(
      `${BASE}/${NODE}/request`,
      { id: "r2", prompt: "hi", max_tokens: 3 },
      { qos: 1, properties: { responseTopic: "e2e/replies/v5", correlationData: correlation } },
    );
    const viaV5 = await probe.waitForJson("e2e/replies/v5");
    expect(viaV5.correlationData?.toString()).toBe("corr-123");
    const chunks = probe.on("e2e/replies/v5/stream");
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.every((c) => c.correlationData?.toString() === "corr-123")).toBe(true);
  });

  it("leaves offline retained after SIGTERM and exits 0", async () => {
    const code = await daemon.stop("SIGTERM");
    expect(code).toBe(0);
    const late = await MqttProbe.connect(broker.url);
    try {
      await late.subscribe(`${BASE}/${NODE}/status`);
      const status = await late.waitForJson(`${BASE}/${NODE}/status`);
      expect((status.json as { state: string }).state).toBe("offline");
    } finally {
      await late.close();
    }
    const logs = daemon.logs();
    expect(logs.some((l) => l.msg === "stopped")).toBe(true);
    // Prompt text never reaches the log at info level.
    expect(daemon.lines.join("\n")).not.toContain("hello");
  });
});
