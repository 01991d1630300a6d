import { writeFile } from "node:fs/promises";
import { pino } from "pino";
import type { Command } from "tinyllama-edge/cli/command.js";
import { loadCommandConfig } from "tinyllama-edge/cli/config-problems.js";
import { createLogger } from "tinyllama-edge/logging/logger.js";
import { BENCH_USAGE, parseBenchArgs } from "../bench-options.js";
import { formatBenchTable } from "../bench-table.js";
import { runBench } from "../run-bench.js";

/**
 * `tinyllama-edge bench`: the in-process engine against the built daemon over MQTT, on the same
 * model and threads. The table goes to stdout; progress and logs to stderr.
 */
export const bench: Command = async (ctx) => {
  const parsed = parseBenchArgs(ctx.argv);
  if (parsed.kind === "help") {
    process.stdout.write(`${BENCH_USAGE}\n`);
    return 0;
  }
  if (parsed.kind === "invalid") {
    process.stderr.write(`tinyllama-edge bench: ${parsed.reason}\n\n${BENCH_USAGE}\n`);
    return 2;
  }
  const loaded = loadCommandConfig(parsed.configArgs, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  // On a terminal the bar shows progress and only warnings are logged; otherwise a line per step.
  const logger = createLogger({
    level: ctx.interactive ? "warn" : "info",
    pretty: false,
    destination: pino.destination({ dest: 2, sync: true }),
  });
  try {
    const report = await runBench({
      options: parsed.options,
      config,
      logger,
      env: ctx.env,
      interactive: ctx.interactive,
      signal: ctx.signal,
    });
    process.stdout.write(`${formatBenchTable(report)}\n`);
    if (parsed.options.jsonPath !== null) {
      await writeFile(parsed.options.jsonPath, `${JSON.stringify(report, null, 2)}\n`);
      process.stderr.write(`figures written to ${parsed.options.jsonPath}\n`);
    }
    return 0;
  } catch (err) {
    if (ctx.signal.aborted) {
      process.stderr.write("\nbench cancelled\n");
      return 130;
    }
    process.stderr.write(`\ntinyllama-edge bench: ${(err as Error).message}\n`);
    return 1;
  }
};
