import type { BatchItem, CustomBatchingPrioritizationStrategy, PrioritizedBatchItem } from "node-llama-cpp";

export interface FullBatchOptions {
  /** Sequences generating right now: a decode waits (briefly) until each has queued its token. */
  activeSequences: () => number;
  /** The sequence id of each queued item, in the order given; null when unknown (no reordering then):
   * LlamaInternals.sequenceIdsOf. */
  sequenceIdsOf?: (items: readonly BatchItem[]) => readonly number[] | null;
  /** Microtask turns a decode may wait for a straggler before it goes on with what it has. */
  maxHolds?: number;
}

/**
 * Decode batches that hold every active sequence, in ascending sequence order.
 *
 * Waiting: node-llama-cpp's dispatch loop starts the next decode as soon as one sequence has queued
 * its next token; the last sequence to finish sampling usually misses it, so four sequences decode
 * as 3 + 1 (measured: 62 decodes of 3 and 49 of 1 for 48 steps). Returning no items makes the loop
 * yield (a microtask turn) while a straggler queues its token; after `maxHolds` turns the loop goes
 * on with what it has, so a sequence that has just finished never stalls the others.
 *
 * Order: node-llama-cpp gives every sequence its own KV stream, and llama.cpp then splits a batch into
 * micro-batches of sequences with consecutive, increasing ids in batch order; every micro-batch reads
 * all the weights again. Queue order 1,2,3,0 decodes as {1,2,3} + {0}: measured on the TinyLlama-shaped
 * Q4_0 with 2 threads, four parallel requests made 70 tokens/s in queue order and 108-120 in sequence
 * order (one request alone: 57).
 */
export function createFullBatchStrategy(options: FullBatchOptions): CustomBatchingPrioritizationStrategy {
  const maxHolds = options.maxHolds ?? 200;
  let holds = 0;
  // The sequences of the last two batches (their ids, or their places when ids are unknown).
  let recent: number[][] = [];
  return ({ items, size }) => {
    // Stragglers are running sequences that decoded in the last two batches. Two, not one: prompts
    // that started apart (a reused sequence's short rest alone, new sequences' prompts together) end
    // in different batches, and waiting only for the last one's count would leave one sequence out
    // of every other batch for good. One that has not decoded yet may be waiting for the context
    // lock this loop holds (to trim its cache), and waiting for it would only keep the lock longer.
    const expected = Math.min(options.activeSequences(), new Set(recent.flat()).size);
    if (items.length > 0 && items.length < expected && holds < maxHolds) {
      holds++;
      return [];
    }
    holds = 0;
    const batch = fillBatch(items, size);
    const ids = options.sequenceIdsOf?.(items);
    const idOf = ids ? new Map(items.map((item, index) => [item, ids[index] ?? 0])) : null;
    if (batch.length > 0) recent = [...recent.slice(-1), batch.map((p, place) => idOf?.get(p.item) ?? place)];
    return idOf ? batch.sort((a, b) => (idOf.get(a.item) ?? 0) - (idOf.get(b.item) ?? 0)) : batch;
  };
}

/** Every item's tokens, as far as the batch has room (prompts may be split across batches). */
function fillBatch(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  const prioritized: PrioritizedBatchItem[] = [];
  let left = size;
  // Single tokens (generation steps) first: a long prompt must not push a waiting sequence out.
  const ordered = [...items].sort((a, b) => a.tokens.length - b.tokens.length);
  for (const item of ordered) {
    if (left <= 0) break;
    const processAmount = Math.min(item.tokens.length, left);
    prioritized.push({ item, processAmount });
    left -= processAmount;
  }
  return prioritized;
}
