import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export type GpuProbeResult = { ok: true } | { ok: false; reason: string };

export interface GpuProbeOptions {
  modelPath: string;
  gpu: string;
  gpuLayers: number | "max";
  /** A GPU decode that neither ends nor fails in this time counts as failed. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** The probe program; the real child by default (tests give one that aborts or hangs). */
  command?: { file: string; args: string[] };
}

const CHILD = fileURLToPath(new URL("./gpu-probe-child.js", import.meta.url));
const STDERR_KEPT = 8192;

/**
 * Runs the first GPU decode in a child process. llama.cpp aborts the process on a CUDA error,
 * so a GPU build made for a newer driver (or another GPU) would otherwise take the daemon down at
 * its first request, and systemd would restart it into the same crash. The reason is llama.cpp's
 * own error line where it printed one.
 */
export function probeGpuOffload(options: GpuProbeOptions): Promise<GpuProbeResult> {
  const command = options.command ?? {
    file: process.execPath,
    args: [CHILD, options.modelPath, options.gpu, String(options.gpuLayers)],
  };
  return new Promise((resolve) => {
    const child = spawn(command.file, command.args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEPT);
    });
    const kill = () => child.kill("SIGKILL");
    const timer = setTimeout(kill, options.timeoutMs);
    options.signal?.addEventListener("abort", kill, { once: true });
    let timedOut = false;
    timer.unref?.();
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `the probe could not start: ${err.message}` });
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
      timedOut = signal === "SIGKILL" && !options.signal?.aborted;
      if (code === 0) return resolve({ ok: true });
      const how = timedOut
        ? `no answer in ${Math.round(options.timeoutMs / 1000)} s`
        : signal
          ? `the probe died (${signal})`
          : `the probe exited with ${code}`;
      const cause = probeCause(stderr);
      resolve({ ok: false, reason: cause ? `${how}: ${cause}` : how });
    });
  });
}

/** llama.cpp's "CUDA error: ..." (or the last plain line) says why better than a backtrace does. */
export function probeCause(stderr: string): string | undefined {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    // Backtrace frames and source locations say nothing a user can act on.
    .filter((line) => line && !line.startsWith("/") && !/\[0x[0-9a-f]+\]$/.test(line));
  const gpuError = lines.find((line) => /(CUDA|Vulkan|Metal) error:/i.test(line));
  return gpuError ?? lines.at(-1);
}
