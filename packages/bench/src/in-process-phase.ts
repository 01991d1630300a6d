import type { LlamaModel } from "node-llama-cpp";
import { BENCH_CONTEXT_SIZE, type BenchContext } from "./bench-context.js";
import { type BenchPrompts, buildBenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import { ENGINE_FIGURES, measureEngine } from "./engine-bench.js";
import { type FigureSet, figuresOrReasons } from "./figures.js";
import { openPairedEngine, type PairedEngine } from "./paired-bench.js";
import { measureThreadSweep, sweepFigureId, sweepSpec } from "./thread-sweep.js";

export function inProcessSteps(sizes: BenchSizes, candidates: readonly number[]): number {
  return 1 + 2 * (sizes.warmups + sizes.runs) + candidates.length * (sizes.warmups + sizes.sweepRuns);
}

/**
 * The engine and the thread sweep on one loaded model. The prompts are built with its tokenizer
 * here and reused for the daemon; the model stays loaded for the paired series (`paired`, whose
 * dispose frees it) unless this fails.
 */
export async function measureInProcess(
  bench: BenchContext,
  candidates: number[],
): Promise<{ figures: FigureSet; prompts: BenchPrompts; paired: PairedEngine }> {
  const { runtime, sizes, signal } = bench;
  const { plan, llama } = runtime;
  const enginePhase = bench.phase("engine", 1 + 2 * (sizes.warmups + sizes.runs));
  let model: LlamaModel | undefined;
  try {
    model = await llama.loadModel({
      modelPath: runtime.modelPath,
      gpuLayers: plan.gpuLayers,
      useMmap: plan.useMmap,
    });
    enginePhase.step("model loaded");
    const prompts = buildBenchPrompts(model, sizes);
    const common = {
      llama,
      model,
      contextSize: BENCH_CONTEXT_SIZE,
      batchSize: plan.batchSize,
      temperature: bench.temperature,
      signal,
    };
    const engine = await figuresOrReasons(ENGINE_FIGURES, signal, () =>
      measureEngine({ ...common, threads: plan.threads, sizes, prompts, step: enginePhase.step }),
    );
    enginePhase.finish();
    const sweepSpecs = Object.fromEntries(candidates.map((n) => [sweepFigureId(n), sweepSpec(n)]));
    const sweepPhase = bench.phase("threads", candidates.length * (sizes.warmups + sizes.sweepRuns));
    const sweep = await figuresOrReasons(sweepSpecs, signal, () =>
      measureThreadSweep({ ...common, candidates, sizes, prompts, step: sweepPhase.step }),
    );
    sweepPhase.finish();
    // Its context sets llama.maxThreads back to the plan's threads after the sweep.
    const loaded = model;
    const engineRuns = await openPairedEngine(
      { ...common, threads: plan.threads },
      sizes,
      prompts,
      bench.temperature,
    );
    return {
      figures: { ...engine, ...sweep },
      prompts,
      paired: {
        run: engineRuns.run,
        dispose: async () => {
          await engineRuns.dispose();
          await loaded.dispose();
        },
      },
    };
  } catch (err) {
    llama.maxThreads = plan.threads;
    await model?.dispose();
    throw err;
  }
}
