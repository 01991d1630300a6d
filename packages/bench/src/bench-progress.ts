import cliProgress from "cli-progress";
import type { Logger } from "tinyllama-edge/logging/logger.js";

/**
 * Progress over every step of the benchmark: one bar on a terminal, one log line per step otherwise.
 * (The download reporter of util/progress.ts counts megabytes; these are steps.)
 */
export interface BenchProgress {
  /** Starts a phase of `steps` steps; `finish` jumps to its end even when it stopped early. */
  phase(name: string, steps: number): BenchPhase;
  stop(): void;
}

export interface BenchPhase {
  step(label: string): void;
  finish(): void;
}

export interface BenchProgressOptions {
  interactive: boolean;
  logger: Logger;
  total: number;
  /** Where the bar is drawn; stderr so stdout keeps only the table. */
  stream?: NodeJS.WritableStream;
}

export function createBenchProgress(options: BenchProgressOptions): BenchProgress {
  const { total } = options;
  let done = 0;
  let stopped = false;
  const bar = options.interactive
    ? new cliProgress.SingleBar(
        {
          stream: options.stream ?? process.stderr,
          format: "bench [{bar}] {percentage}% | {value}/{total} steps | {label}",
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(total, 0, { label: "starting" });
  const show = (label: string) => {
    if (bar) bar.update(Math.min(done, total), { label });
    else options.logger.info({ done, total, step: label }, `bench ${done}/${total}: ${label}`);
  };
  return {
    phase(name, steps) {
      const end = done + steps;
      return {
        step(label) {
          done = Math.min(end, done + 1);
          show(`${name}: ${label}`);
        },
        finish() {
          if (done >= end) return;
          done = end;
          bar?.update(Math.min(done, total), { label: `${name}: done` });
        },
      };
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar?.update(done, { label: done >= total ? "done" : "stopped" });
      bar?.stop();
    },
  };
}
