import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import { type EngineBenchDeps, openBenchContext } from "./engine-bench.js";
import { type FigureSet, type FigureSpec, fromSamples } from "./figures.js";
import { timedCompletion } from "./timed-completion.js";

/** Every count up to the physical cores on small machines; n, n-1, n/2 and the extremes on big ones. */
export function sweepCandidates(threads: number, physicalCores: number): number[] {
  const top = Math.max(threads, physicalCores, 1);
  const candidates =
    top <= 8
      ? Array.from({ length: top }, (_, i) => i + 1)
      : [1, Math.ceil(threads / 2), threads - 1, threads, physicalCores];
  return [...new Set(candidates)].filter((n) => n >= 1).sort((a, b) => a - b);
}

export function sweepSpec(threads: number): FigureSpec {
  return { label: `engine tg at ${threads} thread${threads === 1 ? "" : "s"}`, unit: "tokens/s" };
}

export function sweepFigureId(threads: number): string {
  return `threads.${threads}`;
}

export interface ThreadSweepDeps extends Omit<EngineBenchDeps, "threads" | "sizes" | "prompts"> {
  candidates: number[];
  sizes: Pick<BenchSizes, "sweepTokens" | "sweepRuns" | "warmups">;
  prompts: Pick<BenchPrompts, "generation">;
}

/** Engine tg at each thread count, each on a fresh context with exactly that many threads. */
export async function measureThreadSweep(deps: ThreadSweepDeps): Promise<FigureSet> {
  const { sizes, signal } = deps;
  const figures: FigureSet = {};
  for (const threads of deps.candidates) {
    const context = await openBenchContext(deps, threads);
    try {
      const sequence = context.getSequence();
      const samples: number[] = [];
      for (let run = -sizes.warmups; run < sizes.sweepRuns; run++) {
        const timing = await timedCompletion(sequence, deps.prompts.generation(run), {
          maxTokens: run < 0 ? Math.min(8, sizes.sweepTokens) : sizes.sweepTokens,
          temperature: deps.temperature,
          seed: run + sizes.warmups,
          signal,
        });
        if (run >= 0 && timing.tokensPerSecond !== null) samples.push(timing.tokensPerSecond);
        deps.step(`${threads} threads, ${run < 0 ? "warm-up" : `run ${run + 1}/${sizes.sweepRuns}`}`);
      }
      figures[sweepFigureId(threads)] = fromSamples(
        sweepSpec(threads),
        samples,
        "the model stopped before 2 tokens",
      );
    } finally {
      await context.dispose();
    }
  }
  return figures;
}
