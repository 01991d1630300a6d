import { basename } from "node:path";
import { getModuleVersion } from "node-llama-cpp";
import type { GenerationCeiling } from "../hardware/generation-ceiling.js";
import type { RuntimePlan } from "../hardware/plan-runtime.js";
import { binaryOf } from "../inference/open-llama.js";
import type { ThreadTuning } from "../inference/thread-tuner.js";
import { packageVersion } from "../version.js";
import type { PreparedRuntime } from "./prepare-runtime.js";

export interface InfoPayloadInput {
  nodeId: string;
  runtime: PreparedRuntime;
  threadTuning: ThreadTuning | null;
  /** The memory-bandwidth bound on generation; null where bandwidth could not be measured. */
  generationCeiling: GenerationCeiling | null;
  maxQueue: number;
}

/** The plan as it runs: a measured thread count replaces the rule's, and says why. */
export function effectivePlan(plan: RuntimePlan, tuning: ThreadTuning | null): RuntimePlan {
  if (!tuning) return plan;
  const trials = tuning.trials.map((t) => `${t.threads} threads ${t.tokensPerSecond} tokens/s`).join(", ");
  return {
    ...plan,
    threads: tuning.threads,
    reasons: {
      ...plan.reasons,
      threads: `${tuning.threads}: the fastest generation measured on this device (${trials}; ${tuning.source}); the rule gave ${plan.threads} (${plan.reasons.threads})`,
    },
  };
}

/** The retained info topic: what runs here, on what, with which plan and why, and what it can do. */
export async function buildInfoPayload(input: InfoPayloadInput): Promise<Record<string, unknown>> {
  const { nodeId, runtime, threadTuning, generationCeiling, maxQueue } = input;
  const { hardware, plan, header, llama } = runtime;
  return {
    version: packageVersion(),
    node: nodeId,
    engine: {
      node_llama_cpp: await getModuleVersion(),
      llama_cpp: llama.llamaCppRelease.release,
      gpu: llama.gpu,
      // "native": the build compiled here by `tinyllama-edge build`; "prebuilt": node-llama-cpp's.
      binary: binaryOf(llama),
    },
    hardware: {
      board: hardware.board,
      arch: hardware.arch,
      cpu: hardware.cpu,
      memory: hardware.memory,
      gpu: hardware.gpu,
    },
    model: {
      file: basename(runtime.modelPath),
      source: runtime.modelSource,
      name: header.name,
      architecture: header.architecture,
      size_bytes: header.fileBytes,
    },
    plan: effectivePlan(plan, threadTuning),
    thread_tuning: threadTuning,
    generation_ceiling: generationCeiling,
    capabilities: {
      stream: true,
      json_schema: true,
      cancel: true,
      conversations: true,
      max_queue: maxQueue,
      max_parallel: plan.parallelSequences,
      context_size: plan.contextSize,
    },
  };
}
