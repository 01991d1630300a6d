import { join } from "node:path";
import { ensureSyntheticModel } from "../../src/model/synthetic-models.js";

/** Generated once per machine into the project's ignored cache; tests never download anything. */
export const TEST_MODEL_CACHE = join(import.meta.dirname, "..", "..", ".cache", "test-models");

export function tinyModelPath(): Promise<string> {
  return ensureSyntheticModel(TEST_MODEL_CACHE, "tiny", "q8_0");
}
