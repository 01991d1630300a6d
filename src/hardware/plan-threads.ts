/**
 * The thread rule, in order:
 *
 * 1. Start from the physical cores of the performance cluster(s): never hyperthread siblings
 *    (they share the core's SIMD units), never LITTLE or E-cores (a shared thread pool runs at the
 *    pace of its slowest thread: an RK3588 with all 8 cores is about 2x slower than with its 4 A76).
 * 2. Cap at 8: a 1.1B model saturates memory bandwidth long before that, and every extra thread
 *    only adds synchronisation.
 * 3. Keep one core for the Node.js event loop (MQTT, streaming tokens) when the performance cores
 *    are all the machine has and there are at least 6 of them. There generation is
 *    bandwidth-bound, so one thread fewer costs little. On 4 cores or fewer each core is a large
 *    share of prompt speed and llama.cpp's own Pi benchmarks use all 4, so all are used; where
 *    hyperthread siblings or LITTLE cores exist, the event loop runs on those.
 */

import type { CpuInfo } from "./hardware-profile.js";

export const maxInferenceThreads = 8;
const headroomFromCores = 6;

export interface ThreadsChoice {
  threads: number;
  reason: string;
  warnings: string[];
}

function performanceCores(cpu: CpuInfo): { physical: number; names: string } {
  const clusters = cpu.clusters.filter((cluster) => cluster.kind === "performance");
  const physical = clusters.reduce((sum, cluster) => sum + cluster.physicalCores, 0);
  const names = clusters
    .map((cluster) => cluster.coreName)
    .filter((name): name is string => name !== null)
    .join(" + ");
  // A profile without cluster data still has a core count.
  return { physical: physical > 0 ? physical : Math.max(1, cpu.physicalCores), names };
}

/** "Cortex-A76 cores", "P-cores". */
function coresNamed(name: string | null): string {
  if (name === null) return "cores";
  return name.endsWith("-core") ? `${name}s` : `${name} cores`;
}

function describeAutoThreads(cpu: CpuInfo, performance: number, names: string): string {
  const what = `${performance} physical ${names ? coresNamed(names) : "performance cores"}`;
  const skipped: string[] = [];
  if (cpu.logicalCores > cpu.physicalCores) skipped.push("hyperthread siblings");
  const efficiency = cpu.clusters.filter((cluster) => cluster.kind === "efficiency");
  for (const cluster of efficiency) {
    skipped.push(
      `${cluster.physicalCores} ${cluster.coreName === null ? "efficiency cores" : coresNamed(cluster.coreName)}`,
    );
  }
  return skipped.length > 0
    ? `${what}; ${skipped.join(" and ")} left out (they slow a shared thread pool down and host the event loop)`
    : what;
}

function autoThreads(cpu: CpuInfo): ThreadsChoice {
  const { physical, names } = performanceCores(cpu);
  let threads = physical;
  let reason = describeAutoThreads(cpu, physical, names);
  if (threads > maxInferenceThreads) {
    threads = maxInferenceThreads;
    reason += `; capped at ${maxInferenceThreads}: a 1.1B model is bandwidth-bound well before that`;
  }
  const spareCores = cpu.logicalCores - threads;
  if (threads >= headroomFromCores && spareCores === 0) {
    threads -= 1;
    reason += "; one core kept for the Node.js event loop (generation is bandwidth-bound at this core count)";
  }
  return { threads, reason, warnings: [] };
}

export function planThreads(cpu: CpuInfo, requested: "auto" | number): ThreadsChoice {
  const planned = autoThreads(cpu);
  if (requested === "auto") return planned;
  const { physical } = performanceCores(cpu);
  const warnings: string[] = [];
  if (requested > cpu.logicalCores) {
    warnings.push(
      `threads=${requested} is more than the ${cpu.logicalCores} logical CPUs: threads will time-share cores and generation slows down sharply (auto would use ${planned.threads}).`,
    );
  } else if (requested > physical) {
    warnings.push(
      `threads=${requested} is more than the ${physical} physical performance cores: the extra threads land on hyperthreads or slower cores and usually make generation slower, not faster (auto would use ${planned.threads}).`,
    );
  }
  return { threads: requested, reason: `set by configuration (auto would use ${planned.threads})`, warnings };
}
