import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Resident set size of a process in bytes, from /proc/<pid>/status (Linux). */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Open file descriptors of a process (sockets, files, pipes, native handles), from /proc/<pid>/fd. */
export function openFdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** True while the child has neither exited nor been killed. */
export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/**
 * RSS once the process has settled: the median of a few samples taken a little apart, so one
 * sample during a garbage collection or a burst of allocations does not decide a memory bound.
 */
export async function settledRss(pid: number, samples = 5, intervalMs = 300): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    values.push(rssBytes(pid));
  }
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)]!;
}

export const MiB = 1024 * 1024;

export interface ResourceUse {
  rssBytes: number;
  fds: number;
}

/** Settled RSS and open descriptors of a process, for before/after comparisons. */
export async function resourceUse(pid: number): Promise<ResourceUse> {
  return { rssBytes: await settledRss(pid), fds: openFdCount(pid) };
}

/** How much RSS and descriptors grew since `before`; both readings go to the test output. */
export async function resourceGrowth(pid: number, before: ResourceUse): Promise<ResourceUse> {
  const after = await resourceUse(pid);
  console.info(
    JSON.stringify({
      rssBeforeMiB: +(before.rssBytes / MiB).toFixed(1),
      rssAfterMiB: +(after.rssBytes / MiB).toFixed(1),
      fdsBefore: before.fds,
      fdsAfter: after.fds,
    }),
  );
  return { rssBytes: after.rssBytes - before.rssBytes, fds: after.fds - before.fds };
}
