/** Plain-text rendering of a hardware profile and runtime plan for `tinyllama-edge detect`. */

import { describeCpuFeatures } from "../hardware/cpu-features.js";
import { formatBytes } from "../hardware/format-bytes.js";
import type { CoreCluster, HardwareProfile, ThrottleState } from "../hardware/hardware-profile.js";
import type { PlanChoice, RuntimePlan } from "../hardware/plan-runtime.js";

const labelWidth = 14;
const lineWidth = 100;

function wrap(text: string, indent: number): string[] {
  const width = Math.max(20, lineWidth - indent);
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line.length > 0 ? `${line} ${word}` : word;
    }
  }
  if (line.length > 0) lines.push(line);
  return lines.map((wrapped) => `${" ".repeat(indent)}${wrapped}`);
}

function row(label: string, value: string): string {
  const [first = "", ...rest] = wrap(value, 2 + labelWidth);
  return [`  ${label.padEnd(labelWidth)}${first.trimStart()}`, ...rest].join("\n");
}

/** [0,1,2,3,6] → "0-3,6". */
export function formatCpuList(cpus: readonly number[]): string {
  const ranges: string[] = [];
  let start: number | undefined;
  let previous: number | undefined;
  for (const cpu of [...cpus].sort((a, b) => a - b)) {
    if (start !== undefined && previous !== undefined && cpu === previous + 1) {
      previous = cpu;
      continue;
    }
    if (start !== undefined) ranges.push(start === previous ? `${start}` : `${start}-${previous}`);
    start = cpu;
    previous = cpu;
  }
  if (start !== undefined) ranges.push(start === previous ? `${start}` : `${start}-${previous}`);
  return ranges.join(",");
}

function describeCluster(cluster: CoreCluster): string {
  const name = cluster.coreName === null ? "" : ` ${cluster.coreName}`;
  const part = cluster.partId ? ` (${cluster.partId})` : "";
  const clock = cluster.maxMHz === null ? "" : `, up to ${cluster.maxMHz} MHz`;
  return `${cluster.kind}: cpu${formatCpuList(cluster.logicalCpus)}, ${cluster.physicalCores} physical${name}${part}${clock}`;
}

function describeThrottle(state: ThrottleState): string {
  const now = [
    state.underVoltage && "under-voltage",
    state.frequencyCapped && "frequency capped",
    state.throttled && "throttled",
    state.softTemperatureLimit && "soft temperature limit",
  ].filter(Boolean);
  const past = [
    state.underVoltageOccurred && "under-voltage",
    state.frequencyCappedOccurred && "frequency capped",
    state.throttledOccurred && "throttled",
    state.softTemperatureLimitOccurred && "soft temperature limit",
  ].filter(Boolean);
  return `${state.raw}: now ${now.length > 0 ? now.join(", ") : "none"}; since boot ${past.length > 0 ? past.join(", ") : "none"}`;
}

function bytesOrUnknown(bytes: number | null): string {
  return bytes === null ? "unknown" : formatBytes(bytes);
}

const featureSourceNote: Record<HardwareProfile["cpu"]["featureSource"], string> = {
  "llama.cpp": " (as llama.cpp reports them)",
  kernel: " (from the kernel's flags; llama.cpp not loaded)",
  none: " (the kernel's flags belong to another architecture)",
};

export function formatHardwareReport(profile: HardwareProfile): string {
  const { cpu, memory, gpu, thermal, os } = profile;
  const osLine = [os.distro, os.release].filter(Boolean).join(" ") || os.platform;
  const gpuLine =
    gpu.type === false
      ? profile.llamaCpp === null
        ? "not probed (node-llama-cpp not loaded)"
        : "none"
      : `${gpu.type}: ${gpu.devices.join(", ") || "unnamed device"}, ${bytesOrUnknown(gpu.vramFreeBytes)} free of ${bytesOrUnknown(gpu.vramTotalBytes)}${gpu.unifiedMemory ? " (shared with the CPU)" : ""}`;
  const lines = [
    "Hardware",
    row("board", profile.board ?? "unknown"),
    row("os", `${osLine}${os.kernel ? `, kernel ${os.kernel}` : ""}`),
    row("arch", profile.arch),
    row("cpu", cpu.model ?? "unknown"),
    row("cores", `${cpu.physicalCores} physical, ${cpu.logicalCores} logical`),
    ...cpu.clusters.map((cluster, index) => row(index === 0 ? "clusters" : "", describeCluster(cluster))),
    row(
      "features",
      `${describeCpuFeatures(cpu.features).join(" ") || "none detected"}${featureSourceNote[cpu.featureSource]}`,
    ),
    row(
      "memory",
      `${bytesOrUnknown(memory.totalBytes)} total, ${bytesOrUnknown(memory.availableBytes)} available; swap ${bytesOrUnknown(memory.swapTotalBytes)} (${bytesOrUnknown(memory.swapFreeBytes)} free)`,
    ),
    row("gpu", gpuLine),
    row("temperature", thermal.socTemperatureC === null ? "unknown" : `${thermal.socTemperatureC} °C`),
    row(
      "throttling",
      thermal.throttling === null ? "not reported (no vcgencmd)" : describeThrottle(thermal.throttling),
    ),
    row(
      "llama.cpp",
      profile.llamaCpp === null
        ? "not loaded"
        : `${profile.llamaCpp.systemInfo} (weight repacking: ${profile.llamaCpp.repacksWeights ? "yes" : "no"})`,
    ),
  ];
  return lines.join("\n");
}

function planRow(label: string, value: string, reason: string): string {
  return [row(label, value), ...wrap(reason, 2 + labelWidth + 2)].join("\n");
}

export function formatPlanReport(plan: RuntimePlan): string {
  const reason = (choice: PlanChoice) => plan.reasons[choice];
  const lines = [
    "Plan",
    planRow(
      "quantization",
      `${plan.quantization} (${plan.modelFile}, ${formatBytes(plan.modelSizeBytes)})`,
      reason("quantization"),
    ),
    planRow("threads", String(plan.threads), reason("threads")),
    planRow("gpuLayers", String(plan.gpuLayers), reason("gpuLayers")),
    planRow("contextSize", String(plan.contextSize), reason("contextSize")),
    planRow("parallel", String(plan.parallelSequences), reason("parallelSequences")),
    planRow("batchSize", String(plan.batchSize), reason("batchSize")),
    planRow("useMmap", String(plan.useMmap), reason("useMmap")),
    planRow(
      "memory",
      `about ${formatBytes(plan.estimatedMemoryBytes)} RAM${plan.estimatedVramBytes > 0 ? ` + ${formatBytes(plan.estimatedVramBytes)} VRAM` : ""}`,
      reason("memory"),
    ),
  ];
  if (plan.modelUri) lines.push(row("source", plan.modelUri));
  if (plan.warnings.length > 0) {
    lines.push("", "Warnings");
    for (const warning of plan.warnings) {
      const [first = "", ...rest] = wrap(warning, 4);
      lines.push([`  - ${first.trimStart()}`, ...rest].join("\n"));
    }
  }
  return lines.join("\n");
}
