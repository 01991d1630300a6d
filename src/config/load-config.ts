import { existsSync, readFileSync } from "node:fs";
import convict from "convict";
import indexToPosition from "index-to-position";
import { EdgeError } from "../errors.js";
import { didYouMean } from "../util/closest-name.js";
import type { AppConfig } from "./app-config.js";
import { registerConfigFormats } from "./formats.js";
import { configSchema } from "./schema.js";

export const ENV_PREFIX = "TINYLLAMA_EDGE_";

export interface LoadConfigOptions {
  /** CLI arguments after the command name: `--config PATH` and `--some.key value` flags. */
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** Used when neither --config nor TINYLLAMA_EDGE_CONFIG names a file; a missing default file is fine. */
  defaultConfigPath: string;
}

export interface LoadedConfig {
  config: AppConfig;
  /** The file that was read, or null when only defaults, environment and flags apply. */
  configPath: string | null;
  /** Keys given a value by the file, the environment or a flag (the rest are defaults). */
  setKeys: ReadonlySet<string>;
  /** Not errors, but likely mistakes: e.g. a TINYLLAMA_EDGE_ variable that names no key. */
  warnings: string[];
}

interface SchemaLeaf {
  doc: string;
  format: unknown;
  default: unknown;
  sensitive?: boolean;
}

/** `mqtt.baseTopic` → `TINYLLAMA_EDGE_MQTT_BASE_TOPIC`. */
export function envNameOf(key: string): string {
  return (
    ENV_PREFIX +
    key
      .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
      .replace(/\./g, "_")
      .toUpperCase()
  );
}

function isLeaf(node: object): node is SchemaLeaf {
  return "doc" in node && "default" in node;
}

/** Every leaf of the schema with its dotted key, in declaration order. */
export function schemaLeaves(node: object = configSchema, prefix = ""): Array<[string, SchemaLeaf]> {
  return Object.entries(node).flatMap(([name, child]: [string, object]) => {
    const key = prefix ? `${prefix}.${name}` : name;
    return isLeaf(child) ? [[key, child] as [string, SchemaLeaf]] : schemaLeaves(child, key);
  });
}

/** Adds `env` and `arg` to every leaf so both follow the key path and cannot drift. */
function withEnvAndArgs(node: object, prefix = ""): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(node).map(([name, child]: [string, object]) => {
      const key = prefix ? `${prefix}.${name}` : name;
      return [name, isLeaf(child) ? { ...child, env: envNameOf(key), arg: key } : withEnvAndArgs(child, key)];
    }),
  );
}

interface SplitArgs {
  configPath: string | undefined;
  settingArgs: string[];
  settingKeys: string[];
  problems: string[];
}

/** Separates `--config` from setting flags, and reports flags that name no setting. */
function splitArgs(argv: string[], knownKeys: Set<string>): SplitArgs {
  // A key given twice takes its last value, as a later source overrides an earlier one.
  const settings = new Map<string, string>();
  const problems: string[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) {
      problems.push(`unexpected argument ${JSON.stringify(arg)}`);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let value = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) {
        problems.push(`--${name}: a value is required`);
        continue;
      }
      value = next;
      i++;
    }
    if (name === "config") configPath = value;
    else if (knownKeys.has(name)) settings.set(name, value);
    else problems.push(`unknown option --${name}${didYouMean(name, [...knownKeys], (key) => `--${key}`)}`);
  }
  const settingArgs = [...settings].map(([name, value]) => `--${name}=${value}`);
  return { configPath, settingArgs, settingKeys: [...settings.keys()], problems };
}

/** "at position 41" in JSON.parse's message, as line and column, so the mistake can be found. */
function describeJsonError(path: string, text: string, err: Error): string {
  const position = /at position (\d+)/.exec(err.message);
  const reason = err.message
    .replace(/\s*in JSON at position \d+.*$/s, "")
    .replace(/\s*\(line \d+ column \d+\)/, "");
  if (!position) return `${path}: not valid JSON: ${reason}`;
  const { line, column } = indexToPosition(text, Number(position[1]), { oneBased: true });
  return `${path}:${line}:${column}: not valid JSON: ${reason}`;
}

