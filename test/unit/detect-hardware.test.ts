import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLlamaSystemInfo } from "../../src/hardware/cpu-features.js";
import { detectHardware } from "../../src/hardware/detect-hardware.js";
import { parseCpuinfo, parseCpuList } from "../../src/hardware/parse-cpuinfo.js";
import { parseThrottled } from "../../src/hardware/parse-throttled.js";
import { defaultPlanRequest } from "../../src/hardware/plan-request.js";
import { planRuntime } from "../../src/hardware/plan-runtime.js";
import { recordedLlama } from "../../src/hardware/recorded-board.js";
import { createRootedFileReader } from "../../src/hardware/rooted-file-reader.js";
import {
  fixtureBoards,
  fixtureDeps,
  fixtureProfile,
  fixtureRoot,
  readFixtureFacts,
} from "../fixtures/hardware/fixture-deps.js";

describe("detectHardware over recorded boards", () => {
  it("splits the RK3588 into a big A76 cluster and a LITTLE A55 cluster", async () => {
    const profile = await fixtureProfile("rk3588-16gb");
    expect(profile.board).toBe("Orange Pi 5 Plus");
    expect(profile.cpu.logicalCores).toBe(8);
    expect(profile.cpu.physicalCores).toBe(8);
    expect(profile.cpu.clusters).toEqual([
      {
        id: 0,
        kind: "efficiency",
        coreName: "Cortex-A55",
        partId: "0xd05",
        maxMHz: 1800,
        logicalCpus: [0, 1, 2, 3],
        physicalCores: 4,
      },
      {
        id: 1,
        kind: "performance",
        coreName: "Cortex-A76",
        partId: "0xd0b",
        // The two A76 pairs are binned at 2400 and 2352 MHz: still one cluster.
        maxMHz: 2400,
        logicalCpus: [4, 5, 6, 7],
        physicalCores: 4,
      },
    ]);
    expect(profile.cpu.cores[6]).toMatchObject({
      index: 6,
      partId: "0xd0b",
      maxMHz: 2352,
      capacity: 1024,
      cluster: 1,
    });
    expect(profile.cpu.model).toBe("4x Cortex-A76 + 4x Cortex-A55");
    expect(profile.thermal).toEqual({ socTemperatureC: 42.5, throttling: null });
  });

  it("sees dotprod and fp16 on the Pi 5 but not on the Pi 4", async () => {
    const pi5 = await fixtureProfile("pi5-4gb");
    const pi4 = await fixtureProfile("pi4-8gb");
    expect(pi5.cpu.features).toMatchObject({
      neon: true,
      dotprod: true,
      fp16: true,
      i8mm: false,
      sve: false,
    });
    expect(pi4.cpu.features).toMatchObject({ neon: true, dotprod: false, fp16: false, i8mm: false });
    expect(pi4.cpu.features.avx2).toBe(false);
    expect(pi5.board).toBe("Raspberry Pi 5 Model B Rev 1.0");
    expect(pi5.cpu.model).toBe("4x Cortex-A76");
    expect(pi5.cpu.clusters).toHaveLength(1);
    expect(pi5.cpu.clusters[0]).toMatchObject({ kind: "performance", maxMHz: 2400, physicalCores: 4 });
  });

  it("parses past under-voltage on the Pi 4 and an active soft temperature limit on the Pi 5", async () => {
    const pi4 = await fixtureProfile("pi4-2gb");
    expect(pi4.thermal.throttling).toEqual({
      raw: "0x50000",
      underVoltage: false,
      frequencyCapped: false,
      throttled: false,
      softTemperatureLimit: false,
      underVoltageOccurred: true,
      frequencyCappedOccurred: false,
      throttledOccurred: true,
      softTemperatureLimitOccurred: false,
    });
    expect(pi4.thermal.socTemperatureC).toBe(61.8);

    const pi5 = await fixtureProfile("pi5-8gb");
    expect(pi5.thermal.throttling).toMatchObject({
      raw: "0x80008",
      softTemperatureLimit: true,
      throttled: false,
    });
    expect(pi5.thermal.throttling?.softTemperatureLimitOccurred).toBe(true);
    expect(pi5.thermal.socTemperatureC).toBe(81.2);
  });

  it("counts physical cores on a hyperthreaded x86 laptop and reads its package temperature", async () => {
    const laptop = await fixtureProfile("x86-laptop-16gb");
    expect(laptop.board).toBeNull();
    expect(laptop.arch).toBe("x64");
    expect(laptop.cpu.model).toBe("Intel(R) Core(TM) i7-10510U CPU @ 1.80GHz");
    expect(laptop.cpu.logicalCores).toBe(8);
    expect(laptop.cpu.physicalCores).toBe(4);
    // cpu0 and cpu4 are hyperthread siblings of core 0.
    expect(laptop.cpu.cores[0]?.physicalCore).toBe(laptop.cpu.cores[4]?.physicalCore);
    expect(laptop.cpu.clusters).toEqual([
      {
        id: 0,
        kind: "performance",
        coreName: null,
        partId: null,
        maxMHz: 4900,
        logicalCpus: [0, 1, 2, 3, 4, 5, 6, 7],
        physicalCores: 4,
      },
    ]);
    expect(laptop.cpu.features).toMatchObject({
      avx: true,
      avx2: true,
      avx512: false,
      f16c: true,
      fma: true,
      neon: false,
    });
    expect(laptop.thermal).toEqual({ socTemperatureC: 52, throttling: null });
    expect(laptop.gpu).toEqual({
      type: false,
      devices: [],
      vramTotalBytes: null,
      vramFreeBytes: null,
      unifiedMemory: false,
    });
  });

  it("separates Intel P-cores from E-cores and reports the CUDA GPU as node-llama-cpp sees it", async () => {
    const desktop = await fixtureProfile("x86-desktop-rtx-8gb");
    expect(desktop.cpu.logicalCores).toBe(16);
    expect(desktop.cpu.physicalCores).toBe(10);
    expect(
      desktop.cpu.clusters.map(({ kind, coreName, physicalCores, maxMHz }) => ({
        kind,
        coreName,
        physicalCores,
        maxMHz,
      })),
    ).toEqual([
      { kind: "performance", coreName: "P-core", physicalCores: 6, maxMHz: 4900 },
      { kind: "efficiency", coreName: "E-core", physicalCores: 4, maxMHz: 3600 },
    ]);
    expect(desktop.gpu).toEqual({
      type: "cuda",
      devices: ["NVIDIA GeForce RTX 4060"],
      vramTotalBytes: 8_585_216_000,
      vramFreeBytes: 7_680_163_840,
      unifiedMemory: false,
    });
    expect(desktop.llamaCpp).toMatchObject({ repacksWeights: true, cpuMathCores: 6 });
    expect(desktop.llamaCpp?.systemInfo.endsWith("REPACK = 1")).toBe(true);
  });

  it("marks the Jetson's GPU memory as shared and skips disabled thermal zones", async () => {
    const jetson = await fixtureProfile("jetson-orin-nano-8gb");
    expect(jetson.gpu).toMatchObject({ type: "cuda", devices: ["Orin"], unifiedMemory: true });
    expect(jetson.cpu.clusters).toHaveLength(1);
    expect(jetson.cpu.clusters[0]).toMatchObject({ coreName: "Cortex-A78AE", physicalCores: 6 });
    expect(jetson.thermal.socTemperatureC).toBe(45.6);
  });

  it("names 32-bit ARM armv7l and reads NEON from the ARMv7 feature names", async () => {
    const board = await fixtureProfile("armv7l-1gb");
    expect(board.arch).toBe("armv7l");
    expect(board.board).toBe("Raspberry Pi 3 Model B Plus Rev 1.3");
    expect(board.cpu.model).toBe("4x Cortex-A53");
    expect(board.cpu.features).toMatchObject({ neon: true, fma: true, dotprod: false });
    expect(board.os).toEqual({
      platform: "linux",
      distro: "Raspbian GNU/Linux",
      release: "12",
      kernel: "6.6.51+rpt-rpi-v7",
    });
  });

  it.each(fixtureBoards)(
    "%s: memory and llama.cpp facts come through, and the profile survives JSON",
    async (board) => {
      const facts = await readFixtureFacts(board);
      const profile = await fixtureProfile(board);
      expect(profile.memory).toEqual({
        totalBytes: facts.memory.total,
        availableBytes: facts.memory.available,
        swapTotalBytes: facts.memory.swaptotal,
        swapFreeBytes: facts.memory.swapfree,
      });
      expect(profile.llamaCpp?.repacksWeights).toBe(facts.llama === null ? undefined : true);
      expect(JSON.parse(JSON.stringify(profile))).toEqual(profile);
    },
  );

  it("falls back to /proc/meminfo and /etc/os-release without systeminformation", async () => {
    const deps = await fixtureDeps("pi4-2gb");
    const profile = await detectHardware({ ...deps, system: null });
    expect(profile.memory).toEqual({
      totalBytes: 1_891_192 * 1024,
      availableBytes: 1_583_040 * 1024,
      swapTotalBytes: 102_396 * 1024,
      swapFreeBytes: 102_396 * 1024,
    });
    expect(profile.os).toEqual({
      platform: "linux",
      distro: "Debian GNU/Linux",
      release: "12",
      kernel: "6.6.51+rpt-rpi-v8",
    });
  });

  it("takes the board name from /proc/cpuinfo when the device tree is missing", async () => {
    const deps = await fixtureDeps("pi5-4gb");
    const files = createRootedFileReader(fixtureRoot("pi5-4gb"));
    const profile = await detectHardware({
      ...deps,
      files: {
        readText: async (file) => (file === "/proc/device-tree/model" ? null : files.readText(file)),
        listDir: files.listDir,
      },
    });
    expect(profile.board).toBe("Raspberry Pi 5 Model B Rev 1.0");
  });
});

