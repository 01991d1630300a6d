import { type RunStats, summarize } from "./stats.js";

/** How a figure is read: rates and times are positive, differences may have either sign. */
export type FigureUnit = "tokens/s" | "ms" | "ratio" | "ms difference" | "bytes" | "bytes difference" | "%";

/** What a figure is, before it is measured. */
export interface FigureSpec {
  label: string;
  unit: FigureUnit;
}

export interface MeasuredFigure extends FigureSpec {
  value: number;
  /** The runs behind a median; null for a derived or single-reading figure. */
  stats: RunStats | null;
}

export interface MissingFigure extends FigureSpec {
  value: null;
  /** Why it could not be measured: never a made-up number. */
  reason: string;
}

export type Figure = MeasuredFigure | MissingFigure;

/** Figures by id, in the order the table prints them. */
export type FigureSet = Record<string, Figure>;

export function measured(spec: FigureSpec, value: number): Figure {
  if (!Number.isFinite(value)) return missing(spec, `the measurement gave ${value}`);
  return { ...spec, value, stats: null };
}

export function missing(spec: FigureSpec, reason: string): MissingFigure {
  return { ...spec, value: null, reason };
}

/** The median of the runs, or n/a with `reasonIfNone` when no run gave a usable sample. */
export function fromSamples(spec: FigureSpec, samples: readonly number[], reasonIfNone: string): Figure {
  const stats = summarize(samples);
  if (stats === null) return missing(spec, reasonIfNone);
  return { ...spec, value: stats.median, stats };
}

/** a / b; n/a (with the first missing reason) when either is. */
export function ratio(spec: FigureSpec, a: Figure, b: Figure): Figure {
  if (a.value === null) return missing(spec, a.reason);
  if (b.value === null) return missing(spec, b.reason);
  if (b.value === 0) return missing(spec, `${b.label} is 0`);
  return measured(spec, a.value / b.value);
}

/** a - b of two figures of the same unit. */
export function difference(spec: FigureSpec, a: Figure, b: Figure): Figure {
  if (a.value === null) return missing(spec, a.reason);
  if (b.value === null) return missing(spec, b.reason);
  return measured(spec, a.value - b.value);
}

/** The run-to-run spread of a figure, as a figure of its own (a goal is set on it). */
export function spreadOf(spec: FigureSpec, figure: Figure): Figure {
  if (figure.value === null) return missing(spec, figure.reason);
  if (figure.stats === null || figure.stats.samples.length < 2)
    return missing(spec, "a spread needs at least 2 runs");
  return measured(spec, figure.stats.spreadPercent);
}

/** Every figure of `specs` as n/a with the same reason: a phase that could not run at all. */
export function allMissing(specs: Record<string, FigureSpec>, reason: string): FigureSet {
  return Object.fromEntries(Object.entries(specs).map(([id, spec]) => [id, missing(spec, reason)]));
}

/** A figure set in the order of `specs`, every spec present (n/a where a phase stopped early). */
export function inSpecOrder(
  specs: Record<string, FigureSpec>,
  figures: FigureSet,
  reasonIfAbsent: string,
): FigureSet {
  return Object.fromEntries(
    Object.entries(specs).map(([id, spec]) => [id, figures[id] ?? missing(spec, reasonIfAbsent)]),
  );
}

/** Runs `measure`; an error other than an abort turns its figures into n/a with the message. */
export async function figuresOrReasons(
  specs: Record<string, FigureSpec>,
  signal: AbortSignal,
  measure: () => Promise<FigureSet>,
): Promise<FigureSet> {
  try {
    return inSpecOrder(specs, await measure(), "not reached");
  } catch (err) {
    signal.throwIfAborted();
    return allMissing(specs, (err as Error).message);
  }
}
