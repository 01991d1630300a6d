import type { AppConfig } from "../config/app-config.js";
import { defaultConfigPath } from "../config/config-path.js";
import { loadConfig } from "../config/load-config.js";
import { isEdgeError } from "../errors.js";
import { EXIT_FAILURE, EXIT_USAGE } from "./exit-codes.js";

/** Prints every configuration problem to stderr and gives exit code 2; other errors give 1. */
export function printConfigProblems(err: unknown): number {
  if (isEdgeError(err) && err.code === "config_invalid") {
    process.stderr.write(`tinyllama-edge: ${err.message}\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`tinyllama-edge: ${(err as Error).message ?? String(err)}\n`);
  return EXIT_FAILURE;
}

export type CommandConfig =
  | { ok: true; config: AppConfig; configPath: string | null; setKeys: ReadonlySet<string> }
  | { ok: false; exitCode: number };

/** A command's configuration from its flags and the environment; problems and warnings are printed. */
export function loadCommandConfig(argv: string[], env: NodeJS.ProcessEnv): CommandConfig {
  try {
    const { warnings, ...loaded } = loadConfig({ argv, env, defaultConfigPath: defaultConfigPath(env) });
    for (const warning of warnings) process.stderr.write(`tinyllama-edge: warning: ${warning}\n`);
    return { ok: true, ...loaded };
  } catch (err) {
    return { ok: false, exitCode: printConfigProblems(err) };
  }
}
