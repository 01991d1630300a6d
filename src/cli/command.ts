/** Every CLI command is a module exporting one of these; main.ts owns argv, signals and the exit code. */
export interface CommandContext {
  /** Arguments after the command name. */
  argv: string[];
  /** Environment, passed in so tests can drive commands without touching process.env. */
  env: NodeJS.ProcessEnv;
  /** True when stdout is a terminal (progress bars, pretty logs). */
  interactive: boolean;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

/** Resolves with the process exit code. */
export type Command = (context: CommandContext) => Promise<number>;
