import os from "node:os";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createRootedFileReader } from "../../src/hardware/rooted-file-reader.js";
import { HealthReporter, type ServingSnapshot } from "../../src/health/health-reporter.js";
import { buildDiscoveryConfigs, HomeAssistantDiscovery } from "../../src/health/home-assistant.js";
import { PrometheusExporter } from "../../src/health/prometheus-exporter.js";
import { nodeHostFacts, SystemMetrics } from "../../src/health/system-metrics.js";
import { ThermalGuard } from "../../src/health/thermal-guard.js";
import { statusPayload } from "../../src/mqtt/status.js";
import { createTopics } from "../../src/mqtt/topics.js";
import { MqttTransport } from "../../src/mqtt/transport.js";
import { ServingStats } from "../../src/serving/serving-stats.js";
import { freePort } from "../../src/util/free-port.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const HEALTH_FIELDS = [
  "ts",
  "state",
  "cpu_load_percent",
  "load_avg",
  "cpu_temp_c",
  "throttling",
  "memory",
  "process_rss_bytes",
  "uptime_s",
  "system_uptime_s",
  "queue_depth",
  "active_requests",
  "totals",
  "tokens_per_second",
  "generation_ceiling",
  "ttft_ms_last",
  "threads",
  "thermal",
];

/** Health, discovery and metrics over a real broker, published through the daemon's own transport. */
describe("health, Home Assistant discovery and metrics over MQTT", () => {
  const logger = pino({ level: "silent" });
  const nodeId = `health-${process.pid}`;
  const topics = createTopics({ baseTopic: "tle-test", nodeId, poolGroup: "", discoveryPrefix: "ha-test" });
  const stats = new ServingStats();
  const serving: ServingSnapshot = { state: "online", queueDepth: 0, activeRequests: 0, stats };
  const configs = buildDiscoveryConfigs({ topics, nodeId, version: "0.0.0-test", model: "test model" });
  const probes: MqttProbe[] = [];
  let broker: TestBroker;
  let transport: MqttTransport;
  let metrics: SystemMetrics;
  let guard: ThermalGuard;
  let reporter: HealthReporter;
  let discovery: HomeAssistantDiscovery;

  async function probe(...subscriptions: string[]): Promise<MqttProbe> {
    const client = await MqttProbe.connect(broker.url);
    probes.push(client);
    await client.subscribe(...subscriptions);
    return client;
  }

  beforeAll(async () => {
    broker = await startTestBroker();
    const { config } = loadConfig({
      argv: [],
      env: {},
      defaultConfigPath: "/nonexistent/tinyllama-edge.json",
    });
    const mqttConfig = {
      ...config.mqtt,
      url: broker.url,
      protocolVersion: broker.supportsMqtt5 ? 5 : 4,
    } as const;
    transport = new MqttTransport({
      logger,
      config: mqttConfig,
      url: broker.url,
      clientId: `tle-health-${process.pid}`,
      will: { topic: topics.status, payload: statusPayload("offline") },
      onConnect: async () => {},
      onMessage: (message) => {
        if (message.topic === topics.homeAssistantStatus) {
          void discovery.handleHomeAssistantStatus(message.payload);
        }
      },
    });
    await transport.start(AbortSignal.timeout(10_000));
    const publish = transport.publish.bind(transport);

    metrics = new SystemMetrics({
      files: createRootedFileReader("/"),
      sensorPath: config.thermal.sensorPath,
      runCommand: null,
      host: nodeHostFacts(),
      now: () => performance.now(),
    });
    guard = new ThermalGuard({
      logger,
      sensor: metrics,
      settings: { ...config.thermal, checkIntervalMs: config.thermal.checkSeconds * 1000 },
      configuredThreads: 2,
      setThreads: () => {},
    });
    reporter = new HealthReporter({
      logger,
      topics,
      intervalMs: config.health.intervalSeconds * 1000,
      publish,
      metrics,
      snapshot: () => serving,
      thermal: () => guard.status(),
    });
    discovery = new HomeAssistantDiscovery({ logger, enabled: true, configs, publish, minRepublishMs: 0 });

    await metrics.start();
    await guard.start();
    await reporter.start();
    await discovery.start();
    await transport.subscribe([{ topic: topics.homeAssistantStatus, qos: 1 }]);
  });

  afterEach(async () => {
    await Promise.all(probes.splice(0).map((client) => client.close()));
  });

  afterAll(async () => {
    discovery?.stop();
    reporter?.stop();
    guard?.stop();
    metrics?.stop();
    // Leave the broker clean for the next run (mosquitto here keeps nothing, but a shared one would).
    await transport?.publish(topics.health, "", { qos: 1, retain: true }).catch(() => undefined);
    await transport?.stop();
    await broker?.stop();
  });

  it("publishes health retained, with every field and the real process figures", async () => {
    const client = await probe(topics.health);
    const message = await client.waitForJson(topics.health, () => true, 10_000);
    expect(message.retain).toBe(true);
    const health = message.json as Record<string, unknown>;
    expect(Object.keys(health).sort()).toEqual([...HEALTH_FIELDS].sort());
    expect(health.process_rss_bytes).toBeGreaterThan(0);
    expect(health.state).toBe("online");
    expect(health.threads).toEqual({ configured: 2, current: 2 });
    expect((health.memory as { total_bytes: number }).total_bytes).toBeGreaterThan(0);
    expect(Math.abs((health.memory as { total_bytes: number }).total_bytes - os.totalmem())).toBeLessThan(
      os.totalmem() * 0.05,
    );
  });

  it("moves the counters after answers and a publishNow", async () => {
    const client = await probe(topics.health);
    await client.waitForJson(topics.health, () => true, 10_000);
    stats.recordAnswer(true);
    stats.recordAnswer(false);
    stats.recordGeneration({
      promptTokens: 12,
      promptTokensEvaluated: 5,
      completionTokens: 34,
      tokensPerSecond: 21.5,
      ttftMs: 250,
      jobMs: 1800,
    });
    serving.queueDepth = 3;
    serving.activeRequests = 1;
    await reporter.publishNow();
    const message = await client.waitForJson(
      topics.health,
      (json) => (json.totals as { requests: number }).requests === 2,
      10_000,
    );
    expect(message.json).toMatchObject({
      totals: {
        requests: 2,
        errors: 1,
        prompt_tokens: 12,
        prompt_tokens_evaluated: 5,
        completion_tokens: 34,
      },
      tokens_per_second: { last: 21.5, average: 21.5 },
      ttft_ms_last: 250,
      queue_depth: 3,
      active_requests: 1,
    });
  });

  it("keeps discovery retained, republishes it when Home Assistant comes online, and removes it", async () => {
    const configTopics = configs.map(({ topic }) => topic);
    const isConfig = (topic: string) => configTopics.includes(topic);
    const client = await probe("ha-test/#");
    const retained = await client.waitFor(
      (messages) => {
        const found = messages.filter((m) => isConfig(m.topic) && m.retain);
        return found.length >= configs.length && found;
      },
      10_000,
      "retained discovery configs",
    );
    expect(new Set(retained.map((m) => m.topic))).toEqual(new Set(configTopics));
    for (const message of retained) {
      const expected = configs.find(({ topic }) => topic === message.topic);
      expect(message.json).toEqual(expected?.payload);
    }

    await client.publish(topics.homeAssistantStatus, "online");
    await client.waitFor(
      (messages) =>
        messages.filter((m) => isConfig(m.topic) && m.text.length > 0).length >= 2 * configs.length,
      10_000,
      "discovery republished after homeassistant/status online",
    );

    await discovery.removeAll();
    await client.waitFor(
      (messages) => messages.filter((m) => isConfig(m.topic) && m.text === "").length >= configs.length,
      10_000,
      "empty retained configs",
    );
    const late = await probe("ha-test/#");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(late.messages.filter((m) => isConfig(m.topic))).toEqual([]);
  });

  it("serves the same figures on /metrics when enabled on a port", async () => {
    const port = await freePort();
    const exporter = new PrometheusExporter({
      logger,
      port,
      host: "127.0.0.1",
      readHealth: () => reporter.payload(),
    });
    try {
      await exporter.start();
      expect(exporter.address).toEqual({ host: "127.0.0.1", port });
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
      const body = await response.text();
      expect(body).toMatch(/^tinyllama_edge_requests_total 2$/m);
      expect(body).toMatch(/^tinyllama_edge_request_errors_total 1$/m);
      expect(body).toMatch(/^tinyllama_edge_completion_tokens_total 34$/m);
      expect(body).toMatch(/^tinyllama_edge_model_state\{state="online"\} 1$/m);
      expect(body).toMatch(/^tinyllama_edge_tokens_per_second\{window="last"\} 21.5$/m);
      expect(body).toMatch(/^tinyllama_edge_threads\{kind="configured"\} 2$/m);
      expect(body).toMatch(/^tinyllama_edge_time_to_first_token_seconds 0.25$/m);
      const rss = Number(/^tinyllama_edge_process_resident_memory_bytes (\d+)$/m.exec(body)?.[1]);
      expect(rss).toBeGreaterThan(0);
      // Counters only move forward between scrapes.
      stats.recordAnswer(true);
      const again = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(again).toMatch(/^tinyllama_edge_requests_total 3$/m);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await exporter.stop();
      await exporter.stop();
    }
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });

  it("leaves the endpoint off at port 0", async () => {
    const exporter = new PrometheusExporter({
      logger,
      port: 0,
      host: "127.0.0.1",
      readHealth: () => reporter.payload(),
    });
    await exporter.start();
    expect(exporter.address).toBeNull();
    await exporter.stop();
  });
});
