import { pino } from "pino";
import pinoPretty from "pino-pretty";
import type { AppConfig } from "../config/app-config.js";
import { toEdgeError } from "../errors.js";
import { createLogger, type Logger } from "../logging/logger.js";
import { resolveModelFile } from "../model/model-store.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";
import { createProgressReporter } from "./progress.js";

export const TINYLLAMA_REPOSITORY = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF";
/** Used while runtime.quantization is "auto", until the hardware plan chooses. */
export const FALLBACK_QUANTIZATION = "Q4_K_M";

/** `Q4_0` → `hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama-1.1b-chat-v1.0.Q4_0.gguf`. */
export function tinyLlamaUri(quantization: string): string {
  return `hf:${TINYLLAMA_REPOSITORY}/tinyllama-1.1b-chat-v1.0.${quantization.toUpperCase()}.gguf`;
}

function defaultUriOf(config: AppConfig): string | null {
  const wanted = config.runtime.quantization.trim();
  if (wanted === "" || wanted === "auto") return tinyLlamaUri(FALLBACK_QUANTIZATION);
  return /^[A-Za-z0-9_]+$/.test(wanted) ? tinyLlamaUri(wanted) : null;
}

/** Logs go to stderr so that stdout carries only the model path: `MODEL=$(tinyllama-edge pull)`. */
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

/** `tinyllama-edge pull`: puts the configured model file in place (downloading it if needed) and prints its path. */
export const pull: Command = async (ctx) => {
  const loaded = loadCommandConfig(ctx.argv, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  const defaultUri = defaultUriOf(config);
  if (defaultUri === null) {
    process.stderr.write(
      `tinyllama-edge pull: runtime.quantization ${JSON.stringify(config.runtime.quantization)} is not a quantization name (e.g. Q4_K_M, Q8_0, auto)\n`,
    );
    return 2;
  }
  const logger = createPullLogger(config, ctx.interactive);
  try {
    const { path } = await resolveModelFile({
      model: config.model,
      defaultUri,
      logger,
      progress: createProgressReporter({ interactive: ctx.interactive, logger }),
      signal: ctx.signal,
      env: ctx.env,
    });
    process.stdout.write(`${path}\n`);
    return 0;
  } catch (err) {
    const error = toEdgeError(err);
    process.stderr.write(`tinyllama-edge pull: ${error.message}\n`);
    if (ctx.signal.aborted) return 130;
    return error.code === "config_invalid" ? 2 : 1;
  }
};
