/**
 * The search behind the plan: which model file, context, batch, sequence count and GPU offload
 * fit the memory budget, trying the most generous configuration of the preferred file first.
 */

import { EdgeError } from "../errors.js";
import {
  type CatalogEntry,
  findCatalogEntry,
  isQuantizationName,
  type ModelCatalog,
  type QuantizationName,
} from "../model/catalog.js";
import { cpuRepacks } from "./cpu-repack.js";
import { formatBytes, formatMiB, GiB, MiB } from "./format-bytes.js";
import type { HardwareProfile } from "./hardware-profile.js";
import {
  type ContextShape,
  contextBytes,
  estimatePlacement,
  type ModelShape,
  type Placement,
  vramPaddingBytes,
} from "./memory-estimate.js";
import type { MeasuredEstimate, PlanRequest } from "./plan-request.js";
import { quantPreference } from "./quant-preference.js";

/** Shortest context worth serving chat with: a system prompt, a question and an answer. */
export const minimumContextSize = 512;
export const defaultContextSize = 2048;
/**
 * Prompt batch sizes to try, largest first. On a CPU the prompt kernels are saturated well below
 * llama.cpp's 512, while the compute buffer grows with the batch (TinyLlama Q4_0, flash attention:
 * 70.5 MiB at 512, 35.3 at 256, 17.6 at 128, 8.8 at 64). Prompt speed on a 2-core x86 (llama-bench,
 * native build): 132.9 / 132.0 / 130.5 tokens/s at 256 / 128 / 64 for a 256-token prompt, 120.4 /
 * 115.6 / 115.4 for 1,000 tokens; a GPU takes the larger batch.
 */
export function autoBatchSizes(gpuUsable: boolean): number[] {
  return gpuUsable ? [512, 256, 128] : [128, 64];
}
/** Batched decode on llama.cpp's CPU path is efficient for batches that are multiples of 4. */
export const parallelWhenRoomy = 4;
/** Boards sold as "4 GB" report a little less. */
export const parallelMinTotalRamBytes = 3.5 * GiB;

export interface ModelCandidate {
  quantization: QuantizationName | "custom";
  /** The catalog quantization its repacking follows, when known. */
  repackAs: QuantizationName | null;
  fileName: string;
  uri: string | null;
  sizeBytes: number;
  shape: ModelShape;
  trainedContext: number;
  measured: MeasuredEstimate | undefined;
}

export interface MemoryBudget {
  availableBytes: number;
  totalBytes: number;
  reserveBytes: number;
  reserveWhy: string;
  budgetBytes: number;
}

export interface GpuBudget {
  usable: boolean;
  vramBudgetBytes: number;
  unified: boolean;
  name: string;
}

export interface Trial {
  model: ModelCandidate;
  context: ContextShape;
  gpuLayers: number;
  useMmap: boolean;
  repackWhy: string;
  repacked: boolean;
  placement: Placement;
}

export interface SearchState {
  profile: HardwareProfile;
  request: PlanRequest;
  gpu: GpuBudget;
}

function candidateFromEntry(
  entry: CatalogEntry,
  catalog: ModelCatalog,
  request: PlanRequest,
): ModelCandidate {
  const { architecture } = catalog;
  return {
    quantization: entry.quantization,
    repackAs: entry.quantization,
    fileName: entry.fileName,
    uri: entry.uri,
    sizeBytes: entry.sizeBytes,
    shape: architecture,
    trainedContext: architecture.trainedContext,
    measured: request.measured?.[entry.quantization],
  };
}

function catalogCandidates(
  names: readonly QuantizationName[],
  catalog: ModelCatalog,
  request: PlanRequest,
): ModelCandidate[] {
  return names
    .map((name) => findCatalogEntry(catalog, name))
    .filter((entry): entry is CatalogEntry => entry !== undefined)
    .map((entry) => candidateFromEntry(entry, catalog, request));
}

function customCandidate(request: PlanRequest): ModelCandidate | null {
  const custom = request.customModel;
  if (custom === undefined) return null;
  const quantization = custom.quantization ?? "";
  return {
    quantization: "custom",
    repackAs: isQuantizationName(quantization) ? quantization : null,
    fileName: custom.path,
    uri: null,
    sizeBytes: custom.fileSizeBytes,
    shape: {
      layers: custom.layers,
      embeddingLength: custom.embeddingLength,
      heads: custom.heads ?? Math.max(1, Math.round(custom.embeddingLength / custom.headSize)),
      kvHeads: custom.kvHeads,
      headSize: custom.headSize,
      vocabSize: custom.vocabSize ?? 32000,
    },
    trainedContext: custom.trainedContext ?? defaultContextSize,
    measured: request.measured?.custom,
  };
}

