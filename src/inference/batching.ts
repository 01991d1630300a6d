import type { BatchItem, CustomBatchingPrioritizationStrategy, PrioritizedBatchItem } from "node-llama-cpp";

/**
 * Decode batches that hold every active sequence.
 *
 * node-llama-cpp's dispatch loop starts the next decode as soon as one sequence has queued its next
 * token; the last sequence to finish sampling usually misses it, so four sequences decode as 3 + 1
 * (measured: 62 decodes of 3 and 49 of 1 for 48 steps). On llama.cpp's CPU path a decode of 4 tokens
 * costs about what 3 cost (its repacked kernels work on groups of 4 rows), so the split nearly
 * doubles the decodes. Returning no items makes the loop yield (a microtask turn) while a straggler
 * queues its token; after `maxHolds` turns the loop goes on with what it has, so a sequence that
 * has just finished never stalls the others.
 */
export function createFullBatchStrategy(
  activeSequences: () => number,
  maxHolds = 200,
): CustomBatchingPrioritizationStrategy {
  let holds = 0;
  return ({ items, size }) => {
    if (items.length > 0 && items.length < activeSequences() && holds < maxHolds) {
      holds++;
      return [];
    }
    holds = 0;
    return fillBatch(items, size);
  };
}

/** Every item's tokens, in order, as far as the batch has room (prompts may be split across batches). */
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
