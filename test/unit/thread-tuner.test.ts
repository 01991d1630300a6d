import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { pickThreads, threadCandidates, tuneThreads } from "../../src/inference/thread-tuner.js";

const logger = pino({ level: "silent" });

describe("thread tuning", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("tries n, n-1, n/2 and 1", () => {
    expect(threadCandidates(4)).toEqual([4, 3, 2, 1]);
    expect(threadCandidates(8)).toEqual([8, 7, 4, 1]);
    expect(threadCandidates(2)).toEqual([2, 1]);
    expect(threadCandidates(1)).toEqual([1]);
  });

  it("keeps the fewest threads within 3% of the fastest", () => {
    expect(
      pickThreads([
        { threads: 4, tokensPerSecond: 10 },
        { threads: 2, tokensPerSecond: 9.8 },
      ]),
    ).toBe(2);
    expect(
      pickThreads([
        { threads: 4, tokensPerSecond: 10 },
        { threads: 2, tokensPerSecond: 9 },
      ]),
    ).toBe(4);
    expect(
      pickThreads([
        { threads: 2, tokensPerSecond: 80 },
        { threads: 1, tokensPerSecond: 1000 },
      ]),
    ).toBe(1);
  });

  it("measures each candidate, applies the fastest and caches it per key", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "tle-tune-"));
    dirs.push(stateDir);
    const speed: Record<number, number> = { 4: 10, 3: 14, 2: 12, 1: 5 };
    let current = 0;
    const applied: number[] = [];
    const deps = {
      logger,
      stateDir,
      key: "board|model",
      maxThreads: 4,
      setThreads: (n: number) => {
        current = n;
        applied.push(n);
      },
      measure: async () => speed[current]!,
    };
    const first = await tuneThreads(deps);
    expect(first).toMatchObject({ threads: 3, source: "measured" });
    expect(first.trials.map((t) => t.threads)).toEqual([4, 3, 2, 1]);
    expect(current).toBe(3);
    const cache = JSON.parse(readFileSync(join(stateDir, "thread-tuning.json"), "utf8"));
    expect(cache["board|model"].threads).toBe(3);

    let measured = 0;
    const second = await tuneThreads({ ...deps, measure: async () => ++measured });
    expect(second).toMatchObject({ threads: 3, source: "cached" });
    expect(measured).toBe(0);
    const other = await tuneThreads({ ...deps, key: "board|other-model" });
    expect(other.source).toBe("measured");
  });
});
