import type { LlamaModel } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { batchedBenchArgs, parallelVsLlama, parseBatchedBenchTable } from "../../src/batched-bench-anchor.js";
import { parseBenchArgs } from "../../src/bench-options.js";
import { buildBenchPrompts } from "../../src/bench-prompts.js";
import { alignColumns, formatValue } from "../../src/bench-table.js";
import { daemonArgs, summarizeDaemonLog } from "../../src/daemon-child.js";
import { deriveFigures, orderFigures } from "../../src/derived-figures.js";
import { fromSamples, measured, missing, ratio, spreadOf } from "../../src/figures.js";
import { GOALS, judgeGoals, MB } from "../../src/goals.js";
import {
  failureOf,
  llamaBenchArgs,
  loadModeArgs,
  parseLlamaBenchJson,
} from "../../src/llama-bench-anchor.js";
import { aggregateTokensPerSecond } from "../../src/parallel-bench.js";
import { parseProcStatus } from "../../src/process-memory.js";
import { sweepCandidates } from "../../src/thread-sweep.js";
import { rateOf } from "../../src/timed-completion.js";

const TG = { label: "tg", unit: "tokens/s" } as const;

describe("bench options", () => {
  it("separates its own flags from configuration flags", () => {
    const parsed = parseBenchArgs(["--synthetic", "tiny", "--quick", "--runs", "3", "--model.dir", "/m"]);
    expect(parsed).toMatchObject({
      kind: "run",
      options: { synthetic: "tiny", quick: true, runs: 3, threads: undefined, llamaBench: null },
      configArgs: ["--model.dir", "/m"],
    });
  });

  it("refuses unknown synthetic models and bad counts", () => {
    expect(parseBenchArgs(["--synthetic", "llama-70b"])).toMatchObject({ kind: "invalid" });
    expect(parseBenchArgs(["--runs", "0"])).toMatchObject({ kind: "invalid" });
    expect(parseBenchArgs(["--threads", "1.5"])).toMatchObject({ kind: "invalid" });
    expect(parseBenchArgs(["-h"])).toEqual({ kind: "help" });
  });
});

describe("figures", () => {
  it("reports n/a with a reason instead of a number that was not measured", () => {
    expect(fromSamples(TG, [], "nothing ran")).toEqual({ ...TG, value: null, reason: "nothing ran" });
    expect(measured(TG, Number.NaN).value).toBeNull();
    const a = measured(TG, 10);
    expect(ratio({ label: "r", unit: "ratio" }, a, missing(TG, "daemon down"))).toMatchObject({
      value: null,
      reason: "daemon down",
    });
    expect(ratio({ label: "r", unit: "ratio" }, a, measured(TG, 4)).value).toBe(2.5);
    expect(spreadOf({ label: "s", unit: "%" }, fromSamples(TG, [10], "")).value).toBeNull();
    expect(spreadOf({ label: "s", unit: "%" }, fromSamples(TG, [9, 10, 11], "")).value).toBeCloseTo(20);
  });

  it("derives ratios and differences, n/a where an input is", () => {
    const derived = deriveFigures(
      {
        "engine.tg": measured(TG, 20),
        "daemon.tg": measured(TG, 19),
        "engine.ttft": measured({ label: "e", unit: "ms" }, 100),
        "daemon.ttft": measured({ label: "d", unit: "ms" }, 112),
        "memory.peakRss": measured({ label: "rss", unit: "bytes" }, 800 * MB),
      },
      650 * MB,
    );
    expect(derived["daemon.tgRatio"]?.value).toBeCloseTo(0.95);
    expect(derived["daemon.ttftOverhead"]?.value).toBeCloseTo(12);
    expect(derived["memory.overModel"]?.value).toBe(150 * MB);
    expect(derived["prefix.ratio"]?.value).toBeNull();
    expect(derived["anchor.tgRatio"]).toMatchObject({ value: null, reason: expect.stringMatching(/\S/) });
  });

  it("prints the generation ceiling and the share of it reached, n/a without a bandwidth", () => {
    const figures = { "engine.tg": measured(TG, 16.6), "daemon.tg": measured(TG, 15.1) };
    // A Pi 5's 11.4 GB/s over a 0.64 GB Q4_0: about 17.8 tokens/s.
    const derived = deriveFigures(figures, 640_000_000, 11.4e9);
    expect(derived["ceiling.tokensPerSecond"]?.value).toBeCloseTo(17.81, 2);
    expect(derived["ceiling.engineShare"]?.value).toBeCloseTo(0.93, 2);
    expect(derived["ceiling.daemonShare"]?.value).toBeCloseTo(0.85, 2);
    expect(deriveFigures(figures, 640_000_000)["ceiling.engineShare"]?.value).toBeNull();
  });

  it("orders figures by section", () => {
    const figure = measured(TG, 1);
    const ordered = orderFigures({
      "memory.rss": figure,
      "daemon.ttft": figure,
      "engine.tg": figure,
      "daemon.tgRatio": figure,
      "daemon.tg": figure,
    });
    expect(Object.keys(ordered)).toEqual([
      "engine.tg",
      "daemon.tg",
      "daemon.tgRatio",
      "daemon.ttft",
      "memory.rss",
    ]);
  });
});

