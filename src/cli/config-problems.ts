import type { AppConfig } from "../config/app-config.js";
import { defaultConfigPath } from "../config/config-path.js";
import { loadConfig } from "../config/load-config.js";
import { isEdgeError } from "../errors.js";

/** Prints every configuration problem to stderr and gives exit code 2; other errors give 1. */
export function printConfigProblems(err: unknown): number {
  if (isEdgeError(err) && err.code === "config_invalid") {
    process.stderr.write(`tinyllama-edge: ${err.message}\n`);
    return 2;
  }
  process.stderr.write(`tinyllama-edge: ${(err as Error).message ?? String(err)}\n`);
  return 1;
}

export type CommandConfig =
  | { ok: true; config: AppConfig; configPath: string | null }
  | { ok: false; exitCode: number };

/** A command's configuration from its flags and the environment; on problems they are printed. */
export function loadCommandConfig(argv: string[], env: NodeJS.ProcessEnv): CommandConfig {
  try {
    return { ok: true, ...loadConfig({ argv, env, defaultConfigPath: defaultConfigPath(env) }) };
  } catch (err) {
    return { ok: false, exitCode: printConfigProblems(err) };
  }
}
