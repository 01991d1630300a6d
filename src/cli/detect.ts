import type { LlamaGpuType } from "node-llama-cpp";
import { type EdgeError, isEdgeError } from "../errors.js";
import { type DetectHardwareDeps, detectCpu, detectHardware } from "../hardware/detect-hardware.js";
import {
  describeCeiling,
  type GenerationCeiling,
  generationCeiling,
} from "../hardware/generation-ceiling.js";
import type { HardwareProfile } from "../hardware/hardware-profile.js";
import { bandwidthKey, memoryBandwidth } from "../hardware/memory-bandwidth.js";
import { defaultPlanRequest, type PlanRequest } from "../hardware/plan-request.js";
import { planRuntime, type RuntimePlan } from "../hardware/plan-runtime.js";
import { recordedBoardDeps } from "../hardware/recorded-board.js";
import { openLlama } from "../inference/open-llama.js";
import { createLogger } from "../logging/logger.js";
import { hostDetectionDeps } from "../runtime/host-detection.js";
import { planRequestFromConfig } from "../runtime/plan-request-from-config.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";
import { formatHardwareReport, formatPlanReport } from "./detect-report.js";
import { exitCodeOf } from "./exit-codes.js";
import { CONFIG_FLAGS_HELP, readCommandLine } from "./own-flags.js";

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
  /** A recorded board to plan for instead of this machine. */
  board?: DetectHardwareDeps;
  /** Where the measured memory bandwidth is cached; without it (or with a recorded board) none is measured. */
  stateDir?: string;
}

export interface DetectResult {
  hardware: HardwareProfile;
  plan: RuntimePlan | null;
  /** The memory-bandwidth bound on generation for the planned model (this machine only). */
  generationCeiling?: GenerationCeiling | null;
  error: { code: EdgeError["code"]; message: string } | null;
}

/** The bandwidth bound for the planned model file, with the plan's threads reading; null when it cannot be measured. */
async function planCeiling(
  hardware: HardwareProfile,
  plan: RuntimePlan,
  stateDir: string,
  err: TextSink,
): Promise<GenerationCeiling | null> {
  try {
    const bandwidth = await memoryBandwidth({
      // stdout carries the report (or its JSON): a warning goes to stderr.
      logger: createLogger({
        level: "warn",
        pretty: false,
        destination: { write: (line: string) => err.write(line) },
      }),
      stateDir,
      key: bandwidthKey(hardware, plan.threads),
      threads: plan.threads,
      memoryBytes: hardware.memory.totalBytes,
    });
    return generationCeiling(bandwidth, plan.modelSizeBytes);
  } catch (error) {
    err.write(`memory bandwidth could not be measured: ${(error as Error).message}\n`);
    return null;
  }
}

/** Detects the hardware, plans the runtime for it and prints both. Resolves with the exit code. */
export async function runDetect(options: RunDetectOptions): Promise<number> {
  const err = options.err ?? process.stderr;
  let hardware: HardwareProfile;
  if (options.board) hardware = await detectHardware(options.board);
  else {
    const deps = hostDetectionDeps();
    // llama.cpp's thread pool is sized before anything else runs: physical cores, never hyperthreads.
    const { physicalCores } = await detectCpu(deps);
    const llama = await openLlama({
      gpu: options.gpu ?? "auto",
      maxThreads: physicalCores,
      onLog: (level, message) => err.write(`llama.cpp ${level}: ${message}\n`),
    });
    try {
      hardware = await detectHardware({ ...deps, llama });
    } finally {
      await llama?.dispose();
    }
  }

  const result: DetectResult = { hardware, plan: null, error: null };
  let failure: EdgeError | null = null;
  try {
    result.plan = planRuntime(hardware, options.planRequest ?? defaultPlanRequest);
    if (options.stateDir && !options.board) {
      result.generationCeiling = await planCeiling(hardware, result.plan, options.stateDir, err);
    }
  } catch (error) {
    if (!isEdgeError(error)) throw error;
    failure = error;
    result.error = { code: error.code, message: error.message };
  }

  if (options.json) {
    options.out.write(
      `${JSON.stringify({ hardware: result.hardware, plan: result.plan, ...(result.generationCeiling ? { generation_ceiling: result.generationCeiling } : {}), ...(result.error ? { error: result.error } : {}) }, null, 2)}\n`,
    );
  } else {
    const sections = [formatHardwareReport(hardware)];
    if (result.plan) sections.push(formatPlanReport(result.plan));
    if (result.generationCeiling) {
      sections.push(
        `Generation ceiling (memory bandwidth / bytes per token)\n  ${describeCeiling(result.generationCeiling)}`,
      );
    }
    if (result.error) sections.push(`No plan (${result.error.code})\n  ${result.error.message}`);
    options.out.write(`${sections.join("\n\n")}\n`);
  }
  return failure === null ? 0 : exitCodeOf(failure);
}

const USAGE = `usage: tinyllama-edge detect [options]

Shows the hardware profile and the runtime plan the daemon would use, with the reason for each choice.

  --json              the profile and the plan as JSON (for scripts)
  --board DIR         plan for the board recorded in DIR instead of this machine
${CONFIG_FLAGS_HELP}`;

const OPTIONS = {
  json: { type: "boolean" },
  board: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** `tinyllama-edge detect [--json]`: shows what the device offers and how the model would run on it. */
export const detect: Command = async (ctx) => {
  const parsed = readCommandLine("detect", ctx.argv, OPTIONS, USAGE);
  if (!parsed.ok) return parsed.exitCode;
  const loaded = loadCommandConfig(parsed.configArgs, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  let board: DetectHardwareDeps | undefined;
  try {
    if (parsed.values.board !== undefined) board = await recordedBoardDeps(parsed.values.board);
  } catch (err) {
    process.stderr.write(`tinyllama-edge detect: ${(err as Error).message}\n`);
    return exitCodeOf(err);
  }
  return runDetect({
    json: parsed.values.json ?? false,
    out: process.stdout,
    planRequest: planRequestFromConfig(config.runtime),
    stateDir: config.state.dir,
    gpu: config.runtime.gpu === "off" ? false : config.runtime.gpu,
    ...(board ? { board } : {}),
  });
};
