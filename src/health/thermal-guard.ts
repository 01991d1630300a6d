/**
 * Keeps a passively cooled board out of firmware throttling: above `throttleAtC` inference runs on
 * fewer threads (less heat, and a steadier speed than the firmware's clock cuts), and below
 * `resumeBelowC` the configured count comes back. The gap between the two stops it flapping.
 */
import type { ThrottleState } from "../hardware/hardware-profile.js";
import type { Logger } from "../logging/logger.js";
import type { ThermalSensor } from "./system-metrics.js";

export type ThermalState = "normal" | "throttled";

export interface ThermalGuardSettings {
  throttleAtC: number;
  resumeBelowC: number;
  /** "auto": half the configured threads, at least 1. */
  reducedThreads: "auto" | number;
  checkIntervalMs: number;
}

export interface ThermalGuardDeps {
  logger: Logger;
  sensor: ThermalSensor;
  settings: ThermalGuardSettings;
  /** The thread count the runtime plan chose; restored when the board has cooled down. */
  configuredThreads: number;
  /** Changes the inference thread count at runtime (node-llama-cpp's `llama.maxThreads`). */
  setThreads: (threads: number) => void;
  /** Called after every state change, e.g. to publish health at once. */
  onStateChange?: (status: ThermalStatus) => void;
  now?: () => Date;
}

export interface ThermalStatus {
  state: ThermalState;
  temperatureC: number | null;
  throttleAtC: number;
  resumeBelowC: number;
  threads: { configured: number; current: number };
  /** When the state last changed (ISO-8601); null while it never has. */
  since: string | null;
}

/** Threads to run on while hot: never more than configured, never fewer than 1. */
export function reducedThreadCount(configured: number, reduced: "auto" | number): number {
  const wanted = reduced === "auto" ? Math.floor(configured / 2) : reduced;
  return Math.max(1, Math.min(configured, wanted));
}

/** The next state, given the current one: hysteresis between the two thresholds. */
export function nextThermalState(
  current: ThermalState,
  temperatureC: number | null,
  throttleAtC: number,
  resumeBelowC: number,
): ThermalState {
  // An unreadable sensor keeps the last decision rather than guessing either way.
  if (temperatureC === null) return current;
  if (current === "normal") return temperatureC >= throttleAtC ? "throttled" : "normal";
  return temperatureC < resumeBelowC ? "normal" : "throttled";
}

const FLAG_NAMES: Array<[keyof ThrottleState, string]> = [
  ["underVoltage", "under-voltage"],
  ["frequencyCapped", "frequency capped"],
  ["throttled", "throttled"],
  ["softTemperatureLimit", "soft temperature limit"],
];

const OCCURRED_NAMES: Array<[keyof ThrottleState, string]> = [
  ["underVoltageOccurred", "under-voltage"],
  ["frequencyCappedOccurred", "frequency capped"],
  ["throttledOccurred", "throttled"],
  ["softTemperatureLimitOccurred", "soft temperature limit"],
];

function namesOf(state: ThrottleState, names: Array<[keyof ThrottleState, string]>): string[] {
  return names.filter(([key]) => state[key] === true).map(([, name]) => name);
}

export class ThermalGuard {
  private readonly deps: ThermalGuardDeps;
  private state: ThermalState = "normal";
  private temperatureC: number | null = null;
  private currentThreads: number;
  private since: string | null = null;
  private lastFlags: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(deps: ThermalGuardDeps) {
    this.deps = deps;
    this.currentThreads = deps.configuredThreads;
  }

  private get resumeBelowC(): number {
    // A resume point above the limit would flap; the limit itself is then the resume point.
    const { throttleAtC, resumeBelowC } = this.deps.settings;
    return Math.min(resumeBelowC, throttleAtC);
  }

  /** Checks once at once, then every `checkIntervalMs`. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    const { settings, logger } = this.deps;
    if (settings.resumeBelowC > settings.throttleAtC) {
      logger.warn(
        settings,
        "thermal.resumeBelowC is above thermal.throttleAtC: resuming below the limit instead",
      );
    }
    await this.check();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  status(): ThermalStatus {
    return {
      state: this.state,
      temperatureC: this.temperatureC,
      throttleAtC: this.deps.settings.throttleAtC,
      resumeBelowC: this.resumeBelowC,
      threads: { configured: this.deps.configuredThreads, current: this.currentThreads },
      since: this.since,
    };
  }

  /** One reading and the decision it leads to; concurrent calls share the reading in progress. */
  check(): Promise<ThermalStatus> {
    this.running ??= this.checkOnce().finally(() => {
      this.running = undefined;
    });
    return this.running.then(() => this.status());
  }

  private schedule(): void {
    if (this.stopped) return;
    // A chain of timeouts rather than an interval, so a slow read never overlaps the next one.
    this.timer = setTimeout(() => {
      this.check().then(
        () => this.schedule(),
        () => this.schedule(),
      );
    }, this.deps.settings.checkIntervalMs);
    this.timer.unref();
  }

  private async checkOnce(): Promise<void> {
    const { sensor, logger } = this.deps;
    try {
      this.temperatureC = await sensor.readTemperatureC();
      this.reportFlags(await sensor.readThrottling());
    } catch (err) {
      logger.warn({ err }, "reading the temperature failed");
      return;
    }
    const next = nextThermalState(
      this.state,
      this.temperatureC,
      this.deps.settings.throttleAtC,
      this.resumeBelowC,
    );
    if (next !== this.state) this.enter(next);
  }

  private enter(next: ThermalState): void {
    const { deps } = this;
    const threads =
      next === "throttled"
        ? reducedThreadCount(deps.configuredThreads, deps.settings.reducedThreads)
        : deps.configuredThreads;
    this.state = next;
    this.since = (deps.now?.() ?? new Date()).toISOString();
    const figures = { temperatureC: this.temperatureC, threads, configuredThreads: deps.configuredThreads };
    if (next === "throttled") {
      deps.logger.warn(
        { ...figures, throttleAtC: deps.settings.throttleAtC },
        "SoC is hot: running inference on fewer threads",
      );
    } else {
      deps.logger.info({ ...figures, resumeBelowC: this.resumeBelowC }, "SoC cooled down: threads restored");
    }
    this.applyThreads(threads);
    try {
      deps.onStateChange?.(this.status());
    } catch (err) {
      deps.logger.error({ err }, "thermal state listener failed");
    }
  }

  private applyThreads(threads: number): void {
    if (threads === this.currentThreads) return;
    try {
      this.deps.setThreads(threads);
      this.currentThreads = threads;
    } catch (err) {
      this.deps.logger.error({ err, threads }, "changing the inference thread count failed");
    }
  }

  /** Firmware flags (Raspberry Pi): a warning once per change, not on every check. */
  private reportFlags(throttling: ThrottleState | null): void {
    if (throttling === null || throttling.raw === this.lastFlags) return;
    const first = this.lastFlags === null;
    this.lastFlags = throttling.raw;
    const now = namesOf(throttling, FLAG_NAMES);
    const occurred = namesOf(throttling, OCCURRED_NAMES);
    const { logger } = this.deps;
    if (now.length > 0) {
      logger.warn(
        { throttled: throttling.raw, now, sinceBoot: occurred },
        `firmware reports ${now.join(", ")}`,
      );
    } else if (occurred.length > 0) {
      logger.warn(
        { throttled: throttling.raw, sinceBoot: occurred },
        `firmware reported ${occurred.join(", ")} since boot; none now`,
      );
    } else if (!first) {
      logger.info({ throttled: throttling.raw }, "firmware throttling flags cleared");
    }
  }
}
