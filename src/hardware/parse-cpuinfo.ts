/** Parsing of `/proc/cpuinfo` as Linux prints it on ARM (32 and 64 bit) and x86. */

export interface CpuinfoProcessor {
  index: number;
  /** ARM `CPU part` ("0xd0b"). */
  partId: string | null;
  /** x86 `model name`, or the ARMv7 "ARMv7 Processor rev 4 (v7l)" line. */
  modelName: string | null;
  /** ARM `Features` or x86 `flags`, lower-case. */
  flags: string[];
  /** x86 `physical id` / `core id`: two logical CPUs with the same pair are hyperthread siblings. */
  physicalId: number | null;
  coreId: number | null;
  /** ARM `CPU architecture` (7 or 8). */
  architecture: number | null;
}

export interface Cpuinfo {
  processors: CpuinfoProcessor[];
  /** Trailing board lines some ARM kernels print (`Hardware`, `Model`). */
  hardware: string | null;
  model: string | null;
}

function parseInteger(value: string | undefined): number | null {
  if (value === undefined) return null;
  const parsed = Number.parseInt(value, 10);
  return Number.isFinite(parsed) ? parsed : null;
}

function parseBlock(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of block.split("\n")) {
    const separator = line.indexOf(":");
    if (separator < 0) continue;
    const key = line.slice(0, separator).trim().toLowerCase();
    if (key.length > 0 && !fields.has(key)) fields.set(key, line.slice(separator + 1).trim());
  }
  return fields;
}

export function parseCpuinfo(text: string): Cpuinfo {
  const processors: CpuinfoProcessor[] = [];
  let hardware: string | null = null;
  let model: string | null = null;
  for (const block of text.split(/\n\s*\n/)) {
    const fields = parseBlock(block);
    const index = parseInteger(fields.get("processor"));
    if (index !== null) {
      const partId = fields.get("cpu part")?.toLowerCase() ?? null;
      processors.push({
        index,
        partId,
        modelName: fields.get("model name") ?? null,
        flags: (fields.get("features") ?? fields.get("flags") ?? "")
          .toLowerCase()
          .split(/\s+/)
          .filter(Boolean),
        physicalId: parseInteger(fields.get("physical id")),
        coreId: parseInteger(fields.get("core id")),
        architecture: parseInteger(fields.get("cpu architecture")),
      });
      continue;
    }
    // x86 has a per-processor numeric `model`; the board lines come in their own block.
    hardware = fields.get("hardware") ?? hardware;
    model = fields.get("model") ?? model;
  }
  return { processors, hardware, model };
}

/** Parses a kernel cpu list such as "0-3,8,10-11". */
export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!match) continue;
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu);
  }
  return cpus;
}
