/**
 * Reads what the device offers: /proc and /sys, systeminformation, node-llama-cpp's view of the
 * CPU and GPU, and `vcgencmd` on a Raspberry Pi. Every probe tolerates absence and failure, so a
 * missing file or tool leaves a null in the profile instead of stopping the daemon.
 */

import { armCorePart } from "./arm-cpu-parts.js";
import { clusterCores, type HybridCpuLists, type UnclusteredCore } from "./core-clusters.js";
import {
  engineCpuFeatures,
  featuresFromKernelFlags,
  intersectKernelFlags,
  llamaRepacksWeights,
  noCpuFeatures,
} from "./cpu-features.js";
import { foreignCpuFacts } from "./foreign-cpu-facts.js";
import type {
  CoreCluster,
  CpuInfo,
  GpuInfo,
  GpuType,
  HardwareProfile,
  LlamaCppInfo,
  MemoryInfo,
  OsInfo,
  ThermalInfo,
} from "./hardware-profile.js";
import { type CpuinfoProcessor, parseCpuinfo, parseCpuList } from "./parse-cpuinfo.js";
import type { SystemFileReader } from "./rooted-file-reader.js";
import type { CommandRunner } from "./run-command.js";
import { parseMeminfo, SocSensors } from "./soc-sensors.js";

/** The part of node-llama-cpp's `Llama` that detection reads. */
export interface LlamaHardwareView {
  readonly gpu: GpuType;
  readonly systemInfo: string;
  readonly cpuMathCores: number;
  getGpuDeviceNames(): Promise<string[]>;
  getVramState(): Promise<{ total: number; free: number; unifiedSize: number }>;
}

/** The part of systeminformation that detection reads. */
export interface SystemFactsSource {
  mem(): Promise<{ total: number; available: number; swaptotal: number; swapfree: number }>;
  osInfo(): Promise<{ platform: string; distro: string; release: string; kernel: string }>;
  cpu(): Promise<{ manufacturer: string; brand: string; cores: number; physicalCores: number }>;
}

/** Facts about this Node.js process (process.arch, os.machine(), process.platform). */
export interface ProcessRuntime {
  arch: string;
  machine: string | null;
  platform: string;
}

export interface DetectHardwareDeps {
  files: SystemFileReader;
  runtime: ProcessRuntime;
  system?: SystemFactsSource | null;
  llama?: LlamaHardwareView | null;
  runCommand?: CommandRunner | null;
}

async function probe<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch {
    return null;
  }
}

function positiveNumber(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : null;
}

function nonNegativeNumber(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null;
}

function nonEmpty(value: string | null | undefined): string | null {
  const trimmed = value?.trim();
  return trimmed ? trimmed : null;
}

async function readNumber(files: SystemFileReader, path: string): Promise<number | null> {
  const text = await files.readText(path);
  if (text === null) return null;
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : null;
}

/** Node's `arm` is 32-bit ARM; name it as uname does (armv7l) since that is what users know. */
export function normalizeArch(runtime: ProcessRuntime): string {
  if (runtime.arch === "arm") return runtime.machine?.startsWith("armv") ? runtime.machine : "armv7l";
  return runtime.arch;
}

async function detectBoard(files: SystemFileReader, cpuinfoModel: string | null): Promise<string | null> {
  // The device-tree string ends in a NUL byte.
  const model = await files.readText("/proc/device-tree/model");
  return nonEmpty(model?.replaceAll("\0", "")) ?? nonEmpty(cpuinfoModel);
}

async function detectHybridLists(files: SystemFileReader): Promise<HybridCpuLists | null> {
  const performance = await files.readText("/sys/devices/cpu_core/cpus");
  const efficiency = await files.readText("/sys/devices/cpu_atom/cpus");
  if (performance === null || efficiency === null) return null;
  return { performance: parseCpuList(performance), efficiency: parseCpuList(efficiency) };
}

