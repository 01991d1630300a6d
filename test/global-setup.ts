import { tinyModelPath } from "./helpers/models.js";

/** Writes the tiny test model once, before any test file runs (they may then use its path directly). */
export default async function setup(): Promise<void> {
  await tinyModelPath();
}
