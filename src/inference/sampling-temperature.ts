/** Below this, a temperature is run as greedy sampling (its limit as it approaches 0). */
export const GREEDY_BELOW_TEMPERATURE = 1e-6;

/**
 * The temperature handed to llama.cpp. It divides the logits by the temperature in float32: a
 * temperature near 0 (1e-41 was seen) turns them into ±infinity, every candidate ties at -infinity,
 * and the sampler picks a token at random; with a JSON-schema grammar that token is one the grammar
 * refuses, and sampling fails. Greedy sampling is what such a temperature means.
 */
export function samplingTemperature(requested: number): number {
  return requested < GREEDY_BELOW_TEMPERATURE ? 0 : requested;
}
