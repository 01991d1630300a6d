import { parseArgs } from "node:util";
import type { Command } from "tinyllama-edge/cli/command.js";
import type { GgufWriteProgress } from "../model/gguf-writer.js";
import {
  SYNTHETIC_PRESET_NAMES,
  SYNTHETIC_PRESETS,
  SYNTHETIC_QUANTIZATIONS,
  type SyntheticPreset,
  type SyntheticQuantization,
  writeSyntheticModel,
} from "../model/synthetic-models.js";

const USAGE = `Usage: make-model --preset tiny|tinyllama [--quant f32|q4_0|q8_0] --out PATH [--seed N]

Writes a GGUF model with random weights, for tests and benchmarks without a download.
  --preset  tiny: under 1 MB, loads in milliseconds
            tinyllama: TinyLlama-1.1B-Chat's exact shapes (about 620 MB as q4_0, 1.17 GB as q8_0)
  --quant   type of the weight matrices (default: f32 for tiny, q4_0 for tinyllama)
  --out     file to write; replaced only once the new one is complete
  --seed    PRNG seed: the same seed writes the same bytes (default 1)
`;

interface MakeModelArgs {
  preset: SyntheticPreset;
  quantization: SyntheticQuantization;
  out: string;
  seed: number;
}

type ParsedArgs =
  | { kind: "run"; args: MakeModelArgs }
  | { kind: "help" }
  | { kind: "invalid"; reason: string };

export function parseMakeModelArgs(argv: string[]): ParsedArgs {
  let values: { preset?: string; quant?: string; out?: string; seed?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        preset: { type: "string" },
        quant: { type: "string" },
        out: { type: "string" },
        seed: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return { kind: "invalid", reason: error instanceof Error ? error.message : String(error) };
  }
  if (values.help) return { kind: "help" };
  const preset = SYNTHETIC_PRESET_NAMES.find((name) => name === values.preset);
  if (preset === undefined) return { kind: "invalid", reason: "--preset must be tiny or tinyllama" };
  const quantization =
    values.quant === undefined
      ? SYNTHETIC_PRESETS[preset].defaultQuantization
      : SYNTHETIC_QUANTIZATIONS.find((name) => name === values.quant?.toLowerCase());
  if (quantization === undefined) return { kind: "invalid", reason: "--quant must be f32, q4_0 or q8_0" };
  if (values.out === undefined || values.out === "")
    return { kind: "invalid", reason: "--out PATH is required" };
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    return { kind: "invalid", reason: "--seed must be an integer from 0 to 4294967295" };
  }
  return { kind: "run", args: { preset, quantization, out: values.out, seed } };
}

export const makeModel: Command = async ({ argv, signal }) => {
  const parsed = parseMakeModelArgs(argv);
  if (parsed.kind === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (parsed.kind === "invalid") {
    process.stderr.write(`make-model: ${parsed.reason}\n\n${USAGE}`);
    return 2;
  }
  const { preset, quantization, out, seed } = parsed.args;
  const started = performance.now();
  try {
    await writeSyntheticModel({
      preset,
      quantization,
      path: out,
      seed,
      onProgress: createProgressPrinter(`${preset} ${quantization}`),
      signal,
    });
  } catch (error) {
    if (signal.aborted) {
      process.stderr.write("make-model: interrupted, nothing written\n");
      return 130;
    }
    process.stderr.write(`make-model: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(`wrote ${out} (${preset}, ${quantization}) in ${seconds} s\n`);
  return 0;
};

/** One line per 10 % step: readable in a terminal and in a CI log alike. */
function createProgressPrinter(label: string): (progress: GgufWriteProgress) => void {
  let lastStep = -1;
  return ({ writtenBytes, totalBytes }) => {
    const step = Math.floor((writtenBytes / totalBytes) * 10);
    if (step <= lastStep) return;
    lastStep = step;
    const megabytes = (bytes: number) => (bytes / 1e6).toFixed(1);
    process.stdout.write(
      `${label}: ${step * 10}% (${megabytes(writtenBytes)} of ${megabytes(totalBytes)} MB)\n`,
    );
  };
}
