import { access } from "node:fs/promises";
import { pino } from "pino";
import pinoPretty from "pino-pretty";
import type { AppConfig } from "../config/app-config.js";
import { EdgeError } from "../errors.js";
import { detectCpu } from "../hardware/detect-hardware.js";
import { formatBytes } from "../hardware/format-bytes.js";
import { recordedBoardDeps } from "../hardware/recorded-board.js";
import { openLlama } from "../inference/open-llama.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { resolveModelFile } from "../model/model-store.js";
import { hostDetectionDeps } from "../runtime/host-detection.js";
import { type DevicePlan, planForDevice } from "../runtime/plan-for-device.js";
import { createProgressReporter } from "../util/progress.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";
import { EXIT_INTERRUPTED, EXIT_OK, exitCodeOf } from "./exit-codes.js";
import { CONFIG_FLAGS_HELP, readCommandLine } from "./own-flags.js";

const USAGE = `usage: tinyllama-edge pull [options]

Puts the model file \`start\` would load in place (downloading it, with progress, when missing) and
prints its path on stdout: MODEL=$(tinyllama-edge pull).

  --dry-run           name the file and whether it is there; download nothing
  --board DIR         plan for the board recorded in DIR instead of this machine
${CONFIG_FLAGS_HELP}`;

const OPTIONS = {
  "dry-run": { type: "boolean" },
  board: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Logs go to stderr so that stdout carries only the model path. */
function createPullLogger(config: AppConfig, interactive: boolean): Logger {
  const pretty = config.log.pretty === "always" || (config.log.pretty === "auto" && interactive);
  const destination = pretty
    ? pinoPretty({
        destination: 2,
        sync: true,
        colorize: true,
        translateTime: "SYS:HH:MM:ss.l",
        ignore: "pid",
      })
    : pino.destination({ dest: 2, sync: true });
  return createLogger({ level: config.log.level, pretty, destination });
}

/** The plan `start` would make here (node-llama-cpp is opened only to see the GPU), or for a recorded board. */
async function planHere(
  config: AppConfig,
  board: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<DevicePlan> {
  if (board !== undefined) return planForDevice(config, await recordedBoardDeps(board), env);
  const detection = hostDetectionDeps();
  const { physicalCores } = await detectCpu(detection);
  const llama = await openLlama({
    gpu: config.runtime.gpu === "off" ? false : config.runtime.gpu,
    maxThreads: physicalCores,
    onLog: () => {},
  });
  if (!llama)
    throw new EdgeError("model_unavailable", "node-llama-cpp has no usable binary for this machine");
  try {
    return await planForDevice(config, { ...detection, llama }, env);
  } finally {
    await llama.dispose();
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** `tinyllama-edge pull`: the same detect → plan → file step as `start`, then the download. */
export const pull: Command = async (ctx) => {
  const parsed = readCommandLine("pull", ctx.argv, OPTIONS, USAGE);
  if (!parsed.ok) return parsed.exitCode;
  const loaded = loadCommandConfig(parsed.configArgs, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  try {
    const { plan, modelFile } = await planHere(config, parsed.values.board, ctx.env);
    if (parsed.values["dry-run"]) {
      const there = await exists(modelFile.path);
      const size = plan.modelSizeBytes > 0 ? ` (${formatBytes(plan.modelSizeBytes)})` : "";
      process.stderr.write(
        there || modelFile.kind === "local"
          ? `${plan.quantization}: ${modelFile.path}${there ? " is in place" : " is missing"}\n`
          : `${plan.quantization}: would download ${modelFile.source.display}${size}\n`,
      );
      process.stdout.write(`${modelFile.path}\n`);
      return EXIT_OK;
    }
    const logger = createPullLogger(config, ctx.interactive);
    const { path } = await resolveModelFile({
      model: config.model,
      defaultUri: plan.modelUri ?? "",
      logger,
      progress: createProgressReporter({ interactive: ctx.interactive, logger }),
      signal: ctx.signal,
      env: ctx.env,
    });
    process.stdout.write(`${path}\n`);
    return EXIT_OK;
  } catch (err) {
    if (ctx.signal.aborted) return EXIT_INTERRUPTED;
    process.stderr.write(`tinyllama-edge pull: ${(err as Error).message}\n`);
    return exitCodeOf(err);
  }
};
