import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Bumped when the meta format changes: older files are then refused (and removed) like a mismatch. */
const FORMAT = 1;

/**
 * What a saved KV state is only valid for. llama.cpp loads a state file into any context without
 * checking where it came from (another model's state gives garbage or a crash), so every part that
 * shapes the cache is in the key and compared before a file is handed to it.
 */
export interface PromptStateIdentity {
  /** The model file: path, size and modification time (a re-downloaded file is another model). */
  model: string;
  /** node-llama-cpp's version, the llama.cpp release and build it loaded, and the GPU backend. */
  build: string;
  /** Context settings that change the cache's layout: size per sequence, flash attention, GPU layers. */
  context: string;
}

export interface PromptStateMeta {
  format: number;
  identity: PromptStateIdentity;
  /** Tokens of the prefix this state is kept for (the file may hold more: the rest is dropped on load). */
  prefixTokens: number;
  prefixSha256: string;
  stateBytes: number;
  stateSha256: string;
  /** Requests that used the prefix when it was saved: the hottest are loaded first. */
  hits: number;
  savedAt: string;
}

export interface StoredPromptState {
  key: string;
  statePath: string;
  meta: PromptStateMeta;
}

export interface PromptStateLimits {
  maxEntries: number;
  maxBytes: number;
}

/** A saved state that cannot be used, and why (in words for the log line). */
export interface RefusedPromptState {
  key: string;
  reason: string;
}

export function tokensSha256(tokens: readonly number[]): string {
  return createHash("sha256").update(Uint32Array.from(tokens)).digest("hex");
}

/** The file key of a prefix: the same prefix under another identity is another file. */
export function promptStateKey(identity: PromptStateIdentity, prefix: readonly number[]): string {
  return createHash("sha256")
    .update(JSON.stringify(identity))
    .update(tokensSha256(prefix))
    .digest("hex")
    .slice(0, 32);
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * The KV states of prompt prefixes kept in `<state.dir>/prompt-state`: one llama.cpp state file and
 * one JSON meta per prefix, bounded in count and bytes (the least used go first).
 */
export class PromptStateStore {
  readonly dir: string;
  private readonly limits: PromptStateLimits;

  constructor(stateDir: string, limits: PromptStateLimits) {
    this.dir = join(stateDir, "prompt-state");
    this.limits = limits;
  }

  /** Every saved state whose meta can be read; unreadable ones are returned as refused. */
  async list(): Promise<{ stored: StoredPromptState[]; refused: RefusedPromptState[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return { stored: [], refused: [] };
    }
    const stored: StoredPromptState[] = [];
    const refused: RefusedPromptState[] = [];
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      const key = name.slice(0, -".json".length);
      try {
        const meta = JSON.parse(await readFile(join(this.dir, name), "utf8")) as PromptStateMeta;
        if (meta.format !== FORMAT) throw new Error(`format ${String(meta.format)}`);
        stored.push({ key, statePath: this.statePath(key), meta });
      } catch (err) {
        refused.push({ key, reason: `unreadable description (${(err as Error).message})` });
      }
    }
    return { stored, refused };
  }

  /**
   * Why this saved state must not be loaded here, or null when it may: made for another model,
   * llama.cpp build or context settings, or its file is not the one that was saved (truncated,
   * overwritten, corrupted).
   */
  async problem(entry: StoredPromptState, identity: PromptStateIdentity): Promise<string | null> {
    const { meta } = entry;
    if (meta.identity?.model !== identity.model) return "saved for another model file";
    if (meta.identity.build !== identity.build) return "saved by another llama.cpp build";
    if (meta.identity.context !== identity.context) return "saved with other context settings";
    let bytes: number;
    try {
      bytes = (await stat(entry.statePath)).size;
    } catch {
      return "its state file is missing";
    }
    if (bytes !== meta.stateBytes) return `its state file has ${bytes} bytes, ${meta.stateBytes} were saved`;
    if ((await fileSha256(entry.statePath)) !== meta.stateSha256) return "its state file is corrupted";
    return null;
  }

  async remove(key: string): Promise<void> {
    await rm(this.statePath(key), { force: true });
    await rm(join(this.dir, `${key}.json`), { force: true });
  }

  /**
   * Saves a prefix's state: `write` writes llama.cpp's state file to the path it is given. Makes room
   * by removing the least used states; returns null (and keeps nothing) when the state alone exceeds
   * the byte bound or every kept one is hotter.
   */
  async save(
    identity: PromptStateIdentity,
    prefix: readonly number[],
    hits: number,
    write: (path: string) => Promise<void>,
  ): Promise<StoredPromptState | null> {
    await mkdir(this.dir, { recursive: true });
    const key = promptStateKey(identity, prefix);
    const temporary = join(this.dir, `${key}.state.partial`);
    try {
      await write(temporary);
      const stateBytes = (await stat(temporary)).size;
      if (!(await this.makeRoom(key, stateBytes, hits))) return null;
      const meta: PromptStateMeta = {
        format: FORMAT,
        identity,
        prefixTokens: prefix.length,
        prefixSha256: tokensSha256(prefix),
        stateBytes,
        stateSha256: await fileSha256(temporary),
        hits,
        savedAt: new Date().toISOString(),
      };
      // The meta is written last: a state file without one is never loaded.
      await rename(temporary, this.statePath(key));
      await writeFile(join(this.dir, `${key}.json`), `${JSON.stringify(meta, null, 2)}\n`);
      return { key, statePath: this.statePath(key), meta };
    } finally {
      await rm(temporary, { force: true });
    }
  }

  private statePath(key: string): string {
    return join(this.dir, `${key}.state`);
  }

  /** Removes the least used other states until one of `bytes` fits; false when it cannot. */
  private async makeRoom(key: string, bytes: number, hits: number): Promise<boolean> {
    if (bytes > this.limits.maxBytes || this.limits.maxEntries === 0) return false;
    const others = (await this.list()).stored
      .filter((entry) => entry.key !== key)
      .sort((a, b) => a.meta.hits - b.meta.hits || a.meta.savedAt.localeCompare(b.meta.savedAt));
    let count = others.length + 1;
    let total = others.reduce((sum, entry) => sum + entry.meta.stateBytes, bytes);
    const evicted: string[] = [];
    for (const entry of others) {
      if (count <= this.limits.maxEntries && total <= this.limits.maxBytes) break;
      if (entry.meta.hits > hits) return false;
      evicted.push(entry.key);
      count--;
      total -= entry.meta.stateBytes;
    }
    if (count > this.limits.maxEntries || total > this.limits.maxBytes) return false;
    for (const evictedKey of evicted) await this.remove(evictedKey);
    return true;
  }
}
