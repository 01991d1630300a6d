import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { Logger } from "../logging/logger.js";
import { installedNodeLlamaCppVersion } from "./llama-internals.js";
import {
  type PromptStateIdentity,
  type PromptStateLimits,
  PromptStateStore,
  tokensSha256,
} from "./prompt-state-store.js";

/** Prefixes whose use is counted; beyond this the least recently seen is forgotten. */
const HEAT_ENTRIES = 256;

/** Uses of a prefix before its state is saved: once is any request, twice is a pattern. */
const HITS_TO_SAVE = 2;

export interface PromptStatesSettings extends PromptStateLimits {
  stateDir: string;
  /** Shorter prefixes are neither counted nor saved. */
  minTokens: number;
}

interface Heat {
  hits: number;
  saved: boolean;
}

/** What identifies a cache as compatible with this model, build and context (see PromptStateIdentity). */
export async function promptStateIdentity(
  llama: Llama,
  model: LlamaModel,
  context: LlamaContext,
  modelPath: string,
): Promise<PromptStateIdentity> {
  const file = await stat(modelPath);
  const release = llama.llamaCppRelease;
  return {
    model: `${resolve(modelPath)}|${file.size}|${Math.round(file.mtimeMs)}`,
    build: [
      `node-llama-cpp ${installedNodeLlamaCppVersion() ?? "?"}`,
      `${release.repo}@${release.release}`,
      llama.buildType,
      String(llama.gpu),
    ].join("|"),
    context: `ctx ${context.contextSize}|flash ${String(context.flashAttention)}|gpuLayers ${model.gpuLayers}`,
  };
}

/**
 * Prompt prefixes that survive a restart: counts how often each prefix (a chat's system part) is
 * used, saves the KV state of those used again, and loads the saved ones into free sequences at start.
 * A saved state made elsewhere (another model, llama.cpp build or context) or damaged is refused
 * with a log line and removed; nothing here fails a request or the start.
 */
export class PromptStates {
  private readonly logger: Logger;
  private readonly store: PromptStateStore;
  private readonly identity: PromptStateIdentity;
  readonly minTokens: number;
  private readonly heat = new Map<string, Heat>();

  constructor(logger: Logger, settings: PromptStatesSettings, identity: PromptStateIdentity) {
    this.logger = logger;
    this.store = new PromptStateStore(settings.stateDir, settings);
    this.identity = identity;
    this.minTokens = settings.minTokens;
  }

  /** Counts a use of the prefix; true when its state should be saved once the request ends. */
  used(prefix: readonly Token[], pinned = false): boolean {
    const key = tokensSha256(prefix);
    const heat = this.heat.get(key) ?? { hits: 0, saved: false };
    heat.hits++;
    this.heat.delete(key);
    this.heat.set(key, heat);
    if (this.heat.size > HEAT_ENTRIES) this.heat.delete(this.heat.keys().next().value!);
    return !heat.saved && (pinned || heat.hits >= HITS_TO_SAVE);
  }

  /**
   * Saves the state of a sequence that holds the prefix (it may hold more: the rest is dropped on
   * load). Run while nothing generates on the sequence.
   */
  async save(sequence: LlamaContextSequence, prefix: readonly Token[]): Promise<void> {
    const key = tokensSha256(prefix);
    const heat = this.heat.get(key);
    if (!heat || heat.saved) return;
    if (sharedPrefixLength(sequence.contextTokens, prefix) < prefix.length) return;
    const started = performance.now();
    try {
      const saved = await this.store.save(this.identity, prefix, heat.hits, async (path) => {
        await sequence.saveStateToFile(path);
      });
      heat.saved = true;
      if (saved)
        this.logger.info(
          {
            tokens: prefix.length,
            bytes: saved.meta.stateBytes,
            ms: Math.round(performance.now() - started),
          },
          "prompt state saved",
        );
      else this.logger.info({ tokens: prefix.length }, "prompt state not saved: the kept ones are used more");
    } catch (err) {
      heat.saved = true;
      this.logger.warn({ tokens: prefix.length, err }, "prompt state could not be saved");
    }
  }

  /**
   * Loads the saved states, hottest first, one per free sequence (given lowest id first); returns
   * how many were loaded. A refused or failing one is removed with a log line.
   */
  async restore(sequences: readonly LlamaContextSequence[]): Promise<number> {
    const { stored, refused } = await this.store.list();
    for (const entry of refused) await this.refuse(entry.key, entry.reason);
    stored.sort((a, b) => b.meta.hits - a.meta.hits || b.meta.savedAt.localeCompare(a.meta.savedAt));
    let loaded = 0;
    for (const entry of stored) {
      const problem = await this.store.problem(entry, this.identity);
      if (problem !== null) {
        await this.refuse(entry.key, problem);
        continue;
      }
      const sequence = sequences[loaded];
      if (!sequence) continue;
      const started = performance.now();
      try {
        await sequence.loadStateFromFile(entry.statePath, { acceptRisk: true });
        const { prefixTokens, prefixSha256 } = entry.meta;
        const tokens = sequence.contextTokens;
        if (tokens.length < prefixTokens || tokensSha256(tokens.slice(0, prefixTokens)) !== prefixSha256)
          throw new Error("its tokens are not the prefix it was saved for");
        if (tokens.length > prefixTokens)
          await sequence.eraseContextTokenRanges([{ start: prefixTokens, end: tokens.length }]);
      } catch (err) {
        await sequence.clearHistory();
        await this.refuse(entry.key, `llama.cpp could not load it (${(err as Error).message})`);
        continue;
      }
      this.heat.set(tokensSha256(sequence.contextTokens), { hits: entry.meta.hits, saved: true });
      loaded++;
      this.logger.info(
        {
          tokens: entry.meta.prefixTokens,
          bytes: entry.meta.stateBytes,
          ms: Math.round(performance.now() - started),
        },
        "prompt state loaded",
      );
    }
    return loaded;
  }

  private async refuse(key: string, reason: string): Promise<void> {
    this.logger.warn(
      { file: `${this.store.dir}/${key}.state`, reason },
      `saved prompt state refused (${reason}): removed, the prompt is evaluated again`,
    );
    await this.store.remove(key).catch(() => undefined);
  }
}

export function sharedPrefixLength(a: readonly Token[], b: readonly Token[]): number {
  const limit = Math.min(a.length, b.length);
  let i = 0;
  while (i < limit && a[i] === b[i]) i++;
  return i;
}