describe("detectHardware follows the engine, not the host's guesses", () => {
  /** An arm64 process under QEMU on an x86 machine: the x86 host's /proc, the ARM build's llama.cpp. */
  async function emulatedArm64OnX86() {
    const host = await fixtureDeps("x86-laptop-16gb");
    const pi5 = await readFixtureFacts("pi5-8gb");
    return {
      ...host,
      runtime: { arch: "arm64", machine: "aarch64", platform: "linux" },
      llama: recordedLlama(pi5.llama),
    };
  }

  it("plans an emulated arm64 process on llama.cpp's features and flags the x86 host's facts", async () => {
    const profile = await detectHardware(await emulatedArm64OnX86());
    expect(profile.cpu.featureSource).toBe("llama.cpp");
    expect(profile.cpu.features).toMatchObject({
      neon: true,
      dotprod: true,
      avx: false,
      avx2: false,
      f16c: false,
    });
    expect(profile.cpu.model).toBeNull();
    expect(profile.contradictions).toHaveLength(1);
    expect(profile.contradictions[0]).toMatch(
      /describes an x86 CPU \(Intel.*\) with .*avx2.*this process is arm64/,
    );
    const plan = planRuntime(profile, defaultPlanRequest);
    expect(plan.reasons.quantization).toMatch(/ARM dotprod kernels/);
    expect(Object.values(plan.reasons).join(" ")).not.toMatch(/AVX/);
    expect(plan.warnings).toContain(profile.contradictions[0]);
  });

  it("trusts no CPU flags of another architecture when llama.cpp is not loaded", async () => {
    const profile = await detectHardware({ ...(await emulatedArm64OnX86()), llama: null });
    expect(profile.cpu.featureSource).toBe("none");
    expect(Object.values(profile.cpu.features).some(Boolean)).toBe(false);
    expect(profile.contradictions).toHaveLength(1);
  });

  it("takes the features of the llama.cpp build that loaded, even where the kernel offers more", async () => {
    // The kernel reports asimddp, but a build without DOTPROD (the armv8.0 variant) has no dotprod kernels.
    const deps = await fixtureDeps("pi5-8gb");
    const armv80 = "CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | LLAMAFILE = 1 | REPACK = 1 | ";
    const profile = await detectHardware({ ...deps, llama: { ...deps.llama!, systemInfo: armv80 } });
    expect(profile.cpu.features.dotprod).toBe(false);
    expect(profile.contradictions).toEqual([]);
    expect(planRuntime(profile, defaultPlanRequest).quantization).toBe("Q4_K_M");
  });

  it("agrees with itself where host and process match", async () => {
    for (const board of fixtureBoards) expect((await fixtureProfile(board)).contradictions).toEqual([]);
  });
});

