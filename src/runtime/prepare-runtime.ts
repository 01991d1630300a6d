import type { Llama } from "node-llama-cpp";
import { LlamaLogLevel } from "node-llama-cpp";
import type { AppConfig } from "../config/app-config.js";
import { EdgeError } from "../errors.js";
import { type DetectHardwareDeps, detectCpu, detectHardware } from "../hardware/detect-hardware.js";
import type { HardwareProfile } from "../hardware/hardware-profile.js";
import type { RuntimePlan } from "../hardware/plan-runtime.js";
import { platformRefusal } from "../hardware/platform-support.js";
import { openLlama } from "../inference/open-llama.js";
import type { Logger } from "../logging/logger.js";
import { checkGgufHeader, type ModelHeaderFacts } from "../model/gguf-check.js";
import { type ModelFileSource, resolveModelFile } from "../model/model-store.js";
import { createProgressReporter } from "../util/progress.js";
import { probeGpuOffload } from "./gpu-probe.js";
import { hostDetectionDeps } from "./host-detection.js";
import { NATIVE_CMAKE_OPTIONS } from "./native-build.js";
import { planForDevice } from "./plan-for-device.js";

export interface PreparedRuntime {
  llama: Llama;
  hardware: HardwareProfile;
  plan: RuntimePlan;
  modelPath: string;
  modelSource: ModelFileSource;
  header: ModelHeaderFacts;
  /** llama.cpp's recent error lines, to explain a failed load. */
  nativeErrors: () => string[];
}

export interface PrepareRuntimeDeps {
  config: AppConfig;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  interactive: boolean;
  signal: AbortSignal;
  /** Detection sources; this machine by default (tests replay recorded boards, node-llama-cpp's view included). */
  detection?: DetectHardwareDeps;
}

const NATIVE_ERRORS_KEPT = 20;

/**
 * Everything between "the config is valid" and "the model can be loaded": llama.cpp's binding sized
 * to the physical cores, the hardware profile, the plan for it, and the model file (downloaded when
 * missing). A model that cannot fit is refused here, before anything large is read.
 */
export async function prepareRuntime(deps: PrepareRuntimeDeps): Promise<PreparedRuntime> {
  const prepared = await prepareWithGpu(deps);
  if (prepared.llama.gpu === false || prepared.plan.gpuLayers === 0) return prepared;
  const probe = await probeGpuOffload({
    modelPath: prepared.modelPath,
    gpu: prepared.llama.gpu,
    gpuLayers: prepared.plan.gpuLayers,
    timeoutMs: GPU_PROBE_TIMEOUT_MS,
    signal: deps.signal,
  });
  if (probe.ok) return prepared;
  deps.logger.warn(
    { gpu: prepared.llama.gpu },
    `the ${prepared.llama.gpu} build of llama.cpp fails on this GPU (${probe.reason}): serving on the CPU. ` +
      'Fix: a GPU driver recent enough for node-llama-cpp\'s GPU build; runtime.gpu "off" skips this check',
  );
  await prepared.llama.dispose();
  const config = { ...deps.config, runtime: { ...deps.config.runtime, gpu: "off" as const } };
  return prepareWithGpu({ ...deps, config });
}

/** A GPU decode that has not ended by then (a hung driver) counts as failed. */
const GPU_PROBE_TIMEOUT_MS = 120_000;

async function prepareWithGpu(deps: PrepareRuntimeDeps): Promise<PreparedRuntime> {
  const { config, logger } = deps;
  const nativeLogger = logger.child({ component: "llama.cpp" });
  const nativeErrors: string[] = [];
  const onLog = (level: LlamaLogLevel, message: string) => {
    if (!message) return;
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) {
      nativeErrors.push(message);
      if (nativeErrors.length > NATIVE_ERRORS_KEPT) nativeErrors.shift();
      nativeLogger.error(message);
    } else if (level === LlamaLogLevel.warn) nativeLogger.warn(message);
    else nativeLogger.debug(message);
  };

  const detection: DetectHardwareDeps = deps.detection ?? hostDetectionDeps();
  const cpu = await detectCpu(detection);
  const maxThreads = config.runtime.threads === "auto" ? cpu.physicalCores : config.runtime.threads;
  const llama = await openLlama({
    gpu: config.runtime.gpu === "off" ? false : config.runtime.gpu,
    maxThreads: Math.max(1, maxThreads),
    onLog,
    nativeBuild: config.runtime.nativeBuild === "off" ? null : NATIVE_CMAKE_OPTIONS,
  });
  if (!llama) {
    // 32-bit ARM gets its own one-line refusal with the fix; anything else the generic one.
    throw (
      platformRefusal(await detectHardware(detection)) ??
      new EdgeError("model_unavailable", "node-llama-cpp has no usable binary for this machine")
    );
  }
  try {
    const { hardware, plan, ...planned } = await planForDevice(config, { llama, ...detection }, deps.env);
    for (const warning of plan.warnings) logger.warn({ plan: true }, warning);
    logger.info({ plan: summarizePlan(plan), modelFile: planned.modelFile.path }, "runtime plan");
    // The pool was sized to the physical cores; the plan may use fewer.
    llama.maxThreads = plan.threads;

    const resolved = await resolveModelFile({
      model: config.model,
      defaultUri: plan.modelUri ?? "",
      logger: logger.child({ component: "model-store" }),
      progress: createProgressReporter({
        interactive: deps.interactive,
        logger: logger.child({ component: "download" }),
      }),
      signal: deps.signal,
      env: deps.env,
    });
    const header = planned.header ?? (await checkGgufHeader(resolved.path));
    return {
      llama,
      hardware,
      plan,
      modelPath: resolved.path,
      modelSource: resolved.source,
      header,
      nativeErrors: () => [...nativeErrors],
    };
  } catch (err) {
    await llama.dispose();
    throw err;
  }
}

function summarizePlan(plan: RuntimePlan): Record<string, unknown> {
  const { reasons: _reasons, warnings: _warnings, ...figures } = plan;
  return figures;
}
