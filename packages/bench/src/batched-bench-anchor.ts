import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import {
  allMissing,
  type Figure,
  type FigureSet,
  type FigureSpec,
  measured,
  missing,
  ratio,
} from "./figures.js";
import { failureOf } from "./llama-bench-anchor.js";
import { parallelFigureId, parallelRatioId } from "./parallel-bench.js";

/**
 * llama.cpp's own batched decoding (`llama-batched-bench`, from the same build as the
 * `--llama-bench` binary) at the daemon's parallel levels: the ratio the daemon's parallel
 * requests are held to, level by level.
 */
export const batchedFigureId = (level: number) => `anchor.batched${level}`;
export const batchedRatioId = (level: number) => `anchor.batchedRatio${level}`;
/** The daemon's ratio over llama.cpp's at one level: 1.0 or more is llama.cpp's own scaling. */
export const parallelVsLlamaId = (level: number) => `parallel.vsLlama${level}`;

export function batchedSpecs(levels: readonly number[]): Record<string, FigureSpec> {
  const specs: Record<string, FigureSpec> = {};
  for (const level of levels)
    specs[batchedFigureId(level)] = { label: `llama-batched-bench tg, ${level} sequences`, unit: "tokens/s" };
  for (const level of levels)
    if (level > 1)
      specs[batchedRatioId(level)] = { label: `llama-batched-bench tg ${level} vs 1`, unit: "ratio" };
  return specs;
}

/**
 * Generated tokens of all sequences per second of the whole run, prompts included (B x TG / T), per
 * B from llama-batched-bench's table:
 * `|  PP |  TG |  B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |`.
 * The daemon's aggregate counts the same way (its requests evaluate their prompts too); S_TG leaves
 * the prompts out, which made llama.cpp's ratio look 5-8 % better than the same work measured alike.
 */
export function parseBatchedBenchTable(text: string): Map<number, number> {
  const rows = text
    .split("\n")
    .filter((line) => line.trim().startsWith("|"))
    .map((line) =>
      line
        .trim()
        .replace(/^\||\|$/g, "")
        .split("|")
        .map((cell) => cell.trim()),
    );
  const header = rows.find((cells) => ["B", "TG", "T s"].every((name) => cells.includes(name)));
  const byLevel = new Map<number, number>();
  if (!header) return byLevel;
  const [levelAt, generatedAt, secondsAt] = ["B", "TG", "T s"].map((name) => header.indexOf(name));
  for (const cells of rows) {
    const level = Number(cells[levelAt!]);
    const speed = (level * Number(cells[generatedAt!])) / Number(cells[secondsAt!]);
    if (Number.isInteger(level) && level > 0 && Number.isFinite(speed) && speed > 0)
      byLevel.set(level, speed);
  }
  return byLevel;
}

export interface BatchedBenchOptions {
  /** The llama-bench binary given with --llama-bench: llama-batched-bench is looked for beside it. */
  llamaBench: string | null;
  modelPath: string;
  threads: number;
  contextSize: number;
  batchSize: number;
  promptTokens: number;
  generateTokens: number;
  levels: readonly number[];
  gpuLayers: "max" | number;
  signal: AbortSignal;
}

export function batchedBenchArgs(options: BatchedBenchOptions): string[] {
  const widest = Math.max(...options.levels);
  return [
    ["-m", options.modelPath],
    ["-t", String(options.threads)],
    ["-tb", String(options.threads)],
    // Room for every sequence's prompt and generation, as the daemon's context has per sequence.
    ["-c", String(Math.max(options.contextSize, widest * (options.promptTokens + options.generateTokens)))],
    ["-b", String(options.batchSize)],
    ["-ub", String(options.batchSize)],
    ["-npp", String(options.promptTokens)],
    ["-ntg", String(options.generateTokens)],
    ["-npl", options.levels.join(",")],
    ["-ngl", options.gpuLayers === "max" ? "999" : String(options.gpuLayers)],
  ].flat();
}

const TIMEOUT_MS = 600_000;

/** llama.cpp's batched tg at each level, its ratios over one sequence, and the daemon's against them. */
export async function runBatchedBench(options: BatchedBenchOptions): Promise<FigureSet> {
  const specs = batchedSpecs(options.levels);
  if (options.llamaBench === null) return allMissing(specs, "no --llama-bench PATH given");
  const binary = join(dirname(options.llamaBench), "llama-batched-bench");
  if (!existsSync(binary)) return allMissing(specs, `no llama-batched-bench beside ${options.llamaBench}`);
  let byLevel: Map<number, number>;
  try {
    const { stdout } = await promisify(execFile)(binary, batchedBenchArgs(options), {
      signal: options.signal,
      timeout: TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    byLevel = parseBatchedBenchTable(stdout);
  } catch (err) {
    options.signal.throwIfAborted();
    return allMissing(specs, `llama-batched-bench failed: ${failureOf(err)}`);
  }
  const figures: FigureSet = {};
  const figureAt = (level: number): Figure => {
    const speed = byLevel.get(level);
    const spec = specs[batchedFigureId(level)]!;
    return speed === undefined
      ? missing(spec, `llama-batched-bench gave no row for B=${level}`)
      : measured(spec, speed);
  };
  for (const level of options.levels) figures[batchedFigureId(level)] = figureAt(level);
  for (const level of options.levels)
    if (level > 1)
      figures[batchedRatioId(level)] = ratio(specs[batchedRatioId(level)]!, figureAt(level), figureAt(1));
  return figures;
}

/** The daemon's parallel ratio over llama.cpp's own at each level (figures of both already measured). */
export function parallelVsLlama(figures: FigureSet, levels: readonly number[]): FigureSet {
  const out: FigureSet = {};
  for (const level of levels) {
    if (level <= 1) continue;
    const spec: FigureSpec = { label: `daemon/llama.cpp parallel ratio, ${level} requests`, unit: "ratio" };
    const daemon =
      figures[parallelRatioId(level)] ?? missing(spec, `${parallelFigureId(level)} not measured`);
    const llama = figures[batchedRatioId(level)] ?? missing(spec, "llama-batched-bench not run");
    out[parallelVsLlamaId(level)] = ratio(spec, daemon, llama);
  }
  return out;
}
