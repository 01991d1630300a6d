import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { HardwareProfile } from "tinyllama-edge/hardware/hardware-profile.js";

/** The machine a run was measured on: figures mean little without it. */
export interface MachineInfo {
  board: string | null;
  arch: string;
  os: string;
  cpuModel: string | null;
  physicalCores: number;
  logicalCores: number;
  ramBytes: number | null;
  gpu: string;
  /** llama.cpp's feature string (AVX2, NEON, REPACK …). */
  llamaSystemInfo: string | null;
}

export function machineInfo(hardware: HardwareProfile): MachineInfo {
  const { os } = hardware;
  return {
    board: hardware.board,
    arch: hardware.arch,
    os: [os.distro ?? os.platform, os.release, os.kernel ? `kernel ${os.kernel}` : null]
      .filter(Boolean)
      .join(" "),
    cpuModel: hardware.cpu.model,
    physicalCores: hardware.cpu.physicalCores,
    logicalCores: hardware.cpu.logicalCores,
    ramBytes: hardware.memory.totalBytes,
    gpu: hardware.gpu.type === false ? "none" : `${hardware.gpu.type} ${hardware.gpu.devices.join(", ")}`,
    llamaSystemInfo: hardware.llamaCpp?.systemInfo ?? null,
  };
}

/** The installed node-llama-cpp's version, from its package.json (its exports map hides the file). */
export async function nodeLlamaCppVersion(): Promise<string | null> {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve("node-llama-cpp"));
    for (let depth = 0; depth < 4; depth++) {
      try {
        const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
          name?: string;
          version?: string;
        };
        if (pkg.name === "node-llama-cpp") return pkg.version ?? null;
      } catch {
        // no package.json at this level: go up
      }
      dir = dirname(dir);
    }
  } catch {
    // not resolvable: reported as unknown
  }
  return null;
}
