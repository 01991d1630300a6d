import { LlamaCompletion, type LlamaContextSequence } from "node-llama-cpp";

export interface CompletionTiming {
  /** Call to the first generated text, as the daemon times it (its onTextChunk). */
  ttftMs: number | null;
  tokens: number;
  /** (tokens - 1) over first to last token: generation only, the prompt excluded. */
  tokensPerSecond: number | null;
}

export interface TimedCompletionOptions {
  maxTokens: number;
  temperature: number;
  seed: number;
  signal: AbortSignal;
}

/**
 * One raw completion with the daemon's settings for a raw request (repeat penalty off, no stop
 * triggers, node-llama-cpp's defaults for top-k/top-p/min-p), timed token by token.
 */
export async function timedCompletion(
  sequence: LlamaContextSequence,
  prompt: string,
  options: TimedCompletionOptions,
): Promise<CompletionTiming> {
  const completion = new LlamaCompletion({ contextSequence: sequence });
  const tokenTimes: number[] = [];
  const marks: { firstTextAt: number | null } = { firstTextAt: null };
  const startedAt = performance.now();
  try {
    await completion.generateCompletionWithMeta(prompt, {
      maxTokens: options.maxTokens,
      temperature: options.temperature,
      seed: options.seed,
      repeatPenalty: false,
      signal: options.signal,
      stopOnAbortSignal: true,
      onToken: (tokens) => {
        const now = performance.now();
        for (let i = 0; i < tokens.length; i++) tokenTimes.push(now);
      },
      onTextChunk: () => {
        marks.firstTextAt ??= performance.now();
      },
    });
  } finally {
    completion.dispose();
  }
  options.signal.throwIfAborted();
  return {
    ttftMs: marks.firstTextAt === null ? null : marks.firstTextAt - startedAt,
    tokens: tokenTimes.length,
    tokensPerSecond: rateOf(tokenTimes.length, tokenTimes[0], tokenTimes.at(-1)),
  };
}

/** Tokens after the first over the time from the first to the last; null when that is not measurable. */
export function rateOf(
  tokens: number,
  firstAt: number | undefined,
  lastAt: number | undefined,
): number | null {
  if (tokens < 2 || firstAt === undefined || lastAt === undefined || lastAt <= firstAt) return null;
  return ((tokens - 1) * 1000) / (lastAt - firstAt);
}
