/**
 * Cheap figures about the machine and this process, read from /proc and /sys where the kernel
 * offers them, so a check every few seconds never spawns a process. `vcgencmd` is only the
 * fallback for the Raspberry Pi throttling flags, at most once per `vcgencmdIntervalMs`.
 */
import os from "node:os";
import type { ThrottleState } from "../hardware/hardware-profile.js";
import { parseThrottled } from "../hardware/parse-throttled.js";
import type { SystemFileReader } from "../hardware/rooted-file-reader.js";
import type { CommandRunner } from "../hardware/run-command.js";

/** The Raspberry Pi firmware driver's copy of `vcgencmd get_throttled` (hex, no 0x). */
export const PI_THROTTLED_SYSFS = "/sys/devices/platform/soc/soc:firmware/get_throttled";

const DEFAULT_VCGENCMD_INTERVAL_MS = 5 * 60_000;

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
  /** `thermal.sensorPath`: millidegrees Celsius; empty for none. */
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

export function parseMeminfo(text: string): { totalBytes: number | null; availableBytes: number | null } {
  const kibibytes = (key: string) => {
    const match = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, "m").exec(text);
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  };
  return { totalBytes: kibibytes("MemTotal"), availableBytes: kibibytes("MemAvailable") };
}

/** Millidegrees as the thermal zones write them; disabled sensors report nonsense such as -273000 or 0. */
export function parseMillidegrees(text: string): number | null {
  const value = Number(text.trim());
  if (!Number.isFinite(value) || value <= 0 || value > 150_000) return null;
  return Math.round(value / 100) / 10;
}

/** The sysfs value is `%x` of the same bits vcgencmd prints. */
export function parseThrottledSysfs(text: string): ThrottleState | null {
  const hex = text.trim();
  return /^[0-9a-f]{1,8}$/i.test(hex) ? parseThrottled(`throttled=0x${hex}`) : null;
}

function busyPercent(previous: CpuTimes, current: CpuTimes): number | null {
  const total = current.total - previous.total;
  const busy = current.busy - previous.busy;
  if (total <= 0 || busy < 0) return null;
  return Math.round(Math.min(100, (busy / total) * 100) * 10) / 10;
}

export class SystemMetrics implements ThermalSensor {
  private readonly deps: SystemMetricsDeps;
  private previousCpu: CpuTimes | null = null;
  private throttledFile: string | null = null;
  private vcgencmdMissing = false;
  private vcgencmdCache: { at: number; value: ThrottleState | null } | null = null;
  private vcgencmdRunning: Promise<ThrottleState | null> | null = null;

  constructor(deps: SystemMetricsDeps) {
    this.deps = deps;
  }

  /** Takes the CPU baseline and finds the firmware's throttling file, once. */
  async start(): Promise<void> {
    this.previousCpu = await this.readCpuTimes();
    this.throttledFile = await this.findThrottledFile();
  }

  /** Nothing runs between samples (no timer, no handle); kept so every component stops the same way. */
  stop(): void {}

  async collect(): Promise<SystemSample> {
    const { files, host } = this.deps;
    const cpu = await this.readCpuTimes();
    const cpuLoadPercent = cpu && this.previousCpu ? busyPercent(this.previousCpu, cpu) : null;
    if (cpu) this.previousCpu = cpu;
    const [one = 0, five = 0, fifteen = 0] = host.loadAverage();
    const meminfo = await files.readText("/proc/meminfo");
    const fromProc = meminfo === null ? null : parseMeminfo(meminfo);
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

  async readTemperatureC(): Promise<number | null> {
    const { sensorPath, files } = this.deps;
    if (!sensorPath) return null;
    const text = await files.readText(sensorPath);
    return text === null ? null : parseMillidegrees(text);
  }

  async readThrottling(): Promise<ThrottleState | null> {
    if (this.throttledFile) {
      const text = await this.deps.files.readText(this.throttledFile);
      if (text !== null) return parseThrottledSysfs(text);
    }
    return this.readThrottlingFromVcgencmd();
  }

  private async readCpuTimes(): Promise<CpuTimes | null> {
    const text = await this.deps.files.readText("/proc/stat");
    if (text !== null) return parseProcStat(text);
    const times = this.deps.host.cpuTimes();
    return times.total > 0 ? times : null;
  }

  /** The usual path, else a `soc*:firmware` device under /sys/devices/platform (its name varies by SoC). */
  private async findThrottledFile(): Promise<string | null> {
    const { files } = this.deps;
    if ((await files.readText(PI_THROTTLED_SYSFS)) !== null) return PI_THROTTLED_SYSFS;
    for (const soc of (await files.listDir("/sys/devices/platform")).filter((name) =>
      name.startsWith("soc"),
    )) {
      for (const device of await files.listDir(`/sys/devices/platform/${soc}`)) {
        if (!device.endsWith(":firmware")) continue;
        const candidate = `/sys/devices/platform/${soc}/${device}/get_throttled`;
        if ((await files.readText(candidate)) !== null) return candidate;
      }
    }
    return null;
  }

  private async readThrottlingFromVcgencmd(): Promise<ThrottleState | null> {
    const { runCommand, now } = this.deps;
    if (!runCommand || this.vcgencmdMissing) return null;
    const interval = this.deps.vcgencmdIntervalMs ?? DEFAULT_VCGENCMD_INTERVAL_MS;
    const cached = this.vcgencmdCache;
    if (cached && now() - cached.at < interval) return cached.value;
    this.vcgencmdRunning ??= runCommand("vcgencmd", ["get_throttled"])
      .then((output) => parseThrottled(output))
      .catch((err: unknown) => {
        // Not a Raspberry Pi: stop asking.
        if ((err as { code?: unknown }).code === "ENOENT") this.vcgencmdMissing = true;
        return null;
      })
      .then((value) => {
        this.vcgencmdCache = { at: now(), value };
        this.vcgencmdRunning = null;
        return value;
      });
    return this.vcgencmdRunning;
  }
}
