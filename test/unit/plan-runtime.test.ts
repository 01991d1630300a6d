import { beforeAll, describe, expect, it } from "vitest";
import { EdgeError } from "../../src/errors.js";
import type { HardwareProfile } from "../../src/hardware/hardware-profile.js";
import { defaultPlanRequest, type PlanRequest } from "../../src/hardware/plan-request.js";
import { type PlanChoice, planRuntime, type RuntimePlan } from "../../src/hardware/plan-runtime.js";
import { tinyLlamaCatalog } from "../../src/model/catalog.js";
import { expectedPlans } from "../fixtures/hardware/expected-plans.js";
import { type FixtureBoard, fixtureBoards, fixtureProfile } from "../fixtures/hardware/fixture-deps.js";

const profiles = new Map<FixtureBoard, HardwareProfile>();

beforeAll(async () => {
  for (const board of fixtureBoards) profiles.set(board, await fixtureProfile(board));
});

function profileOf(board: FixtureBoard): HardwareProfile {
  const profile = profiles.get(board);
  if (!profile) throw new Error(`no profile for ${board}`);
  return profile;
}

function plan(board: FixtureBoard, overrides: Partial<PlanRequest> = {}): RuntimePlan {
  return planRuntime(profileOf(board), { ...defaultPlanRequest, ...overrides });
}

function planError(board: FixtureBoard, overrides: Partial<PlanRequest> = {}): EdgeError {
  try {
    plan(board, overrides);
  } catch (error) {
    if (error instanceof EdgeError) return error;
    throw error;
  }
  throw new Error("expected planRuntime to throw");
}

const planChoices: PlanChoice[] = [
  "quantization",
  "threads",
  "gpuLayers",
  "contextSize",
  "parallelSequences",
  "batchSize",
  "useMmap",
  "memory",
];

