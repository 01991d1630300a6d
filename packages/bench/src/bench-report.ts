import type { BenchSizes } from "./bench-sizes.js";
import type { FigureSet } from "./figures.js";
import type { GoalResult } from "./goals.js";
import type { MachineInfo } from "./machine-info.js";

/** Everything a run measured and what it ran on: the --json output, and what the table shows. */
export interface BenchReport {
  tool: "tinyllama-edge bench";
  version: string;
  startedAt: string;
  durationMs: number;
  options: {
    quick: boolean;
    runs: number;
    synthetic: string | null;
    threads: number;
    llamaBench: string | null;
  };
  sizes: BenchSizes;
  machine: MachineInfo;
  nodeLlamaCpp: { version: string | null; gpu: string; llamaCppRelease: string };
  model: { path: string; fileBytes: number; synthetic: string | null };
  /** Threads of every engine and daemon figure (the sweep excepted). */
  threads: number;
  plan: {
    threads: number;
    contextSize: number;
    batchSize: number;
    useMmap: boolean;
    gpuLayers: "max" | number;
    reasons: Record<string, string>;
    warnings: string[];
  };
  broker: { kind: "mosquitto" | "aedes"; tcpNoDelay: boolean } | null;
  figures: FigureSet;
  goals: GoalResult[];
}