describe("detectHardware when probes are absent or fail", () => {
  let emptyRoot: string;
  beforeAll(async () => {
    emptyRoot = await mkdtemp(path.join(os.tmpdir(), "tinyllama-edge-empty-root-"));
  });
  afterAll(async () => {
    await rm(emptyRoot, { recursive: true, force: true });
  });

  it("returns nulls and a single core when nothing can be read", async () => {
    const profile = await detectHardware({
      files: createRootedFileReader(emptyRoot),
      runtime: { arch: "arm64", machine: "aarch64", platform: "linux" },
    });
    expect(profile.board).toBeNull();
    expect(profile.cpu.logicalCores).toBe(1);
    expect(profile.cpu.model).toBeNull();
    expect(profile.memory).toEqual({
      totalBytes: null,
      availableBytes: null,
      swapTotalBytes: null,
      swapFreeBytes: null,
    });
    expect(profile.os).toEqual({ platform: "linux", distro: null, release: null, kernel: null });
    expect(profile.thermal).toEqual({ socTemperatureC: null, throttling: null });
    expect(profile.llamaCpp).toBeNull();
    expect(profile.gpu.type).toBe(false);
  });

  it("never throws when systeminformation, node-llama-cpp and vcgencmd fail", async () => {
    const failing = async (): Promise<never> => {
      throw new Error("probe failed");
    };
    const profile = await detectHardware({
      files: createRootedFileReader(fixtureRoot("pi5-4gb")),
      runtime: { arch: "arm64", machine: "aarch64", platform: "linux" },
      system: { mem: failing, osInfo: failing, cpu: failing },
      llama: {
        gpu: "vulkan",
        get systemInfo(): string {
          throw new Error("binding gone");
        },
        cpuMathCores: 4,
        getGpuDeviceNames: failing,
        getVramState: failing,
      },
      runCommand: failing,
    });
    // /proc and /sys still answer.
    expect(profile.memory.totalBytes).toBe(4_138_720 * 1024);
    expect(profile.cpu.features.dotprod).toBe(true);
    expect(profile.gpu).toEqual({
      type: "vulkan",
      devices: [],
      vramTotalBytes: null,
      vramFreeBytes: null,
      unifiedMemory: false,
    });
    expect(profile.llamaCpp).toBeNull();
    expect(profile.thermal.throttling).toBeNull();
  });
});

