#!/usr/bin/env node
import type { Command } from "./cli/command.js";
import { packageVersion } from "./version.js";

/**
 * The entry point: the only place that reads argv and process.env, installs signal handlers and
 * sets the exit code. Commands load lazily, so `ask` never pays for loading llama.cpp.
 */
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  start: { summary: "run the daemon", load: async () => (await import("./cli/start.js")).start },
  detect: {
    summary: "show the hardware and the runtime plan",
    load: async () => (await import("./cli/detect.js")).detect,
  },
  pull: { summary: "download the planned model", load: async () => (await import("./cli/pull.js")).pull },
  ask: {
    summary: "send a prompt over MQTT and stream the answer",
    load: async () => (await import("./cli/ask.js")).ask,
  },
  build: {
    summary: "compile llama.cpp for this CPU (for one the prebuilt binaries are not tuned for)",
    load: async () => (await import("./cli/build.js")).build,
  },
  forget: {
    summary: "remove this node's Home Assistant entities and retained state from the broker",
    load: async () => (await import("./cli/forget.js")).forget,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, { summary }]) => `  ${name.padEnd(11)} ${summary}`);
  return [
    "usage: tinyllama-edge <command> [--config PATH] [--<key> <value> ...]",
    "",
    "commands:",
    ...lines,
    "",
    "Every configuration key is also a flag (--mqtt.url mqtt://host:1883) and an environment",
    "variable (TINYLLAMA_EDGE_MQTT_URL). See docs/configuration.md.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "version") {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`unknown command ${JSON.stringify(name)}\n\n${usage()}\n`);
    return 2;
  }
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`second ${signal}: exiting now\n`);
      process.exit(130);
    }
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

// An error that escapes every handler is a bug: report it and exit, never carry on in an unknown state.
process.on("uncaughtException", (err) => {
  process.stderr.write(`fatal: uncaught exception: ${err.stack ?? err.message}\n`);
  process.exit(70);
});
process.on("unhandledRejection", (reason) => {
  process.stderr.write(`fatal: unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}\n`);
  process.exit(70);
});

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
