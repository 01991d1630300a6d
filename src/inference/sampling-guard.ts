import type { LlamaContext } from "node-llama-cpp";

/** The native context's sampling call, as node-llama-cpp 3.21.1 uses it (an internal field). */
interface NativeSampling {
  sampleToken(...args: unknown[]): Promise<unknown>;
}

/** What a failed sampling turns into: node-llama-cpp's "no token" value, in the shape it was asked for. */
const NO_TOKEN = -1;

/**
 * Turns a failed token sampling into a failed generation instead of a dead process.
 *
 * node-llama-cpp samples inside its batch dispatch loop, which it starts with `void`: when llama.cpp's
 * sampler throws (seen: a JSON-schema grammar refusing the token its own check had just let through,
 * "Unexpected empty grammar stack after accepting piece"), the rejection escapes as an unhandled
 * rejection and the generation that asked for the token waits forever. Answering "no token" (-1)
 * instead makes node-llama-cpp throw "Failed to sample next token" inside that generation, where the
 * request is answered with an error and its sequence is freed. `onFailure` hears the native reason.
 */
export function guardSampling(context: LlamaContext, onFailure: (error: Error) => void): void {
  const native = (context as unknown as { _ctx?: NativeSampling })._ctx;
  if (!native || typeof native.sampleToken !== "function") {
    throw new Error("node-llama-cpp's context has no _ctx.sampleToken: the sampling guard needs updating");
  }
  const sampleToken = native.sampleToken.bind(native);
  const guarded = async (...args: unknown[]) => {
    try {
      return await sampleToken(...args);
    } catch (err) {
      onFailure(err instanceof Error ? err : new Error(String(err)));
      // Called with (index, sampler) it resolves to a token; with probabilities/confidence flags, to a tuple.
      return args.length > 2 ? [NO_TOKEN, undefined, undefined] : NO_TOKEN;
    }
  };
  // The addon's methods are read-only on its prototype: an own property of this one object shadows it.
  Object.defineProperty(native, "sampleToken", { value: guarded, configurable: true, writable: true });
}

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
