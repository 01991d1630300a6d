import { readFile } from "node:fs/promises";

export interface ProcessMemory {
  /** VmHWM: the peak resident set since the process started. */
  peakRssBytes: number;
  /** VmRSS now. */
  rssBytes: number;
}

/** VmHWM and VmRSS of a /proc/<pid>/status text; null when either is absent. */
export function parseProcStatus(text: string): ProcessMemory | null {
  const kilobytes = (key: string): number | null => {
    const match = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, "m").exec(text);
    return match ? Number(match[1]) * 1024 : null;
  };
  const peak = kilobytes("VmHWM");
  const rss = kilobytes("VmRSS");
  return peak === null || rss === null ? null : { peakRssBytes: peak, rssBytes: rss };
}

/** The memory of a running process from /proc (Linux only); the reason when it cannot be read. */
export async function readProcessMemory(pid: number): Promise<ProcessMemory | { reason: string }> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/status`, "utf8");
  } catch (err) {
    return { reason: `cannot read /proc/${pid}/status: ${(err as Error).message}` };
  }
  return parseProcStatus(text) ?? { reason: `/proc/${pid}/status has no VmHWM/VmRSS` };
}
