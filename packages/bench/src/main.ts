#!/usr/bin/env node
import type { Command } from "tinyllama-edge/cli/command.js";

/**
 * The development tools, kept out of the daemon's install: `bench` measures the in-process engine
 * against the built daemon (started as a child, driven over MQTT); `make-model` writes synthetic GGUFs.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  bench: {
    summary: "measure the engine and the built daemon",
    load: async () => (await import("./cli/bench.js")).bench,
  },
  "make-model": {
    summary: "write a synthetic GGUF for tests and benchmarks",
    load: async () => (await import("./cli/make-model.js")).makeModel,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, { summary }]) => `  ${name.padEnd(11)} ${summary}`);
  return ["usage: tinyllama-edge-bench <command> [options]", "", "commands:", ...lines].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const entry = name === undefined ? undefined : COMMANDS[name];
  if (!entry) {
    const help = name === "help" || name === "--help" || name === "-h";
    (help ? process.stdout : process.stderr).write(`${usage()}\n`);
    return help ? 0 : 2;
  }
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(signal);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const command = await entry.load();
  return command({
    argv: rest,
    env: process.env,
    interactive: Boolean(process.stdout.isTTY),
    signal: controller.signal,
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Native handles (llama.cpp, sockets) must not keep a finished command alive.
    setTimeout(() => process.exit(code), 500).unref();
  },
  (err: unknown) => {
    process.stderr.write(`fatal: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(70);
  },
);
