import os from "node:os";
import si from "systeminformation";
import type { DetectHardwareDeps } from "../hardware/detect-hardware.js";
import { createRootedFileReader } from "../hardware/rooted-file-reader.js";
import { createCommandRunner } from "../hardware/run-command.js";

/** Detection sources of the machine this process runs on (llama is added once it is loaded). */
export function hostDetectionDeps(rootDir = "/"): Omit<DetectHardwareDeps, "llama"> {
  return {
    files: createRootedFileReader(rootDir),
    runtime: { arch: process.arch, machine: os.machine(), platform: process.platform },
    system: si,
    runCommand: createCommandRunner(),
  };
}
