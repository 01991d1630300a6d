import type { TestProject } from "vitest/node";
import { tinyModelPath } from "../helpers/models.js";
import { type ArmRuntime, type ArmTarget, emulationProblems, prepareArmRuntime } from "./emulation.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** What keeps this machine from emulating ARM (every test then fails with it), or the runtimes. */
    armEmulation: { problems: string[]; runtimes: Partial<Record<ArmTarget, ArmRuntime>> };
  }
}

/** Checks the machine can emulate ARM, then installs ARM Node.js and the project for each target. */
export default async function setup(project: TestProject): Promise<void> {
  await tinyModelPath();
  const problems = emulationProblems();
  const runtimes: Partial<Record<ArmTarget, ArmRuntime>> = {};
  if (problems.length === 0) {
    for (const target of ["arm64", "armv7l"] as const) {
      const started = Date.now();
      try {
        runtimes[target] = await prepareArmRuntime(target);
        process.stdout.write(`${target} runtime ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      } catch (error) {
        problems.push(`could not install the ${target} runtime: ${(error as Error).message}`);
      }
    }
  }
  project.provide("armEmulation", { problems, runtimes });
}
