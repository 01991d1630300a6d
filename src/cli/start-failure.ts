import type { AppConfig } from "../config/app-config.js";
import { type EdgeError, isEdgeError } from "../errors.js";

/** Failures that are the user's to fix (configuration, the model file, the network): no stack trace. */
const USER_MISTAKES = new Set<EdgeError["code"]>([
  "config_invalid",
  "model_invalid",
  "model_does_not_fit",
  "download_failed",
  "platform_unsupported",
]);

export function isUserMistake(err: unknown): err is EdgeError {
  return isEdgeError(err) && USER_MISTAKES.has(err.code);
}

const TINY_MODEL_QUICK_START =
  "No network? Serve the tiny test model: npm run make-model -- --preset tiny --quant q8_0 --out models/tiny.gguf, then start with --model.path models/tiny.gguf (or give --model.path your own GGUF).";

/** The one or two lines a failed start prints: what went wrong, and the fix. */
export function describeStartFailure(err: EdgeError, config: AppConfig): string[] {
  const lines = [`tinyllama-edge start: ${err.message}`];
  // The default model could not be downloaded: the quick start needs no network at all.
  if (err.code === "download_failed" && config.model.path === "" && config.model.uri === "") {
    lines.push(TINY_MODEL_QUICK_START);
  }
  return lines;
}
