/** The human-readable reason behind every planned value, and the warnings a plan carries. */

import { formatBytes, formatMiB } from "./format-bytes.js";
import type { HardwareProfile } from "./hardware-profile.js";
import { contextBytes, kvCacheBytes, runtimeOverheadBytes } from "./memory-estimate.js";
import {
  autoBatchSizes,
  defaultContextSize,
  isComputeBound,
  type MemoryBudget,
  parallelMinTotalRamBytes,
  parallelWhenRoomy,
  type SearchState,
  type Trial,
} from "./plan-search.js";
import { FIRMWARE_THROTTLE_C } from "./soc-sensors.js";

/** Raspberry Pi firmware starts throttling the ARM cores here. */

export function explainGpuLayers(
  state: SearchState,
  trial: Trial,
): { value: "max" | number; reason: string } {
  const { layers } = trial.model.shape;
  const { profile, request, gpu } = state;
  const value: "max" | number =
    request.gpuLayers === "max" || (request.gpuLayers === "auto" && trial.gpuLayers >= layers)
      ? "max"
      : typeof request.gpuLayers === "number" && gpu.usable
        ? request.gpuLayers
        : trial.gpuLayers;
  if (!gpu.usable) {
    const why =
      profile.llamaCpp === null
        ? "node-llama-cpp was not loaded, so no GPU was probed"
        : profile.gpu.type === false
          ? "node-llama-cpp found no usable GPU (CPU build or no device)"
          : `the ${profile.gpu.type} GPU reports no free VRAM`;
    return { value: 0, reason: `0: ${why}` };
  }
  const vram = formatBytes(trial.placement.vramBytes);
  const budget = formatBytes(gpu.vramBudgetBytes);
  if (request.gpuLayers !== "auto")
    return { value, reason: `set by configuration (needs about ${vram} of VRAM)` };
  if (value === "max") {
    return {
      value,
      reason: `max: all ${layers} layers and the output fit the ${gpu.name}'s ${budget} usable VRAM (needs about ${vram})${gpu.unified ? "; memory is shared with the CPU, so this counts against RAM too" : ""}`,
    };
  }
  if (trial.gpuLayers === 0)
    return { value, reason: `0: not even one layer fits the ${gpu.name}'s ${budget} of usable VRAM` };
  return {
    value,
    reason: `${trial.gpuLayers} of ${layers} layers: that is what the ${gpu.name}'s ${budget} of usable VRAM holds with their share of the context; the rest run on the CPU`,
  };
}

export function gpuLayerWarnings(state: SearchState, trial: Trial): string[] {
  const { request, gpu, profile } = state;
  if (request.gpuLayers === "auto" || request.gpuLayers === 0) return [];
  if (!gpu.usable) {
    const what = profile.gpu.type === false ? "there is no usable GPU" : "the GPU reports no free VRAM";
    return [`gpuLayers=${request.gpuLayers} is set but ${what}: every layer runs on the CPU.`];
  }
  if (trial.placement.vramBytes > gpu.vramBudgetBytes) {
    return [
      `gpuLayers=${request.gpuLayers} needs about ${formatBytes(trial.placement.vramBytes)} of VRAM but only ${formatBytes(gpu.vramBudgetBytes)} is usable: node-llama-cpp will refuse to load the model; use "auto".`,
    ];
  }
  return [];
}

export function explainContext(state: SearchState, trial: Trial): { reason: string; warnings: string[] } {
  const { contextSize } = trial.context;
  const trained = trial.model.trainedContext;
  const kv = formatBytes(kvCacheBytes(trial.model.shape, contextSize, 1));
  if (state.request.contextSize !== "auto") {
    const warnings =
      contextSize > trained
        ? [
            `contextSize=${contextSize} is beyond the model's trained context of ${trained} tokens: output degrades past ${trained} tokens.`,
          ]
        : [];
    return { reason: `set by configuration (KV cache ${kv} per sequence at f16)`, warnings };
  }
  const full = Math.min(trained, defaultContextSize);
  if (contextSize >= full) {
    return {
      reason: `${contextSize} tokens, ${contextSize === trained ? "the model's trained context" : "enough for chat on an edge device"} (KV cache ${kv} per sequence at f16)`,
      warnings: [],
    };
  }
  return {
    reason: `${contextSize} tokens: ${full} tokens did not fit the memory budget with ${trial.model.quantization} (KV cache ${kv} per sequence at f16)`,
    warnings: [
      `Context reduced to ${contextSize} tokens to fit memory: long conversations will be cut off sooner.`,
    ],
  };
}

export function explainParallel(state: SearchState, trial: Trial): { reason: string; warnings: string[] } {
  const { sequences, contextSize } = trial.context;
  const { request, profile, gpu } = state;
  if (request.parallelSequences !== "auto") {
    const warnings =
      sequences > 1 && sequences % 4 !== 0
        ? [
            `parallelSequences=${sequences}: llama.cpp's batched CPU decode is slow for batches that are not a multiple of 4 (2 or 3 sequences gain little over 1); 4 is the better choice.`,
          ]
        : [];
    return { reason: "set by configuration", warnings };
  }
  const total = formatBytes(profile.memory.totalBytes ?? 0);
  if (sequences > 1) {
    const contexts = formatBytes(contextBytes(trial.model.shape, trial.context));
    const room = trial.gpuLayers >= trial.model.shape.layers ? "the GPU's memory" : `${total} RAM`;
    return {
      reason: `${sequences}: ${room} has room for ${sequences} contexts of ${contextSize} tokens (${contexts} together), and batched decode reads the weights once for all of them, so total tokens/s rises; a multiple of 4 because llama.cpp's batched CPU kernels are slow for 2-3`,
      warnings: [],
    };
  }
  if ((profile.memory.totalBytes ?? 0) < parallelMinTotalRamBytes) {
    return {
      reason: `1: with ${total} RAM, more contexts would crowd the model; concurrent requests queue instead`,
      warnings: [],
    };
  }
  if (isComputeBound(profile, gpu)) {
    return {
      reason:
        "1: without dotprod/AVX2 generation is compute-bound, so concurrent sequences would only split the same tokens/s; requests queue instead",
      warnings: [],
    };
  }
  return {
    reason: `1: ${parallelWhenRoomy} contexts did not fit the memory budget next to ${trial.model.quantization}; requests queue instead`,
    warnings: [],
  };
}

