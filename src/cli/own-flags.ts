import { type ParseArgsConfig, parseArgs } from "node:util";
import { schemaLeaves } from "../config/load-config.js";
import { didYouMean } from "../util/closest-name.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** A mistake on the command line: printed in one line with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface SplitOwnFlagsOptions {
  /** Whether configuration flags (`--mqtt.url x`, `--config PATH`) are accepted (default true). */
  configKeys?: boolean;
}

/** The parsed own flags, named so the declaration output can refer to it. */
export type OwnFlagValues<O extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>["values"];

/**
 * Splits a command's own flags from configuration flags (`--mqtt.url x`), which go to loadConfig.
 * Positionals are returned too. A flag that is neither throws a UsageError naming the closest flag.
 */
export function splitOwnFlags<O extends Options>(
  argv: string[],
  options: O,
  settings: SplitOwnFlagsOptions = {},
): { values: OwnFlagValues<O>; configArgs: string[]; positionals: string[] } {
  const acceptsConfig = settings.configKeys ?? true;
  const configNames = acceptsConfig ? ["config", ...schemaLeaves().map(([key]) => key)] : [];
  const own: string[] = [];
  const rest: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const name = arg.replace(/^--?/, "").split("=")[0]!;
    const spec = options[name] ?? Object.values(options).find((o) => o.short === name);
    if (!spec) {
      // Dotted names are configuration keys: loadConfig lists every unknown one with the closest key.
      if (!configNames.includes(name) && !(acceptsConfig && name.includes("."))) {
        const candidates = [...Object.keys(options), ...configNames];
        throw new UsageError(
          `unknown option ${arg.split("=")[0]}${didYouMean(name, candidates, (n) => `--${n}`)}`,
        );
      }
      rest.push(arg);
      if (!arg.includes("=") && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--"))
        rest.push(argv[++i]!);
      continue;
    }
    own.push(arg);
    if (spec.type === "string" && !arg.includes("=")) {
      const value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      own.push(value);
      i++;
    }
  }
  try {
    const { values } = parseArgs({ args: own, options, strict: true, allowPositionals: false });
    return { values, configArgs: rest, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Prints a command-line mistake in two lines and gives exit code 2. */
export function reportUsageError(command: string, err: unknown): number {
  process.stderr.write(
    `tinyllama-edge ${command}: ${(err as Error).message}\nSee: tinyllama-edge ${command} --help\n`,
  );
  return 2;
}

/** The closing lines of every command's --help: configuration flags are accepted too. */
export const CONFIG_FLAGS_HELP = `  --config PATH       the configuration file
  --<key> VALUE       any configuration key, e.g. --mqtt.url mqtt://host:1883 (see docs/configuration.md)
  -h, --help          this help`;

export type CommandLine<O extends Options> =
  | { ok: true; values: ReturnType<typeof splitOwnFlags<O>>["values"]; configArgs: string[] }
  | { ok: false; exitCode: number };

/**
 * A command without positionals: its own flags and configuration flags; `--help` prints `usage` and a
 * mistake is reported in two lines (exit code 2). `ok: false` carries the exit code to return.
 */
export function readCommandLine<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  usage: string,
): CommandLine<O> {
  let parsed: ReturnType<typeof splitOwnFlags<O>>;
  try {
    parsed = splitOwnFlags(argv, options);
    if (parsed.positionals.length > 0)
      throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  } catch (err) {
    return { ok: false, exitCode: reportUsageError(command, err) };
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    return { ok: false, exitCode: 0 };
  }
  return { ok: true, values: parsed.values, configArgs: parsed.configArgs };
}