describe("planRuntime with every setting on auto", () => {
  it("has a row for every recorded board", () => {
    expect(expectedPlans.map(([board]) => board).sort()).toEqual([...fixtureBoards].sort());
  });

  it.each(expectedPlans)("%s", (board, expected) => {
    if (typeof expected === "string") {
      expect(planError(board).code).toBe(expected);
      return;
    }
    const result = plan(board);
    expect({
      quantization: result.quantization,
      threads: result.threads,
      gpuLayers: result.gpuLayers,
      contextSize: result.contextSize,
      parallelSequences: result.parallelSequences,
      batchSize: result.batchSize,
      useMmap: result.useMmap,
    }).toEqual(expected);
    for (const choice of planChoices) expect(result.reasons[choice].length).toBeGreaterThan(10);
    expect(result.estimatedMemoryBytes).toBeLessThanOrEqual(result.memoryBudgetBytes);
    const entry = tinyLlamaCatalog.entries.find(
      (candidate) => candidate.quantization === result.quantization,
    );
    expect(result.modelFile).toBe(entry?.fileName);
    expect(result.modelUri).toBe(`hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/${entry?.fileName}`);
  });

  it("refuses the Pi Zero 2 W with one paragraph naming the smallest variant, its need and what the board has", () => {
    const error = planError("pi-zero-2w-512mb");
    expect(error.message).toMatch(/smallest variant, Q2_K \(480 MB file\), needs about \d+ MB of RAM/);
    expect(error.message).toMatch(/312 MB available of 437 MB total, 178 MB after keeping 128 MiB/);
    expect(error.message).not.toContain("\n");
    expect(error.details).toMatchObject({ quantization: "Q2_K", availableBytes: 305_112 * 1024 });
  });

  it("refuses 32-bit ARM without a working llama.cpp in one line that names the fix", () => {
    const error = planError("pi4-4gb-armv7l");
    expect(error.message).toMatch(/32-bit ARM system \(armv7l\).*install the 64-bit Raspberry Pi OS/);
    expect(error.message).not.toContain("\n");
    // A Cortex-A7 (Pi 2) has no 64-bit OS to move to.
    const pi2 = profileOf("pi4-4gb-armv7l");
    const a7 = {
      ...pi2,
      cpu: { ...pi2.cpu, cores: pi2.cpu.cores.map((core) => ({ ...core, partId: "0xc07" })) },
    };
    expect(() => planRuntime(a7, defaultPlanRequest)).toThrow(/needs a 64-bit ARM board/);
    // Where a llama.cpp of its own did load, a 32-bit board is planned as usual.
    expect(plan("armv7l-1gb").quantization).toBe("Q3_K_M");
  });

  it("explains the choices that matter on each kind of board", () => {
    expect(plan("pi5-8gb").reasons.quantization).toMatch(/repacks Q4_0 into its ARM dotprod kernels/);
    expect(plan("pi5-8gb").reasons.useMmap).toMatch(/^off: /);
    expect(plan("pi4-2gb").reasons.quantization).toMatch(/compute-bound/);
    expect(plan("pi4-2gb").reasons.useMmap).toMatch(/^on: /);
    expect(plan("pi4-8gb").reasons.parallelSequences).toMatch(/compute-bound/);
    expect(plan("rk3588-16gb").reasons.threads).toMatch(
      /4 physical Cortex-A76 cores; 4 Cortex-A55 cores left out/,
    );
    expect(plan("x86-laptop-16gb").reasons.threads).toMatch(/hyperthread siblings left out/);
    expect(plan("x86-desktop-rtx-8gb").reasons.threads).toMatch(
      /6 physical P-cores; hyperthread siblings and 4 E-cores/,
    );
    expect(plan("jetson-orin-nano-8gb").reasons.threads).toMatch(/one core kept for the Node.js event loop/);
    expect(plan("jetson-orin-nano-8gb").reasons.gpuLayers).toMatch(/shared with the CPU/);
    expect(plan("armv7l-1gb").reasons.quantization).toMatch(/Q4_K_M, Q4_0 did not fit/);
  });

  it("warns about the board's own condition and about tight memory", () => {
    expect(plan("pi5-8gb").warnings.join(" ")).toMatch(/soft temperature limit right now.*81\.2 °C/);
    expect(plan("pi4-2gb").warnings.join(" ")).toMatch(/Under-voltage has occurred since boot/);
    expect(plan("armv7l-1gb", { batchSize: 128 }).warnings.join(" ")).toMatch(
      /Only Q3_K_M fits.*Context reduced to 1024 tokens/,
    );
    expect(plan("pi5-4gb").warnings).toEqual([]);
  });

  it("counts offloaded layers against VRAM on a discrete GPU and against RAM on shared memory", () => {
    const desktop = plan("x86-desktop-rtx-8gb");
    const jetson = plan("jetson-orin-nano-8gb");
    expect(desktop.estimatedVramBytes).toBeGreaterThan(1e9);
    expect(desktop.estimatedMemoryBytes).toBeLessThan(desktop.estimatedVramBytes);
    expect(jetson.estimatedMemoryBytes).toBeGreaterThan(jetson.estimatedVramBytes);
  });

  it("does not modify the profile", () => {
    const profile = structuredClone(profileOf("rk3588-16gb"));
    const before = JSON.stringify(profile);
    planRuntime(profile, defaultPlanRequest);
    expect(JSON.stringify(profile)).toBe(before);
  });
});

