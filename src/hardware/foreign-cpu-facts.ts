/**
 * Facts the host reports about a CPU of another architecture than this process runs on: an arm64
 * process under QEMU on an x86 machine reads the x86 host's /proc/cpuinfo (AVX2, "AMD EPYC").
 * Plans must not rest on them, and `detect` says so.
 */

import type { Cpuinfo } from "./parse-cpuinfo.js";

export type CpuFamily = "x86" | "arm";

/** The family of this Node.js process's architecture; null for others (riscv64, ppc64...). */
export function processCpuFamily(arch: string): CpuFamily | null {
  if (arch === "x64" || arch === "ia32") return "x86";
  if (arch === "arm64" || arch === "arm" || arch.startsWith("armv")) return "arm";
  return null;
}

const x86OnlyFlags = ["sse2", "ssse3", "avx", "avx2", "avx512f", "f16c", "lm", "vmx", "svm"];
const armOnlyFlags = ["asimd", "asimddp", "neon", "vfpv4", "thumb", "half"];

/** The family /proc/cpuinfo describes: ARM kernels print `CPU part`, x86 kernels SSE flags. */
export function cpuinfoFamily(cpuinfo: Cpuinfo): CpuFamily | null {
  const first = cpuinfo.processors[0];
  if (first === undefined) return null;
  if (first.partId !== null || first.architecture !== null) return "arm";
  if (first.flags.some((flag) => armOnlyFlags.includes(flag))) return "arm";
  if (first.flags.some((flag) => x86OnlyFlags.includes(flag)) || first.modelName !== null) return "x86";
  return null;
}

/**
 * One line per contradiction between /proc/cpuinfo and the process architecture; empty when they
 * agree or either is unknown.
 */
export function foreignCpuFacts(arch: string, cpuinfo: Cpuinfo): string[] {
  const own = processCpuFamily(arch);
  const described = cpuinfoFamily(cpuinfo);
  if (own === null || described === null || own === described) return [];
  const first = cpuinfo.processors[0];
  const name = first?.modelName ? ` (${first.modelName})` : "";
  const telling = (first?.flags ?? []).filter((flag) =>
    (described === "x86" ? ["avx", "avx2", "avx512f", "f16c", "fma"] : ["asimd", "asimddp", "neon"]).includes(
      flag,
    ),
  );
  const flags = telling.length > 0 ? ` with ${telling.join(" ")}` : "";
  return [
    `/proc/cpuinfo describes an ${described} CPU${name}${flags}, but this process is ${arch}: it runs under emulation or reads another machine's /proc, so the kernel's CPU model and flags are ignored and the plan rests on llama.cpp's own features.`,
  ];
}
