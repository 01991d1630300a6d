import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { z } from "zod";
import type { Logger } from "../logging/logger.js";

/**
 * A JSON file in state.dir holding measurements keyed by hardware (thread tuning, memory bandwidth).
 * What is read is checked entry by entry: a file left empty, `null` or half-written by a power cut
 * is discarded with a warning and measured again, never a reason for the daemon not to start.
 */
export class KeyedStateFile<T> {
  constructor(
    private readonly path: string,
    private readonly entry: z.ZodType<T>,
    /** What the file holds, for log lines: "thread tuning", "memory bandwidth". */
    private readonly what: string,
    private readonly logger: Logger,
  ) {}

  async read(): Promise<Record<string, T>> {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(this.path, "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        this.logger.warn(
          { path: this.path, reason: (err as Error).message },
          `${this.what} state unreadable: discarded`,
        );
      return {};
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      this.logger.warn({ path: this.path }, `${this.what} state is not an object: discarded`);
      return {};
    }
    const valid: Record<string, T> = {};
    for (const [key, value] of Object.entries(json)) {
      const parsed = this.entry.safeParse(value);
      if (parsed.success) valid[key] = parsed.data;
      else this.logger.warn({ path: this.path, key }, `${this.what} state entry malformed: discarded`);
    }
    return valid;
  }

  /** Written whole to a temporary file and renamed over, so a reader never sees half a file. */
  async write(entries: Record<string, T>): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      const temporary = `${this.path}.${process.pid}.tmp`;
      await writeFile(temporary, `${JSON.stringify(entries, null, 2)}\n`);
      await rename(temporary, this.path);
    } catch (err) {
      this.logger.warn({ err, path: this.path }, `could not cache the ${this.what}`);
    }
  }
}