export function explainBatch(state: SearchState, trial: Trial): string {
  const { batchSize, contextSize, sequences } = trial.context;
  if (state.request.batchSize !== "auto") return "set by configuration";
  const cells = contextSize * sequences;
  const largest = autoBatchSizes(state.gpu.usable)[0] ?? 256;
  if (batchSize === Math.min(largest, cells)) {
    if (batchSize < largest) return `${batchSize}: the whole context fits in one prompt batch`;
    return state.gpu.usable
      ? `${batchSize}: llama.cpp's usual prompt batch (tokens evaluated per step)`
      : `${batchSize}: prompts evaluate nearly as fast as with 256 or 512 on a CPU (1-4 % slower than 256), with a compute buffer a quarter of 512's (about 50 MB less peak memory)`;
  }
  return `${batchSize}: a smaller prompt batch shrinks llama.cpp's compute buffer to fit memory; prompt evaluation is compute-bound on a CPU, so little speed is lost`;
}

export function explainMmap(state: SearchState, trial: Trial): { reason: string; warnings: string[] } {
  const size = formatBytes(trial.model.sizeBytes);
  if (state.request.useMmap !== "auto") {
    const warnings =
      trial.useMmap && trial.repacked
        ? [
            `useMmap=true while ${trial.repackWhy}: the mapped file stays resident beside the repacked copy (about ${size} more; measured peak 1.34 GB against 0.81 GB without mmap).`,
          ]
        : [];
    return { reason: `set by configuration (${trial.repackWhy})`, warnings };
  }
  if (trial.gpuLayers >= trial.model.shape.layers) {
    return {
      reason: "on: the weights are copied to the GPU and llama.cpp releases the mapping after load",
      warnings: [],
    };
  }
  if (trial.repacked) {
    return {
      reason: `off: ${trial.repackWhy}, so a mapped file would keep a second, unused ${size} copy in the page cache (measured peak 1.34 GB with mmap, 0.81 GB without)`,
      warnings: [],
    };
  }
  return {
    reason: `on: ${trial.repackWhy}, so the mapped file is used as it is: fast start, and the pages can be shared with the page cache`,
    warnings: [],
  };
}

export function explainMemory(memory: MemoryBudget, trial: Trial): string {
  const { placement } = trial;
  const vram = placement.vramBytes > 0 ? ` and ${formatBytes(placement.vramBytes)} of VRAM` : "";
  const sequences = trial.context.sequences > 1 ? `${trial.context.sequences} x ` : "";
  return (
    `budget ${formatBytes(memory.budgetBytes)} = ${formatBytes(memory.availableBytes)} available - ${memory.reserveWhy}; ` +
    `the plan needs about ${formatBytes(placement.ramBytes)} of RAM${vram} ` +
    `(${formatBytes(trial.model.measured?.modelBytes ?? trial.model.sizeBytes)} of weights, ` +
    `${formatBytes(contextBytes(trial.model.shape, trial.context))} for ${sequences}${trial.context.contextSize} tokens of context, ` +
    `${formatMiB(runtimeOverheadBytes)} of runtime); swap is not counted`
  );
}

export function deviceWarnings(profile: HardwareProfile): string[] {
  const warnings: string[] = [...profile.contradictions];
  const throttle = profile.thermal.throttling;
  if (throttle) {
    const now = [
      throttle.underVoltage && "under-voltage",
      throttle.frequencyCapped && "frequency capped",
      throttle.throttled && "throttled",
      throttle.softTemperatureLimit && "soft temperature limit",
    ].filter(Boolean);
    if (now.length > 0) {
      warnings.push(
        `The SoC reports ${now.join(", ")} right now (vcgencmd ${throttle.raw}): generation will be slower until cooling or power is fixed.`,
      );
    }
    if (throttle.underVoltageOccurred && !throttle.underVoltage) {
      warnings.push(
        `Under-voltage has occurred since boot (vcgencmd ${throttle.raw}): a weak power supply will throttle the CPU under inference load.`,
      );
    }
  }
  const temperature = profile.thermal.socTemperatureC;
  if (temperature !== null && temperature >= FIRMWARE_THROTTLE_C) {
    warnings.push(
      `The SoC is at ${temperature} °C: Raspberry Pi firmware throttles from ${FIRMWARE_THROTTLE_C} °C. Sustained generation needs a heatsink and fan.`,
    );
  }
  if (profile.llamaCpp === null) {
    warnings.push(
      "node-llama-cpp was not loaded during detection: the GPU was not probed and weight repacking is inferred from CPU flags.",
    );
  }
  return warnings;
}
