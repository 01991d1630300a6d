import type { BenchReport } from "./bench-report.js";
import type { Figure, FigureUnit } from "./figures.js";
import { type GoalResult, MB } from "./goals.js";

function signed(value: number, digits: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

/** Whole megabytes, with a decimal for small files (the tiny test model is under 1 MB). */
function megabytes(bytes: number): string {
  const value = bytes / MB;
  return value.toFixed(Math.abs(value) < 10 ? 1 : 0);
}

/** A value in the figure's unit, as the table prints it. */
export function formatValue(value: number, unit: FigureUnit): string {
  switch (unit) {
    case "tokens/s":
      return `${value.toFixed(1)} tok/s`;
    case "ms":
      return `${value.toFixed(1)} ms`;
    case "ms difference":
      return `${signed(value, 1)} ms`;
    case "ratio":
      return `${value.toFixed(2)}x`;
    case "%":
      return `${value.toFixed(1)} %`;
    case "bytes":
      return `${megabytes(value)} MB`;
    case "bytes difference":
      return `${value >= 0 ? "+" : ""}${megabytes(value)} MB`;
  }
}

function goalCell(goal: GoalResult | undefined, unit: FigureUnit): string {
  if (!goal) return "";
  const target = `${goal.comparison} ${formatValue(goal.target, unit).replace(/^\+/, "")}`;
  const verdict = goal.status === "met" ? "met" : goal.status === "missed" ? "MISSED" : "n/a";
  return `${target}: ${verdict}`;
}

function row(figure: Figure, goal: GoalResult | undefined): string[] {
  if (figure.value === null)
    return [figure.label, "n/a", "", "", "", goalCell(goal, figure.unit), figure.reason];
  const stats = figure.stats;
  const range = stats && stats.samples.length > 1;
  return [
    figure.label,
    formatValue(figure.value, figure.unit),
    range ? formatValue(stats.min, figure.unit) : "",
    range ? formatValue(stats.max, figure.unit) : "",
    range ? `${stats.spreadPercent.toFixed(1)} %` : "",
    goalCell(goal, figure.unit),
    stats ? `${stats.samples.length} run${stats.samples.length === 1 ? "" : "s"}` : "",
  ];
}

/** Columns padded to their widest cell; the last column is left ragged. */
export function alignColumns(rows: string[][]): string {
  const widths: number[] = [];
  for (const cells of rows)
    cells.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  return rows
    .map((cells) =>
      cells
        .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function brokerText(broker: BenchReport["broker"]): string {
  if (broker === null) return "none";
  return `${broker.kind}${broker.tcpNoDelay ? " (TCP_NODELAY)" : ""}`;
}

/** The header, one row per figure with its goal, and the goal summary. */
export function formatBenchTable(report: BenchReport): string {
  const { machine, model } = report;
  const goalsByFigure = new Map(report.goals.map((goal) => [goal.figure, goal]));
  const header = [
    `machine: ${machine.cpuModel ?? "unknown CPU"}, ${machine.physicalCores} physical / ${machine.logicalCores} logical cores, ` +
      `${machine.ramBytes === null ? "?" : megabytes(machine.ramBytes)} MB RAM, ${machine.arch}, GPU ${machine.gpu}`,
    `model: ${model.path} (${megabytes(model.fileBytes)} MB${model.synthetic ? `, synthetic ${model.synthetic}` : ""})`,
    `threads ${report.threads}, context ${report.plan.contextSize}, batch ${report.plan.batchSize}, mmap ${report.plan.useMmap}, ` +
      `node-llama-cpp ${report.nodeLlamaCpp.version ?? "?"}, broker ${brokerText(report.broker)}`,
    `${report.options.quick ? "quick run" : "full run"}: ${report.options.runs} runs per series after ${report.sizes.warmups} warm-up, ` +
      `pp ${report.sizes.promptTokens} tokens, tg ${report.sizes.generateTokens} tokens, ${(report.durationMs / 1000).toFixed(0)} s`,
  ];
  const rows = [
    ["figure", "median", "min", "max", "spread", "goal", ""],
    ...Object.entries(report.figures).map(([id, figure]) => row(figure, goalsByFigure.get(id))),
  ];
  const met = report.goals.filter((goal) => goal.status === "met").length;
  const judged = report.goals.filter((goal) => goal.status !== "n/a").length;
  return [
    ...header,
    "",
    alignColumns(rows),
    "",
    `goals met: ${met} of ${judged} judged (${report.goals.length - judged} n/a)`,
  ].join("\n");
}