export function resolveMemoryBudget(profile: HardwareProfile, request: PlanRequest): MemoryBudget {
  const totalBytes = profile.memory.totalBytes;
  if (totalBytes === null) {
    throw new EdgeError(
      "model_does_not_fit",
      "Cannot plan: the amount of RAM could not be detected (neither systeminformation nor /proc/meminfo answered).",
    );
  }
  const availableBytes = profile.memory.availableBytes ?? totalBytes;
  let reserveBytes: number;
  let reserveWhy: string;
  if (request.memoryReserveMiB === "auto") {
    // 300 MiB where there is room; an eighth of RAM (at least 128 MiB) on small boards, where
    // 300 MiB would be a third of what is free.
    reserveBytes = Math.round(Math.min(300 * MiB, Math.max(128 * MiB, totalBytes / 8)));
    reserveWhy =
      reserveBytes === 300 * MiB
        ? "300 MiB for the OS, page cache and other services"
        : `${formatMiB(reserveBytes)}, scaled down for ${formatBytes(totalBytes)} of RAM (a fixed 300 MiB would starve a small board)`;
  } else {
    reserveBytes = Math.round(request.memoryReserveMiB * MiB);
    reserveWhy = `${formatMiB(reserveBytes)} set by memoryReserveMiB`;
  }
  return {
    availableBytes,
    totalBytes,
    reserveBytes,
    reserveWhy,
    budgetBytes: Math.max(0, availableBytes - reserveBytes),
  };
}

export function resolveGpu(profile: HardwareProfile): GpuBudget {
  const { gpu } = profile;
  const free = gpu.vramFreeBytes ?? 0;
  const usable = gpu.type !== false && free > 0;
  return {
    usable,
    vramBudgetBytes: usable ? Math.max(0, free - vramPaddingBytes(gpu.vramTotalBytes ?? free)) : 0,
    unified: gpu.unifiedMemory,
    name: gpu.devices[0] ?? (gpu.type === false ? "none" : gpu.type),
  };
}

function contextCalibration(model: ModelCandidate): number {
  const measured = model.measured?.context;
  if (measured === undefined || measured.bytes <= 0) return 1;
  const estimated = contextBytes(model.shape, measured);
  return estimated > 0 ? measured.bytes / estimated : 1;
}

function place(
  state: SearchState,
  model: ModelCandidate,
  context: ContextShape,
  gpuLayers: number,
): Omit<Trial, "model" | "context" | "gpuLayers"> {
  const cpuLayersRemain = gpuLayers < model.shape.layers;
  const verdict = cpuRepacks(model.repackAs, state.profile);
  const repacked = verdict.repacked && cpuLayersRemain;
  const useMmap = state.request.useMmap === "auto" ? !repacked : state.request.useMmap;
  const placement = estimatePlacement({
    shape: model.shape,
    weightsBytes: model.measured?.modelBytes ?? model.sizeBytes,
    context,
    contextCalibration: contextCalibration(model),
    gpuLayers,
    mappedAndRepacked: useMmap && repacked,
    unifiedMemory: state.gpu.unified,
  });
  return { useMmap, repacked, repackWhy: verdict.why, placement };
}

function gpuLayerOptions(state: SearchState, model: ModelCandidate): number[] {
  const { layers } = model.shape;
  const requested = state.request.gpuLayers;
  if (!state.gpu.usable) return [0];
  if (requested === "max") return [layers];
  if (typeof requested === "number") return [Math.min(requested, layers)];
  return Array.from({ length: layers + 1 }, (_, index) => layers - index);
}

/** The first (most offloaded) placement that fits; forced layer counts are checked for VRAM later. */
function tryContext(
  state: SearchState,
  model: ModelCandidate,
  context: ContextShape,
  ramBudgetBytes: number,
): Trial | null {
  const forcedLayers = state.request.gpuLayers !== "auto";
  for (const gpuLayers of gpuLayerOptions(state, model)) {
    const placed = place(state, model, context, gpuLayers);
    const vramFits =
      gpuLayers === 0 || forcedLayers || placed.placement.vramBytes <= state.gpu.vramBudgetBytes;
    if (vramFits && placed.placement.ramBytes <= ramBudgetBytes) {
      return { model, context, gpuLayers, ...placed };
    }
  }
  return null;
}

