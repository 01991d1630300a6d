import type { CpuFeatures } from "./hardware-profile.js";

export const noCpuFeatures: CpuFeatures = {
  neon: false,
  dotprod: false,
  i8mm: false,
  sve: false,
  fp16: false,
  avx: false,
  avx2: false,
  avx512: false,
  f16c: false,
  fma: false,
};

/** Kernel flag names (ARM `Features`, x86 `flags`) that mean each feature. */
const kernelFlagsByFeature: Record<keyof CpuFeatures, readonly string[]> = {
  // arm64 calls NEON "asimd"; 32-bit ARM kernels say "neon".
  neon: ["asimd", "neon"],
  dotprod: ["asimddp"],
  i8mm: ["i8mm"],
  sve: ["sve"],
  fp16: ["asimdhp", "avx512_fp16"],
  avx: ["avx"],
  avx2: ["avx2"],
  avx512: ["avx512f"],
  f16c: ["f16c"],
  // ARMv8 NEON always fuses multiply-add; 32-bit ARM advertises it as vfpv4.
  fma: ["fma", "asimd", "vfpv4"],
};

/** llama.cpp feature names (`ggml_backend_cpu_get_features`) that mean each feature. */
const llamaFlagsByFeature: Record<keyof CpuFeatures, readonly string[]> = {
  neon: ["NEON"],
  dotprod: ["DOTPROD"],
  i8mm: ["MATMUL_INT8"],
  sve: ["SVE"],
  fp16: ["FP16_VA"],
  avx: ["AVX"],
  avx2: ["AVX2"],
  avx512: ["AVX512"],
  f16c: ["F16C"],
  fma: ["FMA", "ARM_FMA"],
};

function featuresFrom(
  isSet: (name: string) => boolean,
  namesByFeature: Record<keyof CpuFeatures, readonly string[]>,
): CpuFeatures {
  const features = { ...noCpuFeatures };
  for (const feature of Object.keys(namesByFeature) as (keyof CpuFeatures)[]) {
    features[feature] = namesByFeature[feature].some(isSet);
  }
  return features;
}

export function featuresFromKernelFlags(flags: readonly string[]): CpuFeatures {
  const present = new Set(flags.map((flag) => flag.toLowerCase()));
  return featuresFrom((name) => present.has(name), kernelFlagsByFeature);
}

/**
 * Parses llama.cpp's system info, e.g. `CUDA : ARCHS = 870 | CPU : NEON = 1 | DOTPROD = 1 | REPACK = 1 |`,
 * into NAME → value. A backend prefix (`CPU : `) is dropped from the first entry of its group.
 */
export function parseLlamaSystemInfo(systemInfo: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const part of systemInfo.split("|")) {
    const assignment = part.includes(" : ") ? part.slice(part.lastIndexOf(" : ") + 3) : part;
    const separator = assignment.indexOf("=");
    if (separator < 0) continue;
    const name = assignment.slice(0, separator).trim().toUpperCase();
    if (name.length > 0) entries.set(name, assignment.slice(separator + 1).trim());
  }
  return entries;
}

export function featuresFromLlamaSystemInfo(systemInfo: string): CpuFeatures {
  const entries = parseLlamaSystemInfo(systemInfo);
  return featuresFrom((name) => entries.get(name) === "1", llamaFlagsByFeature);
}

/**
 * The CPU features the loaded llama.cpp build reports using, or null when its system info names
 * none (no binding loaded, or a string without a CPU section). These are what its kernels run on:
 * the variant node-llama-cpp picked for this CPU, not what the kernel's flags promise.
 */
export function engineCpuFeatures(systemInfo: string): CpuFeatures | null {
  const entries = parseLlamaSystemInfo(systemInfo);
  const cpuNames = ["NEON", "SSE3", "AVX", "AVX2", "ARM_FMA", "FMA", "DOTPROD", "SVE", "RISCV_V", "VSX"];
  if (!/\bCPU\s*:/.test(systemInfo) && !cpuNames.some((name) => entries.has(name))) return null;
  return featuresFromLlamaSystemInfo(systemInfo);
}

export function llamaRepacksWeights(systemInfo: string): boolean {
  return parseLlamaSystemInfo(systemInfo).get("REPACK") === "1";
}

export function intersectKernelFlags(flagLists: readonly (readonly string[])[]): string[] {
  const [first, ...rest] = flagLists;
  if (first === undefined) return [];
  return first.filter((flag) => rest.every((flags) => flags.includes(flag)));
}

export function describeCpuFeatures(features: CpuFeatures): string[] {
  return (Object.keys(features) as (keyof CpuFeatures)[]).filter((feature) => features[feature]);
}
