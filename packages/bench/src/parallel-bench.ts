import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import type { DaemonSession, OkRun } from "./daemon-session.js";
import { type FigureSet, type FigureSpec, fromSamples, ratio } from "./figures.js";

export function parallelSpec(level: number): FigureSpec {
  return {
    label: `aggregate tg, ${level} concurrent request${level === 1 ? "" : "s"}`,
    unit: "tokens/s",
  };
}

export function parallelRatioSpec(level: number): FigureSpec {
  return { label: `aggregate tg ${level} vs 1 request`, unit: "ratio" };
}

/** About the tokens of prompts.generation(): llama-batched-bench is given prompts of this length. */
export const PARALLEL_PROMPT_TOKENS = 16;

export const parallelFigureId = (level: number) => `parallel.${level}`;
export const parallelRatioId = (level: number) => `parallel.ratio${level}`;

/** All tokens of all requests over the wall time from the first send to the last final. */
export function aggregateTokensPerSecond(runs: readonly OkRun[]): number | null {
  if (runs.length === 0) return null;
  const tokens = runs.reduce((sum, run) => sum + run.final.usage.completion_tokens, 0);
  const wallMs = Math.max(...runs.map((run) => run.finalAt)) - Math.min(...runs.map((run) => run.sentAt));
  return tokens > 0 && wallMs > 0 ? (tokens * 1000) / wallMs : null;
}

export interface ParallelBenchDeps {
  session: DaemonSession;
  sizes: Pick<BenchSizes, "parallelLevels" | "parallelTokens" | "parallelRuns" | "warmups">;
  prompts: Pick<BenchPrompts, "generation">;
  temperature: number;
  step: (label: string) => void;
}

/** Aggregate tg with 1, 2, 4… requests at once against a daemon with that many sequences. */
export async function measureParallel(deps: ParallelBenchDeps): Promise<FigureSet> {
  const { session, sizes } = deps;
  const burst = (level: number, round: number, maxTokens: number) =>
    Promise.all(
      Array.from({ length: level }, (_, i) =>
        session.request({
          prompt: deps.prompts.generation(round * 100 + i),
          raw: true,
          stream: true,
          max_tokens: maxTokens,
          temperature: deps.temperature,
          seed: i,
        }),
      ),
    );
  const widest = Math.max(...sizes.parallelLevels);
  for (let warmup = 0; warmup < sizes.warmups; warmup++) {
    await burst(widest, -1 - warmup, Math.min(8, sizes.parallelTokens));
    deps.step("warm-up");
  }
  const figures: FigureSet = {};
  for (const level of sizes.parallelLevels) {
    const samples: number[] = [];
    for (let run = 0; run < sizes.parallelRuns; run++) {
      const rate = aggregateTokensPerSecond(await burst(level, level * 10 + run, sizes.parallelTokens));
      if (rate !== null) samples.push(rate);
      deps.step(`${level} at once, run ${run + 1}/${sizes.parallelRuns}`);
    }
    figures[parallelFigureId(level)] = fromSamples(parallelSpec(level), samples, "no tokens came back");
  }
  const single = figures[parallelFigureId(1)];
  for (const level of sizes.parallelLevels) {
    const figure = figures[parallelFigureId(level)];
    if (level === 1 || !single || !figure) continue;
    figures[parallelRatioId(level)] = ratio(parallelRatioSpec(level), figure, single);
  }
  return figures;
}
