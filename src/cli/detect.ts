import os from "node:os";
import { getLlama, type Llama, type LlamaGpuType, LlamaLogLevel } from "node-llama-cpp";
import si from "systeminformation";
import { type EdgeError, isEdgeError } from "../errors.js";
import { type DetectHardwareDeps, detectCpu, detectHardware } from "../hardware/detect-hardware.js";
import type { HardwareProfile } from "../hardware/hardware-profile.js";
import { defaultPlanRequest, type PlanRequest } from "../hardware/plan-request.js";
import { planRuntime, type RuntimePlan } from "../hardware/plan-runtime.js";
import { createRootedFileReader } from "../hardware/rooted-file-reader.js";
import { createCommandRunner } from "../hardware/run-command.js";
import type { Command } from "./command.js";
import { formatHardwareReport, formatPlanReport } from "./detect-report.js";

export interface TextSink {
  write(text: string): unknown;
}

export interface RunDetectOptions {
  /** What the configuration asks for; all "auto" by default. */
  planRequest?: PlanRequest;
  json: boolean;
  out: TextSink;
  /** llama.cpp warnings and fallbacks; stderr by default so `--json` output stays clean. */
  err?: TextSink;
  /** GPU backend to try; "auto" lets node-llama-cpp pick. */
  gpu?: "auto" | LlamaGpuType;
  /** Where /proc and /sys are read from. */
  rootDir?: string;
}

export interface DetectResult {
  hardware: HardwareProfile;
  plan: RuntimePlan | null;
  error: { code: EdgeError["code"]; message: string } | null;
}

/** Loads node-llama-cpp's prebuilt binding; when the GPU one fails, the CPU one; when both fail, none. */
async function openLlama(
  gpu: "auto" | LlamaGpuType,
  maxThreads: number,
  err: TextSink,
): Promise<Llama | null> {
  const options = {
    build: "never" as const,
    maxThreads,
    logLevel: LlamaLogLevel.warn,
    logger: (level: LlamaLogLevel, message: string) =>
      err.write(`llama.cpp ${level}: ${message.trimEnd()}\n`),
  };
  try {
    return await getLlama({ ...options, gpu });
  } catch (error) {
    if (gpu === false) {
      err.write(`node-llama-cpp could not be loaded: ${(error as Error).message}\n`);
      return null;
    }
    err.write(`GPU bindings failed to load (${(error as Error).message}); detecting without a GPU\n`);
  }
  try {
    return await getLlama({ ...options, gpu: false });
  } catch (error) {
    err.write(`node-llama-cpp could not be loaded: ${(error as Error).message}\n`);
    return null;
  }
}

function exitCodeFor(error: EdgeError | null): number {
  if (error === null) return 0;
  if (error.code === "config_invalid") return 2;
  if (error.code === "model_does_not_fit") return 3;
  return 1;
}

/** Detects the hardware, plans the runtime for it and prints both. Resolves with the exit code. */
export async function runDetect(options: RunDetectOptions): Promise<number> {
  const err = options.err ?? process.stderr;
  const deps: DetectHardwareDeps = {
    files: createRootedFileReader(options.rootDir ?? "/"),
    runtime: { arch: process.arch, machine: os.machine(), platform: process.platform },
    system: si,
    runCommand: createCommandRunner(),
  };
  // llama.cpp's thread pool is sized before anything else runs: physical cores, never hyperthreads.
  const { physicalCores } = await detectCpu(deps);
  const llama = await openLlama(options.gpu ?? "auto", physicalCores, err);
  let hardware: HardwareProfile;
  try {
    hardware = await detectHardware({ ...deps, llama });
  } finally {
    await llama?.dispose();
  }

  const result: DetectResult = { hardware, plan: null, error: null };
  let failure: EdgeError | null = null;
  try {
    result.plan = planRuntime(hardware, options.planRequest ?? defaultPlanRequest);
  } catch (error) {
    if (!isEdgeError(error)) throw error;
    failure = error;
    result.error = { code: error.code, message: error.message };
  }

  if (options.json) {
    options.out.write(
      `${JSON.stringify({ hardware: result.hardware, plan: result.plan, ...(result.error ? { error: result.error } : {}) }, null, 2)}\n`,
    );
  } else {
    const sections = [formatHardwareReport(hardware)];
    if (result.plan) sections.push(formatPlanReport(result.plan));
    if (result.error) sections.push(`No plan (${result.error.code})\n  ${result.error.message}`);
    options.out.write(`${sections.join("\n\n")}\n`);
  }
  return exitCodeFor(failure);
}

const usage = "usage: tinyllama-edge detect [--json]\n";

/** `tinyllama-edge detect [--json]`: shows what the device offers and how the model would run on it. */
export const detect: Command = async (ctx) => {
  if (ctx.argv.includes("--help") || ctx.argv.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  // Configuration flags are applied by the config-aware caller of runDetect.
  return runDetect({ json: ctx.argv.includes("--json"), out: process.stdout });
};
