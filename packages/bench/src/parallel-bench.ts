import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import type { DaemonSession, OkRun } from "./daemon-session.js";
import { type FigureSet, type FigureSpec, fromSamples } from "./figures.js";

export function parallelSpec(level: number): FigureSpec {
  return {
    label: `aggregate tg, ${level} concurrent request${level === 1 ? "" : "s"}`,
    unit: "tokens/s",
  };
}

export function parallelRatioSpec(level: number): FigureSpec {
  return { label: `aggregate tg ${level} vs 1 request (median of rounds)`, unit: "ratio" };
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

/**
 * Aggregate tg with 1, 2, 3, 4 requests at once against a daemon with that many sequences. The
 * levels take turns within each round, and each ratio is the median of its rounds' own ratios
 * (level over one request in the same round): the machine's drift between rounds cancels out.
 */
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
  const samples = new Map<number, number[]>(sizes.parallelLevels.map((level) => [level, []]));
  const ratios = new Map<number, number[]>(sizes.parallelLevels.map((level) => [level, []]));
  for (let run = 0; run < sizes.parallelRuns; run++) {
    const round = new Map<number, number>();
    for (const level of sizes.parallelLevels) {
      const rate = aggregateTokensPerSecond(await burst(level, level * 10 + run, sizes.parallelTokens));
      if (rate !== null) {
        samples.get(level)!.push(rate);
        round.set(level, rate);
      }
      deps.step(`${level} at once, round ${run + 1}/${sizes.parallelRuns}`);
    }
    const single = round.get(1);
    for (const [level, rate] of round) if (level > 1 && single) ratios.get(level)!.push(rate / single);
  }
  const figures: FigureSet = {};
  for (const level of sizes.parallelLevels)
    figures[parallelFigureId(level)] = fromSamples(
      parallelSpec(level),
      samples.get(level)!,
      "no tokens came back",
    );
  for (const level of sizes.parallelLevels) {
    if (level === 1) continue;
    figures[parallelRatioId(level)] = fromSamples(
      parallelRatioSpec(level),
      ratios.get(level)!,
      "no round measured both this level and one request",
    );
  }
  return figures;
}
