import { readFile } from "node:fs/promises";
import os from "node:os";
import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import si from "systeminformation";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDetect } from "../../src/cli/detect.js";
import { detectHardware, normalizeArch } from "../../src/hardware/detect-hardware.js";
import type { HardwareProfile } from "../../src/hardware/hardware-profile.js";
import { defaultPlanRequest } from "../../src/hardware/plan-request.js";
import { planRuntime } from "../../src/hardware/plan-runtime.js";
import { createRootedFileReader } from "../../src/hardware/rooted-file-reader.js";
import { createCommandRunner } from "../../src/hardware/run-command.js";

/** Detection on the machine running the tests, with the real node-llama-cpp on the CPU. */
describe("detectHardware on this machine", () => {
  let llama: Llama;
  let profile: HardwareProfile;
  const runtime = { arch: process.arch, machine: os.machine(), platform: process.platform };

  beforeAll(async () => {
    // CPU bindings only: loading GPU backends is slow and this machine has none.
    llama = await getLlama({ gpu: false, build: "never", maxThreads: 2, logLevel: LlamaLogLevel.warn });
    profile = await detectHardware({
      files: createRootedFileReader("/"),
      runtime,
      system: si,
      llama,
      runCommand: createCommandRunner(),
    });
  });

  afterAll(async () => {
    await llama?.dispose();
  });

  it("counts the cores the OS reports", () => {
    expect(profile.cpu.logicalCores).toBe(os.cpus().length);
    expect(profile.cpu.physicalCores).toBeGreaterThanOrEqual(1);
    expect(profile.cpu.physicalCores).toBeLessThanOrEqual(profile.cpu.logicalCores);
    expect(profile.cpu.clusters.some((cluster) => cluster.kind === "performance")).toBe(true);
  });

  it("reads RAM close to what Node.js reports", () => {
    expect(profile.memory.totalBytes).toBeGreaterThan(0);
    expect(Math.abs((profile.memory.totalBytes ?? 0) - os.totalmem()) / os.totalmem()).toBeLessThan(0.05);
    expect(profile.memory.availableBytes).toBeGreaterThan(0);
    expect(profile.memory.availableBytes).toBeLessThanOrEqual(profile.memory.totalBytes ?? 0);
  });

  it("names the architecture of this process", () => {
    expect(profile.arch).toBe(normalizeArch(runtime));
    if (process.arch === "x64") expect(profile.arch).toBe("x64");
    expect(profile.os.platform).toBe(process.platform);
  });

  it("agrees with /proc/cpuinfo on AVX2 / dotprod", async () => {
    const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => null);
    if (cpuinfo === null) return;
    const flags = new Set(
      (/^(?:flags|Features)\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? "").trim().split(/\s+/).filter(Boolean),
    );
    if (flags.has("avx2")) expect(profile.cpu.features.avx2).toBe(true);
    if (flags.has("asimddp")) expect(profile.cpu.features.dotprod).toBe(true);
  });

  it("reads llama.cpp's own view of the CPU", () => {
    expect(profile.llamaCpp?.systemInfo).toMatch(/=\s*1/);
    expect(profile.llamaCpp?.repacksWeights).toBe(/REPACK = 1/.test(llama.systemInfo));
    expect(profile.gpu.type).toBe(false);
  });

  it("yields a plan that uses no more threads than there are cores", () => {
    const plan = planRuntime(profile, defaultPlanRequest);
    expect(plan.threads).toBeGreaterThanOrEqual(1);
    expect(plan.threads).toBeLessThanOrEqual(profile.cpu.physicalCores);
    expect(plan.estimatedMemoryBytes).toBeLessThanOrEqual(plan.memoryBudgetBytes);
  });

  it("prints {hardware, plan} as JSON through runDetect", async () => {
    let output = "";
    const errors: string[] = [];
    const code = await runDetect({
      json: true,
      gpu: false,
      out: { write: (text: string) => (output += text) },
      err: { write: (text: string) => errors.push(text) },
    });
    const parsed = JSON.parse(output) as { hardware: HardwareProfile; plan: { threads: number } | null };
    expect(code).toBe(parsed.plan === null ? 3 : 0);
    expect(parsed.hardware.cpu.logicalCores).toBe(os.cpus().length);
    expect(parsed.hardware.llamaCpp).not.toBeNull();
  });
});
