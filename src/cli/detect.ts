import type { LlamaGpuType } from "node-llama-cpp";
import { type EdgeError, isEdgeError } from "../errors.js";
import { detectCpu, detectHardware } from "../hardware/detect-hardware.js";
import type { HardwareProfile } from "../hardware/hardware-profile.js";
import { defaultPlanRequest, type PlanRequest } from "../hardware/plan-request.js";
import { planRuntime, type RuntimePlan } from "../hardware/plan-runtime.js";
import { openLlama } from "../inference/open-llama.js";
import { hostDetectionDeps } from "../runtime/host-detection.js";
import { planRequestFromConfig } from "../runtime/plan-request-from-config.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";
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

function exitCodeFor(error: EdgeError | null): number {
  if (error === null) return 0;
  if (error.code === "config_invalid") return 2;
  if (error.code === "model_does_not_fit") return 3;
  return 1;
}

/** Detects the hardware, plans the runtime for it and prints both. Resolves with the exit code. */
export async function runDetect(options: RunDetectOptions): Promise<number> {
  const err = options.err ?? process.stderr;
  const deps = hostDetectionDeps(options.rootDir);
  // llama.cpp's thread pool is sized before anything else runs: physical cores, never hyperthreads.
  const { physicalCores } = await detectCpu(deps);
  const llama = await openLlama({
    gpu: options.gpu ?? "auto",
    maxThreads: physicalCores,
    onLog: (level, message) => err.write(`llama.cpp ${level}: ${message}\n`),
  });
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

const usage =
  "usage: tinyllama-edge detect [--json] [--config PATH] [--runtime.<key> <value> ...]\n" +
  "Shows the hardware profile and the runtime plan the daemon would use, with the reason for each choice.\n";

/** `tinyllama-edge detect [--json]`: shows what the device offers and how the model would run on it. */
export const detect: Command = async (ctx) => {
  if (ctx.argv.includes("--help") || ctx.argv.includes("-h")) {
    process.stdout.write(usage);
    return 0;
  }
  const json = ctx.argv.includes("--json");
  const loaded = loadCommandConfig(
    ctx.argv.filter((arg) => arg !== "--json"),
    ctx.env,
  );
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  return runDetect({
    json,
    out: process.stdout,
    planRequest: planRequestFromConfig(config.runtime),
    gpu: config.runtime.gpu === "off" ? false : config.runtime.gpu,
  });
};
