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

/**
 * How to say "mmap or not" to this llama-bench: `-mmp 0|1` until llama.cpp v0.5.0 replaced it with
 * `-lm, --load-mode none|mmap|…` (and refuses `-mmp`), read from its own help text.
 */
export function loadModeArgs(helpText: string, useMmap: boolean): string[] {
  return helpText.includes("--load-mode")
    ? ["-lm", useMmap ? "mmap" : "none"]
    : ["-mmp", useMmap ? "1" : "0"];
}

export function llamaBenchArgs(options: LlamaBenchOptions, helpText = ""): string[] {
  return [
    ["-m", options.modelPath],
    ["-t", String(options.threads)],
    ["-p", String(options.promptTokens)],
    ["-n", String(options.generateTokens)],
    ["-r", String(options.runs)],
    loadModeArgs(helpText, options.useMmap),
    ["-ngl", options.gpuLayers === "max" ? "999" : String(options.gpuLayers)],
    ["-o", "json"],
  ].flat();
}

const LLAMA_BENCH_TIMEOUT_MS = 600_000;

/** llama.cpp's own figures on the same file and threads: what the engine could reach at best. */
export async function runLlamaBench(options: LlamaBenchOptions): Promise<FigureSet> {
  if (options.binary === null) return allMissing(ANCHOR_FIGURES, "no --llama-bench PATH given");
  try {
    const help = await helpOf(options.binary);
    const { stdout } = await promisify(execFile)(options.binary, llamaBenchArgs(options, help), {
      signal: options.signal,
      timeout: LLAMA_BENCH_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    return parseLlamaBenchJson(stdout);
  } catch (err) {
    options.signal.throwIfAborted();
    return allMissing(ANCHOR_FIGURES, `llama-bench failed: ${failureOf(err)}`);
  }
}

/** llama-bench's --help (it exits 0 on some releases and 1 on others; the text is what counts). */
async function helpOf(binary: string): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(binary, ["--help"], { timeout: 10_000 });
    return stdout + stderr;
  } catch (err) {
    const { stdout = "", stderr = "" } = err as { stdout?: string; stderr?: string };
    return stdout + stderr;
  }
}

/** The tool's own complaint (its first "error" line on stderr) rather than "Command failed: …". */
export function failureOf(err: unknown): string {
  const stderr = String((err as { stderr?: unknown }).stderr ?? "");
  const complaint = stderr.split("\n").find((line) => /error/i.test(line));
  return (complaint ?? (err as Error).message.split("\n")[0] ?? "").trim();
}
