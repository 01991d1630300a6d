import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import { type FigureSet, fromSamples } from "./figures.js";
import { timedCompletion } from "./timed-completion.js";

export const ENGINE_FIGURES = {
  "engine.pp": { label: "engine pp (prompt)", unit: "tokens/s" },
  "engine.tg": { label: "engine tg (generation)", unit: "tokens/s" },
  "engine.ttft": { label: "engine time to first token", unit: "ms" },
} as const;

export interface EngineBenchDeps {
  llama: Llama;
  model: LlamaModel;
  threads: number;
  contextSize: number;
  batchSize: number;
  sizes: BenchSizes;
  prompts: BenchPrompts;
  temperature: number;
  signal: AbortSignal;
  step: (label: string) => void;
}

/** A context sized like the daemon's at one sequence, with exactly `threads` threads. */
export async function openBenchContext(
  deps: Pick<EngineBenchDeps, "llama" | "model" | "contextSize" | "batchSize">,
  threads: number,
): Promise<LlamaContext> {
  // The pool caps the context's threads: both are set, so exactly `threads` run.
  deps.llama.maxThreads = threads;
  return deps.model.createContext({
    contextSize: deps.contextSize,
    sequences: 1,
    threads,
    batchSize: deps.batchSize,
  });
}

/** Prompt evaluation from an empty sequence, in tokens/s. */
async function promptRun(sequence: LlamaContextSequence, tokens: Token[]): Promise<number> {
  await sequence.clearHistory();
  const startedAt = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(tokens);
  return (tokens.length * 1000) / (performance.now() - startedAt);
}

/**
 * node-llama-cpp in this process, nothing else: pp over a fixed prompt, then tg and time to first
 * token over the same raw prompts the daemon gets, with the same sampling.
 */
export async function measureEngine(deps: EngineBenchDeps): Promise<FigureSet> {
  const { sizes, prompts, signal } = deps;
  const context = await openBenchContext(deps, deps.threads);
  try {
    const sequence = context.getSequence();
    const pp: number[] = [];
    for (let run = -sizes.warmups; run < sizes.runs; run++) {
      signal.throwIfAborted();
      const rate = await promptRun(sequence, prompts.ppTokens);
      if (run >= 0) pp.push(rate);
      deps.step(run < 0 ? "pp warm-up" : `pp run ${run + 1}/${sizes.runs}`);
    }
    const tg: number[] = [];
    const ttft: number[] = [];
    for (let run = -sizes.warmups; run < sizes.runs; run++) {
      const timing = await timedCompletion(sequence, prompts.generation(run), {
        maxTokens: sizes.generateTokens,
        temperature: deps.temperature,
        seed: run + sizes.warmups,
        signal,
      });
      if (run >= 0) {
        if (timing.tokensPerSecond !== null) tg.push(timing.tokensPerSecond);
        if (timing.ttftMs !== null) ttft.push(timing.ttftMs);
      }
      deps.step(run < 0 ? "tg warm-up" : `tg run ${run + 1}/${sizes.runs}`);
    }
    return {
      "engine.pp": fromSamples(ENGINE_FIGURES["engine.pp"], pp, "no prompt run completed"),
      "engine.tg": fromSamples(ENGINE_FIGURES["engine.tg"], tg, "the model stopped before 2 tokens"),
      "engine.ttft": fromSamples(ENGINE_FIGURES["engine.ttft"], ttft, "the model generated no text"),
    };
  } finally {
    await context.dispose();
  }
}
