import { hostname } from "node:os";
import { redactConfig } from "../config/load-config.js";
import { createDaemon } from "../daemon.js";
import { isEdgeError } from "../errors.js";
import { createLogger } from "../logging/logger.js";
import { nodeIdFromHostname } from "../mqtt/topics.js";
import { packageVersion } from "../version.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";
import { EXIT_OK, exitCodeOf } from "./exit-codes.js";
import { onlineHint } from "./online-hint.js";
import { CONFIG_FLAGS_HELP, readCommandLine } from "./own-flags.js";
import { describeStartFailure, isUserMistake } from "./start-failure.js";

const USAGE = `usage: tinyllama-edge start [options]

Runs the daemon: detects the hardware, plans the runtime, loads (downloading when missing) the
model and serves it over MQTT until SIGTERM or Ctrl-C.

${CONFIG_FLAGS_HELP}

Exit codes: 0 stopped cleanly, 1 failure, 2 invalid configuration or usage (a missing or broken
model file included), 3 the model does not fit this device.`;

const OPTIONS = { help: { type: "boolean", short: "h" } } as const;

/** `tinyllama-edge start`: runs the daemon until SIGTERM/SIGINT. */
export const start: Command = async (ctx) => {
  const parsed = readCommandLine("start", ctx.argv, OPTIONS, USAGE);
  if (!parsed.ok) return parsed.exitCode;
  const loaded = loadCommandConfig(parsed.configArgs, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config, configPath, setKeys } = loaded;
  const pretty = config.log.pretty === "always" || (config.log.pretty === "auto" && ctx.interactive);
  const logger = createLogger({ level: config.log.level, pretty });
  logger.info({ version: packageVersion(), configPath }, "starting tinyllama-edge");
  // The whole configuration is long; it is there for whoever asks for debug logs.
  logger.debug({ config: redactConfig(config) }, "configuration");
  if (!ctx.env.UV_THREADPOOL_SIZE) {
    logger.info(
      "UV_THREADPOOL_SIZE is not set: with 1 (as the service and npm start set it) generation is faster",
    );
  }

  const daemon = createDaemon({
    config,
    logger,
    env: ctx.env,
    hostname: hostname(),
    interactive: ctx.interactive,
    configuredKeys: setKeys,
  });
  const stopRequested = new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  const failed = daemon.failed.then((err) => {
    throw err;
  });
  failed.catch(() => undefined);
  try {
    await Promise.race([daemon.start(ctx.signal), failed]);
  } catch (err) {
    if (ctx.signal.aborted) return EXIT_OK;
    await daemon.stop();
    if (isUserMistake(err)) {
      // One or two lines with the fix; a stack trace would only bury it.
      logger.error({ code: err.code }, err.message);
      logger.flush?.();
      process.stderr.write(`${describeStartFailure(err, config).join("\n")}\n`);
    } else {
      logger.fatal({ err, code: isEdgeError(err) ? err.code : "internal" }, "start failed");
    }
    return exitCodeOf(err);
  }
  if (ctx.interactive) {
    const hint = onlineHint({
      baseTopic: config.mqtt.baseTopic,
      nodeId: config.node.id || nodeIdFromHostname(hostname()),
      brokerUrl: config.mqtt.url,
      command: ctx.env.NODE_ENV === "production" ? "tinyllama-edge" : "npx tinyllama-edge",
    });
    process.stderr.write(`${hint}\n`);
  }
  const failure = await Promise.race([stopRequested.then(() => null), daemon.failed]);
  if (failure) {
    // Restarting would not help (another daemon holds the node id): one line with the fix.
    logger.error({ code: failure.code }, failure.message);
    await daemon.stop();
    return exitCodeOf(failure);
  }
  // A stop that hangs must not keep a service from restarting: the deadline forces the exit.
  const deadline = setTimeout(() => {
    logger.fatal({ deadlineMs: config.shutdown.deadlineMs }, "graceful stop took too long, exiting");
    process.exit(1);
  }, config.shutdown.deadlineMs);
  deadline.unref();
  await daemon.stop();
  clearTimeout(deadline);
  return EXIT_OK;
};
