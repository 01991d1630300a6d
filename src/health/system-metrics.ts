/**
 * Cheap figures about the machine and this process, read from /proc and /sys where the kernel
 * offers them, so a check every few seconds never spawns a process. Memory, temperature and
 * throttling come from the board's sensors (hardware/soc-sensors.ts), as detection reads them.
 */
import os from "node:os";
import type { ThrottleState } from "../hardware/hardware-profile.js";
import type { SystemFileReader } from "../hardware/rooted-file-reader.js";
import type { CommandRunner } from "../hardware/run-command.js";
import { SocSensors } from "../hardware/soc-sensors.js";

/** What Node.js knows without reading files: the fallback where /proc is absent, and this process. */
export interface HostFacts {
  loadAverage(): number[];
  totalMemoryBytes(): number;
  freeMemoryBytes(): number;
  /** CPU time summed over all cores, in any unit (only ratios of deltas are used). */
  cpuTimes(): CpuTimes;
  processRssBytes(): number;
  processUptimeSeconds(): number;
}

export interface CpuTimes {
  busy: number;
  total: number;
}

export function nodeHostFacts(): HostFacts {
  return {
    loadAverage: () => os.loadavg(),
    totalMemoryBytes: () => os.totalmem(),
    freeMemoryBytes: () => os.freemem(),
    cpuTimes: () =>
      os.cpus().reduce(
        (sum, cpu) => {
          const { user, nice, sys, idle, irq } = cpu.times;
          return {
            busy: sum.busy + user + nice + sys + irq,
            total: sum.total + user + nice + sys + idle + irq,
          };
        },
        { busy: 0, total: 0 },
      ),
    processRssBytes: () => process.memoryUsage.rss(),
    processUptimeSeconds: () => process.uptime(),
  };
}

export interface SystemMetricsDeps {
  /** Rooted at "/" in production, at a recorded tree in tests. */
  files: SystemFileReader;
  /** `thermal.sensorPath`: millidegrees Celsius; "auto" for the SoC zone by type; empty for none. */
  sensorPath: string;
  /** Runs `vcgencmd` where the sysfs file is absent; null never spawns anything. */
  runCommand: CommandRunner | null;
  host: HostFacts;
  /** Milliseconds, monotonic enough for caching (Date.now or performance.now). */
  now: () => number;
  vcgencmdIntervalMs?: number;
}

export interface SystemSample {
  /** Busy share of all cores since the previous sample, 0-100; null before there are two samples. */
  cpuLoadPercent: number | null;
  /** 1, 5 and 15 minute load averages. */
  loadAverage: [number, number, number];
  cpuTemperatureC: number | null;
  /** Null where the board does not report it (anything but a Raspberry Pi). */
  throttling: ThrottleState | null;
  memory: { totalBytes: number | null; availableBytes: number | null };
  processRssBytes: number;
  processUptimeSeconds: number;
  systemUptimeSeconds: number | null;
}

/** What the thermal guard needs; SystemMetrics provides it. */
export interface ThermalSensor {
  readTemperatureC(): Promise<number | null>;
  readThrottling(): Promise<ThrottleState | null>;
}

/** The aggregate `cpu` line of /proc/stat: busy and total jiffies. */
export function parseProcStat(text: string): CpuTimes | null {
  const line = /^cpu\s+(.*)$/m.exec(text)?.[1];
  if (line === undefined) return null;
  const fields = line.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice).
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  if ([user, nice, system, idle].some((value) => value === undefined || !Number.isFinite(value))) return null;
  const busy = user! + nice! + system! + irq + softirq + steal;
  return { busy, total: busy + idle! + iowait };
}

function busyPercent(previous: CpuTimes, current: CpuTimes): number | null {
  const total = current.total - previous.total;
  const busy = current.busy - previous.busy;
  if (total <= 0 || busy < 0) return null;
  return Math.round(Math.min(100, (busy / total) * 100) * 10) / 10;
}

export class SystemMetrics implements ThermalSensor {
  private readonly deps: SystemMetricsDeps;
  private readonly soc: SocSensors;
  private previousCpu: CpuTimes | null = null;

  constructor(deps: SystemMetricsDeps) {
    this.deps = deps;
    this.soc = new SocSensors({
      files: deps.files,
      sensorPath: deps.sensorPath,
      runCommand: deps.runCommand,
      now: deps.now,
      ...(deps.vcgencmdIntervalMs === undefined ? {} : { vcgencmdIntervalMs: deps.vcgencmdIntervalMs }),
    });
  }

  /** Takes the CPU baseline. */
  async start(): Promise<void> {
    this.previousCpu = await this.readCpuTimes();
  }

  /** Nothing runs between samples (no timer, no handle); kept so every component stops the same way. */
  stop(): void {}

  async collect(): Promise<SystemSample> {
    const { files, host } = this.deps;
    const cpu = await this.readCpuTimes();
    const cpuLoadPercent = cpu && this.previousCpu ? busyPercent(this.previousCpu, cpu) : null;
    if (cpu) this.previousCpu = cpu;
    const [one = 0, five = 0, fifteen = 0] = host.loadAverage();
    const fromProc = await this.soc.readMemory();
    const uptime = Number.parseFloat((await files.readText("/proc/uptime")) ?? "");
    return {
      cpuLoadPercent,
      loadAverage: [one, five, fifteen],
      cpuTemperatureC: await this.readTemperatureC(),
      throttling: await this.readThrottling(),
      memory: {
        totalBytes: fromProc?.totalBytes ?? host.totalMemoryBytes(),
        // os.freemem() leaves out reclaimable page cache; MemAvailable is what the kernel could hand out.
        availableBytes: fromProc?.availableBytes ?? host.freeMemoryBytes(),
      },
      processRssBytes: host.processRssBytes(),
      processUptimeSeconds: host.processUptimeSeconds(),
      systemUptimeSeconds: Number.isFinite(uptime) ? uptime : null,
    };
  }

  readTemperatureC(): Promise<number | null> {
    return this.soc.readTemperatureC();
  }

  readThrottling(): Promise<ThrottleState | null> {
    return this.soc.readThrottling();
  }

  private async readCpuTimes(): Promise<CpuTimes | null> {
    const text = await this.deps.files.readText("/proc/stat");
    if (text !== null) return parseProcStat(text);
    const times = this.deps.host.cpuTimes();
    return times.total > 0 ? times : null;
  }
}