async function listLogicalCpus(
  files: SystemFileReader,
  processors: readonly CpuinfoProcessor[],
  system: SystemFactsSource | null,
): Promise<number[]> {
  if (processors.length > 0) return processors.map((processor) => processor.index);
  const fromSys = (await files.listDir("/sys/devices/system/cpu"))
    .map((name) => /^cpu(\d+)$/.exec(name)?.[1])
    .filter((index): index is string => index !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  if (fromSys.length > 0) return fromSys;
  const cores = positiveNumber((await probe(async () => system?.cpu()))?.cores) ?? 1;
  return Array.from({ length: cores }, (_, index) => index);
}

function describeArmCores(clusters: readonly CoreCluster[]): string | null {
  if (clusters.some((cluster) => cluster.coreName === null)) return null;
  const ordered = [...clusters].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === "performance" ? -1 : 1));
  return ordered.map((cluster) => `${cluster.logicalCpus.length}x ${cluster.coreName}`).join(" + ");
}

/**
 * CPU topology from /proc/cpuinfo and /sys. The features are the loaded llama.cpp's own where it
 * reports them (what its kernels really use), else the kernel's flags; flags of another
 * architecture than this process's (an emulated process reading the host's /proc) never count.
 */
export async function detectCpu(
  deps: Pick<DetectHardwareDeps, "files" | "system" | "llama" | "runtime">,
): Promise<CpuInfo & { cpuinfoModel: string | null; foreignFacts: string[] }> {
  const { files } = deps;
  const system = deps.system ?? null;
  const cpuinfo = parseCpuinfo((await files.readText("/proc/cpuinfo")) ?? "");
  const processorByIndex = new Map(cpuinfo.processors.map((processor) => [processor.index, processor]));
  const logicalCpus = await listLogicalCpus(files, cpuinfo.processors, system);
  const hybrid = await detectHybridLists(files);
  const efficiencyCpus = new Set(hybrid?.efficiency ?? []);

  const physicalCoreKeys = new Map<string, number>();
  const unclustered: UnclusteredCore[] = [];
  for (const index of logicalCpus) {
    const processor = processorByIndex.get(index);
    const base = `/sys/devices/system/cpu/cpu${index}`;
    const maxKHz = await readNumber(files, `${base}/cpufreq/cpuinfo_max_freq`);
    // x86 hyperthread siblings share `physical id` + `core id`; ARM edge cores have no SMT.
    const key =
      processor !== undefined && processor.physicalId !== null && processor.coreId !== null
        ? `${processor.physicalId}:${processor.coreId}`
        : `cpu${index}`;
    if (!physicalCoreKeys.has(key)) physicalCoreKeys.set(key, physicalCoreKeys.size);
    const partId = processor?.partId ?? null;
    const hybridName = hybrid === null ? null : efficiencyCpus.has(index) ? "E-core" : "P-core";
    unclustered.push({
      index,
      partId,
      coreName: armCorePart(partId)?.name ?? hybridName,
      maxMHz: maxKHz !== null && maxKHz > 0 ? Math.round(maxKHz / 1000) : null,
      capacity: positiveNumber(await readNumber(files, `${base}/cpu_capacity`)),
      physicalCore: physicalCoreKeys.get(key) ?? 0,
    });
  }
  const { cores, clusters } = clusterCores(unclustered, hybrid);

  const foreignFacts = foreignCpuFacts(normalizeArch(deps.runtime), cpuinfo);
  const kernelFeatures = featuresFromKernelFlags(
    intersectKernelFlags(cpuinfo.processors.map((processor) => processor.flags)),
  );
  const engineFeatures = engineCpuFeatures((await probe(async () => deps.llama?.systemInfo ?? "")) ?? "");
  const featureSource: CpuInfo["featureSource"] =
    engineFeatures !== null ? "llama.cpp" : foreignFacts.length > 0 ? "none" : "kernel";
  const features =
    featureSource === "llama.cpp" && engineFeatures !== null
      ? engineFeatures
      : featureSource === "kernel"
        ? kernelFeatures
        : { ...noCpuFeatures };

  const systemCpu = await probe(async () => system?.cpu());
  const systemModel = nonEmpty(`${systemCpu?.manufacturer ?? ""} ${systemCpu?.brand ?? ""}`);
  const armModel = cpuinfo.processors.some((processor) => processor.partId !== null)
    ? describeArmCores(clusters)
    : null;
  const x86Model = nonEmpty(cpuinfo.processors[0]?.modelName);

  return {
    // The host's CPU name is no name for an emulated one.
    model: foreignFacts.length > 0 ? null : (armModel ?? x86Model ?? systemModel),
    logicalCores: cores.length,
    physicalCores: physicalCoreKeys.size,
    cores,
    clusters,
    features,
    featureSource,
    cpuinfoModel: cpuinfo.model,
    foreignFacts,
  };
}

