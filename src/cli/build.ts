import { parseArgs } from "node:util";
import { LlamaLogLevel } from "node-llama-cpp";
import { binaryOf, openLlama } from "../inference/open-llama.js";
import { createLogger } from "../logging/logger.js";
import { buildNative, NATIVE_CMAKE_OPTIONS, nativeBuild } from "../runtime/native-build.js";
import { createProgressReporter } from "../util/progress.js";
import type { Command } from "./command.js";

const USAGE = `usage: tinyllama-edge build

Compiles the llama.cpp that node-llama-cpp bundles for this machine's CPU (-march=native), from the
source it ships (no download), with progress. The daemon loads it at its next start instead of the
prebuilt binary, falls back to the prebuilt one if it does not load, and names the one it runs in
its info topic (engine.binary). Needs cmake, a C++ compiler and make (sudo apt install cmake g++ make);
takes minutes (see docs/performance.md). runtime.nativeBuild "off" ignores the build.
`;

/** `tinyllama-edge build`: compile the native build, then load it once to prove it works. */
export const build: Command = async ({ argv, env, interactive, signal }) => {
  try {
    const { values } = parseArgs({ args: argv, options: { help: { type: "boolean", short: "h" } } });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
  } catch (error) {
    process.stderr.write(`build: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const logger = createLogger({ level: "info", pretty: interactive });
  const progress = createProgressReporter({ interactive, logger, units: "items" });
  const started = performance.now();
  let total = 0;
  try {
    logger.info({ folder: nativeBuild().folder }, "compiling llama.cpp for this CPU");
    await buildNative({
      env,
      signal,
      onProgress: (done, steps) => {
        if (steps !== total) {
          total = steps;
          progress.start("compiling llama.cpp (steps)", total);
        }
        progress.update(done);
      },
    });
  } catch (error) {
    progress.stop();
    if (signal.aborted) {
      process.stderr.write("build: interrupted; the prebuilt binary stays in use\n");
      return 130;
    }
    process.stderr.write(`build: ${(error as Error).message}\nthe prebuilt binary stays in use\n`);
    return 1;
  }
  progress.stop();
  const seconds = Math.round((performance.now() - started) / 1000);
  const llama = await openLlama({
    gpu: false,
    maxThreads: 1,
    nativeBuild: NATIVE_CMAKE_OPTIONS,
    onLog: (level, message) => {
      if (level === LlamaLogLevel.warn || level === LlamaLogLevel.error) process.stderr.write(`${message}\n`);
    },
  });
  const loaded = llama === null ? null : binaryOf(llama);
  await llama?.dispose();
  if (loaded !== "native") {
    process.stderr.write(
      "build: the native build was compiled but does not load; the prebuilt binary stays in use\n",
    );
    return 1;
  }
  process.stdout.write(
    `native llama.cpp build ready in ${Math.floor(seconds / 60)} min ${seconds % 60} s; the daemon loads it at its next start\n`,
  );
  return 0;
};
