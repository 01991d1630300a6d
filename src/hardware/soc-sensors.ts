/**
 * The board's sensors, read in one place for hardware detection, health and the thermal guard:
 * memory (/proc/meminfo), the SoC temperature (the thermal zone whose type names the SoC or CPU, not
 * whichever zone is numbered 0) and the Raspberry Pi firmware's throttling flags (its sysfs file,
 * else `vcgencmd`, at most once per interval). Every read tolerates absence: null, never a throw.
 */
import type { MemoryInfo, ThrottleState } from "./hardware-profile.js";
import { parseThrottled } from "./parse-throttled.js";
import type { SystemFileReader } from "./rooted-file-reader.js";
import type { CommandRunner } from "./run-command.js";

/** Raspberry Pi firmware caps the clocks from this SoC temperature; the thermal guard acts at it by default. */
export const FIRMWARE_THROTTLE_C = 80;

/** The Raspberry Pi firmware driver's copy of `vcgencmd get_throttled` (hex, no 0x). */
export const PI_THROTTLED_SYSFS = "/sys/devices/platform/soc/soc:firmware/get_throttled";

/** `thermal.sensorPath` value that picks the SoC's thermal zone by its type. */
export const AUTO_SENSOR = "auto";

const THERMAL_ROOT = "/sys/class/thermal";
const DEFAULT_VCGENCMD_INTERVAL_MS = 5 * 60_000;

/** Zone types that measure the SoC/CPU die, best first; other zones (battery, wifi) are a last resort. */
const SOC_ZONE_PATTERNS = [/^soc/i, /^cpu/i, /x86_pkg_temp/i, /^tj/i, /package/i, /^acpitz$/i];

export function parseMeminfo(text: string): MemoryInfo {
  const kibibytes = (key: string) => {
    const match = new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, "m").exec(text);
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  };
  return {
    totalBytes: kibibytes("MemTotal"),
    availableBytes: kibibytes("MemAvailable"),
    swapTotalBytes: kibibytes("SwapTotal"),
    swapFreeBytes: kibibytes("SwapFree"),
  };
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

export interface SocSensorsDeps {
  /** Rooted at "/" in production, at a recorded tree in tests. */
  files: SystemFileReader;
  /** A file in millidegrees Celsius; "auto" (the default) picks the SoC zone by type; "" reads none. */
  sensorPath?: string;
  /** Runs `vcgencmd` where the sysfs file is absent; null never spawns anything. */
  runCommand: CommandRunner | null;
  /** Milliseconds, for the vcgencmd cache (Date.now or performance.now). */
  now?: () => number;
  vcgencmdIntervalMs?: number;
}

export class SocSensors {
  private readonly deps: SocSensorsDeps;
  private temperatureFile: Promise<string | null> | undefined;
  private throttledFile: Promise<string | null> | undefined;
  private vcgencmdMissing = false;
  private vcgencmdCache: { at: number; value: ThrottleState | null } | null = null;
  private vcgencmdRunning: Promise<ThrottleState | null> | null = null;

  constructor(deps: SocSensorsDeps) {
    this.deps = deps;
  }

  /** /proc/meminfo; null where it is absent. */
  async readMemory(): Promise<MemoryInfo | null> {
    const text = await this.deps.files.readText("/proc/meminfo");
    return text === null ? null : parseMeminfo(text);
  }

  async readTemperatureC(): Promise<number | null> {
    this.temperatureFile ??= this.findTemperatureFile();
    const file = await this.temperatureFile;
    if (file === null) return null;
    const text = await this.deps.files.readText(file);
    return text === null ? null : parseMillidegrees(text);
  }

  /** The firmware's throttling flags; null on boards without them (anything but a Raspberry Pi). */
  async readThrottling(): Promise<ThrottleState | null> {
    this.throttledFile ??= this.findThrottledFile();
    const file = await this.throttledFile;
    if (file !== null) {
      const text = await this.deps.files.readText(file);
      if (text !== null) return parseThrottledSysfs(text);
    }
    return this.readThrottlingFromVcgencmd();
  }

  /** The configured file, or the zone whose type names the SoC, chosen once among those reading sanely. */
  private async findTemperatureFile(): Promise<string | null> {
    const configured = this.deps.sensorPath ?? AUTO_SENSOR;
    if (configured !== AUTO_SENSOR) return configured === "" ? null : configured;
    const { files } = this.deps;
    const zones = (await files.listDir(THERMAL_ROOT))
      .filter((name) => /^thermal_zone\d+$/.test(name))
      .sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
    const readable: { file: string; type: string }[] = [];
    for (const zone of zones) {
      const file = `${THERMAL_ROOT}/${zone}/temp`;
      const text = await files.readText(file);
      if (text === null || parseMillidegrees(text) === null) continue;
      readable.push({ file, type: ((await files.readText(`${THERMAL_ROOT}/${zone}/type`)) ?? "").trim() });
    }
    for (const pattern of SOC_ZONE_PATTERNS) {
      const zone = readable.find((candidate) => pattern.test(candidate.type));
      if (zone) return zone.file;
    }
    return readable[0]?.file ?? null;
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
    const { runCommand } = this.deps;
    const now = this.deps.now ?? Date.now;
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