describe("goals", () => {
  it("judges each goal on its figure: met, missed, or n/a with the figure's reason", () => {
    const results = judgeGoals({
      "paired.ratio": measured({ label: "r", unit: "ratio" }, 0.98),
      "daemon.ttftOverhead": measured({ label: "o", unit: "ms difference" }, 22),
      "paired.spread": missing({ label: "s", unit: "%" }, "a spread needs at least 2 runs"),
    });
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    expect(byId["daemon-tg"]?.status).toBe("met");
    expect(byId["ttft-overhead"]?.status).toBe("missed");
    expect(byId["daemon-tg-spread"]).toMatchObject({
      status: "n/a",
      reason: "a spread needs at least 2 runs",
    });
    expect(byId["peak-rss"]?.status).toBe("n/a");
    expect(results).toHaveLength(GOALS.length);
  });
});

describe("measurement helpers", () => {
  it("rates tokens after the first over first to last", () => {
    expect(rateOf(129, 1000, 9000)).toBe(16);
    expect(rateOf(1, 1000, 1000)).toBeNull();
    expect(rateOf(5, undefined, 10)).toBeNull();
  });

  it("aggregates all tokens over first send to last final", () => {
    const run = (sentAt: number, finalAt: number, tokens: number) =>
      ({ sentAt, finalAt, final: { usage: { completion_tokens: tokens } } }) as Parameters<
        typeof aggregateTokensPerSecond
      >[0][number];
    expect(aggregateTokensPerSecond([run(0, 4000, 64), run(10, 3000, 64)])).toBe(32);
    expect(aggregateTokensPerSecond([])).toBeNull();
  });

  it("sweeps every thread count on small machines, n, n-1 and n/2 on big ones", () => {
    expect(sweepCandidates(2, 2)).toEqual([1, 2]);
    expect(sweepCandidates(4, 4)).toEqual([1, 2, 3, 4]);
    expect(sweepCandidates(8, 16)).toEqual([1, 4, 7, 8, 16]);
    expect(sweepCandidates(3, 2)).toEqual([1, 2, 3]);
  });

  it("reads VmHWM and VmRSS from /proc/<pid>/status", () => {
    const status = "Name:\tnode\nVmPeak:\t 2000000 kB\nVmHWM:\t  812000 kB\nVmRSS:\t  790000 kB\n";
    expect(parseProcStatus(status)).toEqual({ peakRssBytes: 812000 * 1024, rssBytes: 790000 * 1024 });
    expect(parseProcStatus("Name:\tnode\n")).toBeNull();
  });

  it("starts the daemon with the bench's threads, sequences and context, and no discovery", () => {
    const args = daemonArgs({
      brokerUrl: "mqtt://127.0.0.1:40000",
      protocolVersion: 5,
      baseTopic: "home-llm",
      nodeId: "bench-1",
      modelPath: "/m.gguf",
      threads: 2,
      parallelSequences: 4,
      contextSize: 2048,
      extraFlags: ["--runtime.gpu", "off"],
    });
    const flag = (name: string) => args[args.indexOf(name) + 1];
    expect(args[1]).toBe("start");
    expect(flag("--runtime.threads")).toBe("2");
    expect(flag("--runtime.parallelSequences")).toBe("4");
    expect(flag("--runtime.contextSize")).toBe("2048");
    expect(flag("--homeassistant.enabled")).toBe("false");
    expect(flag("--runtime.gpu")).toBe("off");
    expect(flag("--mqtt.baseTopic")).toBe("home-llm");
  });

  it("explains a failed daemon by its last error line", () => {
    const lines = [
      '{"level":30,"msg":"starting"}',
      '{"level":60,"msg":"start failed","err":{"message":"the model does not fit"}}',
      '{"level":30,"msg":"stopped"}',
    ];
    expect(summarizeDaemonLog(lines)).toBe("start failed: the model does not fit");
    expect(summarizeDaemonLog(["plain text"])).toBe("plain text");
  });
});