function unique(values: number[]): number[] {
  return [...new Set(values)];
}

export function isComputeBound(profile: HardwareProfile, gpu: GpuBudget): boolean {
  const { features } = profile.cpu;
  return !gpu.usable && !(features.dotprod || features.i8mm || features.avx2);
}

function parallelEligible(profile: HardwareProfile, gpu: GpuBudget): boolean {
  return (profile.memory.totalBytes ?? 0) >= parallelMinTotalRamBytes && !isComputeBound(profile, gpu);
}

/** Configurations to try for one model, most generous first. */
function contextLadder(state: SearchState, model: ModelCandidate): ContextShape[] {
  const { request } = state;
  const fullContext = Math.min(model.trainedContext, defaultContextSize);
  const contexts =
    request.contextSize === "auto"
      ? unique([fullContext, 1024, minimumContextSize].filter((size) => size <= fullContext))
      : [request.contextSize];
  const sequences = request.parallelSequences === "auto" ? 1 : request.parallelSequences;
  const batchesFor = (contextSize: number, sequenceCount: number) =>
    request.batchSize === "auto"
      ? unique(autoBatchSizes(state.gpu.usable).map((size) => Math.min(size, contextSize * sequenceCount)))
      : [request.batchSize];
  const ladder: ContextShape[] = [];
  const [firstContext = fullContext] = contexts;
  if (request.parallelSequences === "auto" && parallelEligible(state.profile, state.gpu)) {
    const [batchSize = 512] = batchesFor(firstContext, parallelWhenRoomy);
    ladder.push({ contextSize: firstContext, sequences: parallelWhenRoomy, batchSize });
  }
  for (const contextSize of contexts) {
    for (const batchSize of batchesFor(contextSize, sequences)) {
      ladder.push({ contextSize, sequences, batchSize });
    }
  }
  return ladder;
}

function search(state: SearchState, models: ModelCandidate[], ramBudgetBytes: number): Trial | null {
  for (const model of models) {
    for (const context of contextLadder(state, model)) {
      const trial = tryContext(state, model, context, ramBudgetBytes);
      if (trial) return trial;
    }
  }
  return null;
}

/** The leanest configuration of a model within what the request fixes: what it needs at the least. */
function minimumNeed(state: SearchState, model: ModelCandidate): Trial {
  const { request } = state;
  const lean: SearchState = { ...state, request: { ...request, useMmap: "auto" } };
  const contextSize = request.contextSize === "auto" ? minimumContextSize : request.contextSize;
  const sequences = request.parallelSequences === "auto" ? 1 : request.parallelSequences;
  const batchSize = request.batchSize === "auto" ? Math.min(128, contextSize * sequences) : request.batchSize;
  const context = { contextSize, sequences, batchSize };
  const [gpuLayers = 0] = gpuLayerOptions(state, model);
  return { model, context, gpuLayers, ...place(lean, model, context, gpuLayers) };
}

function describeModel(model: ModelCandidate): string {
  const name = model.quantization === "custom" ? model.fileName : model.quantization;
  return `${name} (${formatBytes(model.sizeBytes)} file)`;
}

function doesNotFitError(state: SearchState, memory: MemoryBudget, model: ModelCandidate, smallest: boolean) {
  const need = minimumNeed(state, model);
  const needBytes = need.placement.ramBytes;
  const contextWording =
    state.request.contextSize === "auto"
      ? `even with a ${need.context.contextSize}-token context`
      : `with the configured ${need.context.contextSize}-token context`;
  const lead = smallest
    ? `TinyLlama-1.1B does not fit in this device's memory. The smallest variant, ${describeModel(model)},`
    : `The requested model ${describeModel(model)}`;
  const advice =
    needBytes <= memory.availableBytes
      ? "Stop other services to free memory, or lower memoryReserveMiB if this device does nothing else."
      : "Use a board with at least 1 GB of RAM or stop other services; swap on an SD card is far too slow to run a model from.";
  const message =
    `${lead} needs about ${formatBytes(needBytes)} of RAM ${contextWording} ` +
    `(weights, context and the Node.js/llama.cpp runtime), but this device has ${formatBytes(memory.availableBytes)} ` +
    `available of ${formatBytes(memory.totalBytes)} total, ${formatBytes(memory.budgetBytes)} after keeping ` +
    `${formatMiB(memory.reserveBytes)} for the system. ${advice}`;
  return new EdgeError("model_does_not_fit", message, {
    details: {
      quantization: model.quantization,
      neededBytes: needBytes,
      availableBytes: memory.availableBytes,
      budgetBytes: memory.budgetBytes,
      reserveBytes: memory.reserveBytes,
    },
  });
}

