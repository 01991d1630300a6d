import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import { clientTokensPerSecond, tgRequest } from "./daemon-bench.js";
import type { DaemonSession } from "./daemon-session.js";
import { type EngineBenchDeps, openBenchContext } from "./engine-bench.js";
import { type FigureSet, fromSamples, spreadOf } from "./figures.js";
import { timedCompletion } from "./timed-completion.js";

export const PAIRED_FIGURES = {
  "paired.ratio": { label: "daemon/engine tg, interleaved pairs (median)", unit: "ratio" },
  "paired.spread": { label: "daemon/engine tg, spread of the pairs", unit: "%" },
} as const;

/** One in-process tg run: tokens/s after the first token, null when fewer than 2 came. */
export type EngineRun = (run: number) => Promise<number | null>;

export interface PairedEngine {
  run: EngineRun;
  /** Frees the context and the model. */
  dispose: () => Promise<void>;
}

/**
 * The in-process engine kept loaded beside the daemon for the paired series: a context like the
 * daemon's (one sequence, same threads and batch) on the model the engine series used.
 */
export async function openPairedEngine(
  deps: Pick<EngineBenchDeps, "llama" | "model" | "contextSize" | "batchSize" | "threads" | "signal">,
  sizes: Pick<BenchSizes, "generateTokens" | "warmups">,
  prompts: Pick<BenchPrompts, "generation">,
  temperature: number,
): Promise<PairedEngine> {
  const context = await openBenchContext(deps, deps.threads);
  const sequence = context.getSequence();
  return {
    run: async (run) =>
      (
        await timedCompletion(sequence, prompts.generation(run), {
          maxTokens: sizes.generateTokens,
          temperature,
          seed: run + sizes.warmups,
          signal: deps.signal,
        })
      ).tokensPerSecond,
    dispose: () => context.dispose(),
  };
}

export interface PairedBenchDeps {
  session: DaemonSession;
  sizes: Pick<BenchSizes, "generateTokens" | "warmups" | "runs">;
  prompts: Pick<BenchPrompts, "generation">;
  temperature: number;
  engineRun: EngineRun;
  step: (label: string) => void;
}

/**
 * The daemon's tg against the engine's, run by run: each pair is an engine run and, right after
 * it, the same prompt and seed through the daemon. The machine's drift over minutes (its other
 * tenants, clocks, heat) moves both halves of a pair alike, so the ratio of each pair measures
 * what the daemon adds, and the spread of those ratios is the daemon's own jitter.
 */
export async function measurePairs(deps: PairedBenchDeps): Promise<FigureSet> {
  const { session, sizes } = deps;
  const ratios: number[] = [];
  for (let run = -sizes.warmups; run < sizes.runs; run++) {
    const engine = await deps.engineRun(run);
    const daemon = clientTokensPerSecond(await session.request(tgRequest(deps, run)));
    if (run >= 0 && engine !== null && daemon !== null) ratios.push(daemon / engine);
    deps.step(run < 0 ? "pair warm-up" : `pair ${run + 1}/${sizes.runs}`);
  }
  const ratio = fromSamples(
    PAIRED_FIGURES["paired.ratio"],
    ratios,
    "no pair gave 2 tokens or more on both sides",
  );
  return { "paired.ratio": ratio, "paired.spread": spreadOf(PAIRED_FIGURES["paired.spread"], ratio) };
}
