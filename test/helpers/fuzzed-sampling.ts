/** A JSON schema with a grammar narrow enough that llama.cpp's sampler can be made to fail on it. */
export const SWITCH_SCHEMA = {
  type: "object",
  properties: { action: { type: "string", enum: ["on", "off"] } },
  required: ["action"],
};

/** A fuzzed request's sampling; its temperature, a float32 subnormal, makes llama.cpp's logits ±infinity. */
export const FUZZED_SAMPLING = {
  temperature: 1.9727931609900015e-41,
  topP: 0.9999999999999984,
  topK: 997,
  minP: 3.990457230644063e-191,
};