function requestedModels(state: SearchState, catalog: ModelCatalog): ModelCandidate[] | null {
  const custom = customCandidate(state.request);
  if (custom) return [custom];
  if (state.request.quantization === "auto") return null;
  const entry = findCatalogEntry(catalog, state.request.quantization);
  return entry ? [candidateFromEntry(entry, catalog, state.request)] : null;
}

/** True when the GPU can hold the best-quality file with a full context: then quality costs no speed. */
function gpuHoldsBestQuality(state: SearchState, catalog: ModelCatalog, memory: MemoryBudget): boolean {
  if (!state.gpu.usable) return false;
  const best = [...catalog.entries].sort((a, b) => b.qualityRank - a.qualityRank)[0];
  if (!best) return false;
  const model = candidateFromEntry(best, catalog, state.request);
  const context = { contextSize: defaultContextSize, sequences: 1, batchSize: 512 };
  const placed = place(state, model, context, model.shape.layers);
  return (
    placed.placement.vramBytes <= state.gpu.vramBudgetBytes && placed.placement.ramBytes <= memory.budgetBytes
  );
}

export interface ModelChoice {
  trial: Trial;
  reason: string;
  warnings: string[];
}

export function chooseModel(state: SearchState, catalog: ModelCatalog, memory: MemoryBudget): ModelChoice {
  const requested = requestedModels(state, catalog);
  if (requested !== null) {
    const [model] = requested;
    if (!model) throw new EdgeError("internal", "no model candidate");
    const within = search(state, requested, memory.budgetBytes);
    const how = model.quantization === "custom" ? "custom model file" : "set by configuration";
    if (within) return { trial: within, reason: how, warnings: [] };
    // Honour the wish if it fits at all, but say that it eats the reserve.
    const squeezed = search(state, requested, memory.availableBytes);
    if (squeezed) {
      return {
        trial: squeezed,
        reason: how,
        warnings: [
          `${describeModel(model)} only fits by using ${formatBytes(squeezed.placement.ramBytes - memory.budgetBytes)} of the ${formatMiB(memory.reserveBytes)} memory reserve: other services may be squeezed or the kernel may kill the daemon under memory pressure.`,
        ],
      };
    }
    const auto = search(
      state,
      catalogCandidates(quantPreference(state.profile, catalog, false).order, catalog, state.request),
      memory.budgetBytes,
    );
    const error = doesNotFitError(state, memory, model, false);
    const hint = auto && model.quantization !== "custom" ? ` ${auto.model.quantization} would fit.` : "";
    throw new EdgeError(error.code, `${error.message}${hint}`, { details: error.details });
  }

  const preference = quantPreference(state.profile, catalog, gpuHoldsBestQuality(state, catalog, memory));
  const models = catalogCandidates(preference.order, catalog, state.request);
  const trial = search(state, models, memory.budgetBytes);
  if (!trial) {
    const smallest = [...models].sort((a, b) => a.sizeBytes - b.sizeBytes)[0];
    if (!smallest) throw new EdgeError("internal", "the model catalog is empty");
    throw doesNotFitError(state, memory, smallest, true);
  }
  const skipped = models.slice(0, models.indexOf(trial.model));
  const warnings: string[] = [];
  let reason = preference.reason;
  if (skipped.length > 0) {
    const first = skipped[0] as ModelCandidate;
    const firstNeed = minimumNeed(state, first).placement.ramBytes;
    reason += `; ${skipped.map((model) => model.quantization).join(", ")} did not fit the ${formatBytes(memory.budgetBytes)} budget (${first.quantization} needs at least ${formatBytes(firstNeed)}), so ${trial.model.quantization}`;
  }
  if (trial.model.quantization === "Q2_K" || trial.model.quantization === "Q3_K_M") {
    warnings.push(
      `Only ${trial.model.quantization} fits this device: answers from a 1.1B model at ${trial.model.quantization === "Q2_K" ? "2" : "3"} bits are noticeably worse than at 4 bits.`,
    );
  }
  return { trial, reason, warnings };
}
