import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createRootedFileReader, type SystemFileReader } from "../../src/hardware/rooted-file-reader.js";
import type { CommandRunner } from "../../src/hardware/run-command.js";
import { parseMillidegrees, parseThrottledSysfs } from "../../src/hardware/soc-sensors.js";
import {
  buildHealthPayload,
  HealthReporter,
  type ServingSnapshot,
} from "../../src/health/health-reporter.js";
import { HealthMetrics } from "../../src/health/prometheus-exporter.js";
import { type HostFacts, parseProcStat, SystemMetrics } from "../../src/health/system-metrics.js";
import type { ThermalStatus } from "../../src/health/thermal-guard.js";
import { createTopics } from "../../src/mqtt/topics.js";
import type { PublishOptions } from "../../src/mqtt/transport.js";
import { ServingStats } from "../../src/serving/serving-stats.js";
import { fixtureRoot } from "../fixtures/hardware/fixture-deps.js";

const healthFixtures = path.join(import.meta.dirname, "..", "fixtures", "health");
const logger = pino({ level: "silent" });

const host: HostFacts = {
  loadAverage: () => [3.1234, 2.5, 1.756],
  totalMemoryBytes: () => 4_000_000_000,
  freeMemoryBytes: () => 1_000_000_000,
  cpuTimes: () => ({ busy: 0, total: 0 }),
  processRssBytes: () => 327_155_712,
  processUptimeSeconds: () => 3600.7,
};

/** Serves /proc/stat from a second recording after the first read: two samples 10 s apart. */
function withLaterProcStat(files: SystemFileReader): SystemFileReader {
  let reads = 0;
  return {
    listDir: (p) => files.listDir(p),
    readText: (p) =>
      p === "/proc/stat" && reads++ > 0 ? files.readText("/proc/stat.10s-later") : files.readText(p),
  };
}

const notCalled: CommandRunner = async (file) => {
  throw new Error(`${file} must not run`);
};

function missingCommand(calls: string[]): CommandRunner {
  return async (file, args) => {
    calls.push([file, ...args].join(" "));
    throw Object.assign(new Error(`spawn ${file} ENOENT`), { code: "ENOENT" });
  };
}

function servingSnapshot(): ServingSnapshot {
  const stats = new ServingStats();
  stats.recordAnswer(true);
  stats.recordAnswer(true);
  stats.recordAnswer(false);
  stats.recordGeneration({
    promptTokens: 41,
    promptTokensEvaluated: 41,
    completionTokens: 17,
    tokensPerSecond: 14.2,
    ttftMs: 420,
    jobMs: 1610,
  });
  stats.recordGeneration({
    promptTokens: 30,
    promptTokensEvaluated: 6,
    completionTokens: 64,
    tokensPerSecond: 12.456,
    ttftMs: 388.6,
    jobMs: 5400,
  });
  return { state: "online", queueDepth: 2, activeRequests: 1, stats };
}

const throttledStatus: ThermalStatus = {
  state: "throttled",
  temperatureC: 84.9,
  throttleAtC: 80,
  resumeBelowC: 75,
  threads: { configured: 4, current: 2 },
  since: "2025-01-01T10:00:00.000Z",
};

describe("system metrics parsing", () => {
  it("reads the aggregate cpu line of /proc/stat", () => {
    expect(parseProcStat("cpu  10 2 3 80 5 0 1 0 0 0\ncpu0 1 1 1 1\n")).toEqual({ busy: 16, total: 101 });
    expect(parseProcStat("intr 1 2 3\n")).toBeNull();
  });

  it("turns millidegrees into °C and refuses disabled sensors", () => {
    expect(parseMillidegrees("67850\n")).toBe(67.9);
    expect(parseMillidegrees("-273000")).toBeNull();
    expect(parseMillidegrees("0")).toBeNull();
    expect(parseMillidegrees("garbage")).toBeNull();
  });

  it("decodes the firmware's hex throttling bits like vcgencmd's", () => {
    expect(parseThrottledSysfs("50005\n")).toMatchObject({
      raw: "0x50005",
      underVoltage: true,
      throttled: true,
      frequencyCapped: false,
      underVoltageOccurred: true,
      throttledOccurred: true,
    });
    expect(parseThrottledSysfs("0\n")?.underVoltage).toBe(false);
    expect(parseThrottledSysfs("not hex")).toBeNull();
  });
});

