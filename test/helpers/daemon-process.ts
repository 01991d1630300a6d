import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TINY_MODEL_PATH } from "./models.js";

export const PROJECT_ROOT = join(import.meta.dirname, "..", "..");
export const BUILT_MAIN = join(PROJECT_ROOT, "dist", "main.js");

export interface DaemonProcess {
  child: ChildProcess;
  /** Every log line so far (JSON objects where parseable). */
  lines: string[];
  logs(): Array<Record<string, unknown>>;
  /** Sends the signal and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Runs the built daemon (`npm test` builds first) as a child process with the given flags. */
export function startDaemonProcess(args: string[], env: NodeJS.ProcessEnv = {}): DaemonProcess {
  if (!existsSync(BUILT_MAIN)) throw new Error(`${BUILT_MAIN} is missing: run npm run build (npm test does)`);
  // Each daemon has a state directory of its own (tuning results, prompt states) unless a test names one.
  const stateDir = mkdtempSync(join(tmpdir(), "daemon-state-"));
  const flags = ["--log.pretty", "never", "--state.dir", stateDir, ...args];
  const child = spawn(process.execPath, [BUILT_MAIN, "start", ...flags], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return watchDaemon(child);
}

/** Collects a started daemon's output lines and stops it on request. */
export function watchDaemon(child: ChildProcess): DaemonProcess {
  const lines: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) lines.push(line);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    logs: () =>
      lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    async stop(signal = "SIGTERM", timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * The built daemon on the tiny generated model with one thread and Home Assistant discovery off,
 * for node `nodeId` on the broker at `brokerUrl`. `extra` flags come last and win over these.
 */
export function startTinyDaemon(brokerUrl: string, nodeId: string, extra: string[] = []): DaemonProcess {
  return startDaemonProcess(tinyDaemonFlags(brokerUrl, nodeId, extra));
}

/** The flags of `startTinyDaemon`, for a daemon started another way (e.g. emulated). */
export function tinyDaemonFlags(brokerUrl: string, nodeId: string, extra: string[] = []): string[] {
  return [
    "--mqtt.url",
    brokerUrl,
    "--node.id",
    nodeId,
    "--model.path",
    TINY_MODEL_PATH,
    "--runtime.threads",
    "1",
    "--homeassistant.enabled",
    "false",
    // These tests answer to topics of their own; the default (<base>/# only) has its own test.
    "--mqtt.replyTopicAllow",
    "#",
    ...extra,
  ];
}
