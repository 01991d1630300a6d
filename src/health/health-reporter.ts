/**
 * The retained `<base>/<node>/health` topic: machine figures, serving counters and the thermal
 * state, every `intervalMs` and whenever the daemon's state changes (`publishNow`).
 */

import type { NodeState } from "../core/node-state.js";
import { shareOfCeiling } from "../hardware/generation-ceiling.js";
import type { Logger } from "../logging/logger.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";
import type { ServingStats } from "../serving/serving-stats.js";
import type { SystemSample } from "./system-metrics.js";
import type { ThermalState, ThermalStatus } from "./thermal-guard.js";

/** The serving figures the reporter reads; a ServingStats instance is one. */
export type ServingFigures = Readonly<
  Pick<
    ServingStats,
    | "requests"
    | "errors"
    | "promptTokens"
    | "promptTokensEvaluated"
    | "completionTokens"
    | "lastTokensPerSecond"
    | "averageTokensPerSecond"
    | "lastTtftMs"
  >
>;

/** What the daemon knows about serving right now; the reporter asks for it on every publish. */
export interface ServingSnapshot {
  state: NodeState;
  queueDepth: number;
  activeRequests: number;
  stats: ServingFigures;
  /** The memory-bandwidth bound on generation (tokens/s) for the loaded model; null until known. */
  ceilingTokensPerSecond?: number | null;
}

/** Firmware throttling bits (Raspberry Pi `get_throttled`): now, and since boot (`_occurred`). */
export interface ThrottlingPayload {
  /** The bits as vcgencmd prints them, e.g. "0x50005". */
  raw: string;
  under_voltage: boolean;
  frequency_capped: boolean;
  throttled: boolean;
  soft_temperature_limit: boolean;
  under_voltage_occurred: boolean;
  frequency_capped_occurred: boolean;
  throttled_occurred: boolean;
  soft_temperature_limit_occurred: boolean;
}

/** The JSON published on `<base>/<node>/health` (docs/protocol.md). */
export interface HealthPayload {
  /** When the figures were taken, ISO-8601. */
  ts: string;
  /** Model state, as on the status topic. */
  state: NodeState;
  /** Busy share of all cores since the previous sample, 0-100; null on the first sample. */
  cpu_load_percent: number | null;
  /** 1, 5 and 15 minute load averages. */
  load_avg: [number, number, number];
  /** SoC temperature; null where no sensor is readable. */
  cpu_temp_c: number | null;
  /** Null where the board does not report throttling (anything but a Raspberry Pi). */
  throttling: ThrottlingPayload | null;
  memory: { total_bytes: number | null; available_bytes: number | null };
  process_rss_bytes: number;
  /** Seconds this daemon has run. */
  uptime_s: number;
  /** Seconds since the machine booted; null where /proc/uptime is absent. */
  system_uptime_s: number | null;
  /** Requests waiting for a slot. */
  queue_depth: number;
  /** Requests generating now. */
  active_requests: number;
  /** Since the daemon started. `completion_tokens` are the generated tokens. */
  totals: {
    requests: number;
    errors: number;
    prompt_tokens: number;
    prompt_tokens_evaluated: number;
    completion_tokens: number;
  };
  /** Generation speed of the last request and the average over all. */
  tokens_per_second: { last: number | null; average: number | null };
  /**
   * How close generation runs to its limit: memory bandwidth / bytes read per token (docs/arm.md),
   * and the last and average request speeds as shares of it (0-1). Null until bandwidth is known.
   */
  generation_ceiling: {
    tokens_per_second: number;
    share_last: number | null;
    share_average: number | null;
  } | null;
  /** Time to first token of the last request, ms. */
  ttft_ms_last: number | null;
  /** Inference threads: as planned, and now (fewer while the thermal guard holds them back). */
  threads: { configured: number | null; current: number | null };
  thermal: {
    state: ThermalState;
    throttle_at_c: number | null;
    resume_below_c: number | null;
    /** When the thermal state last changed; null while it never has. */
    since: string | null;
  };
}

export interface HealthPayloadInput {
  sample: SystemSample;
  serving: ServingSnapshot;
  /** Null where no thermal guard runs (e.g. before the model is loaded). */
  thermal: ThermalStatus | null;
  now: Date;
}

function round(value: number | null, digits: number): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

function ceilingPayload(serving: ServingSnapshot): HealthPayload["generation_ceiling"] {
  const ceiling = serving.ceilingTokensPerSecond ?? null;
  if (ceiling === null || !(ceiling > 0)) return null;
  return {
    tokens_per_second: round(ceiling, 1) ?? 0,
    share_last: shareOfCeiling(serving.stats.lastTokensPerSecond, ceiling),
    share_average: shareOfCeiling(serving.stats.averageTokensPerSecond, ceiling),
  };
}

