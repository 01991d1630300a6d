import { afterEach, beforeEach, vi } from "vitest";
import type { RequestLimitsConfig } from "../../src/config/app-config.js";
import type { HostFacts } from "../../src/health/system-metrics.js";

/** Request limits for serving tests: small token counts, the shipped byte limits. */
export const REQUEST_LIMITS: RequestLimitsConfig = {
  maxPayloadBytes: 65536,
  maxPromptBytes: 16384,
  maxMessages: 64,
  defaultMaxTokens: 16,
  maxTokensCap: 64,
  defaultTemperature: 0.7,
  defaultTimeoutMs: 60_000,
  maxTimeoutMs: 600_000,
  systemPrompt: "",
};

/** A host whose Node.js figures never move: the files under test decide every reading. */
export const FIXED_HOST: HostFacts = {
  loadAverage: () => [0, 0, 0],
  totalMemoryBytes: () => 1,
  freeMemoryBytes: () => 1,
  cpuTimes: () => ({ busy: 0, total: 0 }),
  processRssBytes: () => 1,
  processUptimeSeconds: () => 1,
};

/** Fake timers and performance.now() for each test of the calling suite. */
export function useFakeClock(): void {
  beforeEach(() => {
    vi.useFakeTimers({
      toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance"],
    });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}
