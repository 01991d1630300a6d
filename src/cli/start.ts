import { hostname } from "node:os";
import { redactConfig } from "../config/load-config.js";
import { createDaemon } from "../daemon.js";
import { isEdgeError } from "../errors.js";
import { createLogger } from "../logging/logger.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";

/** `tinyllama-edge start`: runs the daemon until SIGTERM/SIGINT. */
export const start: Command = async (ctx) => {
  const loaded = loadCommandConfig(ctx.argv, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config, configPath } = loaded;
  const pretty = config.log.pretty === "always" || (config.log.pretty === "auto" && ctx.interactive);
  const logger = createLogger({ level: config.log.level, pretty });
  logger.info({ configPath, config: redactConfig(config) }, "starting tinyllama-edge");
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
  });
  const stopRequested = new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    ctx.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  try {
    await daemon.start(ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted) return 0;
    const code = isEdgeError(err) ? err.code : "internal";
    logger.fatal({ err, code }, "start failed");
    return code === "config_invalid" ? 2 : code === "model_does_not_fit" ? 3 : 1;
  }
  await stopRequested;
  // A stop that hangs must not keep a service from restarting: the deadline forces the exit.
  const deadline = setTimeout(() => {
    logger.fatal({ deadlineMs: config.shutdown.deadlineMs }, "graceful stop took too long, exiting");
    process.exit(1);
  }, config.shutdown.deadlineMs);
  deadline.unref();
  await daemon.stop();
  clearTimeout(deadline);
  return 0;
};
