/**
 * The board's memory read bandwidth, measured: generation on a CPU reads every weight once per
 * token, so bandwidth / bytes per token is the ceiling no thread count or kernel can pass. The
 * measure is short (a few hundred ms) and cached in the state directory, as the thread tuning is.
 */

import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { z } from "zod";
import type { Logger } from "../logging/logger.js";
import { KeyedStateFile } from "../util/keyed-state-file.js";
import type { HardwareProfile } from "./hardware-profile.js";

export interface MemoryBandwidth {
  /** Bytes per second all reader threads together drew from memory. */
  bytesPerSecond: number;
  threads: number;
  /** "measured" now, or "cached" from an earlier start on the same hardware. */
  source: "measured" | "cached";
  key: string;
}

export interface MeasureBandwidthOptions {
  /** Reader threads: the inference threads, since they are what llama.cpp reads with. */
  threads: number;
  /** Per thread: well past any edge SoC's caches (the Pi 5 has 2 MB of L3). */
  bufferBytes?: number;
  rounds?: number;
  roundMs?: number;
}

/**
 * Each worker fills two equal buffers of its own (so their pages are real, not the shared zero
 * page), then compares them: glibc's vectorised memcmp streams through both, a pure read that
 * reaches the memory's speed where memchr is bound by its compare work. The best of a few short
 * rounds counts: the machine may be busy with something else for a moment.
 */
const readerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const half = workerData.bufferBytes / 2;
const first = Buffer.allocUnsafe(half).fill(7);
const second = Buffer.allocUnsafe(half).fill(7);
parentPort.postMessage("ready");
parentPort.once("message", () => {
  let best = 0;
  for (let round = 0; round < workerData.rounds; round++) {
    let bytes = 0;
    const start = performance.now();
    do {
      if (first.compare(second) !== 0) throw new Error("buffers differ");
      bytes += 2 * half;
    } while (performance.now() < start + workerData.roundMs);
    best = Math.max(best, (bytes / (performance.now() - start)) * 1000);
  }
  parentPort.postMessage(best);
});
`;

function startReader(
  bufferBytes: number,
  rounds: number,
  roundMs: number,
): { worker: Worker; ready: Promise<void> } {
  const worker = new Worker(readerSource, { eval: true, workerData: { bufferBytes, rounds, roundMs } });
  const ready = new Promise<void>((resolve, reject) => {
    worker.once("message", () => resolve());
    worker.once("error", reject);
  });
  return { worker, ready };
}

const MAX_READER_BYTES = 64 * 1024 * 1024;
const MIN_READER_BYTES = 8 * 1024 * 1024;

/**
 * Buffer per reader for a board with this much RAM: 1/64 of it, between 8 MB (still 4x the largest
 * edge SoC cache, the Pi 5's 2 MB L3) and 64 MB. A 512 MB Pi Zero 2 W reads 8 MB per thread.
 */
export function readerBufferBytes(memoryBytes: number): number {
  return Math.min(MAX_READER_BYTES, Math.max(MIN_READER_BYTES, Math.floor(memoryBytes / 64)));
}

/** What a measure is cached under: another board, RAM size or thread count measures again. */
export function bandwidthKey(
  hardware: Pick<HardwareProfile, "arch" | "board" | "cpu" | "memory">,
  threads: number,
): string {
  return [hardware.arch, hardware.board, hardware.cpu.model, hardware.memory.totalBytes, threads].join("|");
}

/** Streams through buffers larger than the caches on `threads` threads at once; bytes/s in total. */
export async function measureReadBandwidth(options: MeasureBandwidthOptions): Promise<number> {
  const bufferBytes = options.bufferBytes ?? MAX_READER_BYTES;
  const readers = Array.from({ length: Math.max(1, options.threads) }, () =>
    startReader(bufferBytes, options.rounds ?? 5, options.roundMs ?? 60),
  );
  try {
    await Promise.all(readers.map((reader) => reader.ready));
    const results = readers.map(
      ({ worker }) =>
        new Promise<number>((resolve, reject) => {
          worker.once("message", resolve);
          worker.once("error", reject);
        }),
    );
    for (const { worker } of readers) worker.postMessage("go");
    const done = await Promise.all(results);
    return done.reduce((sum, bytesPerSecond) => sum + bytesPerSecond, 0);
  } finally {
    await Promise.all(readers.map(({ worker }) => worker.terminate()));
  }
}

export interface BandwidthCacheDeps {
  logger: Logger;
  stateDir: string;
  /** Identifies the hardware: another board (or more threads) measures again. */
  key: string;
  threads: number;
  /** The board's RAM: sizes the read buffers (see readerBufferBytes); null or absent: the largest. */
  memoryBytes?: number | null;
  measure?: (threads: number) => Promise<number>;
}

const CACHE_FILE = "memory-bandwidth.json";

const cachedBandwidth = z.object({
  bytesPerSecond: z.number().positive(),
  threads: z.number().int().min(1),
  source: z.enum(["measured", "cached"]),
  key: z.string(),
});

/** The bandwidth for this hardware: from the cache, or measured once and cached. */
export async function memoryBandwidth(deps: BandwidthCacheDeps): Promise<MemoryBandwidth> {
  const stateFile = new KeyedStateFile(
    join(deps.stateDir, CACHE_FILE),
    cachedBandwidth,
    "memory bandwidth",
    deps.logger,
  );
  const cache = await stateFile.read();
  const cached = cache[deps.key];
  if (cached) return { ...cached, source: "cached" };
  const bufferBytes = deps.memoryBytes ? readerBufferBytes(deps.memoryBytes) : undefined;
  const measure = deps.measure ?? ((threads: number) => measureReadBandwidth({ threads, bufferBytes }));
  const bytesPerSecond = Math.round(await measure(deps.threads));
  const result: MemoryBandwidth = {
    bytesPerSecond,
    threads: deps.threads,
    source: "measured",
    key: deps.key,
  };
  deps.logger.info({ gigabytesPerSecond: round(bytesPerSecond / 1e9, 2) }, "memory bandwidth measured");
  await stateFile.write({ ...cache, [deps.key]: result });
  return result;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
