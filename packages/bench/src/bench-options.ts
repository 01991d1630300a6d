import { splitOwnFlags } from "tinyllama-edge/cli/own-flags.js";
import type { SyntheticPreset, SyntheticQuantization } from "./model/synthetic-models.js";

/** The synthetic models the bench can generate, by the name given to --synthetic. */
export const SYNTHETIC_CHOICES: Readonly<
  Record<string, { preset: SyntheticPreset; quantization: SyntheticQuantization }>
> = {
  "tinyllama-q4_0": { preset: "tinyllama", quantization: "q4_0" },
  "tinyllama-q8_0": { preset: "tinyllama", quantization: "q8_0" },
  tiny: { preset: "tiny", quantization: "f32" },
};

export interface BenchOptions {
  /** A --synthetic name, or null for the configured model. */
  synthetic: string | null;
  /** Where synthetic models are generated; null: the default cache. */
  cacheDir: string | null;
  /** Where every figure is written as JSON; null: only the table. */
  jsonPath: string | null;
  /** Undefined: the default for the mode. */
  runs: number | undefined;
  quick: boolean;
  /** Undefined: the plan's threads. */
  threads: number | undefined;
  /** llama.cpp's llama-bench binary for the anchor; null: skipped. */
  llamaBench: string | null;
}

export const BENCH_USAGE = `usage: tinyllama-edge bench [options] [--<config key> <value> ...]

Measures the in-process engine and the built daemon over MQTT on the same model and threads,
and prints every figure (median of several runs after a warm-up) next to its goal.

  --synthetic NAME    generate and use a synthetic model: ${Object.keys(SYNTHETIC_CHOICES).join(", ")}
                      (default: the configured model, e.g. --model.path FILE)
  --cache-dir DIR     where synthetic models are kept (default: .cache/models in the package)
  --json FILE         also write every figure, the machine and the goals as JSON
  --runs N            measured runs per series (default 5; 2 with --quick)
  --quick             fewer and shorter runs (tests, smoke checks)
  --threads N         inference threads (default: the plan's)
  --llama-bench PATH  also run llama.cpp's llama-bench on the same file and threads as an anchor
Needs the built daemon (npm run bench builds it). Stops with Ctrl-C.`;

const OPTIONS = {
  synthetic: { type: "string" },
  "cache-dir": { type: "string" },
  json: { type: "string" },
  runs: { type: "string" },
  quick: { type: "boolean" },
  threads: { type: "string" },
  "llama-bench": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export type ParsedBenchArgs =
  | { kind: "run"; options: BenchOptions; configArgs: string[] }
  | { kind: "help" }
  | { kind: "invalid"; reason: string };

function positiveInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new Error(`--${name} must be a whole number >= 1`);
  return number;
}

/** The bench's own flags; everything else is configuration (`--model.path`, `--runtime.gpu` …). */
export function parseBenchArgs(argv: string[]): ParsedBenchArgs {
  try {
    const { values, configArgs, positionals } = splitOwnFlags(argv, OPTIONS);
    if (values.help) return { kind: "help" };
    if (positionals.length > 0) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
    const synthetic = values.synthetic ?? null;
    if (synthetic !== null && !(synthetic in SYNTHETIC_CHOICES)) {
      throw new Error(`--synthetic must be one of ${Object.keys(SYNTHETIC_CHOICES).join(", ")}`);
    }
    return {
      kind: "run",
      configArgs,
      options: {
        synthetic,
        cacheDir: values["cache-dir"] ?? null,
        jsonPath: values.json ?? null,
        runs: positiveInteger("runs", values.runs),
        quick: values.quick ?? false,
        threads: positiveInteger("threads", values.threads),
        llamaBench: values["llama-bench"] ?? null,
      },
    };
  } catch (err) {
    return { kind: "invalid", reason: (err as Error).message };
  }
}
