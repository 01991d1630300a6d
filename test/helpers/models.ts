import { join } from "node:path";
import {
  ensureSyntheticModel,
  syntheticModelFileName,
} from "../../packages/bench/src/model/synthetic-models.js";

/** Generated once per machine into the project's ignored cache; tests never download anything. */
export const TEST_MODEL_CACHE = join(import.meta.dirname, "..", "..", ".cache", "test-models");

/** Where the tiny model is; test/global-setup.ts writes it before any test runs. */
export const TINY_MODEL_PATH = join(TEST_MODEL_CACHE, syntheticModelFileName("tiny", "q8_0"));

export function tinyModelPath(): Promise<string> {
  return ensureSyntheticModel(TEST_MODEL_CACHE, "tiny", "q8_0");
}
