/**
 * What the device offers, as detected once at start-up. Plain data (JSON-serializable) so a
 * profile recorded on a board can be replayed in tests and printed by `detect --json`.
 */

/** The GPU backend node-llama-cpp loaded; false when it runs on the CPU only. */
export type GpuType = "cuda" | "vulkan" | "metal" | false;

export interface OsInfo {
  /** Node.js platform name: linux, darwin, win32. */
  platform: string;
  distro: string | null;
  release: string | null;
  kernel: string | null;
}

export interface CpuCore {
  /** Logical CPU number as the kernel counts it (cpuN). */
  index: number;
  /** ARM `CPU part`, e.g. "0xd0b"; null on x86. */
  partId: string | null;
  /** "Cortex-A76", "P-core"...; null when unknown. */
  coreName: string | null;
  maxMHz: number | null;
  /** Kernel's relative capacity (1024 = fastest core), where the kernel exposes it. */
  capacity: number | null;
  /** Dense index of the physical core this logical CPU runs on (hyperthreads share one). */
  physicalCore: number;
  /** Index into `CpuInfo.clusters`. */
  cluster: number;
}

export interface CoreCluster {
  id: number;
  /** Performance cores run inference; efficiency (LITTLE, E-core) clusters are left alone. */
  kind: "performance" | "efficiency";
  coreName: string | null;
  partId: string | null;
  maxMHz: number | null;
  logicalCpus: number[];
  physicalCores: number;
}

export interface CpuFeatures {
  neon: boolean;
  /** ARM `asimddp`: int8 dot product, what llama.cpp's repacked Q4_0 kernels need. */
  dotprod: boolean;
  i8mm: boolean;
  sve: boolean;
  /** Half-precision arithmetic (ARM `asimdhp`, x86 `avx512_fp16`). */
  fp16: boolean;
  avx: boolean;
  avx2: boolean;
  avx512: boolean;
  f16c: boolean;
  fma: boolean;
}

export interface CpuInfo {
  model: string | null;
  logicalCores: number;
  physicalCores: number;
  cores: CpuCore[];
  clusters: CoreCluster[];
  features: CpuFeatures;
  /** What `features` rests on: the loaded llama.cpp's own report, the kernel's flags, or nothing trustworthy. */
  featureSource: "llama.cpp" | "kernel" | "none";
}

export interface MemoryInfo {
  totalBytes: number | null;
  /** What the kernel could hand out now without swapping (MemAvailable). */
  availableBytes: number | null;
  swapTotalBytes: number | null;
  swapFreeBytes: number | null;
}

export interface GpuInfo {
  type: GpuType;
  devices: string[];
  vramTotalBytes: number | null;
  vramFreeBytes: number | null;
  /** GPU and CPU share the same RAM (Jetson, Apple silicon): offloading does not add memory. */
  unifiedMemory: boolean;
}

/** `vcgencmd get_throttled` bits (Raspberry Pi firmware). */
export interface ThrottleState {
  raw: string;
  underVoltage: boolean;
  frequencyCapped: boolean;
  throttled: boolean;
  softTemperatureLimit: boolean;
  underVoltageOccurred: boolean;
  frequencyCappedOccurred: boolean;
  throttledOccurred: boolean;
  softTemperatureLimitOccurred: boolean;
}

export interface ThermalInfo {
  socTemperatureC: number | null;
  /** Null where `vcgencmd` is absent (anything but a Raspberry Pi). */
  throttling: ThrottleState | null;
}

/** What the loaded llama.cpp binary reports about itself; null when node-llama-cpp was not loaded. */
export interface LlamaCppInfo {
  /** llama.cpp's feature string, e.g. `CPU : NEON = 1 | DOTPROD = 1 | REPACK = 1 |`. */
  systemInfo: string;
  /** Built with weight repacking (`REPACK = 1`): suitable quants are rearranged for faster CPU kernels. */
  repacksWeights: boolean;
  cpuMathCores: number | null;
}

export interface HardwareProfile {
  /** `/proc/device-tree/model`, e.g. "Raspberry Pi 5 Model B Rev 1.0"; null on most x86 machines. */
  board: string | null;
  os: OsInfo;
  /** Architecture of this Node.js process: arm64, armv7l, x64... */
  arch: string;
  cpu: CpuInfo;
  memory: MemoryInfo;
  gpu: GpuInfo;
  thermal: ThermalInfo;
  llamaCpp: LlamaCppInfo | null;
  /** Host facts that contradict this process's architecture (emulation, a foreign /proc): ignored, and shown by `detect`. */
  contradictions: string[];
}

export function physicalCoresOfCluster(cpu: CpuInfo, kind: CoreCluster["kind"]): number {
  return cpu.clusters
    .filter((cluster) => cluster.kind === kind)
    .reduce((sum, cluster) => sum + cluster.physicalCores, 0);
}
