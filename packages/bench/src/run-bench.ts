import { access, constants, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { AppConfig } from "tinyllama-edge/config/app-config.js";
import { PACKAGE_ROOT } from "tinyllama-edge/config/config-path.js";
import { measureReadBandwidth } from "tinyllama-edge/hardware/memory-bandwidth.js";
import type { Logger } from "tinyllama-edge/logging/logger.js";
import { prepareRuntime } from "tinyllama-edge/runtime/prepare-runtime.js";
import { packageVersion } from "tinyllama-edge/version.js";
import { parallelVsLlama, runBatchedBench } from "./batched-bench-anchor.js";
import { BENCH_CONTEXT_SIZE, type BenchContext } from "./bench-context.js";
import { type BenchOptions, SYNTHETIC_CHOICES } from "./bench-options.js";
import { createBenchProgress } from "./bench-progress.js";
import type { BenchReport } from "./bench-report.js";
import { benchSizes } from "./bench-sizes.js";
import { deriveFigures, orderFigures } from "./derived-figures.js";
import { judgeGoals } from "./goals.js";
import { inProcessSteps, measureInProcess } from "./in-process-phase.js";
import { runLlamaBench } from "./llama-bench-anchor.js";
import { machineInfo, nodeLlamaCppVersion } from "./machine-info.js";
import { ensureSyntheticModel } from "./model/synthetic-models.js";
import { measureOverMqtt, mqttSteps } from "./mqtt-phases.js";
import { PARALLEL_PROMPT_TOKENS } from "./parallel-bench.js";
import { sweepCandidates } from "./thread-sweep.js";

export interface RunBenchDeps {
  options: BenchOptions;
  config: AppConfig;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  interactive: boolean;
  signal: AbortSignal;
}

/** `.cache/models` in the package when it is writable (a checkout), else under state.dir (an install). */
export async function defaultModelCacheDir(stateDir: string): Promise<string> {
  const packageCache = join(PACKAGE_ROOT, ".cache", "models");
  try {
    await mkdir(packageCache, { recursive: true });
    await access(packageCache, constants.W_OK);
    return packageCache;
  } catch {
    return join(stateDir, "models");
  }
}

/** The configuration the engine is planned with and the daemon started with: one sequence, 2048. */
export function benchConfig(
  config: AppConfig,
  modelPath: string | null,
  threads: number | undefined,
): AppConfig {
  return {
    ...config,
    model: modelPath === null ? config.model : { ...config.model, path: modelPath },
    runtime: {
      ...config.runtime,
      threads: threads ?? config.runtime.threads,
      contextSize: BENCH_CONTEXT_SIZE,
      parallelSequences: 1,
      autotune: false,
    },
  };
}

/** The synthetic model's path (written on first use), or null for the configured model. */
async function syntheticModelPath(deps: RunBenchDeps): Promise<string | null> {
  const { synthetic, cacheDir } = deps.options;
  if (synthetic === null) return null;
  const choice = SYNTHETIC_CHOICES[synthetic];
  if (!choice) throw new Error(`unknown synthetic model ${synthetic}`);
  const dir = cacheDir ?? (await defaultModelCacheDir(deps.config.state.dir));
  deps.logger.info({ synthetic, dir }, "synthetic model (generated once, then reused)");
  return ensureSyntheticModel(dir, choice.preset, choice.quantization, { signal: deps.signal });
}

/**
 * The whole benchmark: the engine in process, the thread sweep, the built daemon over MQTT (one
 * sequence, then several), its memory, and the optional llama-bench anchor. Figures that cannot be
 * taken are n/a with the reason; an abort (Ctrl-C) stops whatever was started and rejects.
 */
export async function runBench(deps: RunBenchDeps): Promise<BenchReport> {
  const started = Date.now();
  const { options, signal } = deps;
  const sizes = benchSizes({ runs: options.runs, quick: options.quick });
  const config = benchConfig(deps.config, await syntheticModelPath(deps), options.threads);
  const runtime = await prepareRuntime({
    config,
    logger: deps.logger.child({ component: "runtime" }, { level: "warn" }),
    env: deps.env,
    interactive: deps.interactive,
    signal,
  });
  const { plan, hardware, llama } = runtime;
  // Read before the binding is freed: the daemon needs the memory more than this process.
  const llamaFacts = {
    version: await nodeLlamaCppVersion(),
    gpu: llama.gpu === false ? "none" : llama.gpu,
    llamaCppRelease: llama.llamaCppRelease.release,
  };
  const candidates = sweepCandidates(plan.threads, hardware.cpu.physicalCores);
  const mqtt = mqttSteps(sizes);
  const progress = createBenchProgress({
    interactive: deps.interactive,
    logger: deps.logger,
    total: inProcessSteps(sizes, candidates) + mqtt.single + mqtt.restart + mqtt.parallel + mqtt.binary + 1,
  });
  const bench: BenchContext = {
    runtime,
    config,
    sizes,
    temperature: config.requests.defaultTemperature,
    signal,
    phase: progress.phase,
  };
  try {
    const fileBytes = (await stat(runtime.modelPath)).size;
    // Measured fresh (not the daemon's cache): the bench reports what the machine does now.
    const bandwidth = await measureReadBandwidth({ threads: plan.threads }).catch(() => null);
    const inProcess = await measureInProcess(bench, candidates);
    // The engine stays loaded through the daemon's single-sequence session, for the paired series.
    const overMqtt = await measureOverMqtt(bench, inProcess.prompts, inProcess.paired);
    await llama.dispose();
    const anchorPhase = progress.phase("llama-bench", 1);
    const anchor = await runLlamaBench({
      binary: options.llamaBench,
      modelPath: runtime.modelPath,
      threads: plan.threads,
      promptTokens: sizes.promptTokens,
      generateTokens: sizes.generateTokens,
      runs: sizes.runs,
      useMmap: plan.useMmap,
      gpuLayers: plan.gpuLayers,
      signal,
    });
    const batched = await runBatchedBench({
      llamaBench: options.llamaBench,
      modelPath: runtime.modelPath,
      threads: plan.threads,
      contextSize: BENCH_CONTEXT_SIZE,
      batchSize: plan.batchSize,
      promptTokens: PARALLEL_PROMPT_TOKENS,
      generateTokens: sizes.parallelTokens,
      levels: sizes.parallelLevels,
      gpuLayers: plan.gpuLayers,
      signal,
    });
    anchorPhase.step(options.llamaBench === null ? "skipped" : "done");

    const anchors = { ...anchor, ...batched };
    const daemonAndEngine = { ...inProcess.figures, ...overMqtt.figures };
    const measured = {
      ...daemonAndEngine,
      ...anchors,
      ...parallelVsLlama({ ...daemonAndEngine, ...anchors }, sizes.parallelLevels),
    };
    const figures = orderFigures({ ...measured, ...deriveFigures(measured, fileBytes, bandwidth) });
    return {
      tool: "tinyllama-edge bench",
      version: packageVersion(),
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      options: {
        quick: sizes.quick,
        runs: sizes.runs,
        synthetic: options.synthetic,
        threads: plan.threads,
        llamaBench: options.llamaBench,
      },
      sizes,
      machine: machineInfo(hardware),
      nodeLlamaCpp: llamaFacts,
      model: { path: runtime.modelPath, fileBytes, synthetic: options.synthetic },
      threads: plan.threads,
      plan: {
        threads: plan.threads,
        contextSize: plan.contextSize,
        batchSize: plan.batchSize,
        useMmap: plan.useMmap,
        gpuLayers: plan.gpuLayers,
        reasons: plan.reasons,
        warnings: plan.warnings,
      },
      broker: overMqtt.broker,
      figures,
      goals: judgeGoals(figures),
    };
  } finally {
    progress.stop();
    if (!llama.disposed) await llama.dispose();
  }
}
