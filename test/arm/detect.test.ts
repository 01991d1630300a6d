import { describe, expect, inject, it } from "vitest";
import type { HardwareProfile } from "../../src/hardware/hardware-profile.js";
import type { RuntimePlan } from "../../src/hardware/plan-runtime.js";
import { expectedPlans } from "../fixtures/hardware/expected-plans.js";
import type { FixtureBoard } from "../fixtures/hardware/fixture-deps.js";
import { armRuntimeOf, type EmulatedBoard, emulatedBoards, runEmulated, stackFrame } from "./emulation.js";

interface DetectJson {
  hardware: HardwareProfile;
  plan: RuntimePlan | null;
  error?: { code: string; message: string };
}

function expectedFor(board: FixtureBoard) {
  const row = expectedPlans.find(([name]) => name === board);
  if (!row) throw new Error(`no expected plan for ${board}`);
  return row[1];
}

async function detectOn(board: EmulatedBoard) {
  const runtime = armRuntimeOf(inject("armEmulation"), board.target);
  const result = await runEmulated(runtime, board, ["detect", "--json"]);
  let json: DetectJson;
  try {
    json = JSON.parse(result.stdout) as DetectJson;
  } catch {
    throw new Error(
      `detect --json printed no JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`,
    );
  }
  return { ...result, json };
}

describe("detect --json on emulated boards, with the real prebuilt llama.cpp", () => {
  it("Pi 5 (arm64, Cortex-A76): the fixture's plan, explained by the features the engine reports", async () => {
    const { code, json, stderr } = await detectOn(emulatedBoards.pi5);
    expect(code, stderr).toBe(0);
    const { hardware, plan } = json;
    expect(hardware.arch).toBe("arm64");
    expect(hardware.board).toBe("Raspberry Pi 5 Model B Rev 1.0");
    // The arm64 prebuilt's dotprod variant loaded and repacks weights.
    expect(hardware.llamaCpp?.systemInfo).toMatch(/DOTPROD = 1/);
    expect(hardware.llamaCpp?.repacksWeights).toBe(true);
    expect(hardware.cpu.featureSource).toBe("llama.cpp");
    expect(hardware.cpu.features).toMatchObject({ neon: true, dotprod: true, avx2: false });
    expect(hardware.contradictions).toEqual([]);
    expect(plan).toMatchObject(expectedFor("pi5-8gb") as object);
    expect(plan?.reasons.quantization).toMatch(/repacks Q4_0 into its ARM dotprod kernels/);
    expect(Object.values(plan?.reasons ?? {}).join(" ")).not.toMatch(/AVX/);
  });

  it("Pi Zero 2 W (arm64, Cortex-A53): no dotprod in the engine, and the model is refused for its 512 MB", async () => {
    const { code, json } = await detectOn(emulatedBoards.piZero2);
    expect(json.hardware.llamaCpp?.systemInfo).toMatch(/NEON = 1/);
    expect(json.hardware.llamaCpp?.systemInfo).not.toMatch(/DOTPROD = 1/);
    expect(json.hardware.cpu.features.dotprod).toBe(false);
    expect(json.plan).toBeNull();
    expect(json.error?.code).toBe(expectedFor("pi-zero-2w-512mb"));
    expect(json.error?.message).not.toContain("\n");
    expect(code).toBe(3);
  });

  it("Pi 4 on 32-bit Raspberry Pi OS (armv7l): no prebuilt loads, refused in one line with the fix", async () => {
    const board = emulatedBoards.pi4On32BitOs;
    const runtime = armRuntimeOf(inject("armEmulation"), board.target);
    const result = await runEmulated(runtime, board, ["detect"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/arch\s+armv7l/);
    expect(result.stdout).toMatch(/No plan \(platform_unsupported\)/);
    const refusal = result.stdout.split("\n").find((line) => line.includes("32-bit ARM system"));
    expect(refusal).toMatch(/install the 64-bit Raspberry Pi OS/);
    expect(expectedFor("pi4-4gb-armv7l")).toBe("platform_unsupported");
    expect(`${result.stdout}\n${result.stderr}`).not.toMatch(stackFrame);
  });
});