describe("bench prompts", () => {
  it("gives consecutive questions nothing in common before their end, at equal length", () => {
    const words = (text: string) => text.split(" ").map((_, i) => i);
    const model = { tokens: { bos: 1 }, tokenize: words } as unknown as LlamaModel;
    const prompts = buildBenchPrompts(model, {
      promptTokens: 8,
      systemPromptTokens: 8,
      restartPromptTokens: [8],
    });
    for (let run = 0; run < 8; run++) {
      const [a, b] = [prompts.question(run), prompts.question(run + 1)];
      expect(a[0]).not.toBe(b[0]);
      expect(a.length).toBe(b.length);
    }
  });
});

describe("llama-bench anchor", () => {
  const output = JSON.stringify([
    { n_prompt: 256, n_gen: 0, avg_ts: 60.5, samples_ts: [60, 61, 60.5] },
    { n_prompt: 0, n_gen: 128, avg_ts: 17.4, samples_ts: [17.2, 17.4, 17.6] },
  ]);

  it("reads pp and tg from its JSON output", () => {
    const figures = parseLlamaBenchJson(`build: 1234\n${output}`);
    expect(figures["anchor.pp"]?.value).toBe(60.5);
    expect(figures["anchor.tg"]?.value).toBe(17.4);
  });

  it("says why when the output is not its JSON", () => {
    expect(parseLlamaBenchJson("error: unknown model")["anchor.tg"]).toMatchObject({ value: null });
    expect(parseLlamaBenchJson("[]")["anchor.pp"]).toMatchObject({ value: null });
  });

  it("runs on the same file, threads, sizes and mmap setting", () => {
    const args = llamaBenchArgs({
      binary: "/bin/llama-bench",
      modelPath: "/m.gguf",
      threads: 2,
      promptTokens: 256,
      generateTokens: 128,
      runs: 5,
      useMmap: false,
      gpuLayers: 0,
      signal: new AbortController().signal,
    });
    expect(args.join(" ")).toBe("-m /m.gguf -t 2 -p 256 -n 128 -r 5 -mmp 0 -ngl 0 -o json");
  });

  it("says mmap the way its llama-bench takes it: -lm since llama.cpp v0.5.0, -mmp before", () => {
    const v050Help = "  -lm, --load-mode <auto|none|mmap|mlock|mmap+mlock|dio> (default: auto)";
    const olderHelp = "  -mmp, --mmap <0|1>                        (default: 1)";
    expect(loadModeArgs(v050Help, false)).toEqual(["-lm", "none"]);
    expect(loadModeArgs(v050Help, true)).toEqual(["-lm", "mmap"]);
    expect(loadModeArgs(olderHelp, false)).toEqual(["-mmp", "0"]);
  });

  it("reports the tool's own complaint when it fails", () => {
    const err = Object.assign(new Error("Command failed: llama-bench -mmp 0\nusage: …"), {
      stderr: "error: invalid parameter for argument: -mmp\nusage: llama-bench [options]\n",
    });
    expect(failureOf(err)).toBe("error: invalid parameter for argument: -mmp");
    expect(failureOf(new Error("spawn ENOENT"))).toBe("spawn ENOENT");
  });
});