export function buildHealthPayload({ sample, serving, thermal, now }: HealthPayloadInput): HealthPayload {
  const { stats } = serving;
  const throttling = sample.throttling;
  const [one, five, fifteen] = sample.loadAverage;
  return {
    ts: now.toISOString(),
    state: serving.state,
    cpu_load_percent: round(sample.cpuLoadPercent, 1),
    load_avg: [round(one, 2) ?? 0, round(five, 2) ?? 0, round(fifteen, 2) ?? 0],
    cpu_temp_c: round(sample.cpuTemperatureC, 1),
    throttling:
      throttling === null
        ? null
        : {
            raw: throttling.raw,
            under_voltage: throttling.underVoltage,
            frequency_capped: throttling.frequencyCapped,
            throttled: throttling.throttled,
            soft_temperature_limit: throttling.softTemperatureLimit,
            under_voltage_occurred: throttling.underVoltageOccurred,
            frequency_capped_occurred: throttling.frequencyCappedOccurred,
            throttled_occurred: throttling.throttledOccurred,
            soft_temperature_limit_occurred: throttling.softTemperatureLimitOccurred,
          },
    memory: { total_bytes: sample.memory.totalBytes, available_bytes: sample.memory.availableBytes },
    process_rss_bytes: sample.processRssBytes,
    uptime_s: Math.floor(sample.processUptimeSeconds),
    system_uptime_s: sample.systemUptimeSeconds === null ? null : Math.floor(sample.systemUptimeSeconds),
    queue_depth: serving.queueDepth,
    active_requests: serving.activeRequests,
    totals: {
      requests: stats.requests,
      errors: stats.errors,
      prompt_tokens: stats.promptTokens,
      prompt_tokens_evaluated: stats.promptTokensEvaluated,
      completion_tokens: stats.completionTokens,
    },
    tokens_per_second: {
      last: round(stats.lastTokensPerSecond, 2),
      average: round(stats.averageTokensPerSecond, 2),
    },
    generation_ceiling: ceilingPayload(serving),
    ttft_ms_last: round(stats.lastTtftMs, 0),
    threads: {
      configured: thermal?.threads.configured ?? null,
      current: thermal?.threads.current ?? null,
    },
    thermal: {
      state: thermal?.state ?? "normal",
      throttle_at_c: thermal?.throttleAtC ?? null,
      resume_below_c: thermal?.resumeBelowC ?? null,
      since: thermal?.since ?? null,
    },
  };
}

export interface HealthReporterDeps {
  logger: Logger;
  topics: Pick<Topics, "health">;
  intervalMs: number;
  publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
  metrics: { collect(): Promise<SystemSample> };
  snapshot: () => ServingSnapshot;
  /** The thermal guard's status, or null where none runs. */
  thermal: () => ThermalStatus | null;
  now?: () => Date;
}

export class HealthReporter {
  private readonly deps: HealthReporterDeps;
  private timer: NodeJS.Timeout | undefined;
  private publishing: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private stopped = true;

  constructor(deps: HealthReporterDeps) {
    this.deps = deps;
  }

  /** Publishes at once, then every `intervalMs`. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => void this.publishNow(), this.deps.intervalMs);
    this.timer.unref();
    await this.publishNow();
  }

  /** Stops the period; a publish in flight finishes on its own (the transport bounds it). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The payload as it would be published now. */
  async payload(): Promise<HealthPayload> {
    const { deps } = this;
    const sample = await deps.metrics.collect();
    return buildHealthPayload({
      sample,
      serving: deps.snapshot(),
      thermal: deps.thermal(),
      now: deps.now?.() ?? new Date(),
    });
  }

  /**
   * Publishes the current figures. Never rejects (failures are logged). Calls during a publish
   * are folded into one more publish after it, so bursts of state changes cost two at most.
   */
  publishNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (!this.publishing) {
      this.publishing = this.publishOnce().finally(() => {
        this.publishing = undefined;
      });
      return this.publishing;
    }
    this.queued ??= this.publishing.then(() => {
      this.queued = undefined;
      return this.publishNow();
    });
    return this.queued;
  }

  private async publishOnce(): Promise<void> {
    const { deps } = this;
    try {
      const payload = await this.payload();
      await deps.publish(deps.topics.health, JSON.stringify(payload), { qos: 1, retain: true });
    } catch (err) {
      deps.logger.warn({ err }, "publishing health failed");
    }
  }
}
