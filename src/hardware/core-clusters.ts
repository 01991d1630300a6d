import { armCorePart } from "./arm-cpu-parts.js";
import type { CoreCluster, CpuCore } from "./hardware-profile.js";

export type UnclusteredCore = Omit<CpuCore, "cluster">;

/** Intel hybrid CPUs list their P- and E-cores in /sys/devices/cpu_core/cpus and cpu_atom/cpus. */
export interface HybridCpuLists {
  performance: readonly number[];
  efficiency: readonly number[];
}

/** Cores of one cluster whose top clock is below this share of the fastest stay in a slower cluster. */
const sameClusterClockRatio = 0.8;
/** Clusters at or above this share of the highest kernel capacity count as performance cores. */
const performanceCapacityRatio = 0.75;

function groupCores(cores: readonly UnclusteredCore[], hybrid: HybridCpuLists | null): UnclusteredCore[][] {
  if (hybrid !== null && hybrid.performance.length > 0 && hybrid.efficiency.length > 0) {
    const efficiency = new Set(hybrid.efficiency);
    return [
      cores.filter((core) => !efficiency.has(core.index)),
      cores.filter((core) => efficiency.has(core.index)),
    ].filter((group) => group.length > 0);
  }
  const partIds = new Set(cores.map((core) => core.partId).filter((partId) => partId !== null));
  if (partIds.size > 1) {
    const byPart = new Map<string, UnclusteredCore[]>();
    for (const core of cores) {
      const key = core.partId ?? "unknown";
      byPart.set(key, [...(byPart.get(key) ?? []), core]);
    }
    return [...byPart.values()];
  }
  // Same core design everywhere: only a clearly lower top clock marks a separate (slower) cluster.
  // Small binning differences (2400 vs 2352 MHz) stay together.
  const clocks = [...new Set(cores.map((core) => core.maxMHz ?? 0))].sort((a, b) => b - a);
  const groups: UnclusteredCore[][] = [];
  let groupTop = Number.POSITIVE_INFINITY;
  const groupOfClock = new Map<number, number>();
  for (const clock of clocks) {
    if (clock < groupTop * sameClusterClockRatio || groups.length === 0) {
      groups.push([]);
      groupTop = clock;
    }
    groupOfClock.set(clock, groups.length - 1);
  }
  for (const core of cores) groups[groupOfClock.get(core.maxMHz ?? 0) ?? 0]?.push(core);
  return groups.filter((group) => group.length > 0);
}

function common<T>(values: readonly T[]): T | null {
  const [first] = values;
  return first !== undefined && values.every((value) => value === first) ? first : null;
}

function maxOf(values: readonly (number | null)[]): number | null {
  const known = values.filter((value): value is number => value !== null);
  return known.length === 0 ? null : Math.max(...known);
}

function performanceFlags(groups: readonly UnclusteredCore[][], hybrid: boolean): boolean[] {
  if (groups.length <= 1) return groups.map(() => true);
  if (hybrid) return groups.map((_, index) => index === 0);
  const roles = groups.map((group) => common(group.map((core) => armCorePart(core.partId)?.role ?? null)));
  if (roles.includes("big") && roles.includes("little")) return roles.map((role) => role !== "little");
  const capacities = groups.map((group) => maxOf(group.map((core) => core.capacity)));
  const topCapacity = maxOf(capacities);
  if (topCapacity !== null && capacities.every((capacity) => capacity !== null)) {
    return capacities.map((capacity) => (capacity ?? 0) >= topCapacity * performanceCapacityRatio);
  }
  const clocks = groups.map((group) => maxOf(group.map((core) => core.maxMHz)));
  const topClock = maxOf(clocks);
  if (topClock === null) return groups.map(() => true);
  return clocks.map((clock) => clock === null || clock >= topClock * sameClusterClockRatio);
}

/**
 * Splits the cores into clusters (big.LITTLE, Intel P/E) and marks which ones should run inference:
 * LITTLE and E-cores are slower and drag a shared thread pool down to their pace.
 */
export function clusterCores(
  cores: readonly UnclusteredCore[],
  hybrid: HybridCpuLists | null,
): { cores: CpuCore[]; clusters: CoreCluster[] } {
  const isHybrid = hybrid !== null && hybrid.performance.length > 0 && hybrid.efficiency.length > 0;
  const groups = groupCores(cores, hybrid).sort(
    (a, b) => Math.min(...a.map((core) => core.index)) - Math.min(...b.map((core) => core.index)),
  );
  const performance = performanceFlags(groups, isHybrid);
  const clusterOfCpu = new Map<number, number>();
  const clusters = groups.map((group, id): CoreCluster => {
    for (const core of group) clusterOfCpu.set(core.index, id);
    return {
      id,
      kind: performance[id] === false ? "efficiency" : "performance",
      coreName: common(group.map((core) => core.coreName)),
      partId: common(group.map((core) => core.partId)),
      maxMHz: maxOf(group.map((core) => core.maxMHz)),
      logicalCpus: group.map((core) => core.index).sort((a, b) => a - b),
      physicalCores: new Set(group.map((core) => core.physicalCore)).size,
    };
  });
  return {
    cores: cores.map((core) => ({ ...core, cluster: clusterOfCpu.get(core.index) ?? 0 })),
    clusters,
  };
}