describe("parsers", () => {
  it("reads every vcgencmd throttle bit", () => {
    expect(parseThrottled("throttled=0xf000f\n")).toEqual({
      raw: "0xf000f",
      underVoltage: true,
      frequencyCapped: true,
      throttled: true,
      softTemperatureLimit: true,
      underVoltageOccurred: true,
      frequencyCappedOccurred: true,
      throttledOccurred: true,
      softTemperatureLimitOccurred: true,
    });
    expect(parseThrottled("throttled=0x4")).toMatchObject({
      throttled: true,
      underVoltage: false,
      throttledOccurred: false,
    });
    expect(parseThrottled("VCHI initialization failed")).toBeNull();
  });

  it("splits llama.cpp's system info across backends", () => {
    const entries = parseLlamaSystemInfo(
      "CUDA : ARCHS = 870 | USE_GRAPHS = 1 | CPU : NEON = 1 | DOTPROD = 1 | REPACK = 1 | ",
    );
    expect(Object.fromEntries(entries)).toEqual({
      ARCHS: "870",
      USE_GRAPHS: "1",
      NEON: "1",
      DOTPROD: "1",
      REPACK: "1",
    });
  });

  it("keeps x86's numeric model field out of the board name", () => {
    const cpuinfo = parseCpuinfo(
      "processor\t: 0\nmodel\t\t: 142\nmodel name\t: Intel(R) Core(TM)\nflags\t\t: fpu avx2\n",
    );
    expect(cpuinfo.model).toBeNull();
    expect(cpuinfo.processors[0]).toMatchObject({
      index: 0,
      modelName: "Intel(R) Core(TM)",
      flags: ["fpu", "avx2"],
    });
  });

  it("expands kernel cpu lists", () => {
    expect(parseCpuList("0-3,8,10-11\n")).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList("")).toEqual([]);
  });
});
