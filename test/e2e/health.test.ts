import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startDaemonProcess } from "../helpers/daemon-process.js";
import { tinyModelPath } from "../helpers/models.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "watched";
// biome-ignore lint/suspicious/noExplicitAny: payloads are checked field by field
type Json = Record<string, any>;

describe("health, Home Assistant discovery and thermal care of the running daemon", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;
  let dir: string;
  let sensor: string;

  beforeAll(async () => {
    broker = await startTestBroker();
    dir = mkdtempSync(join(tmpdir(), "tle-health-"));
    sensor = join(dir, "temp");
    writeFileSync(sensor, "45000\n");
    probe = await MqttProbe.connect(broker.url);
    await probe.subscribe(`tinyllama/${NODE}/#`, "homeassistant/#");
    daemon = startDaemonProcess([
      "--mqtt.url",
      broker.url,
      "--node.id",
      NODE,
      "--model.path",
      await tinyModelPath(),
      "--runtime.threads",
      "2",
      "--runtime.parallelSequences",
      "1",
      "--health.intervalSeconds",
      "1",
      "--thermal.sensorPath",
      sensor,
      "--thermal.checkSeconds",
      "1",
      "--homeassistant.lastAnswer",
      "true",
    ]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("leaves status, info, health and discovery configs retained", async () => {
    await probe.waitForJson(`tinyllama/${NODE}/health`, (h) => h.state === "online", 10_000);
    const late = await MqttProbe.connect(broker.url);
    try {
      await late.subscribe(
        `tinyllama/${NODE}/status`,
        `tinyllama/${NODE}/info`,
        `tinyllama/${NODE}/health`,
        "homeassistant/#",
      );
      for (const topic of ["status", "info", "health"]) {
        const message = await late.waitForJson(`tinyllama/${NODE}/${topic}`, () => true, 10_000);
        expect(message.retain, topic).toBe(true);
      }
      const configs = await late.waitFor(
        (m) =>
          m.filter((x) => x.topic.startsWith("homeassistant/") && x.topic.endsWith("/config")).length >= 8
            ? m
            : undefined,
        10_000,
        "discovery configs",
      );
      const discovery = configs.filter(
        (x) => x.topic.startsWith("homeassistant/") && x.topic.endsWith("/config"),
      );
      expect(discovery.every((x) => x.retain)).toBe(true);
      const uniqueIds = discovery.map((x) => (x.json as Json).unique_id);
      expect(new Set(uniqueIds).size).toBe(discovery.length);
      // This node has a temperature sensor, and the last answer was asked for.
      expect(uniqueIds).toContain(`tinyllama_edge_${NODE}_cpu_temperature`);
      expect(uniqueIds).toContain(`tinyllama_edge_${NODE}_last_answer`);
    } finally {
      await late.close();
    }
  });

  it("measures memory bandwidth before the model loads, so its read buffers never add to the model's peak", () => {
    const messages = daemon.logs().map((line) => line.msg);
    const measured = messages.indexOf("memory bandwidth measured");
    expect(measured).toBeGreaterThanOrEqual(0);
    expect(measured).toBeLessThan(messages.indexOf("model loaded"));
  });

  it("moves the health counters after a request", async () => {
    const before = (await probe.waitForJson(`tinyllama/${NODE}/health`)).json as Json;
    expect(before.process_rss_bytes).toBeGreaterThan(0);
    await probe.publish(`tinyllama/${NODE}/request`, { id: "h1", prompt: "hello", max_tokens: 8 });
    await probe.waitForJson(`tinyllama/${NODE}/response/h1`);
    const after = await probe.waitForJson(
      `tinyllama/${NODE}/health`,
      (h) => h.totals.requests > before.totals.requests,
      10_000,
    );
    const health = after.json as Json;
    expect(health.totals.completion_tokens).toBeGreaterThan(before.totals.completion_tokens);
    expect(health.tokens_per_second.last).toBeGreaterThan(0);
    // The bandwidth bound for the loaded model, and the share of it the request reached.
    expect(health.generation_ceiling.tokens_per_second).toBeGreaterThan(0);
    // (the tiny model fits in the caches, so its share is small; the arithmetic is what counts here)
    expect(health.generation_ceiling.share_last).toBeCloseTo(
      health.tokens_per_second.last / health.generation_ceiling.tokens_per_second,
      2,
    );
    expect(health.ttft_ms_last).toBeGreaterThan(0);
    await probe.waitForJson(`tinyllama/${NODE}/last_answer`, (a) => a.id === "h1");
    const late = await MqttProbe.connect(broker.url);
    try {
      await late.subscribe(`tinyllama/${NODE}/last_answer`);
      const retained = await late.waitForJson(`tinyllama/${NODE}/last_answer`);
      expect(retained.retain).toBe(true);
      expect(retained.json).toMatchObject({ id: "h1" });
    } finally {
      await late.close();
    }
  });

  it("backs off threads at 85 °C and restores them when cool, visible in health and logs", async () => {
    writeFileSync(sensor, "85000\n");
    const hot = await probe.waitForJson(
      `tinyllama/${NODE}/health`,
      (h) => h.thermal?.state === "throttled",
      15_000,
    );
    expect((hot.json as Json).cpu_temp_c).toBe(85);
    expect((hot.json as Json).threads.current).toBeLessThan((hot.json as Json).threads.configured);
    expect(
      daemon.logs().some((l) => l.level === 40 && l.component === "thermal" && l.temperatureC === 85),
    ).toBe(true);
    writeFileSync(sensor, "60000\n");
    const cool = await probe.waitForJson(
      `tinyllama/${NODE}/health`,
      (h) => h.thermal?.state === "normal" && h.cpu_temp_c === 60,
      15_000,
    );
    expect((cool.json as Json).threads.current).toBe((cool.json as Json).threads.configured);
  });

  it("publishes health with state offline on a clean stop", async () => {
    expect(await daemon.stop("SIGTERM")).toBe(0);
    const offline = await probe.waitForJson(`tinyllama/${NODE}/health`, (h) => h.state === "offline", 10_000);
    expect(offline.retain).toBe(false);
  });
});