describe("planRuntime with overrides", () => {
  it("reports a quantization that cannot fit at plan time and names one that would", () => {
    const error = planError("armv7l-1gb", { quantization: "Q8_0" });
    expect(error.code).toBe("model_does_not_fit");
    expect(error.message).toMatch(/^The requested model Q8_0 \(1\.17 GB file\) needs about/);
    expect(error.message).toMatch(/Q3_K_M would fit\.$/);
  });

  it("honours a quantization that only fits by using the memory reserve, with a warning", () => {
    const result = plan("armv7l-1gb", { quantization: "Q4_0" });
    expect(result.quantization).toBe("Q4_0");
    expect(result.reasons.quantization).toBe("set by configuration");
    expect(result.warnings.join(" ")).toMatch(/only fits by using \d+ MB of the 128 MiB memory reserve/);
    expect(result.estimatedMemoryBytes).toBeGreaterThan(result.memoryBudgetBytes);
  });

  it("honours a larger quantization where it fits", () => {
    const result = plan("pi5-8gb", { quantization: "Q8_0" });
    expect(result).toMatchObject({ quantization: "Q8_0", useMmap: false, contextSize: 2048 });
    expect(result.reasons.useMmap).toMatch(/repacks Q8_0 into its ARM dotprod kernels/);
  });

  it("applies the configured memory reserve: 300 MiB leaves a 1 GB board nothing", () => {
    const error = planError("armv7l-1gb", { memoryReserveMiB: 300 });
    expect(error.code).toBe("model_does_not_fit");
    expect(error.message).toMatch(/after keeping 300 MiB for the system/);
    expect(error.message).toMatch(/lower memoryReserveMiB/);
  });

  it("reports a configured context that no variant can hold", () => {
    const error = planError("pi4-2gb", { contextSize: 65536 });
    expect(error.code).toBe("model_does_not_fit");
    expect(error.message).toMatch(
      /Q2_K \(480 MB file\), needs about [\d.]+ GB of RAM with the configured 65536-token context/,
    );
  });

  it("rejects unknown quantizations and impossible numbers, listing every problem", () => {
    const error = planError("pi5-8gb", {
      quantization: "Q4_K_S",
      threads: 0,
      contextSize: 1.5,
      gpuLayers: -1,
      memoryReserveMiB: -10,
    });
    expect(error.code).toBe("config_invalid");
    expect(error.details?.problems).toHaveLength(5);
    expect(error.message).toMatch(/one of Q2_K, Q3_K_M, Q4_0, Q4_K_M, Q5_K_M, Q6_K, Q8_0/);
  });

  it("warns about more threads than cores, and about threads on hyperthreads", () => {
    const tooMany = plan("pi5-8gb", { threads: 8 });
    expect(tooMany.threads).toBe(8);
    expect(tooMany.warnings.join(" ")).toMatch(/threads=8 is more than the 4 logical CPUs/);
    const hyperthreads = plan("x86-laptop-16gb", { threads: 8 });
    expect(hyperthreads.threads).toBe(8);
    expect(hyperthreads.warnings.join(" ")).toMatch(/more than the 4 physical performance cores/);
    expect(plan("rk3588-16gb", { threads: 8 }).warnings.join(" ")).toMatch(/4 physical performance cores/);
  });

  it("runs on the CPU and says so when GPU layers are asked for without a GPU", () => {
    const result = plan("pi5-8gb", { gpuLayers: 10 });
    expect(result.gpuLayers).toBe(0);
    expect(result.warnings.join(" ")).toMatch(/gpuLayers=10 is set but there is no usable GPU/);
    expect(plan("pi4-8gb", { gpuLayers: "max" }).gpuLayers).toBe(0);
  });

  it("offloads part of the model when VRAM holds only some layers", () => {
    const desktop = profileOf("x86-desktop-rtx-8gb");
    const smallGpu: HardwareProfile = {
      ...desktop,
      gpu: { ...desktop.gpu, vramTotalBytes: 2_000_000_000, vramFreeBytes: 1_000_000_000 },
    };
    const result = planRuntime(smallGpu, defaultPlanRequest);
    expect(typeof result.gpuLayers).toBe("number");
    expect(result.gpuLayers).toBeGreaterThan(0);
    expect(result.gpuLayers).toBeLessThan(22);
    expect(result.reasons.gpuLayers).toMatch(/of 22 layers/);
    expect(result.estimatedVramBytes).toBeLessThanOrEqual(1_000_000_000 - 160_000_000);
  });

  it("honours a GPU layer count and warns when it overflows VRAM", () => {
    const desktop = profileOf("x86-desktop-rtx-8gb");
    expect(plan("x86-desktop-rtx-8gb", { gpuLayers: 10 })).toMatchObject({ gpuLayers: 10, warnings: [] });
    const tinyGpu: HardwareProfile = {
      ...desktop,
      gpu: { ...desktop.gpu, vramTotalBytes: 1_000_000_000, vramFreeBytes: 300_000_000 },
    };
    const result = planRuntime(tinyGpu, { ...defaultPlanRequest, gpuLayers: "max" });
    expect(result.gpuLayers).toBe("max");
    expect(result.warnings.join(" ")).toMatch(/gpuLayers=max needs about .* of VRAM but only .* is usable/);
  });

  it("keeps mmap when asked to, but warns that the repacked copy doubles the weights", () => {
    const auto = plan("pi5-4gb");
    const mapped = plan("pi5-4gb", { useMmap: true });
    expect(mapped.useMmap).toBe(true);
    expect(mapped.warnings.join(" ")).toMatch(/mapped file stays resident beside the repacked copy/);
    expect(mapped.estimatedMemoryBytes - auto.estimatedMemoryBytes).toBe(640_000_000);
    expect(plan("pi4-2gb", { useMmap: false })).toMatchObject({
      useMmap: false,
      warnings: [expect.any(String)],
    });
  });

  it("warns about a context beyond the trained one and about parallel counts that are not a multiple of 4", () => {
    const long = plan("pi5-8gb", { contextSize: 4096 });
    expect(long.contextSize).toBe(4096);
    expect(long.warnings.join(" ")).toMatch(/beyond the model's trained context of 2048/);
    const two = plan("pi5-8gb", { parallelSequences: 2 });
    expect(two.parallelSequences).toBe(2);
    expect(two.warnings.join(" ")).toMatch(/not a multiple of 4/);
    expect(plan("pi5-8gb", { parallelSequences: 1 }).reasons.parallelSequences).toBe("set by configuration");
  });

  it("shrinks the prompt batch before the context when memory is tight, and keeps a configured batch", () => {
    expect(plan("armv7l-1gb")).toMatchObject({ quantization: "Q3_K_M", contextSize: 2048, batchSize: 64 });
    expect(plan("armv7l-1gb", { quantization: "Q2_K" })).toMatchObject({ contextSize: 2048, batchSize: 128 });
    expect(plan("pi5-8gb", { batchSize: 64 }).batchSize).toBe(64);
  });

  it("plans a custom GGUF from its header facts", () => {
    const result = plan("pi5-8gb", {
      customModel: {
        path: "/var/lib/tinyllama-edge/models/my-finetune.Q4_0.gguf",
        fileSizeBytes: 700_000_000,
        layers: 22,
        embeddingLength: 2048,
        kvHeads: 4,
        headSize: 64,
        trainedContext: 4096,
        quantization: "Q4_0",
      },
    });
    expect(result).toMatchObject({
      quantization: "custom",
      modelFile: "/var/lib/tinyllama-edge/models/my-finetune.Q4_0.gguf",
      modelUri: null,
      contextSize: 2048,
      useMmap: false,
    });
    expect(result.reasons.quantization).toBe("custom model file");
  });

  it("calibrates the context estimate with a measured figure", () => {
    const base = plan("pi4-8gb");
    const measured = plan("pi4-8gb", {
      measured: {
        Q4_K_M: {
          modelBytes: 700_000_000,
          context: { contextSize: 2048, sequences: 1, batchSize: 128, bytes: 300_000_000 },
        },
      },
    });
    expect(measured.quantization).toBe("Q4_K_M");
    // 30 MB more weights, and the context measured at about three times the formula's ~100 MB (batch 128).
    expect(measured.estimatedMemoryBytes - base.estimatedMemoryBytes).toBeGreaterThan(220_000_000);
    expect(measured.estimatedMemoryBytes - base.estimatedMemoryBytes).toBeLessThan(245_000_000);
  });

  it("says when node-llama-cpp was not loaded", () => {
    const profile: HardwareProfile = { ...profileOf("pi5-4gb"), llamaCpp: null };
    const result = planRuntime(profile, defaultPlanRequest);
    expect(result.quantization).toBe("Q4_0");
    expect(result.reasons.useMmap).toMatch(/assumed/);
    expect(result.warnings.join(" ")).toMatch(/node-llama-cpp was not loaded/);
  });
});