describe("health payload from recorded files", () => {
  it("reports a hot, under-powered Pi 5 serving requests", async () => {
    const metrics = new SystemMetrics({
      files: withLaterProcStat(createRootedFileReader(path.join(healthFixtures, "pi5-hot"))),
      sensorPath: "/sys/class/thermal/thermal_zone0/temp",
      runCommand: notCalled,
      host,
      now: () => 0,
    });
    await metrics.start();
    const payload = buildHealthPayload({
      sample: await metrics.collect(),
      // The Pi 5's bandwidth ceiling for a 0.64 GB Q4_0: 11.4 GB/s / 0.64 GB.
      serving: { ...servingSnapshot(), ceilingTokensPerSecond: 17.8 },
      thermal: throttledStatus,
      now: new Date("2025-01-01T10:00:30.000Z"),
    });
    expect(payload).toEqual({
      ts: "2025-01-01T10:00:30.000Z",
      state: "online",
      // 3400 busy of 4100 jiffies between the two recordings.
      cpu_load_percent: 82.9,
      load_avg: [3.12, 2.5, 1.76],
      cpu_temp_c: 85,
      throttling: {
        raw: "0x50005",
        under_voltage: true,
        frequency_capped: false,
        throttled: true,
        soft_temperature_limit: false,
        under_voltage_occurred: true,
        frequency_capped_occurred: false,
        throttled_occurred: true,
        soft_temperature_limit_occurred: false,
      },
      memory: { total_bytes: 8245736 * 1024, available_bytes: 6123456 * 1024 },
      process_rss_bytes: 327_155_712,
      uptime_s: 3600,
      system_uptime_s: 183245,
      queue_depth: 2,
      active_requests: 1,
      totals: {
        requests: 3,
        errors: 1,
        prompt_tokens: 71,
        prompt_tokens_evaluated: 47,
        completion_tokens: 81,
      },
      tokens_per_second: { last: 12.46, average: 13.33 },
      generation_ceiling: { tokens_per_second: 17.8, share_last: 0.7, share_average: 0.75 },
      ttft_ms_last: 389,
      threads: { configured: 4, current: 2 },
      thermal: {
        state: "throttled",
        throttle_at_c: 80,
        resume_below_c: 75,
        since: "2025-01-01T10:00:00.000Z",
      },
    });
    // Serializable as published.
    expect(JSON.parse(JSON.stringify(payload))).toEqual(payload);
  });

  it("gives nulls where an x86 desktop has no throttling, and asks for vcgencmd only once", async () => {
    const calls: string[] = [];
    const metrics = new SystemMetrics({
      files: createRootedFileReader(fixtureRoot("x86-desktop-rtx-8gb")),
      sensorPath: "/sys/class/thermal/thermal_zone0/temp",
      runCommand: missingCommand(calls),
      host: { ...host, cpuTimes: () => ({ busy: 100, total: 400 }) },
      now: () => 0,
      vcgencmdIntervalMs: 0,
    });
    await metrics.start();
    await metrics.collect();
    const sample = await metrics.collect();
    const payload = buildHealthPayload({
      sample,
      serving: { state: "loading", queueDepth: 0, activeRequests: 0, stats: new ServingStats() },
      thermal: null,
      now: new Date(0),
    });
    expect(payload.throttling).toBeNull();
    expect(payload.cpu_temp_c).toBeGreaterThan(0);
    expect(payload.memory.total_bytes).toBeGreaterThan(0);
    expect(payload.system_uptime_s).toBeNull();
    // No /proc/stat recorded: the figures come from os.cpus(), which did not move here.
    expect(payload.cpu_load_percent).toBeNull();
    expect(payload.totals).toEqual({
      requests: 0,
      errors: 0,
      prompt_tokens: 0,
      prompt_tokens_evaluated: 0,
      completion_tokens: 0,
    });
    expect(payload.tokens_per_second).toEqual({ last: null, average: null });
    expect(payload.ttft_ms_last).toBeNull();
    expect(payload.threads).toEqual({ configured: null, current: null });
    expect(payload.thermal).toEqual({
      state: "normal",
      throttle_at_c: null,
      resume_below_c: null,
      since: null,
    });
    expect(calls).toEqual(["vcgencmd get_throttled"]);
  });

  it("falls back to the host's figures where /proc and the sensor are absent", async () => {
    const metrics = new SystemMetrics({
      files: createRootedFileReader(path.join(healthFixtures, "does-not-exist")),
      sensorPath: "",
      runCommand: null,
      host,
      now: () => 0,
    });
    await metrics.start();
    const sample = await metrics.collect();
    expect(sample.cpuTemperatureC).toBeNull();
    expect(sample.throttling).toBeNull();
    expect(sample.memory).toEqual({ totalBytes: 4_000_000_000, availableBytes: 1_000_000_000 });
    expect(sample.processRssBytes).toBe(327_155_712);
  });
});

