/**
 * Platforms no llama.cpp binary runs on. node-llama-cpp's `@node-llama-cpp/linux-armv7l` package
 * (3.21.1 and 3.22.1) holds aarch64 binaries, so on 32-bit ARM (Raspberry Pi OS 32-bit) nothing loads;
 * a board whose llama.cpp did load (a build of its own) is planned as usual. See docs/upstream.md.
 */

import { EdgeError } from "../errors.js";
import type { HardwareProfile } from "./hardware-profile.js";

export function is32BitArm(arch: string): boolean {
  return arch === "arm" || /^armv[5-7]/.test(arch);
}

/** ARMv8 cores (part ids 0xd..) run a 64-bit OS even where a 32-bit one is installed. */
function has64BitCores(profile: HardwareProfile): boolean {
  const parts = profile.cpu.cores.map((core) => core.partId).filter((part) => part !== null);
  return parts.length > 0 && parts.every((part) => part.toLowerCase().startsWith("0xd"));
}

/** The one-line refusal for a platform without a working llama.cpp binary; null where it can run. */
export function platformRefusal(profile: HardwareProfile): EdgeError | null {
  if (!is32BitArm(profile.arch) || profile.llamaCpp !== null) return null;
  const advice = has64BitCores(profile)
    ? "install the 64-bit Raspberry Pi OS (arm64) on this board, whose CPU runs it, and install again"
    : "it needs a 64-bit ARM board (Raspberry Pi 3 or later) with a 64-bit OS";
  return new EdgeError(
    "platform_unsupported",
    `This is a 32-bit ARM system (${profile.arch}) and node-llama-cpp has no working llama.cpp build for it (its linux-armv7l package holds 64-bit binaries): ${advice}.`,
    { details: { arch: profile.arch } },
  );
}
