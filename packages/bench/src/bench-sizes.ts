/** How much each part of the benchmark runs: the full run, or a quick one for tests and smoke checks. */
export interface BenchSizes {
  quick: boolean;
  /** Unmeasured runs before each series (caches, page faults, the CPU's clock ramp). */
  warmups: number;
  /** Measured runs of the engine and the daemon series; each figure is their median. */
  runs: number;
  /** Prompt tokens evaluated per pp run. */
  promptTokens: number;
  /** Tokens generated per tg run (the synthetic models never stop early). */
  generateTokens: number;
  /** Tokens and runs per thread count of the sweep: shorter, there are several counts. */
  sweepTokens: number;
  sweepRuns: number;
  /** Concurrent requests compared, tokens per request, and runs per level. */
  parallelLevels: number[];
  parallelTokens: number;
  parallelRuns: number;
  /** System prompt length for the prefix-cache series, and its runs (cached and uncached each). */
  systemPromptTokens: number;
  prefixRuns: number;
  /** Tokens generated per prefix-cache request: only the time to the first one counts. */
  prefixMaxTokens: number;
  /** System prompt lengths of the restart series (cold, after a restart, in memory), and its restarts. */
  restartPromptTokens: number[];
  restartRuns: number;
  /** Rounds of the prebuilt-vs-native series (a daemon session per binary per round). */
  binaryRounds: number;
}

export const DEFAULT_RUNS = 5;
const QUICK_RUNS = 2;

/** The full run takes minutes on a 2-core box with TinyLlama; `quick` seconds with the tiny model. */
export function benchSizes(options: { runs: number | undefined; quick: boolean }): BenchSizes {
  const runs = Math.max(1, options.runs ?? (options.quick ? QUICK_RUNS : DEFAULT_RUNS));
  if (options.quick) {
    return {
      quick: true,
      warmups: 1,
      runs,
      promptTokens: 64,
      generateTokens: 32,
      sweepTokens: 16,
      sweepRuns: 1,
      parallelLevels: [1, 2, 3, 4],
      parallelTokens: 16,
      parallelRuns: 1,
      systemPromptTokens: 300,
      prefixRuns: runs,
      prefixMaxTokens: 2,
      restartPromptTokens: [300, 1000],
      restartRuns: 1,
      binaryRounds: 1,
    };
  }
  return {
    quick: false,
    warmups: 1,
    runs,
    promptTokens: 256,
    generateTokens: 128,
    sweepTokens: 64,
    sweepRuns: Math.min(runs, 3),
    parallelLevels: [1, 2, 3, 4],
    parallelTokens: 64,
    parallelRuns: runs,
    systemPromptTokens: 300,
    prefixRuns: runs,
    prefixMaxTokens: 2,
    restartPromptTokens: [300, 1000],
    restartRuns: Math.min(runs, 3),
    binaryRounds: Math.min(runs, 3),
  };
}
