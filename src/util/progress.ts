import cliProgress from "cli-progress";
import type { Logger } from "../logging/logger.js";

/** Reports a long task (a download, a benchmark run) to whoever watches: a terminal or a journal. */
export interface ProgressReporter {
  /** `total` may be 0 when the size is not known in advance. */
  start(label: string, total: number): void;
  /** `done` is the running amount (bytes, steps), not an increment. */
  update(done: number): void;
  stop(): void;
}

export interface ProgressReporterOptions {
  /** True when stdout is a terminal: draw a bar; otherwise write throttled log lines. */
  interactive: boolean;
  logger: Logger;
  /** Where the bar is drawn; stderr by default so stdout stays clean for scripts. */
  stream?: NodeJS.WritableStream;
  /** What is counted: bytes are shown in MB (default), items as plain numbers (benchmark runs). */
  units?: ProgressUnits;
  /** Milliseconds clock, injectable so the throttling can be tested. */
  now?: () => number;
}

export type ProgressUnits = "bytes" | "items";

export function createProgressReporter(options: ProgressReporterOptions): ProgressReporter {
  const units = options.units ?? "bytes";
  return options.interactive
    ? createBarProgressReporter(options.stream ?? process.stderr, units)
    : createLogProgressReporter(options.logger, options.now ?? Date.now, units);
}

function formatAmount(amount: number, units: ProgressUnits): string {
  return units === "bytes" ? `${(amount / 1_000_000).toFixed(1)} MB` : String(amount);
}

export function createBarProgressReporter(
  stream: NodeJS.WritableStream,
  units: ProgressUnits = "bytes",
): ProgressReporter {
  let bar: cliProgress.SingleBar | null = null;
  return {
    start(label, total) {
      bar?.stop();
      // Without a total there is no percentage to draw, only the running amount.
      const format =
        total > 0
          ? `${label} [{bar}] {percentage}% | {amount} of {totalAmount} | ETA {eta_formatted}`
          : `${label} {amount}`;
      bar = new cliProgress.SingleBar(
        { stream, format, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(total, 0), 0, {
        amount: formatAmount(0, units),
        totalAmount: formatAmount(total, units),
      });
    },
    update(done) {
      bar?.update(done, { amount: formatAmount(done, units) });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

/** Under systemd a bar would flood the journal: one line per 10 % step, or every 5 s at most. */
export const LOG_PROGRESS_STEP_PERCENT = 10;
export const LOG_PROGRESS_INTERVAL_MS = 5_000;

export function createLogProgressReporter(
  logger: Logger,
  now: () => number,
  units: ProgressUnits = "bytes",
): ProgressReporter {
  let label = "";
  let total = 0;
  let done = 0;
  let lastStep = -1;
  let lastLoggedAt = 0;
  let lastLoggedDone = -1;
  let active = false;

  const log = () => {
    lastLoggedAt = now();
    lastLoggedDone = done;
    if (total > 0) {
      const percent = Math.min(100, Math.floor((done / total) * 100));
      logger.info(
        { label, done, total, percent },
        `${label}: ${percent}% (${formatAmount(done, units)} of ${formatAmount(total, units)})`,
      );
    } else {
      logger.info({ label, done }, `${label}: ${formatAmount(done, units)}`);
    }
  };

  return {
    start(newLabel, newTotal) {
      label = newLabel;
      total = newTotal;
      done = 0;
      lastStep = -1;
      lastLoggedDone = -1;
      lastLoggedAt = now();
      active = true;
    },
    update(newDone) {
      if (!active) return;
      done = newDone;
      const step = total > 0 ? Math.floor((done / total) * (100 / LOG_PROGRESS_STEP_PERCENT)) : -1;
      const stepped = step > lastStep;
      if (stepped) lastStep = step;
      if (stepped || (now() - lastLoggedAt >= LOG_PROGRESS_INTERVAL_MS && done !== lastLoggedDone)) log();
    },
    stop() {
      if (!active) return;
      active = false;
      // The final figure always reaches the log, even when it fell between two steps.
      if (done !== lastLoggedDone) log();
    },
  };
}
