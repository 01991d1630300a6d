import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createRootedFileReader } from "../../src/hardware/rooted-file-reader.js";
import { SocSensors } from "../../src/hardware/soc-sensors.js";
import { SystemMetrics } from "../../src/health/system-metrics.js";
import { ThermalGuard } from "../../src/health/thermal-guard.js";
import {
  fixtureBoards,
  fixtureDeps,
  fixtureProfile,
  fixtureRoot,
} from "../fixtures/hardware/fixture-deps.js";
import { FIXED_HOST } from "../helpers/fakes.js";

describe("SocSensors", () => {
  let root: string;
  const zone = (n: number, type: string, milliCelsius: string) => {
    const dir = path.join(root, `sys/class/thermal/thermal_zone${n}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "type"), `${type}\n`);
    writeFileSync(path.join(dir, "temp"), `${milliCelsius}\n`);
  };

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), "tle-soc-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it.each([
    {
      zones: [
        ["iwlwifi_1", "40000"],
        ["x86_pkg_temp", "85000"],
      ],
      expected: 85,
    },
    {
      zones: [
        ["battery", "30000"],
        ["acpitz", "50000"],
        ["cpu-thermal", "71000"],
      ],
      expected: 71,
    },
    {
      zones: [
        ["soc-thermal", "-273000"],
        ["gpu-thermal", "45000"],
      ],
      expected: 45,
    },
    { zones: [], expected: null },
  ])("picks the SoC zone by its type: $zones -> $expected", async ({ zones, expected }) => {
    for (const [n, [type, temp]] of zones.entries()) zone(n, type!, temp!);
    const sensors = new SocSensors({ files: createRootedFileReader(root), runCommand: null });
    expect(await sensors.readTemperatureC()).toBe(expected);
  });

  it("reads the configured file instead, and nothing when it is empty", async () => {
    zone(0, "cpu-thermal", "50000");
    zone(1, "other", "60000");
    const files = createRootedFileReader(root);
    const path1 = "/sys/class/thermal/thermal_zone1/temp";
    expect(await new SocSensors({ files, runCommand: null, sensorPath: path1 }).readTemperatureC()).toBe(60);
    expect(await new SocSensors({ files, runCommand: null, sensorPath: "" }).readTemperatureC()).toBeNull();
  });

  it("with the default configuration, health and the thermal guard read the SoC zone, not whichever is zone 0", async () => {
    zone(0, "iwlwifi_1", "40000");
    zone(1, "x86_pkg_temp", "85000");
    const { config } = loadConfig({ argv: [], env: {}, defaultConfigPath: "/nonexistent/config.json" });
    const metrics = new SystemMetrics({
      files: createRootedFileReader(root),
      sensorPath: config.thermal.sensorPath,
      runCommand: null,
      host: FIXED_HOST,
      now: () => 0,
    });
    await metrics.start();
    expect((await metrics.collect()).cpuTemperatureC).toBe(85);
    const threads: number[] = [];
    const guard = new ThermalGuard({
      logger: pino({ level: "silent" }),
      sensor: metrics,
      settings: {
        throttleAtC: config.thermal.throttleAtC,
        resumeBelowC: config.thermal.resumeBelowC,
        reducedThreads: "auto",
        checkIntervalMs: 60_000,
      },
      configuredThreads: 4,
      setThreads: (n) => threads.push(n),
    });
    await guard.start();
    guard.stop();
    expect(guard.status().state).toBe("throttled");
    expect(threads).toEqual([2]);
  });

  it.each(fixtureBoards)("%s: health reads the temperature and memory detection reports", async (board) => {
    const profile = await fixtureProfile(board);
    const deps = await fixtureDeps(board);
    const metrics = new SystemMetrics({
      files: createRootedFileReader(fixtureRoot(board)),
      sensorPath: "auto",
      runCommand: deps.runCommand ?? null,
      host: FIXED_HOST,
      now: () => 0,
    });
    const sample = await metrics.collect();
    expect(sample.cpuTemperatureC).toBe(profile.thermal.socTemperatureC);
    expect(sample.throttling).toEqual(profile.thermal.throttling);
    if (profile.memory.totalBytes !== null && deps.system === undefined)
      expect(sample.memory.totalBytes).toBe(profile.memory.totalBytes);
  });
});
