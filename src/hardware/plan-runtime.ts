/**
 * Pure decision: (hardware profile, the user's wishes, model catalog) → how to run the model,
 * with a human-readable reason for every choice. Overrides are honoured; one that cannot work is
 * reported here (warning or EdgeError) rather than discovered by a crash at load time.
 */

import { type ModelCatalog, type QuantizationName, tinyLlamaCatalog } from "../model/catalog.js";
import type { HardwareProfile } from "./hardware-profile.js";
import {
  deviceWarnings,
  explainBatch,
  explainContext,
  explainGpuLayers,
  explainMemory,
  explainMmap,
  explainParallel,
  gpuLayerWarnings,
} from "./plan-reasons.js";
import { type PlanRequest, validatePlanRequest } from "./plan-request.js";
import { chooseModel, resolveGpu, resolveMemoryBudget, type SearchState } from "./plan-search.js";
import { planThreads } from "./plan-threads.js";
import { platformRefusal } from "./platform-support.js";

export type PlanChoice =
  | "quantization"
  | "threads"
  | "gpuLayers"
  | "contextSize"
  | "parallelSequences"
  | "batchSize"
  | "useMmap"
  | "memory";

export interface RuntimePlan {
  quantization: QuantizationName | "custom";
  /** File name in the model directory (catalog), or the user's path (custom model). */
  modelFile: string;
  /** Where to download it from; null for a custom model. */
  modelUri: string | null;
  modelSizeBytes: number;
  threads: number;
  gpuLayers: "max" | number;
  /** Tokens per sequence. */
  contextSize: number;
  parallelSequences: number;
  batchSize: number;
  useMmap: boolean;
  /** RAM the model, its contexts and the runtime are expected to take. */
  estimatedMemoryBytes: number;
  /** VRAM for the offloaded part (0 on the CPU). */
  estimatedVramBytes: number;
  /** Available RAM minus the reserve: what the plan had to fit in. */
  memoryBudgetBytes: number;
  warnings: string[];
  reasons: Record<PlanChoice, string>;
}

export function planRuntime(
  profile: HardwareProfile,
  request: PlanRequest,
  catalog: ModelCatalog = tinyLlamaCatalog,
): RuntimePlan {
  validatePlanRequest(request, catalog);
  const refusal = platformRefusal(profile);
  if (refusal) throw refusal;
  const memory = resolveMemoryBudget(profile, request);
  const state: SearchState = { profile, request, gpu: resolveGpu(profile) };
  const threads = planThreads(profile.cpu, request.threads);
  const model = chooseModel(state, catalog, memory);
  const { trial } = model;
  const gpuLayers = explainGpuLayers(state, trial);
  const context = explainContext(state, trial);
  const parallel = explainParallel(state, trial);
  const mmap = explainMmap(state, trial);

  return {
    quantization: trial.model.quantization,
    modelFile: trial.model.fileName,
    modelUri: trial.model.uri,
    modelSizeBytes: trial.model.sizeBytes,
    threads: threads.threads,
    gpuLayers: gpuLayers.value,
    contextSize: trial.context.contextSize,
    parallelSequences: trial.context.sequences,
    batchSize: trial.context.batchSize,
    useMmap: trial.useMmap,
    estimatedMemoryBytes: trial.placement.ramBytes,
    estimatedVramBytes: trial.placement.vramBytes,
    memoryBudgetBytes: memory.budgetBytes,
    warnings: [
      ...deviceWarnings(profile),
      ...model.warnings,
      ...threads.warnings,
      ...gpuLayerWarnings(state, trial),
      ...context.warnings,
      ...parallel.warnings,
      ...mmap.warnings,
    ],
    reasons: {
      quantization: model.reason,
      threads: threads.reason,
      gpuLayers: gpuLayers.reason,
      contextSize: context.reason,
      parallelSequences: parallel.reason,
      batchSize: explainBatch(state, trial),
      useMmap: mmap.reason,
      memory: explainMemory(memory, trial),
    },
  };
}
