import type { AppConfig } from "tinyllama-edge/config/app-config.js";
import type { PreparedRuntime } from "tinyllama-edge/runtime/prepare-runtime.js";
import type { BenchPhase } from "./bench-progress.js";
import type { BenchSizes } from "./bench-sizes.js";

/** Every engine and daemon figure is taken at this context size per sequence. */
export const BENCH_CONTEXT_SIZE = 2048;

/** What every phase of a run shares: the planned runtime, the sizes, the sampling, Ctrl-C. */
export interface BenchContext {
  runtime: PreparedRuntime;
  /** The configuration as the bench planned it (its model, threads, one sequence, 2048). */
  config: AppConfig;
  sizes: BenchSizes;
  /** The daemon's default temperature, used by both sides. */
  temperature: number;
  signal: AbortSignal;
  phase: (name: string, steps: number) => BenchPhase;
}