function readConfigFile(path: string): { value?: object; problem?: string } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return { problem: `${path}: cannot be read: ${(err as Error).message}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { problem: describeJsonError(path, text, err as Error) };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { problem: `${path}: the file must hold a JSON object` };
  }
  return { value: parsed };
}

/** Dotted keys of every value in a config file object (`{mqtt: {url}}` → `mqtt.url`). */
function fileKeys(value: object, prefix = ""): string[] {
  return Object.entries(value).flatMap(([name, child]) => {
    const key = prefix ? `${prefix}.${name}` : name;
    return typeof child === "object" && child !== null && !Array.isArray(child)
      ? fileKeys(child, key)
      : [key];
  });
}

/** convict's "configuration param 'x' not declared in the schema", in plain words with the closest key. */
function explainProblem(problem: string, keys: string[], configPath: string | null): string {
  const unknown = /^configuration param '(.+)' not declared in the schema$/.exec(problem);
  if (!unknown) return problem;
  const key = unknown[1]!;
  const where = configPath ? ` in ${configPath}` : "";
  return `${key}${where} is not a setting of tinyllama-edge${didYouMean(key, keys)} (every key: docs/configuration.md)`;
}

/** TINYLLAMA_EDGE_ variables that name no key are ignored by convict: say so, with the closest name. */
function unknownEnvWarnings(env: NodeJS.ProcessEnv, leaves: Array<[string, SchemaLeaf]>): string[] {
  const known = [`${ENV_PREFIX}CONFIG`, ...leaves.map(([key]) => envNameOf(key))];
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && !known.includes(name))
    .map((name) => `${name} is not a configuration variable and is ignored${didYouMean(name, known)}`);
}

/**
 * defaults < config file < environment < CLI flags. Every problem is collected and thrown at once
 * as EdgeError("config_invalid") with `details.problems`, so the user fixes them all in one go.
 */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  registerConfigFormats();
  const leaves = schemaLeaves();
  const keys = leaves.map(([key]) => key);
  const { configPath: flagPath, settingArgs, settingKeys, problems } = splitArgs(options.argv, new Set(keys));
  const setKeys = new Set<string>(settingKeys);
  for (const key of keys) if (options.env[envNameOf(key)] !== undefined) setKeys.add(key);
  const explicitPath = flagPath ?? options.env[`${ENV_PREFIX}CONFIG`];
  const configPath =
    explicitPath ?? (existsSync(options.defaultConfigPath) ? options.defaultConfigPath : null);

  const config = convict(withEnvAndArgs(configSchema) as convict.Schema<AppConfig>, {
    env: options.env,
    args: settingArgs,
  });
  if (configPath !== null) {
    if (!existsSync(configPath)) {
      problems.push(`${configPath}: config file not found`);
    } else {
      const file = readConfigFile(configPath);
      if (file.problem) problems.push(file.problem);
      else {
        config.load(file.value as object);
        for (const key of fileKeys(file.value as object)) setKeys.add(key);
      }
    }
  }
  try {
    config.validate({ allowed: "strict" });
  } catch (err) {
    const lines = (err as Error).message.split("\n").filter((line) => line.length > 0);
    problems.push(...lines.map((line) => explainProblem(line, keys, configPath)));
  }
  if (problems.length > 0) {
    throw new EdgeError("config_invalid", `invalid configuration:\n  - ${problems.join("\n  - ")}`, {
      details: { problems },
    });
  }
  return {
    config: config.getProperties(),
    configPath,
    setKeys,
    warnings: unknownEnvWarnings(options.env, leaves),
  };
}

/** A copy safe to log: sensitive values replaced. */
export function redactConfig(config: AppConfig): AppConfig {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const [key, leaf] of schemaLeaves()) {
    if (!leaf.sensitive) continue;
    const path = key.split(".");
    let node: Record<string, unknown> | undefined = copy;
    for (const part of path.slice(0, -1)) node = node?.[part] as Record<string, unknown> | undefined;
    const last = path.at(-1)!;
    if (node && node[last] !== "") node[last] = "[redacted]";
  }
  return copy as unknown as AppConfig;
}
