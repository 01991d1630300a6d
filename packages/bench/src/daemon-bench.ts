import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import type { DaemonSession, OkRun } from "./daemon-session.js";
import { type FigureSet, fromSamples, measured, missing, spreadOf } from "./figures.js";
import { readProcessMemory } from "./process-memory.js";
import { rateOf } from "./timed-completion.js";

export const DAEMON_FIGURES = {
  "daemon.tg": { label: "daemon tg over MQTT (seen by the client)", unit: "tokens/s" },
  "daemon.tgSpread": { label: "daemon tg run-to-run spread", unit: "%" },
  "daemon.tgReported": { label: "daemon tg (its own timings)", unit: "tokens/s" },
  "daemon.ttft": { label: "daemon time to first token (client)", unit: "ms" },
} as const;

export const PREFIX_FIGURES = {
  "prefix.uncached": { label: "TTFT with a new system prompt", unit: "ms" },
  "prefix.cached": { label: "TTFT with the system prompt cached", unit: "ms" },
} as const;

export const MEMORY_FIGURES = {
  "memory.peakRss": { label: "daemon peak RSS (VmHWM), 1 sequence", unit: "bytes" },
  "memory.rss": { label: "daemon RSS at the end", unit: "bytes" },
} as const;

export interface DaemonBenchDeps {
  session: DaemonSession;
  sizes: BenchSizes;
  prompts: BenchPrompts;
  temperature: number;
  step: (label: string) => void;
}

/** Client send to the first stream chunk. */
export function clientTtftMs(run: OkRun): number | null {
  return run.firstChunkAt === null ? null : run.firstChunkAt - run.sentAt;
}

/** Generated tokens after the first over first to last chunk, as a client sees the stream. */
export function clientTokensPerSecond(run: OkRun): number | null {
  return rateOf(run.final.usage.completion_tokens, run.chunkTimes[0], run.chunkTimes.at(-1));
}

/** Raw tg request of run `run`: the prompt, length and sampling the engine's run `run` has. */
export function tgRequest(
  deps: {
    sizes: Pick<BenchSizes, "generateTokens" | "warmups">;
    prompts: Pick<BenchPrompts, "generation">;
    temperature: number;
  },
  run: number,
): Record<string, unknown> {
  return {
    prompt: deps.prompts.generation(run),
    raw: true,
    stream: true,
    max_tokens: deps.sizes.generateTokens,
    temperature: deps.temperature,
    seed: run + deps.sizes.warmups,
  };
}

/** tg and time to first token over MQTT, with the raw prompts and sampling the engine had. */
export async function measureDaemonGeneration(deps: DaemonBenchDeps): Promise<FigureSet> {
  const { session, sizes } = deps;
  const tg: number[] = [];
  const reported: number[] = [];
  const ttft: number[] = [];
  for (let run = -sizes.warmups; run < sizes.runs; run++) {
    const result = await session.request(tgRequest(deps, run));
    if (run >= 0) {
      const rate = clientTokensPerSecond(result);
      if (rate !== null) tg.push(rate);
      const first = clientTtftMs(result);
      if (first !== null) ttft.push(first);
      const own = result.final.timings.tokens_per_second;
      if (own !== null) reported.push(own);
    }
    deps.step(run < 0 ? "tg warm-up" : `tg run ${run + 1}/${sizes.runs}`);
  }
  const tgFigure = fromSamples(DAEMON_FIGURES["daemon.tg"], tg, "no run streamed 2 tokens or more");
  return {
    "daemon.tg": tgFigure,
    "daemon.tgSpread": spreadOf(DAEMON_FIGURES["daemon.tgSpread"], tgFigure),
    "daemon.tgReported": fromSamples(
      DAEMON_FIGURES["daemon.tgReported"],
      reported,
      "the daemon reported no tokens_per_second",
    ),
    "daemon.ttft": fromSamples(DAEMON_FIGURES["daemon.ttft"], ttft, "no stream chunk arrived"),
  };
}

/**
 * Time to first token of a chat request with a long system prompt: a new one each time (its first
 * word changes, so nothing after it is cached), then the same one again and again.
 */
export async function measurePrefixCache(deps: DaemonBenchDeps): Promise<FigureSet> {
  const { session, sizes, prompts } = deps;
  const ask = (system: string, run: number) =>
    session.request({
      system,
      prompt: prompts.question(run),
      stream: true,
      max_tokens: sizes.prefixMaxTokens,
      temperature: deps.temperature,
      seed: 1,
    });
  const nonce = Date.now().toString(36);
  const uncached: number[] = [];
  for (let run = 0; run < sizes.prefixRuns; run++) {
    const first = clientTtftMs(await ask(prompts.systemPrompt(`${nonce}${run}`), run));
    if (first !== null) uncached.push(first);
    deps.step(`uncached ${run + 1}/${sizes.prefixRuns}`);
  }
  // The first request with the shared system prompt fills the cache; it is not counted.
  const shared = prompts.systemPrompt("shared");
  await ask(shared, -1);
  deps.step("cache primed");
  const cached: number[] = [];
  for (let run = 0; run < sizes.prefixRuns; run++) {
    const first = clientTtftMs(await ask(shared, run));
    if (first !== null) cached.push(first);
    deps.step(`cached ${run + 1}/${sizes.prefixRuns}`);
  }
  return {
    "prefix.uncached": fromSamples(PREFIX_FIGURES["prefix.uncached"], uncached, "no stream chunk arrived"),
    "prefix.cached": fromSamples(PREFIX_FIGURES["prefix.cached"], cached, "no stream chunk arrived"),
  };
}

/** The daemon's peak and current resident memory, read from /proc while it still runs. */
export async function measureDaemonMemory(session: DaemonSession): Promise<FigureSet> {
  const memory = await readProcessMemory(session.daemon.pid);
  if ("reason" in memory) {
    return {
      "memory.peakRss": missing(MEMORY_FIGURES["memory.peakRss"], memory.reason),
      "memory.rss": missing(MEMORY_FIGURES["memory.rss"], memory.reason),
    };
  }
  return {
    "memory.peakRss": measured(MEMORY_FIGURES["memory.peakRss"], memory.peakRssBytes),
    "memory.rss": measured(MEMORY_FIGURES["memory.rss"], memory.rssBytes),
  };
}
