import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchPrompts } from "./bench-prompts.js";
import type { BenchSizes } from "./bench-sizes.js";
import { clientTtftMs } from "./daemon-bench.js";
import type { DaemonSession } from "./daemon-session.js";
import { type FigureSet, type FigureSpec, fromSamples } from "./figures.js";

/** Starts a daemon with these extra flags, runs `use` on it, and stops it (gracefully) again. */
export type DaemonRunner = (
  extraFlags: string[],
  use: (session: DaemonSession) => Promise<void>,
) => Promise<void>;

export interface RestartBenchDeps {
  sizes: BenchSizes;
  prompts: BenchPrompts;
  temperature: number;
  withDaemon: DaemonRunner;
  step: (label: string) => void;
}

export const restartFigureId = (kind: "cold" | "restarted" | "memory" | "ratio", tokens: number) =>
  `restart.${kind}${tokens}`;

export function restartSpecs(tokens: readonly number[]): Record<string, FigureSpec> {
  const specs: Record<string, FigureSpec> = {};
  for (const n of tokens) {
    specs[restartFigureId("cold", n)] = { label: `TTFT, ${n}-token system prompt, cold`, unit: "ms" };
    specs[restartFigureId("restarted", n)] = {
      label: `TTFT, ${n}-token system prompt, first request after a restart`,
      unit: "ms",
    };
    specs[restartFigureId("memory", n)] = { label: `TTFT, ${n}-token system prompt, in memory`, unit: "ms" };
  }
  return specs;
}

export function restartRatioSpec(tokens: number): FigureSpec {
  return {
    label: `after a restart / in memory, ${tokens}-token system prompt (median of restarts)`,
    unit: "ratio",
  };
}

/** The steps the progress bar counts for this series. */
export function restartSteps(sizes: BenchSizes): number {
  return sizes.restartPromptTokens.length * (1 + 2 * sizes.restartRuns);
}

/**
 * Time to first token with a long system prompt: cold (a new prompt, nothing cached), after a restart
 * of the daemon (its saved prompt state loaded at start) and with the prefix in memory. Each length
 * gets a state directory of its own, so only its own prefix is saved and loaded.
 */
export async function measureRestart(deps: RestartBenchDeps): Promise<FigureSet> {
  const { sizes, prompts, temperature } = deps;
  const figures: FigureSet = {};
  const nonce = Date.now().toString(36);
  for (const tokens of sizes.restartPromptTokens) {
    const stateDir = await mkdtemp(join(tmpdir(), "bench-prompt-state-"));
    const flags = ["--state.dir", stateDir, "--promptState.warmSystemPrompt", "false"];
    const system = prompts.systemPromptOf(tokens, `${nonce}-${tokens}`);
    const ask = async (session: DaemonSession, prompt: string, run: number) =>
      clientTtftMs(
        await session.request({
          system: prompt,
          prompt: prompts.question(run),
          stream: true,
          max_tokens: sizes.prefixMaxTokens,
          temperature,
          seed: 1,
        }),
      );
    const cold: number[] = [];
    const restarted: number[] = [];
    const memory: number[] = [];
    // Each restart's first request over the in-memory one right after it: drift between restarts cancels.
    const pairs: number[] = [];
    const keep = (into: number[], value: number | null) => {
      if (value !== null) into.push(value);
    };
    try {
      await deps.withDaemon(flags, async (session) => {
        // A warm-up on an unrelated prompt, then cold runs: each prompt is new and used once (not saved).
        await ask(session, prompts.systemPromptOf(tokens, `${nonce}-warmup`), -1);
        for (let run = 0; run < sizes.restartRuns; run++) {
          keep(cold, await ask(session, prompts.systemPromptOf(tokens, `${nonce}-cold${run}`), run));
        }
        // Used twice: its state is saved for the restarts below.
        await ask(session, system, 0);
        await ask(session, system, 1);
        deps.step(`${tokens}-token prompt saved`);
      });
      for (let run = 0; run < sizes.restartRuns; run++) {
        await deps.withDaemon(flags, async (session) => {
          const first = await ask(session, system, run);
          keep(restarted, first);
          deps.step(`restart ${run + 1}/${sizes.restartRuns}, ${tokens} tokens`);
          const next = await ask(session, system, run + 1);
          keep(memory, next);
          if (first !== null && next !== null) pairs.push(first / next);
          deps.step(`in memory ${run + 1}/${sizes.restartRuns}, ${tokens} tokens`);
        });
      }
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
    const specs = restartSpecs([tokens]);
    const noChunk = "no stream chunk arrived";
    const restartedFigure = fromSamples(specs[restartFigureId("restarted", tokens)]!, restarted, noChunk);
    const memoryFigure = fromSamples(specs[restartFigureId("memory", tokens)]!, memory, noChunk);
    figures[restartFigureId("cold", tokens)] = fromSamples(
      specs[restartFigureId("cold", tokens)]!,
      cold,
      noChunk,
    );
    figures[restartFigureId("restarted", tokens)] = restartedFigure;
    figures[restartFigureId("memory", tokens)] = memoryFigure;
    figures[restartFigureId("ratio", tokens)] = fromSamples(restartRatioSpec(tokens), pairs, noChunk);
  }
  return figures;
}
