import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { localBuildFolder, nodeLlamaCppFolder } from "../inference/llama-internals.js";

/**
 * The native build: node-llama-cpp's bundled llama.cpp compiled on this machine for this CPU
 * (`-march=native`), CPU only. The option names the build: getLlama finds it by these options, and
 * a plain getLlama (the prebuilt binary) never picks it up by accident.
 */
export const NATIVE_CMAKE_OPTIONS: Readonly<Record<string, string>> = { GGML_NATIVE: "ON" };

/** Where the native build lives and whether it finished (node-llama-cpp's folder for it). */
export function nativeBuild(cmakeOptions: Readonly<Record<string, string>> = NATIVE_CMAKE_OPTIONS) {
  return localBuildFolder(cmakeOptions);
}

export interface NativeBuildOptions {
  /** Compile steps done out of the total, as the build tool counts them. */
  onProgress: (done: number, total: number) => void;
  /** Every output line of the compiler run (kept to explain a failure). */
  onLine?: (line: string) => void;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}

/** Lines of the failed command shown in the error. */
const FAILURE_LINES = 15;

/** node-llama-cpp's command line (its package `bin`), run with this Node.js. */
function nodeLlamaCppCli(): string {
  const folder = nodeLlamaCppFolder();
  const packageJson = JSON.parse(readFileSync(join(folder, "package.json"), "utf8"));
  const bin = typeof packageJson.bin === "string" ? packageJson.bin : packageJson.bin?.["node-llama-cpp"];
  if (typeof bin !== "string") throw new Error("node-llama-cpp names no command line in its package.json");
  return join(folder, bin);
}

/**
 * Compiles the native build: llama.cpp's source is taken from the git bundle node-llama-cpp ships
 * (no network), then compiled with cmake. Minutes on a small board; progress from the build tool's
 * "[done/total]" lines. Rejects with the last lines of output when a step fails.
 */
export async function buildNative(options: NativeBuildOptions): Promise<void> {
  await requireTool("cmake", options.env, "cmake is not installed: sudo apt install cmake g++ make");
  const cli = nodeLlamaCppCli();
  await run(
    [cli, "source", "download", "--skipBuild", "--noUsageExample"],
    { ...options, onProgress: () => undefined },
    "unpacking llama.cpp's source",
  );
  const env = { ...options.env };
  for (const [key, value] of Object.entries(NATIVE_CMAKE_OPTIONS))
    env[`NODE_LLAMA_CPP_CMAKE_OPTION_${key}`] = value;
  await run(
    [cli, "source", "build", "--gpu", "false", "--noUsageExample"],
    { ...options, env },
    "compiling llama.cpp",
  );
  if (!nativeBuild().complete) throw new Error("the build ended but left no finished native build");
}

/** "[12/153] Building CXX object ...": Ninja's (and CMake's Makefile) step counter. */
const STEP = /^\[\s*(\d+)\s*\/\s*(\d+)\s*\]/;

function run(args: string[], options: NativeBuildOptions, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      signal: options.signal,
    });
    const tail: string[] = [];
    let pending = "";
    const onData = (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop() ?? "";
      for (const raw of lines) {
        // node-llama-cpp's spinner writes ANSI escapes; keep the text.
        // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping terminal escapes
        const line = raw.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "").trim();
        if (!line) continue;
        options.onLine?.(line);
        tail.push(line);
        if (tail.length > FAILURE_LINES) tail.shift();
        const step = STEP.exec(line);
        if (step) options.onProgress(Number(step[1]), Number(step[2]));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("error", (err) => {
      if (options.signal.aborted) reject(options.signal.reason);
      else reject(new Error(`${what} failed to start: ${err.message}`, { cause: err }));
    });
    child.once("close", (code) => {
      if (options.signal.aborted) return reject(options.signal.reason);
      if (code === 0) return resolve();
      reject(new Error(`${what} failed (exit ${code}):\n${tail.join("\n")}`));
    });
  });
}

async function requireTool(name: string, env: NodeJS.ProcessEnv, fix: string): Promise<void> {
  const found = await new Promise<boolean>((resolve) => {
    const child = spawn(name, ["--version"], { env, stdio: "ignore" });
    child.once("error", () => resolve(false));
    child.once("close", (code) => resolve(code === 0));
  });
  if (!found) throw new Error(fix);
}
