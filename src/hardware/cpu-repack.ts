/**
 * Which quantizations llama.cpp (the build bundled with node-llama-cpp 3.21.1, ggml-cpu repack.cpp)
 * rearranges at load into interleaved CPU kernels: Q4_0 and Q4_K with AVX2 or ARM int8 dot product;
 * Q5_K, Q6_K and Q8_0 with ARM int8 dot product only; Q2_K with AVX-512; Q3_K never.
 */

import type { QuantizationName } from "../model/catalog.js";
import type { CpuFeatures, HardwareProfile } from "./hardware-profile.js";

export interface RepackVerdict {
  repacked: boolean;
  /** What the verdict rests on, for the plan's reasons. */
  why: string;
}

function armInt8(features: CpuFeatures): boolean {
  return features.neon && (features.dotprod || features.i8mm);
}

function kernelFor(quantization: QuantizationName, features: CpuFeatures): string | null {
  switch (quantization) {
    case "Q4_0":
    case "Q4_K_M":
      if (features.avx2) return "AVX2";
      return armInt8(features) ? (features.i8mm ? "ARM i8mm" : "ARM dotprod") : null;
    case "Q5_K_M":
    case "Q6_K":
    case "Q8_0":
      return armInt8(features) ? (features.i8mm ? "ARM i8mm" : "ARM dotprod") : null;
    case "Q2_K":
      return features.avx512 ? "AVX-512" : null;
    case "Q3_K_M":
      return null;
  }
}

export function cpuRepacks(quantization: QuantizationName | null, profile: HardwareProfile): RepackVerdict {
  if (quantization === null) {
    return { repacked: false, why: "the file's quantization is not one llama.cpp is known to repack" };
  }
  if (profile.llamaCpp?.repacksWeights === false) {
    return {
      repacked: false,
      why: "this llama.cpp build has no weight repacking (no REPACK in its system info)",
    };
  }
  const kernel = kernelFor(quantization, profile.cpu.features);
  if (kernel === null) {
    return { repacked: false, why: `llama.cpp has no repacked ${quantization} kernels for this CPU` };
  }
  const source = profile.llamaCpp === null ? " (assumed: llama.cpp was not loaded to confirm REPACK)" : "";
  return {
    repacked: true,
    why: `llama.cpp repacks ${quantization} into its ${kernel} kernels at load${source}`,
  };
}
