/**
 * How close generation runs to its limit. On a CPU each generated token reads every weight once,
 * so memory bandwidth / bytes per token bounds tokens/s (Pi 5: about 11 GB/s sustained over a
 * 0.64 GB Q4_0 file, about 18 tokens/s). docs/arm.md explains the figure.
 */

import type { MemoryBandwidth } from "./memory-bandwidth.js";

/** The ceiling and the share of it reached, as `info`, health, `detect` and `bench` publish it. */
export interface GenerationCeiling {
  /** Measured memory read bandwidth, GB/s (10^9 bytes). */
  bandwidth_gb_s: number;
  bandwidth_source: MemoryBandwidth["source"];
  /** Bytes read per generated token: the model's weights (the file, less its header). */
  bytes_per_token: number;
  /** Bandwidth / bytes per token. */
  tokens_per_second: number;
  /** Single-sequence generation measured on this device; null until one was. */
  measured_tokens_per_second: number | null;
  /** Measured / ceiling, 0-1 (e.g. 0.93); null until measured. */
  share: number | null;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function generationCeiling(
  bandwidth: Pick<MemoryBandwidth, "bytesPerSecond" | "source">,
  bytesPerToken: number,
  measuredTokensPerSecond: number | null = null,
): GenerationCeiling {
  const ceiling = bandwidth.bytesPerSecond / Math.max(1, bytesPerToken);
  return {
    bandwidth_gb_s: round(bandwidth.bytesPerSecond / 1e9, 2),
    bandwidth_source: bandwidth.source,
    bytes_per_token: bytesPerToken,
    tokens_per_second: round(ceiling, 1),
    measured_tokens_per_second: measuredTokensPerSecond === null ? null : round(measuredTokensPerSecond, 1),
    share: shareOfCeiling(measuredTokensPerSecond, ceiling),
  };
}

/** tokens/s as a share of the ceiling, two decimals; null when nothing was measured. */
export function shareOfCeiling(
  tokensPerSecond: number | null,
  ceilingTokensPerSecond: number,
): number | null {
  if (tokensPerSecond === null || !(tokensPerSecond > 0) || !(ceilingTokensPerSecond > 0)) return null;
  return round(tokensPerSecond / ceilingTokensPerSecond, 2);
}

/** "18.0 tokens/s (11.5 GB/s over 640 MB per token); 93% reached (16.7 tokens/s)". */
export function describeCeiling(ceiling: GenerationCeiling): string {
  const perToken = `${round(ceiling.bytes_per_token / 1e6, 0)} MB per token`;
  const reached =
    ceiling.share === null
      ? ""
      : `; ${Math.round(ceiling.share * 100)}% reached (${ceiling.measured_tokens_per_second} tokens/s)`;
  return `${ceiling.tokens_per_second} tokens/s (${ceiling.bandwidth_gb_s} GB/s ${ceiling.bandwidth_source} over ${perToken})${reached}`;
}
