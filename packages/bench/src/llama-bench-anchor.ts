import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { allMissing, type Figure, type FigureSet, fromSamples, measured, missing } from "./figures.js";

export const ANCHOR_FIGURES = {
  "anchor.pp": { label: "llama-bench pp", unit: "tokens/s" },
  "anchor.tg": { label: "llama-bench tg", unit: "tokens/s" },
} as const;

/** One test of llama-bench's `-o json` output (the fields this bench reads). */
interface LlamaBenchTest {
  n_prompt?: number;
  n_gen?: number;
  avg_ts?: number;
  samples_ts?: number[];
}

function figureOf(label: keyof typeof ANCHOR_FIGURES, test: LlamaBenchTest | undefined): Figure {
  const spec = ANCHOR_FIGURES[label];
  if (!test) return missing(spec, "llama-bench reported no such test");
  if (Array.isArray(test.samples_ts) && test.samples_ts.length > 0)
    return fromSamples(spec, test.samples_ts, "llama-bench gave no samples");
  if (typeof test.avg_ts === "number") return measured(spec, test.avg_ts);
  return missing(spec, "llama-bench gave no tokens/s");
}

/** pp (n_prompt > 0, n_gen 0) and tg (n_gen > 0, n_prompt 0) of `llama-bench -o json`. */
export function parseLlamaBenchJson(text: string): FigureSet {
  const start = text.indexOf("[");
  let tests: LlamaBenchTest[];
  try {
    tests = JSON.parse(start >= 0 ? text.slice(start) : text) as LlamaBenchTest[];
    if (!Array.isArray(tests)) throw new Error("not an array");
  } catch (err) {
    return allMissing(ANCHOR_FIGURES, `llama-bench output is not its JSON: ${(err as Error).message}`);
  }
  const pp = tests.find((t) => (t.n_prompt ?? 0) > 0 && (t.n_gen ?? 0) === 0);
  const tg = tests.find((t) => (t.n_gen ?? 0) > 0 && (t.n_prompt ?? 0) === 0);
  return { "anchor.pp": figureOf("anchor.pp", pp), "anchor.tg": figureOf("anchor.tg", tg) };
}

export interface LlamaBenchOptions {
  /** Path of llama.cpp's llama-bench; null: the anchor is skipped. */
  binary: string | null;
  modelPath: string;
  threads: number;
  promptTokens: number;
  generateTokens: number;
  runs: number;
  useMmap: boolean;
  gpuLayers: "max" | number;
  signal: AbortSignal;
}

export function llamaBenchArgs(options: LlamaBenchOptions): string[] {
  return [
    ["-m", options.modelPath],
    ["-t", String(options.threads)],
    ["-p", String(options.promptTokens)],
    ["-n", String(options.generateTokens)],
    ["-r", String(options.runs)],
    ["-mmp", options.useMmap ? "1" : "0"],
    ["-ngl", options.gpuLayers === "max" ? "999" : String(options.gpuLayers)],
    ["-o", "json"],
  ].flat();
}

const LLAMA_BENCH_TIMEOUT_MS = 600_000;

/** llama.cpp's own figures on the same file and threads: what the engine could reach at best. */
export async function runLlamaBench(options: LlamaBenchOptions): Promise<FigureSet> {
  if (options.binary === null) return allMissing(ANCHOR_FIGURES, "no --llama-bench PATH given");
  try {
    const { stdout } = await promisify(execFile)(options.binary, llamaBenchArgs(options), {
      signal: options.signal,
      timeout: LLAMA_BENCH_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    return parseLlamaBenchJson(stdout);
  } catch (err) {
    options.signal.throwIfAborted();
    return allMissing(ANCHOR_FIGURES, `llama-bench failed: ${(err as Error).message.split("\n")[0]}`);
  }
}