async function detectMemory(sensors: SocSensors, system: SystemFactsSource | null): Promise<MemoryInfo> {
  const facts = await probe(async () => system?.mem());
  const fromProc = (await sensors.readMemory()) ?? parseMeminfo("");
  return {
    totalBytes: positiveNumber(facts?.total) ?? fromProc.totalBytes,
    availableBytes: positiveNumber(facts?.available) ?? fromProc.availableBytes,
    swapTotalBytes: nonNegativeNumber(facts?.swaptotal) ?? fromProc.swapTotalBytes,
    swapFreeBytes: nonNegativeNumber(facts?.swapfree) ?? fromProc.swapFreeBytes,
  };
}

function osReleaseField(text: string, key: string): string | null {
  const match = new RegExp(`^${key}=(.*)$`, "m").exec(text);
  return nonEmpty(match?.[1]?.replace(/^"(.*)"$/, "$1"));
}

async function detectOs(
  files: SystemFileReader,
  system: SystemFactsSource | null,
  runtime: ProcessRuntime,
): Promise<OsInfo> {
  const facts = await probe(async () => system?.osInfo());
  const osRelease = (await files.readText("/etc/os-release")) ?? "";
  return {
    platform: nonEmpty(facts?.platform) ?? runtime.platform,
    distro: nonEmpty(facts?.distro) ?? osReleaseField(osRelease, "NAME"),
    release: nonEmpty(facts?.release) ?? osReleaseField(osRelease, "VERSION_ID"),
    kernel: nonEmpty(facts?.kernel) ?? nonEmpty(await files.readText("/proc/sys/kernel/osrelease")),
  };
}

async function detectGpu(llama: LlamaHardwareView | null): Promise<GpuInfo> {
  const type = (await probe(async () => llama?.gpu)) ?? false;
  if (llama === null || type === false) {
    return { type: false, devices: [], vramTotalBytes: null, vramFreeBytes: null, unifiedMemory: false };
  }
  const devices = (await probe(() => llama.getGpuDeviceNames())) ?? [];
  const vram = await probe(() => llama.getVramState());
  return {
    type,
    devices,
    vramTotalBytes: nonNegativeNumber(vram?.total),
    vramFreeBytes: nonNegativeNumber(vram?.free),
    unifiedMemory: (positiveNumber(vram?.unifiedSize) ?? 0) > 0,
  };
}

async function detectThermal(sensors: SocSensors): Promise<ThermalInfo> {
  return {
    socTemperatureC: await sensors.readTemperatureC(),
    throttling: await sensors.readThrottling(),
  };
}

async function detectLlamaCpp(llama: LlamaHardwareView | null): Promise<LlamaCppInfo | null> {
  if (llama === null) return null;
  const systemInfo = await probe(async () => llama.systemInfo);
  if (systemInfo === null) return null;
  return {
    // llama.cpp ends the string with a dangling separator ("REPACK = 1 | ").
    systemInfo: systemInfo.replace(/[\s|]+$/, ""),
    repacksWeights: llamaRepacksWeights(systemInfo),
    cpuMathCores: positiveNumber(await probe(async () => llama.cpuMathCores)),
  };
}

export async function detectHardware(deps: DetectHardwareDeps): Promise<HardwareProfile> {
  const system = deps.system ?? null;
  const sensors = new SocSensors({ files: deps.files, runCommand: deps.runCommand ?? null });
  const llama = deps.llama ?? null;
  const { cpuinfoModel, foreignFacts, ...cpu } = await detectCpu({
    files: deps.files,
    system,
    llama,
    runtime: deps.runtime,
  });
  return {
    contradictions: foreignFacts,
    board: await detectBoard(deps.files, cpuinfoModel),
    os: await detectOs(deps.files, system, deps.runtime),
    arch: normalizeArch(deps.runtime),
    cpu,
    memory: await detectMemory(sensors, system),
    gpu: await detectGpu(llama),
    thermal: await detectThermal(sensors),
    llamaCpp: await detectLlamaCpp(llama),
  };
}
