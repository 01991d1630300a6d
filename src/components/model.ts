import { basename } from "node:path";
import type { AppConfig } from "../config/app-config.js";
import type { GenerationRequest } from "../core/generation.js";
import { EdgeError } from "../errors.js";
import { type GenerationCeiling, generationCeiling } from "../hardware/generation-ceiling.js";
import { bandwidthKey, type MemoryBandwidth, memoryBandwidth } from "../hardware/memory-bandwidth.js";
import { type GenerateOptions, type GenerationOutcome, InferenceEngine } from "../inference/engine.js";
import { type ThreadTuning, tuneThreads } from "../inference/thread-tuner.js";
import type { Component } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import { type PreparedRuntime, prepareRuntime } from "../runtime/prepare-runtime.js";

export interface ModelDeps {
  config: AppConfig;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  interactive: boolean;
}

/** The hardware plan, the model file and the loaded engine, with threads measured where asked. */
export class Model implements Component {
  readonly name = "model";
  private readonly deps: ModelDeps;
  private prepared: PreparedRuntime | undefined;
  private engine: InferenceEngine | undefined;
  private loaded = false;
  private loading: Promise<void> | undefined;
  private disposed = false;
  private tuning: ThreadTuning | null = null;
  private bandwidth: MemoryBandwidth | null = null;

  constructor(deps: ModelDeps) {
    this.deps = deps;
  }

  get runtime(): PreparedRuntime {
    if (!this.prepared) throw new EdgeError("model_unavailable", "the model is not loaded");
    return this.prepared;
  }

  get threadTuning(): ThreadTuning | null {
    return this.tuning;
  }

  /**
   * The bandwidth ceiling on generation for the loaded model, with the share of it the thread
   * tuning's fastest run reached (or `measuredTokensPerSecond`, e.g. the last request's speed).
   */
  ceiling(measuredTokensPerSecond?: number | null): GenerationCeiling | null {
    if (!this.bandwidth || !this.prepared) return null;
    const tuned = this.tuning ? Math.max(...this.tuning.trials.map((trial) => trial.tokensPerSecond)) : null;
    return generationCeiling(
      this.bandwidth,
      this.prepared.header.fileBytes,
      measuredTokensPerSecond ?? tuned,
    );
  }

  /** File name of the served model; "none" until it is known. */
  get fileName(): string {
    return this.prepared ? basename(this.prepared.modelPath) : "none";
  }

  get sequences(): number {
    return this.runtime.plan.parallelSequences;
  }

  /** Inference threads in use: as measured, else as planned. */
  get threads(): number {
    return this.tuning?.threads ?? this.runtime.plan.threads;
  }

  setThreads(threads: number): void {
    this.runtime.llama.maxThreads = threads;
  }

  generate(request: GenerationRequest, options: GenerateOptions): Promise<GenerationOutcome> {
    if (!this.engine || !this.loaded) throw new EdgeError("model_unavailable", "the model is not loaded");
    return this.engine.generate(request, options);
  }

  /**
   * Starts loading (plan, file, engine, thread tuning) unless it has begun; the daemon begins it
   * before the broker is reached, so a broker that is down at boot does not hold the model up.
   */
  beginLoading(signal: AbortSignal): Promise<void> {
    this.loading ??= this.load(signal);
    return this.loading;
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.beginLoading(signal);
  }

  private async load(signal: AbortSignal): Promise<void> {
    const { config, logger } = this.deps;
    this.prepared = await prepareRuntime({
      config,
      logger,
      env: this.deps.env,
      interactive: this.deps.interactive,
      signal,
    });
    const { plan, modelPath, llama, nativeErrors } = this.prepared;
    // Before the weights are in memory: the read test's buffers then never add to the model's peak.
    this.bandwidth = await this.measureBandwidth(this.prepared);
    this.engine = new InferenceEngine({
      logger: logger.child({ component: "engine" }),
      llama,
      settings: {
        modelPath,
        threads: plan.threads,
        gpuLayers: plan.gpuLayers,
        contextSize: plan.contextSize,
        sequences: plan.parallelSequences,
        batchSize: plan.batchSize,
        useMmap: plan.useMmap,
        batching: config.runtime.batching,
        llamaInternals: config.runtime.llamaInternals,
        promptState: config.promptState.enabled
          ? {
              stateDir: config.state.dir,
              minTokens: config.promptState.minTokens,
              maxEntries: config.promptState.maxEntries,
              maxBytes: config.promptState.maxMegabytes * 1024 * 1024,
            }
          : undefined,
      },
      nativeErrors,
    });
    await this.engine.start();
    this.tuning = await this.maybeTuneThreads(this.prepared, this.engine, signal);
    await this.warmPrompts(this.engine);
    this.loaded = true;
  }

  /** Measured thread count (rules vs reality on each board); only when threads are "auto". */
  private async maybeTuneThreads(
    prepared: PreparedRuntime,
    engine: InferenceEngine,
    signal: AbortSignal,
  ): Promise<ThreadTuning | null> {
    const { config, logger } = this.deps;
    const { plan, hardware, header, llama } = prepared;
    if (config.runtime.threads !== "auto" || !config.runtime.autotune || plan.threads <= 1) return null;
    const tuning = await tuneThreads({
      logger: logger.child({ component: "thread-tuner" }),
      stateDir: config.state.dir,
      key: [
        hardware.arch,
        hardware.cpu.model,
        hardware.cpu.physicalCores,
        basename(prepared.modelPath),
        header.fileBytes,
        plan.contextSize,
      ].join("|"),
      maxThreads: plan.threads,
      setThreads: (threads) => {
        llama.maxThreads = threads;
      },
      measure: () => engine.measureGeneration(32, signal),
    });
    logger.info({ threads: tuning.threads, source: tuning.source, trials: tuning.trials }, "threads tuned");
    return tuning;
  }

  /** Memory bandwidth with as many readers as planned threads (the most that can read), cached per board. */
  private async measureBandwidth(prepared: PreparedRuntime): Promise<MemoryBandwidth | null> {
    const { config, logger } = this.deps;
    const { hardware, plan } = prepared;
    try {
      return await memoryBandwidth({
        logger: logger.child({ component: "memory-bandwidth" }),
        stateDir: config.state.dir,
        key: bandwidthKey(hardware, plan.threads),
        threads: plan.threads,
        memoryBytes: hardware.memory.totalBytes,
      });
    } catch (err) {
      // A figure for the health topic is never worth failing the start.
      logger.warn({ err }, "memory bandwidth could not be measured");
      return null;
    }
  }

  /** Saved prompt states into free sequences, then the configured system prompt: before going online. */
  private async warmPrompts(engine: InferenceEngine): Promise<void> {
    const { config, logger } = this.deps;
    if (!config.promptState.enabled) return;
    const loaded = await engine.restorePromptStates();
    const warmed = config.promptState.warmSystemPrompt
      ? await engine.warmSystemPrompt(config.requests.systemPrompt)
      : 0;
    if (loaded > 0 || warmed > 0) logger.info({ loaded, warmedTokens: warmed }, "prompt states ready");
  }

  /** Requests are drained first (serving stops before the model): disposing under a generation hangs it. */
  async stop(): Promise<void> {
    this.loaded = false;
    // A load still under way finishes (or fails) before anything is disposed under it.
    await this.loading?.catch(() => {});
    await this.engine?.stop();
    this.engine = undefined;
    if (this.prepared && !this.disposed) {
      this.disposed = true;
      await this.prepared.llama.dispose();
    }
  }
}
