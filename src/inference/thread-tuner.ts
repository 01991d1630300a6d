import { join } from "node:path";
import { z } from "zod";
import type { Logger } from "../logging/logger.js";
import { KeyedStateFile } from "../util/keyed-state-file.js";

export interface ThreadTrial {
  threads: number;
  tokensPerSecond: number;
}

export interface ThreadTuning {
  threads: number;
  trials: ThreadTrial[];
  /** "measured" now, or "cached" from an earlier start with the same hardware and model. */
  source: "measured" | "cached";
  key: string;
}

export interface ThreadTunerDeps {
  logger: Logger;
  stateDir: string;
  /** Identifies the hardware and the model file: a change of either tunes again. */
  key: string;
  /** The plan's thread count: the largest candidate. */
  maxThreads: number;
  /** Limits the threads llama.cpp uses for the following decodes. */
  setThreads: (threads: number) => void;
  /** tokens/s of a short generation at the current thread count. */
  measure: () => Promise<number>;
  /** Rounds per candidate; the best round counts (the machine may be busy with something else). */
  rounds?: number;
}

/** n, n-1 and n/2 (and 1 on 2-core machines): where the fastest count usually is. */
export function threadCandidates(maxThreads: number): number[] {
  const candidates = new Set([maxThreads, maxThreads - 1, Math.ceil(maxThreads / 2), 1]);
  return [...candidates].filter((n) => n >= 1 && n <= maxThreads).sort((a, b) => b - a);
}

/** The fewest threads within 3% of the fastest: fewer threads leave cores to the event loop and the OS. */
export function pickThreads(trials: ThreadTrial[]): number {
  const best = Math.max(...trials.map((t) => t.tokensPerSecond));
  return Math.min(...trials.filter((t) => t.tokensPerSecond >= best * 0.97).map((t) => t.threads));
}

const CACHE_FILE = "thread-tuning.json";

const cachedTuning = z.object({
  threads: z.number().int().min(1),
  trials: z.array(z.object({ threads: z.number().int().min(1), tokensPerSecond: z.number() })),
  source: z.enum(["measured", "cached"]),
  key: z.string(),
});
/**
 * Measures generation at a few thread counts inside this process, on this device, and keeps the
 * fastest: rules cannot know how much a thread more costs beside the event loop on a given board.
 * The result is cached in the state directory.
 */
export async function tuneThreads(deps: ThreadTunerDeps): Promise<ThreadTuning> {
  const stateFile = new KeyedStateFile(
    join(deps.stateDir, CACHE_FILE),
    cachedTuning,
    "thread tuning",
    deps.logger,
  );
  const cache = await stateFile.read();
  const cached = cache[deps.key];
  if (cached && cached.threads >= 1 && cached.threads <= deps.maxThreads) {
    deps.setThreads(cached.threads);
    return { ...cached, source: "cached" };
  }
  const trials: ThreadTrial[] = [];
  for (const threads of threadCandidates(deps.maxThreads)) {
    deps.setThreads(threads);
    let tokensPerSecond = 0;
    for (let round = 0; round < (deps.rounds ?? 2); round++) {
      tokensPerSecond = Math.max(tokensPerSecond, await deps.measure());
    }
    trials.push({ threads, tokensPerSecond: Math.round(tokensPerSecond * 10) / 10 });
    deps.logger.info({ threads, tokensPerSecond: trials.at(-1)!.tokensPerSecond }, "thread tuning trial");
  }
  const threads = pickThreads(trials);
  deps.setThreads(threads);
  const tuning: ThreadTuning = { threads, trials, source: "measured", key: deps.key };
  await stateFile.write({ ...cache, [deps.key]: tuning });
  return tuning;
}