describe("bench table", () => {
  it("prints each unit readably", () => {
    expect(formatValue(16.84, "tokens/s")).toBe("16.8 tok/s");
    expect(formatValue(-3.2, "ms difference")).toBe("-3.2 ms");
    expect(formatValue(812 * MB, "bytes")).toBe("812 MB");
    expect(formatValue(0.4 * MB, "bytes")).toBe("0.4 MB");
    expect(formatValue(264 * MB, "bytes difference")).toBe("+264 MB");
    expect(formatValue(0.974, "ratio")).toBe("0.97x");
  });

  it("aligns columns", () => {
    expect(
      alignColumns([
        ["a", "bb", "c"],
        ["ccc", "d", "e"],
      ]),
    ).toBe("a    bb  c\nccc  d   e");
  });
});

describe("llama-batched-bench anchor", () => {
  const TABLE = `
main: n_kv_max = 2048, n_batch = 256, n_ubatch = 256, flash_attn = 0, is_pp_shared = 0, n_gpu_layers = 0, n_threads = 2, n_threads_batch = 2

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    16 |     64 |    1 |     80 |    0.061 |   262.30 |    0.997 |    64.20 |    1.058 |    75.61 |
|    16 |     64 |    2 |    160 |    0.118 |   271.19 |    1.709 |    74.90 |    1.827 |    87.57 |
|    16 |     64 |    4 |    320 |    0.240 |   266.67 |    1.659 |   154.30 |    1.899 |   168.51 |

llama_perf_context_print:        load time =     512.23 ms
`;

  it("reads generated tokens per second of the whole run (B x TG / T) per number of sequences", () => {
    const rates = [...parseBatchedBenchTable(TABLE)].map(([level, rate]) => [level, Number(rate.toFixed(2))]);
    expect(rates).toEqual([
      [1, 60.49],
      [2, 70.06],
      [4, 134.81],
    ]);
    expect(parseBatchedBenchTable("no table here").size).toBe(0);
  });

  it("passes the levels, threads and token counts", () => {
    const args = batchedBenchArgs({
      llamaBench: "/opt/llama/llama-bench",
      modelPath: "/m.gguf",
      threads: 2,
      contextSize: 2048,
      batchSize: 256,
      promptTokens: 16,
      generateTokens: 64,
      levels: [1, 2, 3, 4],
      gpuLayers: 0,
      signal: new AbortController().signal,
    });
    expect(args.join(" ")).toBe(
      "-m /m.gguf -t 2 -tb 2 -c 2048 -b 256 -ub 256 -npp 16 -ntg 64 -npl 1,2,3,4 -ngl 0",
    );
  });

  it("compares the daemon's parallel ratio with llama.cpp's at each level", () => {
    const spec = { label: "x", unit: "ratio" } as const;
    const figures = parallelVsLlama(
      {
        "parallel.ratio2": measured(spec, 1.2),
        "parallel.ratio4": measured(spec, 2.2),
        "anchor.batchedRatio2": measured(spec, 1.0),
        "anchor.batchedRatio4": measured(spec, 2.4),
      },
      [1, 2, 3, 4],
    );
    expect(figures["parallel.vsLlama2"]?.value).toBeCloseTo(1.2);
    expect(figures["parallel.vsLlama4"]?.value).toBeCloseTo(2.2 / 2.4);
    expect(figures["parallel.vsLlama3"]?.value).toBeNull();
  });
});
