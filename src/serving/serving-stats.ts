/** Counters and recent figures of the serving path, read by the health reporter and busy answers. */
export class ServingStats {
  requests = 0;
  errors = 0;
  /** Prompt tokens of the requests served (what usage.prompt_tokens says). */
  promptTokens = 0;
  /** Prompt tokens actually evaluated: fewer when a cached prefix was reused. */
  promptTokensEvaluated = 0;
  completionTokens = 0;
  lastTokensPerSecond: number | null = null;
  lastTtftMs: number | null = null;
  private tokensPerSecondSum = 0;
  private tokensPerSecondCount = 0;
  private jobMsAverage: number | null = null;

  get averageTokensPerSecond(): number | null {
    return this.tokensPerSecondCount === 0 ? null : this.tokensPerSecondSum / this.tokensPerSecondCount;
  }

  /** Exponential moving average, so retry_after_ms follows the current load. */
  get averageJobMs(): number | null {
    return this.jobMsAverage;
  }

  recordAnswer(ok: boolean): void {
    this.requests++;
    if (!ok) this.errors++;
  }

  recordGeneration(figures: {
    promptTokens: number;
    promptTokensEvaluated: number;
    completionTokens: number;
    tokensPerSecond: number | null;
    ttftMs: number | null;
    jobMs: number;
  }): void {
    this.promptTokens += figures.promptTokens;
    this.promptTokensEvaluated += figures.promptTokensEvaluated;
    this.completionTokens += figures.completionTokens;
    if (figures.tokensPerSecond !== null) {
      this.lastTokensPerSecond = figures.tokensPerSecond;
      this.tokensPerSecondSum += figures.tokensPerSecond;
      this.tokensPerSecondCount++;
    }
    if (figures.ttftMs !== null) this.lastTtftMs = figures.ttftMs;
    this.jobMsAverage =
      this.jobMsAverage === null ? figures.jobMs : this.jobMsAverage * 0.8 + figures.jobMs * 0.2;
  }
}