describe("Raspberry Pi throttling sources", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("finds the firmware file under a Pi 5 style soc@ device", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "tle-health-"));
    dirs.push(root);
    const dir = path.join(root, "sys/devices/platform/soc@107c000000/soc@107c000000:firmware");
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "get_throttled"), "80008\n");
    const metrics = new SystemMetrics({
      files: createRootedFileReader(root),
      sensorPath: "/sys/class/thermal/thermal_zone0/temp",
      runCommand: notCalled,
      host,
      now: () => 0,
    });
    await metrics.start();
    expect(await metrics.readThrottling()).toMatchObject({
      raw: "0x80008",
      softTemperatureLimit: true,
      softTemperatureLimitOccurred: true,
    });
  });

  it("runs vcgencmd at most once per interval where the file is absent", async () => {
    let now = 0;
    const calls: string[] = [];
    const metrics = new SystemMetrics({
      files: createRootedFileReader(path.join(healthFixtures, "does-not-exist")),
      sensorPath: "",
      runCommand: async (file, args) => {
        calls.push([file, ...args].join(" "));
        return "throttled=0x50000\n";
      },
      host,
      now: () => now,
      vcgencmdIntervalMs: 300_000,
    });
    await metrics.start();
    const [first, second] = await Promise.all([metrics.readThrottling(), metrics.readThrottling()]);
    expect(first?.throttledOccurred).toBe(true);
    expect(second).toEqual(first);
    now = 299_000;
    await metrics.readThrottling();
    expect(calls).toHaveLength(1);
    now = 300_000;
    await metrics.readThrottling();
    expect(calls).toHaveLength(2);
  });
});

describe("HealthReporter", () => {
  const topics = createTopics({
    baseTopic: "tinyllama",
    nodeId: "pi5-kitchen",
    poolGroup: "",
    discoveryPrefix: "homeassistant",
  });

  function reporterWith(publish: (topic: string, payload: string, options: PublishOptions) => Promise<void>) {
    const metrics = new SystemMetrics({
      files: createRootedFileReader(path.join(healthFixtures, "pi5-hot")),
      sensorPath: "/sys/class/thermal/thermal_zone0/temp",
      runCommand: null,
      host,
      now: () => 0,
    });
    return new HealthReporter({
      logger,
      topics,
      intervalMs: 60_000,
      publish,
      metrics,
      snapshot: servingSnapshot,
      thermal: () => throttledStatus,
    });
  }

  it("publishes the payload retained with QoS 1 on the health topic", async () => {
    const published: Array<{ topic: string; payload: string; options: PublishOptions }> = [];
    const reporter = reporterWith(async (topic, payload, options) => {
      published.push({ topic, payload, options });
    });
    await reporter.start();
    reporter.stop();
    expect(published).toHaveLength(1);
    expect(published[0]?.topic).toBe("tinyllama/pi5-kitchen/health");
    expect(published[0]?.options).toEqual({ qos: 1, retain: true });
    const body = JSON.parse(published[0]?.payload ?? "") as Record<string, unknown>;
    expect(body).toMatchObject({ state: "online", cpu_temp_c: 85, queue_depth: 2 });
  });

  it("folds a burst of publishNow calls into at most two publishes, and stops publishing when stopped", async () => {
    let count = 0;
    const reporter = reporterWith(async () => {
      count++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    });
    await reporter.start();
    count = 0;
    await Promise.all(Array.from({ length: 10 }, () => reporter.publishNow()));
    expect(count).toBe(2);
    reporter.stop();
    reporter.stop();
    await reporter.publishNow();
    expect(count).toBe(2);
  });

  it("never rejects when publishing fails", async () => {
    const reporter = reporterWith(async () => {
      throw new Error("broker gone");
    });
    await expect(reporter.start()).resolves.toBeUndefined();
    await expect(reporter.publishNow()).resolves.toBeUndefined();
    reporter.stop();
  });
});

describe("HealthMetrics (Prometheus)", () => {
  it("leaves unknown figures out instead of reporting them as 0", async () => {
    const metrics = new HealthMetrics();
    const health = buildHealthPayload({
      sample: {
        cpuLoadPercent: null,
        loadAverage: [0.5, 0.25, 0.1],
        cpuTemperatureC: null,
        throttling: null,
        memory: { totalBytes: null, availableBytes: null },
        processRssBytes: 1000,
        processUptimeSeconds: 5,
        systemUptimeSeconds: null,
      },
      serving: { state: "loading", queueDepth: 0, activeRequests: 0, stats: new ServingStats() },
      thermal: null,
      now: new Date(0),
    });
    metrics.update(health);
    const text = await metrics.render();
    expect(text).toMatch(/^tinyllama_edge_model_state\{state="loading"\} 1$/m);
    expect(text).toMatch(/^tinyllama_edge_load_average\{period="1m"\} 0.5$/m);
    expect(text).toMatch(/^tinyllama_edge_requests_total 0$/m);
    for (const absent of [
      "cpu_temperature_celsius",
      "cpu_load_percent",
      "memory_total_bytes",
      "firmware_throttling",
      "tokens_per_second",
      "time_to_first_token_seconds",
      "threads",
    ]) {
      expect(text).not.toMatch(new RegExp(`^tinyllama_edge_${absent}(\\{.*\\})? `, "m"));
    }
    // A separate instance never shares the registry.
    expect(await new HealthMetrics().render()).not.toMatch(
      /^tinyllama_edge_process_resident_memory_bytes 1000$/m,
    );
    expect(text).toMatch(/^tinyllama_edge_process_resident_memory_bytes 1000$/m);
  });
});
