import type { FigureSet } from "./figures.js";

/**
 * The targets, set on a 2-core x86 box with the TinyLlama-shaped Q4_0 model: what the daemon
 * should cost on top of the bare engine, and what its serving features should buy.
 */
export interface Goal {
  id: string;
  /** The figure it is judged on. */
  figure: string;
  comparison: "<=" | ">=" | "<";
  target: number;
  description: string;
}

export const MB = 1_000_000;

export const GOALS: readonly Goal[] = [
  // Judged on interleaved pairs (paired-bench.ts): separate series minutes apart measured the
  // machine's drift as much as the daemon.
  {
    id: "daemon-tg",
    figure: "paired.ratio",
    comparison: ">=",
    target: 0.97,
    description:
      "daemon tg >= 97% of the in-process engine with the same threads (median of interleaved pairs)",
  },
  {
    id: "ttft-overhead",
    figure: "daemon.ttftOverhead",
    comparison: "<=",
    target: 15,
    description: "time to first token over MQTT at most 15 ms above the engine's",
  },
  {
    id: "daemon-tg-spread",
    figure: "paired.spread",
    comparison: "<",
    target: 5,
    description: "run-to-run spread of the daemon/engine tg pairs under 5%",
  },
  {
    id: "parallel-4",
    figure: "parallel.ratio4",
    comparison: ">=",
    target: 2.5,
    description: "aggregate tg with 4 parallel requests >= 2.5x one request",
  },
  ...[2, 3, 4].map((level) => ({
    id: `parallel-vs-llama-${level}`,
    figure: `parallel.vsLlama${level}`,
    comparison: ">=" as const,
    target: 1,
    description: `aggregate tg ratio with ${level} requests >= llama-batched-bench's own`,
  })),
  {
    id: "prefix-cache",
    figure: "prefix.ratio",
    comparison: "<=",
    target: 0.2,
    description: "time to first token with a cached system prompt <= 20% of uncached",
  },
  ...[300, 1000].map((tokens) => ({
    id: `restart-${tokens}`,
    figure: `restart.ratio${tokens}`,
    comparison: "<=" as const,
    target: 1.2,
    description: `first request after a restart <= 1.2x an in-memory hit (${tokens}-token system prompt)`,
  })),
  {
    id: "peak-rss",
    figure: "memory.overModel",
    comparison: "<=",
    target: 200 * MB,
    description: "peak RSS <= model file + 200 MB at 1 sequence and 2048 context",
  },
];

export interface GoalResult {
  id: string;
  description: string;
  figure: string;
  comparison: Goal["comparison"];
  target: number;
  value: number | null;
  status: "met" | "missed" | "n/a";
  /** Why it could not be judged (the figure's own reason). */
  reason?: string;
}

export function meets(value: number, goal: Pick<Goal, "comparison" | "target">): boolean {
  if (goal.comparison === "<=") return value <= goal.target;
  if (goal.comparison === ">=") return value >= goal.target;
  return value < goal.target;
}

export function judgeGoals(figures: FigureSet, goals: readonly Goal[] = GOALS): GoalResult[] {
  return goals.map((goal) => {
    const base = {
      id: goal.id,
      description: goal.description,
      figure: goal.figure,
      comparison: goal.comparison,
      target: goal.target,
    };
    const figure = figures[goal.figure];
    if (!figure) return { ...base, value: null, status: "n/a", reason: "not measured in this run" };
    if (figure.value === null) return { ...base, value: null, status: "n/a", reason: figure.reason };
    return { ...base, value: figure.value, status: meets(figure.value, goal) ? "met" : "missed" };
  });
}
