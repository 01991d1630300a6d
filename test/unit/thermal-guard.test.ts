import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createRootedFileReader } from "../../src/hardware/rooted-file-reader.js";
import { PI_THROTTLED_SYSFS } from "../../src/hardware/soc-sensors.js";
import { SystemMetrics } from "../../src/health/system-metrics.js";
import {
  nextThermalState,
  reducedThreadCount,
  ThermalGuard,
  type ThermalGuardSettings,
  type ThermalStatus,
} from "../../src/health/thermal-guard.js";
import { FIXED_HOST } from "../helpers/fakes.js";

interface LogLine {
  level: number;
  msg: string;
}

const WARN = 40;

function capturingLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: "debug" },
    {
      write(chunk: string) {
        lines.push(JSON.parse(chunk) as LogLine);
      },
    },
  );
  return { logger, lines };
}

describe("thermal decisions", () => {
  it("throttles at the limit and resumes only below the resume point", () => {
    expect(nextThermalState("normal", 79.9, 80, 75)).toBe("normal");
    expect(nextThermalState("normal", 80, 80, 75)).toBe("throttled");
    expect(nextThermalState("throttled", 78, 80, 75)).toBe("throttled");
    expect(nextThermalState("throttled", 75, 80, 75)).toBe("throttled");
    expect(nextThermalState("throttled", 74.9, 80, 75)).toBe("normal");
    expect(nextThermalState("throttled", null, 80, 75)).toBe("throttled");
    expect(nextThermalState("normal", null, 80, 75)).toBe("normal");
  });

  it("halves the threads by default, never below 1 nor above the configured count", () => {
    expect(reducedThreadCount(4, "auto")).toBe(2);
    expect(reducedThreadCount(3, "auto")).toBe(1);
    expect(reducedThreadCount(1, "auto")).toBe(1);
    expect(reducedThreadCount(8, 3)).toBe(3);
    expect(reducedThreadCount(2, 6)).toBe(2);
  });
});

describe("ThermalGuard on a temperature file", () => {
  let root: string;
  let guard: ThermalGuard | undefined;
  const settings: ThermalGuardSettings = {
    throttleAtC: 80,
    resumeBelowC: 75,
    reducedThreads: "auto",
    checkIntervalMs: 20,
  };

  const writeTemperature = (milliCelsius: number) =>
    writeFileSync(path.join(root, "sys/class/thermal/thermal_zone0/temp"), `${milliCelsius}\n`);
  const writeThrottled = (hex: string) => writeFileSync(path.join(root, PI_THROTTLED_SYSFS), `${hex}\n`);

  function startGuard(options: { onStateChange?: (status: ThermalStatus) => void } = {}) {
    const { logger, lines } = capturingLogger();
    const threads: number[] = [];
    const metrics = new SystemMetrics({
      files: createRootedFileReader(root),
      sensorPath: "/sys/class/thermal/thermal_zone0/temp",
      runCommand: null,
      host: FIXED_HOST,
      now: () => 0,
    });
    guard = new ThermalGuard({
      logger,
      sensor: metrics,
      settings,
      configuredThreads: 4,
      setThreads: (n) => threads.push(n),
      ...options,
    });
    return { guard, lines, threads, metrics };
  }

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "tle-thermal-"));
    mkdirSync(path.join(root, "sys/class/thermal/thermal_zone0"), { recursive: true });
    mkdirSync(path.dirname(path.join(root, PI_THROTTLED_SYSFS)), { recursive: true });
    writeTemperature(55000);
  });

  afterEach(() => {
    guard?.stop();
    guard = undefined;
    rmSync(root, { recursive: true, force: true });
  });

  it("reduces the threads above the limit and restores them below the resume point", async () => {
    const changes: ThermalStatus[] = [];
    const { guard, lines, threads, metrics } = startGuard({
      onStateChange: (status) => changes.push(status),
    });
    await metrics.start();
    await guard.start();
    expect(guard.status()).toMatchObject({
      state: "normal",
      temperatureC: 55,
      threads: { configured: 4, current: 4 },
    });

    writeTemperature(85000);
    await vi.waitFor(() => expect(guard.status().state).toBe("throttled"), { timeout: 2000, interval: 10 });
    expect(threads).toEqual([2]);
    expect(guard.status()).toMatchObject({ temperatureC: 85, threads: { configured: 4, current: 2 } });
    expect(guard.status().since).not.toBeNull();
    expect(lines.some((line) => line.level === WARN && /hot/.test(line.msg))).toBe(true);

    // Between the two thresholds nothing changes.
    writeTemperature(78000);
    await vi.waitFor(() => expect(guard.status().temperatureC).toBe(78), { timeout: 2000, interval: 10 });
    expect(guard.status().state).toBe("throttled");

    writeTemperature(70000);
    await vi.waitFor(() => expect(guard.status().state).toBe("normal"), { timeout: 2000, interval: 10 });
    expect(threads).toEqual([2, 4]);
    expect(guard.status().threads.current).toBe(4);
    expect(changes.map((status) => status.state)).toEqual(["throttled", "normal"]);
  });

  it("stops checking when stopped", async () => {
    const { guard, threads } = startGuard();
    await guard.start();
    guard.stop();
    guard.stop();
    writeTemperature(90000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(guard.status().state).toBe("normal");
    expect(threads).toEqual([]);
  });

  it("warns about firmware flags once per change", async () => {
    writeThrottled("0");
    const { guard, lines, metrics } = startGuard();
    await metrics.start();
    await guard.start();
    const warnings = () => lines.filter((line) => line.level === WARN && /firmware/.test(line.msg));
    expect(warnings()).toHaveLength(0);

    writeThrottled("50005");
    await guard.check();
    await guard.check();
    await guard.check();
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]?.msg).toMatch(/under-voltage/);

    writeThrottled("50000");
    await guard.check();
    await guard.check();
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]?.msg).toMatch(/since boot/);
  });

  it("keeps its state while the sensor cannot be read", async () => {
    const { guard, metrics } = startGuard();
    await metrics.start();
    writeTemperature(86000);
    await guard.start();
    expect(guard.status().state).toBe("throttled");
    rmSync(path.join(root, "sys/class/thermal/thermal_zone0/temp"));
    await guard.check();
    expect(guard.status()).toMatchObject({ state: "throttled", temperatureC: null });
  });
});
