export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Decimal units, as model cards and board specs print sizes ("670 MB", "1.17 GB"). */
export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(bytes >= 1e10 ? 1 : 2)} GB`;
  if (bytes >= 1e6) return `${Math.round(bytes / 1e6)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} kB`;
  return `${Math.round(bytes)} B`;
}

export function formatMiB(bytes: number): string {
  return `${Math.round(bytes / MiB)} MiB`;
}
