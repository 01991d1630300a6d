/**
 * Memory a loaded model and its context take, split between RAM and VRAM. The context formula
 * follows node-llama-cpp's own estimate for llama-architecture models (GgufInsights), so a plan
 * that fits here also passes its safety checks; measured figures, when the caller has them,
 * calibrate it.
 */

import { MiB } from "./format-bytes.js";

export interface ModelShape {
  layers: number;
  embeddingLength: number;
  heads: number;
  kvHeads: number;
  headSize: number;
  vocabSize: number;
}

/** Node.js with the daemon's modules (~50 MiB RSS) plus the llama.cpp library and its thread pool. */
export const runtimeOverheadBytes = 80 * MiB;
/** CUDA/Vulkan runtime libraries and driver buffers mapped into the process once a GPU is used. */
export const gpuRuntimeHostBytes = 256 * MiB;

export function kvCacheBytes(shape: ModelShape, contextSize: number, sequences: number): number {
  const f16Bytes = 2;
  return shape.layers * 2 * shape.kvHeads * shape.headSize * f16Bytes * contextSize * sequences;
}

/**
 * llama.cpp's compute graph without flash attention: the attention scores of one batch against
 * every KV cell (4 B x batch x cells x heads), plus the logits buffer for a batch of outputs.
 */
export function computeBufferBytes(
  shape: ModelShape,
  contextSize: number,
  sequences: number,
  batchSize: number,
): number {
  const floatBytes = 4;
  const kvCells = contextSize * sequences;
  const graph = floatBytes * batchSize * (shape.embeddingLength + kvCells * shape.heads);
  const logits = floatBytes * shape.vocabSize * Math.max(batchSize, sequences) + floatBytes * batchSize;
  return graph + logits;
}

export interface ContextShape {
  contextSize: number;
  sequences: number;
  batchSize: number;
}

export function contextBytes(shape: ModelShape, context: ContextShape): number {
  return (
    kvCacheBytes(shape, context.contextSize, context.sequences) +
    computeBufferBytes(shape, context.contextSize, context.sequences, context.batchSize)
  );
}

export interface PlacementInput {
  shape: ModelShape;
  /** Bytes of weights (the GGUF file size, or GgufInsights' figure). */
  weightsBytes: number;
  context: ContextShape;
  /** Multiplies the context estimate (measured / estimated); 1 without a measurement. */
  contextCalibration: number;
  /** 0 = CPU only; `shape.layers` or more = every layer and the output matrix on the GPU. */
  gpuLayers: number;
  /** The CPU part of the weights is repacked while the file stays mapped: both copies are resident. */
  mappedAndRepacked: boolean;
  /** GPU and CPU share RAM (Jetson): VRAM use counts against RAM too. */
  unifiedMemory: boolean;
}

export interface Placement {
  ramBytes: number;
  vramBytes: number;
}

/**
 * Splits the weights between CPU and GPU. The token embedding and the output matrix are each
 * vocab x embedding (65.5 M weights for TinyLlama, about 1.5 layers' worth), so the file is
 * treated as layers + 3 equal shares. The embedding always stays in RAM (llama.cpp keeps it on the CPU).
 */
export function estimatePlacement(input: PlacementInput): Placement {
  const { shape } = input;
  const gpuLayers = Math.max(0, Math.min(input.gpuLayers, shape.layers));
  const share = input.weightsBytes / (shape.layers + 3);
  const fullOffload = gpuLayers >= shape.layers;
  const gpuWeights = share * gpuLayers + (fullOffload ? share * 1.5 : 0);
  const cpuWeights = input.weightsBytes - gpuWeights;

  const offloaded = gpuLayers / shape.layers;
  const kv = kvCacheBytes(shape, input.context.contextSize, input.context.sequences);
  const compute = computeBufferBytes(
    shape,
    input.context.contextSize,
    input.context.sequences,
    input.context.batchSize,
  );
  const context = (kv + compute) * input.contextCalibration;
  const gpuContext = context * offloaded;
  const cpuContext = context - gpuContext;

  const vramBytes = gpuLayers > 0 ? gpuWeights + gpuContext : 0;
  const cpuWeightsResident = cpuWeights * (input.mappedAndRepacked ? 2 : 1);
  const ramBytes =
    runtimeOverheadBytes +
    cpuWeightsResident +
    cpuContext +
    (gpuLayers > 0 ? gpuRuntimeHostBytes : 0) +
    (input.unifiedMemory ? vramBytes : 0);
  return { ramBytes: Math.round(ramBytes), vramBytes: Math.round(vramBytes) };
}

/** node-llama-cpp's default VRAM padding: 8% of the total, at most 1.6 GiB (driver, fragmentation). */
export function vramPaddingBytes(totalVramBytes: number): number {
  return Math.floor(Math.min(totalVramBytes * 0.08, 1.6 * 1024 * MiB));
}
