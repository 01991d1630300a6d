import { loadConfig } from "tinyllama-edge/config/load-config.js";
import { createLogger } from "tinyllama-edge/logging/logger.js";
import { nativeBuild } from "tinyllama-edge/runtime/native-build.js";
import { describe, expect, it } from "vitest";
import { TEST_MODEL_CACHE } from "../../../../test/helpers/models.js";
import { formatBenchTable } from "../../src/bench-table.js";
import { GOALS } from "../../src/goals.js";
import { runBench } from "../../src/run-bench.js";

const CACHE = TEST_MODEL_CACHE;
const DIFFERENCES = new Set(["ms difference", "bytes difference"]);

/** Measured on every machine with the built daemon; only the optional anchor may be n/a. */
const ALWAYS_MEASURED = [
  "engine.pp",
  "engine.tg",
  "engine.ttft",
  "daemon.tg",
  "daemon.tgReported",
  "daemon.tgSpread",
  "daemon.tgRatio",
  "paired.ratio",
  "paired.spread",
  "daemon.ttft",
  "daemon.ttftOverhead",
  "threads.1",
  "parallel.1",
  "parallel.2",
  "parallel.4",
  "parallel.ratio2",
  "parallel.ratio4",
  "parallel.3",
  "parallel.ratio3",
  "prefix.uncached",
  "prefix.cached",
  "prefix.ratio",
  ...[300, 1000].flatMap((n) => [
    `restart.cold${n}`,
    `restart.restarted${n}`,
    `restart.memory${n}`,
    `restart.ratio${n}`,
  ]),
  "memory.modelFile",
];
const LINUX_ONLY = ["memory.peakRss", "memory.rss", "memory.overModel"];
const ANCHOR = [
  "anchor.pp",
  "anchor.tg",
  "anchor.ppRatio",
  "anchor.tgRatio",
  ...[1, 2, 3, 4].map((n) => `anchor.batched${n}`),
  ...[2, 3, 4].flatMap((n) => [`anchor.batchedRatio${n}`, `parallel.vsLlama${n}`]),
];

/** Prebuilt against native: measured where `tinyllama-edge build` has made a native build. */
const BINARY = [
  ...["prebuilt", "native"].flatMap((binary) =>
    ["pp", "tg", "parallel4"].map((measure) => `binary.${binary}.${measure}`),
  ),
  ...["pp", "tg", "parallel4"].map((measure) => `binary.ratio.${measure}`),
];

describe("bench (quick, tiny synthetic model, built daemon)", () => {
  it("measures every figure or says why not, and judges every goal", { timeout: 240_000 }, async () => {
    const { config } = loadConfig({ argv: [], env: {}, defaultConfigPath: "/nonexistent/config.json" });
    const report = await runBench({
      options: {
        synthetic: "tiny",
        cacheDir: CACHE,
        jsonPath: null,
        runs: undefined,
        quick: true,
        // One thread: the figures' values do not matter here, and one thread stays quick on a
        // shared 2-core machine where two would wait on each other.
        threads: 1,
        llamaBench: null,
      },
      config,
      logger: createLogger({ level: "silent", pretty: false }),
      env: {},
      interactive: false,
      signal: new AbortController().signal,
    });

    for (const [id, figure] of Object.entries(report.figures)) {
      if (figure.value === null) {
        expect(figure.reason, id).toMatch(/\S/);
        continue;
      }
      expect(Number.isFinite(figure.value), id).toBe(true);
      if (!DIFFERENCES.has(figure.unit)) expect(figure.value, id).toBeGreaterThan(0);
    }
    const expected = [...ALWAYS_MEASURED, ...LINUX_ONLY, ...ANCHOR];
    expect(Object.keys(report.figures)).toEqual(expect.arrayContaining(expected));
    const measuredHere = [...ALWAYS_MEASURED, ...(process.platform === "linux" ? LINUX_ONLY : [])];
    for (const id of measuredHere) expect(report.figures[id]?.value, id).not.toBeNull();
    for (const id of ANCHOR)
      expect(report.figures[id]).toMatchObject({ value: null, reason: expect.any(String) });
    for (const id of BINARY) {
      if (nativeBuild().complete) expect(report.figures[id]?.value, id).not.toBeNull();
      else
        expect(report.figures[id], id).toMatchObject({
          value: null,
          reason: expect.stringMatching(/tinyllama-edge build/),
        });
    }
    const threadIds = Object.keys(report.figures).filter((id) => id.startsWith("threads."));
    expect(threadIds).toContain(`threads.${report.threads}`);

    expect(report.goals).toHaveLength(GOALS.length);
    for (const goal of report.goals) expect(["met", "missed", "n/a"]).toContain(goal.status);
    expect(report.machine.physicalCores).toBeGreaterThan(0);
    expect(report.nodeLlamaCpp.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.model.fileBytes).toBeGreaterThan(0);
    expect(report.broker?.kind).toMatch(/mosquitto|aedes/);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);

    const table = formatBenchTable(report);
    for (const figure of Object.values(report.figures)) expect(table).toContain(figure.label);
  });
});
