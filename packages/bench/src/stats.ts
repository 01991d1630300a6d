/** Summary of repeated measurements: the median is the figure, min/max and spread show the noise. */
export interface RunStats {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median in %: the run-to-run spread the goals speak of. */
  spreadPercent: number;
  samples: number[];
}

/** The middle value (mean of the two middle values for an even count); NaN for no samples. */
export function median(samples: readonly number[]): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** (max - min) / median in %; 0 for a single sample, NaN when the median is 0 or there are none. */
export function spreadPercent(samples: readonly number[]): number {
  const middle = median(samples);
  if (samples.length === 0 || middle === 0) return Number.NaN;
  return ((Math.max(...samples) - Math.min(...samples)) / Math.abs(middle)) * 100;
}

/** Null when there is nothing to summarize: the caller reports n/a with its reason. */
export function summarize(samples: readonly number[]): RunStats | null {
  const finite = samples.filter((sample) => Number.isFinite(sample));
  if (finite.length === 0) return null;
  return {
    median: median(finite),
    min: Math.min(...finite),
    max: Math.max(...finite),
    spreadPercent: spreadPercent(finite),
    samples: [...finite],
  };
}
