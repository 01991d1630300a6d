import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { EdgeClient } from "tinyllama-edge/client/edge-client.js";
import { PACKAGE_ROOT } from "tinyllama-edge/config/config-path.js";

/** The built daemon: what is deployed, not the sources (the bench compares exactly that). */
export const BUILT_MAIN = join(PACKAGE_ROOT, "dist", "main.js");

const LOG_LINES_KEPT = 200;
const STOP_GRACE_MS = 20_000;

export interface DaemonChildOptions {
  brokerUrl: string;
  protocolVersion: 4 | 5;
  /** The client's base topic: both sides must agree. */
  baseTopic: string;
  nodeId: string;
  modelPath: string;
  threads: number;
  parallelSequences: number;
  contextSize: number;
  /** More `--key value` flags (the configured runtime settings the engine used too). */
  extraFlags: string[];
}

export interface DaemonChild {
  readonly pid: number;
  /** Resolves with a description of how it ended. */
  readonly exited: Promise<string>;
  readonly hasExited: () => boolean;
  /** The last error the daemon logged, or its last lines: why it failed. */
  failureSummary(): string;
  /** SIGTERM, then SIGKILL after a grace period. */
  stop(): Promise<void>;
}

export function daemonArgs(options: DaemonChildOptions): string[] {
  return [
    BUILT_MAIN,
    "start",
    "--log.pretty",
    "never",
    "--mqtt.url",
    options.brokerUrl,
    "--mqtt.protocolVersion",
    String(options.protocolVersion),
    "--mqtt.embeddedBroker",
    "never",
    "--mqtt.sessionExpirySeconds",
    "0",
    "--mqtt.baseTopic",
    options.baseTopic,
    "--node.id",
    options.nodeId,
    "--model.path",
    options.modelPath,
    "--runtime.threads",
    String(options.threads),
    "--runtime.parallelSequences",
    String(options.parallelSequences),
    "--runtime.contextSize",
    String(options.contextSize),
    "--runtime.autotune",
    "false",
    "--homeassistant.enabled",
    "false",
    ...options.extraFlags,
  ];
}

/** The last fatal/error message of pino JSON lines, else the last few lines as they are. */
export function summarizeDaemonLog(lines: readonly string[]): string {
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const entry = JSON.parse(lines[i]!) as { level?: number; msg?: string; err?: { message?: string } };
      if ((entry.level ?? 0) >= 50) return [entry.msg, entry.err?.message].filter(Boolean).join(": ");
    } catch {
      // not JSON: a native message; shown below with the others
    }
  }
  return lines.slice(-3).join(" | ") || "no output";
}

/**
 * The environment the service runs with (systemd unit, installed CLI, npm start): one libuv pool
 * thread, a 2 MB young generation and a fixed malloc mmap threshold (docs/performance.md), each
 * unless `env` sets it, and only PATH and HOME besides.
 */
export function serviceEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    PATH: env.PATH,
    HOME: env.HOME,
    UV_THREADPOOL_SIZE: env.UV_THREADPOOL_SIZE ?? "1",
    NODE_OPTIONS: env.NODE_OPTIONS ?? "--max-semi-space-size=2",
    MALLOC_MMAP_THRESHOLD_: env.MALLOC_MMAP_THRESHOLD_ ?? "131072",
  };
}

/** Runs `node dist/main.js start …` in the service's environment (serviceEnvironment). */
export function startDaemonChild(options: DaemonChildOptions): DaemonChild {
  if (!existsSync(BUILT_MAIN)) throw new Error(`${BUILT_MAIN} is missing: run npm run build`);
  const child: ChildProcess = spawn(process.execPath, daemonArgs(options), {
    cwd: PACKAGE_ROOT,
    env: serviceEnvironment(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      lines.push(line);
      if (lines.length > LOG_LINES_KEPT) lines.shift();
    }
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<string>((resolve) => {
    child.once("error", (err) => resolve(`could not start: ${err.message}`));
    child.once("exit", (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
  });
  const hasExited = () => child.exitCode !== null || child.signalCode !== null || child.pid === undefined;
  return {
    pid: child.pid ?? -1,
    exited,
    hasExited,
    failureSummary: () => summarizeDaemonLog(lines),
    async stop() {
      if (hasExited()) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls the retained status until the node says online; fails early when the daemon exits. */
export async function waitUntilOnline(
  client: EdgeClient,
  daemon: DaemonChild,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    signal.throwIfAborted();
    if (daemon.hasExited()) {
      throw new Error(`the daemon stopped (${await daemon.exited}): ${daemon.failureSummary()}`);
    }
    if ((await client.nodeState(500)) === "online") return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the daemon was not online within ${timeoutMs} ms: ${daemon.failureSummary()}`);
}
