import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type * as GpuProbe from "../../src/runtime/gpu-probe.js";
import { tinyModelPath } from "../helpers/models.js";

// The built module: its default probe program is the compiled child beside it.
const builtModule = new URL("../../dist/runtime/gpu-probe.js", import.meta.url).href;
const { probeGpuOffload, probeCause } = (await import(builtModule)) as typeof GpuProbe;

/** What node-llama-cpp's CUDA build printed on an H200 with driver 580 (CUDA 13.0) before aborting. */
const CUDA_ABORT_STDERR = [
  "/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu:108: CUDA error",
  "CUDA error: the provided PTX was compiled with an unsupported toolchain.",
  "  current device: 0, in function ggml_cuda_kernel_can_use_pdl at /llama.cpp/ggml/src/ggml-cuda/common.cuh:1679",
  "/bins/linux-x64-cuda/libggml-base.so(ggml_abort+0x152)[0x7fac1d4b4f42]",
  "node[0x18a7b40]",
].join("\n");

async function script(body: string): Promise<{ file: string; args: string[] }> {
  const path = join(await mkdtemp(join(tmpdir(), "gpu-probe-")), "probe.mjs");
  await writeFile(path, body);
  return { file: process.execPath, args: [path] };
}

describe("GPU probe in a child process", () => {
  it("runs the real probe program: the model loads and decodes (CPU binding here)", async () => {
    const result = await probeGpuOffload({
      modelPath: await tinyModelPath(),
      gpu: "false",
      gpuLayers: 0,
      timeoutMs: 60_000,
    });
    expect(result).toEqual({ ok: true });
  }, 90_000);

  it("reports a probe that aborts as llama.cpp does on a CUDA error, with llama.cpp's reason", async () => {
    const command = await script(
      `process.stderr.write(${JSON.stringify(`${CUDA_ABORT_STDERR}\n`)}); process.abort();`,
    );
    const result = await probeGpuOffload({
      modelPath: "x",
      gpu: "cuda",
      gpuLayers: "max",
      timeoutMs: 20_000,
      command,
    });
    expect(result).toEqual({
      ok: false,
      reason:
        "the probe died (SIGABRT): CUDA error: the provided PTX was compiled with an unsupported toolchain.",
    });
  });

  it("counts a probe that never ends as failed, and kills it", async () => {
    const command = await script("setInterval(() => {}, 1000);");
    const started = Date.now();
    const result = await probeGpuOffload({
      modelPath: "x",
      gpu: "vulkan",
      gpuLayers: 3,
      timeoutMs: 500,
      command,
    });
    expect(result).toEqual({ ok: false, reason: "no answer in 1 s" });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("names the exit code and the last plain line when there is no GPU error line", async () => {
    const command = await script(
      `process.stderr.write("the vulkan binding did not load\\n"); process.exit(1);`,
    );
    const result = await probeGpuOffload({
      modelPath: "x",
      gpu: "vulkan",
      gpuLayers: 3,
      timeoutMs: 20_000,
      command,
    });
    expect(result).toEqual({ ok: false, reason: "the probe exited with 1: the vulkan binding did not load" });
  });

  it("picks the GPU error line out of a backtrace", () => {
    expect(probeCause(CUDA_ABORT_STDERR)).toBe(
      "CUDA error: the provided PTX was compiled with an unsupported toolchain.",
    );
    expect(probeCause("")).toBeUndefined();
  });
});
