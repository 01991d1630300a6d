import { type ParseArgsConfig, parseArgs } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Splits a command's own flags from configuration flags (`--mqtt.url x`), which go to loadConfig.
 * Positionals are returned too; an own flag given wrongly throws with a message for the user.
 */
export function splitOwnFlags<O extends Options>(argv: string[], options: O) {
  const own: string[] = [];
  const rest: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-")) {
      positionals.push(arg);
      continue;
    }
    const name = arg.replace(/^--?/, "").split("=")[0]!;
    const spec = options[name] ?? Object.values(options).find((o) => o.short === name);
    if (!spec) {
      rest.push(arg);
      if (!arg.includes("=") && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--"))
        rest.push(argv[++i]!);
      continue;
    }
    own.push(arg);
    if (spec.type === "string" && !arg.includes("=") && argv[i + 1] !== undefined) own.push(argv[++i]!);
  }
  const { values } = parseArgs({ args: own, options, strict: true, allowPositionals: false });
  return { values, configArgs: rest, positionals };
}
