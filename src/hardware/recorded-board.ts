/**
 * A board recorded for planning elsewhere: a directory with the /proc, /sys and /etc files detection
 * reads, plus facts.json with what systeminformation, node-llama-cpp and vcgencmd reported there.
 * `detect --board DIR` and `pull --board DIR` plan for it (what a Pi would download, from a laptop).
 */

import { readFile } from "node:fs/promises";
import path from "node:path";
import { EdgeError } from "../errors.js";
import type { DetectHardwareDeps, LlamaHardwareView, SystemFactsSource } from "./detect-hardware.js";
import type { GpuType } from "./hardware-profile.js";
import { createRootedFileReader } from "./rooted-file-reader.js";
import type { CommandRunner } from "./run-command.js";

export interface RecordedBoardFacts {
  runtime: DetectHardwareDeps["runtime"];
  os: Awaited<ReturnType<SystemFactsSource["osInfo"]>>;
  cpu: Awaited<ReturnType<SystemFactsSource["cpu"]>>;
  memory: Awaited<ReturnType<SystemFactsSource["mem"]>>;
  llama: {
    gpu: GpuType;
    systemInfo: string;
    cpuMathCores: number;
    gpuDeviceNames: string[];
    vram: { total: number; used: number; free: number; unifiedSize: number };
  } | null;
  commands: Record<string, string>;
}

export async function readRecordedBoardFacts(dir: string): Promise<RecordedBoardFacts> {
  const file = path.join(dir, "facts.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new EdgeError(
      "config_invalid",
      `${dir} is not a recorded board: it has no facts.json (see test/fixtures/hardware/ for examples)`,
    );
  }
  try {
    return JSON.parse(text) as RecordedBoardFacts;
  } catch (err) {
    throw new EdgeError("config_invalid", `${file} is not valid JSON: ${(err as Error).message}`);
  }
}

export function recordedLlama(facts: RecordedBoardFacts["llama"]): LlamaHardwareView | null {
  if (facts === null) return null;
  return {
    gpu: facts.gpu,
    systemInfo: facts.systemInfo,
    cpuMathCores: facts.cpuMathCores,
    getGpuDeviceNames: async () => facts.gpuDeviceNames,
    getVramState: async () => facts.vram,
  };
}

export function recordedSystem(facts: RecordedBoardFacts): SystemFactsSource {
  return {
    mem: async () => facts.memory,
    osInfo: async () => facts.os,
    cpu: async () => facts.cpu,
  };
}

/** Replays recorded command output; a command that was not recorded is missing, as on a non-Pi. */
export function recordedCommands(commands: Record<string, string>): CommandRunner {
  return async (file, args) => {
    const output = commands[[file, ...args].join(" ")];
    if (output === undefined) {
      throw Object.assign(new Error(`spawn ${file} ENOENT`), { code: "ENOENT" });
    }
    return output;
  };
}

/** Detection sources that replay the board recorded in `dir`, node-llama-cpp's view included. */
export async function recordedBoardDeps(dir: string): Promise<DetectHardwareDeps> {
  const facts = await readRecordedBoardFacts(dir);
  return {
    files: createRootedFileReader(dir),
    runtime: facts.runtime,
    system: recordedSystem(facts),
    llama: recordedLlama(facts.llama),
    runCommand: recordedCommands(facts.commands),
  };
}
