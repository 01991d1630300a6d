/**
 * Which quantization to try first. Generation reads every weight once per token, so on boards
 * with little memory bandwidth the smallest good 4-bit file is the fastest; where bandwidth is
 * plentiful (a GPU, a desktop x86) quality costs little speed and the best file that fits wins.
 */

import type { ModelCatalog, QuantizationName } from "../model/catalog.js";
import { cpuRepacks } from "./cpu-repack.js";
import { formatBytes, GiB } from "./format-bytes.js";
import { type HardwareProfile, physicalCoresOfCluster } from "./hardware-profile.js";

/**
 * An x86 machine with this much RAM and this many cores is a desktop or laptop with dual-channel
 * memory and cores to spare; a 2-core box is compute-bound and better served by a 4-bit file.
 */
export const ampleX86RamBytes = 7.5 * GiB;
export const ampleX86PerformanceCores = 4;

export interface QuantPreference {
  /** Best first; smaller files follow as fallbacks where memory is short. */
  order: QuantizationName[];
  reason: string;
}

function byQualityDescending(catalog: ModelCatalog): QuantizationName[] {
  return [...catalog.entries]
    .sort((a, b) => b.qualityRank - a.qualityRank)
    .map((entry) => entry.quantization);
}

function inCatalog(catalog: ModelCatalog, names: QuantizationName[]): QuantizationName[] {
  return names.filter((name) => catalog.entries.some((entry) => entry.quantization === name));
}

export function quantPreference(
  profile: HardwareProfile,
  catalog: ModelCatalog,
  gpuHoldsBestQuality: boolean,
): QuantPreference {
  const { features } = profile.cpu;
  const total = profile.memory.totalBytes ?? 0;
  if (gpuHoldsBestQuality) {
    const gpu = profile.gpu.devices[0] ?? String(profile.gpu.type);
    return {
      order: byQualityDescending(catalog),
      reason: `the GPU (${gpu}) holds the whole model, and GPU memory bandwidth makes even the largest file fast, so the best quality that fits`,
    };
  }
  const performanceCores = physicalCoresOfCluster(profile.cpu, "performance");
  if (
    profile.arch === "x64" &&
    features.avx2 &&
    total >= ampleX86RamBytes &&
    performanceCores >= ampleX86PerformanceCores
  ) {
    return {
      order: byQualityDescending(catalog),
      reason: `x86 with AVX2, ${performanceCores} performance cores and ${formatBytes(total)} RAM: desktop-class memory bandwidth keeps even Q8_0 fast (each token reads every weight once), so the best quality that fits`,
    };
  }
  const q4Repack = cpuRepacks("Q4_0", profile);
  if (q4Repack.repacked) {
    const why = features.avx2
      ? `with ${performanceCores} performance cores and ${formatBytes(total)} RAM this is no desktop-class machine, so speed comes before quality`
      : "generation is bandwidth-bound here, so the smallest good 4-bit file is also the fastest";
    return {
      order: inCatalog(catalog, ["Q4_0", "Q3_K_M", "Q2_K"]),
      reason: `${q4Repack.why}, its fastest CPU path; ${why}`,
    };
  }
  return {
    order: inCatalog(catalog, ["Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"]),
    reason:
      "no dotprod/AVX2 on this CPU, so no variant gets repacked kernels and generation is compute-bound: 4-bit keeps the work small, and Q4_K_M is the better-quality 4-bit at nearly Q4_0's size",
  };
}
