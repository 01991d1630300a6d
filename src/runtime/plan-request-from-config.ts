import type { RuntimeConfig } from "../config/app-config.js";
import type { CustomModelFacts, PlanRequest } from "../hardware/plan-request.js";
import type { ModelHeaderFacts } from "../model/gguf-check.js";

/** Quantization names in any case: `q4_k_m` is Q4_K_M, `AUTO` is auto. */
export function quantizationOf(configured: string): string {
  const trimmed = configured.trim();
  return trimmed.toLowerCase() === "auto" ? "auto" : trimmed.toUpperCase();
}

/** The configuration's runtime.* keys as the planner's request ("auto" lets the plan decide). */
export function planRequestFromConfig(runtime: RuntimeConfig, customModel?: CustomModelFacts): PlanRequest {
  return {
    quantization: quantizationOf(runtime.quantization),
    threads: runtime.threads,
    gpuLayers: runtime.gpu === "off" ? 0 : runtime.gpuLayers,
    contextSize: runtime.contextSize,
    parallelSequences: runtime.parallelSequences,
    batchSize: runtime.batchSize,
    useMmap: runtime.useMmap,
    memoryReserveMiB: runtime.memoryReserveMiB,
    ...(customModel ? { customModel } : {}),
  };
}

/** What the planner needs to know about a GGUF given by path, from its header. */
export function customModelFacts(path: string, header: ModelHeaderFacts): CustomModelFacts {
  return {
    path,
    fileSizeBytes: header.fileBytes,
    layers: header.layers,
    embeddingLength: header.embedding,
    heads: header.heads,
    kvHeads: header.kvHeads,
    headSize: Math.max(1, Math.round(header.embedding / header.heads)),
    vocabSize: header.vocabSize,
    trainedContext: header.contextLength,
    ...(header.quantization ? { quantization: header.quantization } : {}),
  };
}
