import { difference, type FigureSet, type FigureSpec, measured, missing, ratio } from "./figures.js";

export const DERIVED_FIGURES = {
  "daemon.tgRatio": { label: "daemon/engine tg", unit: "ratio" },
  "daemon.ttftOverhead": { label: "TTFT overhead (daemon - engine)", unit: "ms difference" },
  "prefix.ratio": { label: "cached/uncached TTFT", unit: "ratio" },
  "memory.modelFile": { label: "model file", unit: "bytes" },
  "memory.overModel": { label: "peak RSS - model file", unit: "bytes difference" },
  "anchor.ppRatio": { label: "engine/llama-bench pp", unit: "ratio" },
  "anchor.tgRatio": { label: "daemon/llama-bench tg", unit: "ratio" },
  "ceiling.tokensPerSecond": { label: "ceiling (bandwidth / model bytes)", unit: "tokens/s" },
  "ceiling.engineShare": { label: "engine tg / ceiling", unit: "ratio" },
  "ceiling.daemonShare": { label: "daemon tg / ceiling", unit: "ratio" },
} as const satisfies Record<string, FigureSpec>;

/** Where each figure goes in the table: by the prefix of its id, then in measuring order. */
const SECTION_ORDER = [
  "engine.",
  "daemon.",
  "paired.",
  "threads.",
  "parallel.",
  "prefix.",
  "restart.",
  "memory.",
  "binary.",
  "ceiling.",
  "anchor.",
];

const FIRST_IN_SECTION: Record<string, string[]> = {
  "daemon.": ["daemon.tg", "daemon.tgReported", "daemon.tgSpread", "daemon.tgRatio", "daemon.ttft"],
};

/**
 * Ratios and differences of the measured figures, each n/a where an input is. With the measured
 * memory bandwidth: the generation ceiling (bandwidth / bytes per token, docs/arm.md) and the
 * share of it the engine and the daemon reached.
 */
export function deriveFigures(
  figures: FigureSet,
  modelFileBytes: number,
  bandwidthBytesPerSecond: number | null = null,
): FigureSet {
  const get = (id: string): FigureSet[string] =>
    figures[id] ?? missing({ label: id, unit: "ratio" }, `${id} was not measured`);
  const modelFile = measured(DERIVED_FIGURES["memory.modelFile"], modelFileBytes);
  const ceiling =
    bandwidthBytesPerSecond !== null && modelFileBytes > 0
      ? measured(DERIVED_FIGURES["ceiling.tokensPerSecond"], bandwidthBytesPerSecond / modelFileBytes)
      : missing(DERIVED_FIGURES["ceiling.tokensPerSecond"], "memory bandwidth was not measured");
  return {
    "ceiling.tokensPerSecond": ceiling,
    "ceiling.engineShare": ratio(DERIVED_FIGURES["ceiling.engineShare"], get("engine.tg"), ceiling),
    "ceiling.daemonShare": ratio(DERIVED_FIGURES["ceiling.daemonShare"], get("daemon.tg"), ceiling),
    "daemon.tgRatio": ratio(DERIVED_FIGURES["daemon.tgRatio"], get("daemon.tg"), get("engine.tg")),
    "daemon.ttftOverhead": difference(
      DERIVED_FIGURES["daemon.ttftOverhead"],
      get("daemon.ttft"),
      get("engine.ttft"),
    ),
    "prefix.ratio": ratio(DERIVED_FIGURES["prefix.ratio"], get("prefix.cached"), get("prefix.uncached")),
    "memory.modelFile": modelFile,
    "memory.overModel": difference(DERIVED_FIGURES["memory.overModel"], get("memory.peakRss"), modelFile),
    "anchor.ppRatio": ratio(DERIVED_FIGURES["anchor.ppRatio"], get("engine.pp"), get("anchor.pp")),
    "anchor.tgRatio": ratio(DERIVED_FIGURES["anchor.tgRatio"], get("daemon.tg"), get("anchor.tg")),
  };
}

/** The figures grouped by section (engine, daemon, threads …) for the table and the JSON. */
export function orderFigures(figures: FigureSet): FigureSet {
  const entries = Object.entries(figures);
  const ordered: FigureSet = {};
  for (const section of SECTION_ORDER) {
    const inSection = entries.filter(([id]) => id.startsWith(section));
    const first = FIRST_IN_SECTION[section] ?? [];
    const rank = (id: string) => (first.includes(id) ? first.indexOf(id) : first.length);
    inSection.sort(([a], [b]) => rank(a) - rank(b));
    for (const [id, figure] of inSection) ordered[id] = figure;
  }
  for (const [id, figure] of entries) if (!(id in ordered)) ordered[id] = figure;
  return ordered;
}
