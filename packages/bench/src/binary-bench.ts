import { nativeBuild } from "tinyllama-edge/runtime/native-build.js";
import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import { clientTokensPerSecond, clientTtftMs } from "./daemon-bench.js";
import type { DaemonSession } from "./daemon-session.js";
import { allMissing, type FigureSet, type FigureSpec, fromSamples } from "./figures.js";
import { aggregateTokensPerSecond } from "./parallel-bench.js";

export type Binary = "prebuilt" | "native";

const MEASURES = ["pp", "tg", "parallel4"] as const;
type Measure = (typeof MEASURES)[number];

const MEASURE_LABELS: Record<Measure, string> = {
  pp: "daemon pp (prompt tokens / time to first token)",
  tg: "daemon tg, 1 request",
  parallel4: "daemon aggregate tg, 4 requests",
};

export const binaryFigureId = (binary: Binary, measure: Measure) => `binary.${binary}.${measure}`;
export const binaryRatioId = (measure: Measure) => `binary.ratio.${measure}`;

export function binarySpecs(): Record<string, FigureSpec> {
  const specs: Record<string, FigureSpec> = {};
  for (const binary of ["prebuilt", "native"] as const)
    for (const measure of MEASURES)
      specs[binaryFigureId(binary, measure)] = {
        label: `${MEASURE_LABELS[measure]}, ${binary}`,
        unit: "tokens/s",
      };
  for (const measure of MEASURES)
    specs[binaryRatioId(measure)] = {
      label: `native/prebuilt, ${MEASURE_LABELS[measure]} (median of rounds)`,
      unit: "ratio",
    };
  return specs;
}

/** Daemon sessions per round (one per binary) and the progress steps they take. */
export function binarySteps(sizes: Pick<BenchSizes, "binaryRounds">): number {
  return nativeBuild().complete ? 2 * sizes.binaryRounds : 1;
}

export interface BinaryBenchDeps {
  sizes: Pick<BenchSizes, "binaryRounds" | "generateTokens" | "parallelTokens">;
  prompts: Pick<BenchPrompts, "generation" | "ppText">;
  temperature: number;
  /** Starts a 4-sequence daemon with these extra flags, runs `use` on it, and stops it. */
  withDaemon: (extraFlags: string[], use: (session: DaemonSession) => Promise<void>) => Promise<void>;
  step: (label: string) => void;
}

/** What one binary gives in one daemon session: prompt, one stream, four streams. */
async function measureSession(
  session: DaemonSession,
  deps: BinaryBenchDeps,
  round: number,
): Promise<Record<Measure, number | null>> {
  const { sizes, prompts, temperature } = deps;
  const request = (prompt: string, maxTokens: number, seed: number) =>
    session.request({ prompt, raw: true, stream: true, max_tokens: maxTokens, temperature, seed });
  // A warm-up: the first decode of a new process pays for what runs once.
  await request(prompts.generation(-1), 4, 0);
  const ppRun = await request(prompts.ppText(round), 1, 0);
  const ttft = clientTtftMs(ppRun);
  const pp = ttft === null ? null : (ppRun.final.usage.prompt_tokens * 1000) / ttft;
  const tg = clientTokensPerSecond(await request(prompts.generation(round), sizes.generateTokens, 1));
  const four = await Promise.all(
    [0, 1, 2, 3].map((i) => request(prompts.generation(round * 100 + i), sizes.parallelTokens, i)),
  );
  return { pp, tg, parallel4: aggregateTokensPerSecond(four) };
}

/**
 * The prebuilt llama.cpp binary against the native build (`tinyllama-edge build`), on the built
 * daemon: the two take turns, a daemon session each per round, and each ratio is the median of
 * the rounds' own native/prebuilt ratios (the machine's drift between rounds cancels out).
 * n/a throughout when there is no native build.
 */
export async function measureBinaries(deps: BinaryBenchDeps): Promise<FigureSet> {
  const specs = binarySpecs();
  if (!nativeBuild().complete) {
    deps.step("no native build");
    return allMissing(specs, "no native build here (tinyllama-edge build makes one)");
  }
  const samples = new Map<string, number[]>(Object.keys(specs).map((id) => [id, []]));
  const keep = (id: string, value: number | null) => {
    if (value !== null) samples.get(id)!.push(value);
  };
  for (let round = 0; round < deps.sizes.binaryRounds; round++) {
    const byBinary: Partial<Record<Binary, Record<Measure, number | null>>> = {};
    for (const binary of ["prebuilt", "native"] as const) {
      const flags = ["--runtime.nativeBuild", binary === "native" ? "auto" : "off"];
      await deps.withDaemon(flags, async (session) => {
        byBinary[binary] = await measureSession(session, deps, round);
      });
      deps.step(`${binary}, round ${round + 1}/${deps.sizes.binaryRounds}`);
    }
    for (const measure of MEASURES) {
      const prebuilt = byBinary.prebuilt?.[measure] ?? null;
      const native = byBinary.native?.[measure] ?? null;
      keep(binaryFigureId("prebuilt", measure), prebuilt);
      keep(binaryFigureId("native", measure), native);
      if (prebuilt !== null && native !== null) keep(binaryRatioId(measure), native / prebuilt);
    }
  }
  const figures: FigureSet = {};
  for (const [id, spec] of Object.entries(specs))
    figures[id] = fromSamples(spec, samples.get(id)!, "no round measured it on both binaries");
  return figures;
}
