import { isEdgeError } from "../errors.js";

/** The documented exit codes (README, Commands). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_DOES_NOT_FIT = 3;
export const EXIT_INTERRUPTED = 130;

/** 2 for configuration and usage mistakes (a model file that is missing or not a GGUF included), 3 for a model that does not fit, 1 for the rest. */
export function exitCodeOf(err: unknown): number {
  if (!isEdgeError(err)) return EXIT_FAILURE;
  if (err.code === "config_invalid" || err.code === "model_invalid") return EXIT_USAGE;
  if (err.code === "model_does_not_fit") return EXIT_DOES_NOT_FIT;
  return EXIT_FAILURE;
}
