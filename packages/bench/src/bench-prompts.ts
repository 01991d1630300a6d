import type { LlamaModel, Token } from "node-llama-cpp";

/**
 * The texts both sides are given. Each run's prompt starts with a word of its own, so neither the
 * engine nor the daemon reuses the previous run's KV cache beyond the first token or two: both
 * evaluate the same amount.
 */
const FILLER =
  "The house woke slowly: the kitchen lights rose to a warm glow, the kettle clicked on, " +
  "the hall thermostat nudged the heating up by half a degree and the garden sensors reported dew. ";

const SYSTEM_FILLER =
  "Rooms: kitchen, hall, living room, attic, garden, garage, two bedrooms and a bathroom. " +
  "Devices: dimmable lights in every room, a thermostat per floor, blinds, a door lock and sensors. ";

export interface BenchPrompts {
  /** Exactly `promptTokens` tokens (BOS first) for the pp series. */
  ppTokens: Token[];
  /** The raw prompt of tg/TTFT run `run` (engine and daemon alike). */
  generation(run: number): string;
  /** A raw prompt of about `promptTokens` tokens whose first word is run `run`'s own. */
  ppText(run: number): string;
  /** A ~`systemPromptTokens` system prompt; `variant` changes its first word (an uncached prefix). */
  systemPrompt(variant: string): string;
  /** A system prompt of about `tokens` tokens (one of restartPromptTokens), `variant` as above. */
  systemPromptOf(tokens: number, variant: string): string;
  /** A short user turn after the system prompt; runs 0-9 differ from their first character on. */
  question(run: number): string;
}

/** Repeats `filler` until the model's tokenizer gives at least `tokens` tokens. */
export function textOfAtLeast(model: LlamaModel, filler: string, tokens: number): string {
  let text = filler;
  while (model.tokenize(text).length < tokens) text += filler;
  return text;
}

export function buildBenchPrompts(
  model: LlamaModel,
  sizes: { promptTokens: number; systemPromptTokens: number; restartPromptTokens: readonly number[] },
): BenchPrompts {
  const bos = model.tokens.bos;
  const prefix = bos === null ? [] : [bos];
  const ppText = textOfAtLeast(model, FILLER, sizes.promptTokens);
  const ppTokens = [...prefix, ...model.tokenize(ppText)].slice(0, sizes.promptTokens);
  const systemOf = (tokens: number) => textOfAtLeast(model, SYSTEM_FILLER, tokens);
  const system = systemOf(sizes.systemPromptTokens);
  const restartSystems = new Map(sizes.restartPromptTokens.map((tokens) => [tokens, systemOf(tokens)]));
  return {
    ppTokens,
    generation: (run) => `Morning ${run}. The weather in the kitchen today is`,
    ppText: (run) => `${run}: ${ppText}`,
    systemPrompt: (variant) => `Household ${variant}. You are the house assistant. ${system}`,
    systemPromptOf: (tokens, variant) =>
      `Household ${variant}. You are the house assistant. ${restartSystems.get(tokens) ?? systemOf(tokens)}`,
    // The run number comes first: consecutive questions part at their first token, so a request on
    // a sequence that still holds the previous one evaluates its whole turn, as one after a restart does.
    question: (run) => `${run}: is the hall light on?`,
  };
}
