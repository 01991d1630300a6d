import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { describeCeiling, generationCeiling, shareOfCeiling } from "../../src/hardware/generation-ceiling.js";
import {
  measureReadBandwidth,
  memoryBandwidth,
  readerBufferBytes,
} from "../../src/hardware/memory-bandwidth.js";

describe("the generation ceiling", () => {
  it("is bandwidth over bytes per token: a Pi 5 at 11.4 GB/s tops out near 18 tokens/s on a 0.64 GB Q4_0", () => {
    const ceiling = generationCeiling({ bytesPerSecond: 11.4e9, source: "measured" }, 640_000_000, 16.6);
    expect(ceiling).toEqual({
      bandwidth_gb_s: 11.4,
      bandwidth_source: "measured",
      bytes_per_token: 640_000_000,
      tokens_per_second: 17.8,
      measured_tokens_per_second: 16.6,
      share: 0.93,
    });
    expect(describeCeiling(ceiling)).toBe(
      "17.8 tokens/s (11.4 GB/s measured over 640 MB per token); 93% reached (16.6 tokens/s)",
    );
    // Q8_0 reads nearly twice the bytes: about 10 tokens/s.
    expect(
      generationCeiling({ bytesPerSecond: 11.4e9, source: "cached" }, 1_170_000_000).tokens_per_second,
    ).toBe(9.7);
  });

  it("has no share until a speed was measured", () => {
    expect(generationCeiling({ bytesPerSecond: 11.4e9, source: "measured" }, 640_000_000).share).toBeNull();
    expect(shareOfCeiling(null, 17.8)).toBeNull();
    expect(shareOfCeiling(0, 17.8)).toBeNull();
    expect(shareOfCeiling(9, 0)).toBeNull();
  });
});

describe("memory bandwidth", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it("is measured once per hardware and then read from the state directory", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "tle-bandwidth-"));
    dirs.push(stateDir);
    const logger = pino({ level: "silent" });
    const measured: number[] = [];
    const measure = async (threads: number) => {
      measured.push(threads);
      return 11.4e9;
    };
    const first = await memoryBandwidth({ logger, stateDir, key: "pi5|4", threads: 4, measure });
    expect(first).toMatchObject({ bytesPerSecond: 11.4e9, threads: 4, source: "measured" });
    const again = await memoryBandwidth({ logger, stateDir, key: "pi5|4", threads: 4, measure });
    expect(again).toMatchObject({ bytesPerSecond: 11.4e9, source: "cached" });
    await memoryBandwidth({ logger, stateDir, key: "pi5|2", threads: 2, measure });
    expect(measured).toEqual([4, 2]);
    const cache = JSON.parse(await readFile(join(stateDir, "memory-bandwidth.json"), "utf8"));
    expect(Object.keys(cache).sort()).toEqual(["pi5|2", "pi5|4"]);
  });

  it.each([
    ["null", "null"],
    ["not JSON", "{"],
    ["a malformed entry", JSON.stringify({ "pi5|4": { bytesPerSecond: "fast" } })],
  ])("discards a state file holding %s with a warning and measures again", async (_what, content) => {
    const stateDir = await mkdtemp(join(tmpdir(), "tle-bandwidth-"));
    dirs.push(stateDir);
    await writeFile(join(stateDir, "memory-bandwidth.json"), content);
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const result = await memoryBandwidth({
      logger,
      stateDir,
      key: "pi5|4",
      threads: 4,
      measure: async () => 11.4e9,
    });
    expect(result).toMatchObject({ bytesPerSecond: 11.4e9, source: "measured" });
    expect(warnings.join("\n")).toMatch(/memory bandwidth state .*discarded/);
  });

  it("sizes the read buffers to the board's RAM: small boards are not pushed towards swap", () => {
    const MB = 1024 * 1024;
    expect(readerBufferBytes(512 * MB)).toBe(8 * MB); // Pi Zero 2 W
    expect(readerBufferBytes(2048 * MB)).toBe(32 * MB);
    expect(readerBufferBytes(8192 * MB)).toBe(64 * MB); // Pi 5 8 GB and up
    expect(readerBufferBytes(256 * MB)).toBe(8 * MB);
  });

  it("reads real memory on this machine, faster with two readers than a trickle", async () => {
    const bytesPerSecond = await measureReadBandwidth({
      threads: 1,
      bufferBytes: 16 << 20,
      rounds: 2,
      roundMs: 30,
    });
    // Any machine that runs the tests streams well over 100 MB/s; a broken reader reports 0.
    expect(bytesPerSecond).toBeGreaterThan(1e8);
  });
});
