import { isEdgeError } from "../errors.js";

/** Prints every configuration problem to stderr and gives exit code 2; other errors give 1. */
export function printConfigProblems(err: unknown): number {
  if (isEdgeError(err) && err.code === "config_invalid") {
    process.stderr.write(`tinyllama-edge: ${err.message}\n`);
    return 2;
  }
  process.stderr.write(`tinyllama-edge: ${(err as Error).message ?? String(err)}\n`);
  return 1;
}
