import { setTimeout as delay } from "node:timers/promises";
import type { LlamaInternals } from "./llama-internals.js";

/** How long a running sequence waits at most for a starting one (a safety net; it takes ~1 ms). */
const MAX_WAIT_MS = 250;

/**
 * Lets a request start while others generate on the same context.
 *
 * node-llama-cpp decodes in a loop that holds the context lock for as long as decodes are queued.
 * With two or more sequences running, one of them has always queued its next token again by the time
 * the loop looks (their samplings finish one by one), so the loop, and the lock, lasts until every
 * running request has ended. A request whose sequence must first drop cached tokens (a reused
 * sequence whose cache is not a prefix of the new prompt) needs that lock: it waited for all the
 * others to finish (measured: one of four parallel requests started 2.7 s late; the four ran as
 * 2 + 2 or 3 + 1). While a sequence is starting, the running ones hold their next token back until it has
 * queued its first decode: the loop finds its queue empty, ends, and the lock goes to the one waiting.
 * Without node-llama-cpp's decode entry point (see llama-internals.ts) the gate does nothing.
 */
export class StartGate {
  private readonly startingIds = new Set<number>();
  private open: Promise<void> = Promise.resolve();
  private openNow: () => void = () => undefined;

  constructor(internals: LlamaInternals) {
    internals.gateDecodes(async (sequenceId) => {
      if (this.startingIds.has(sequenceId)) this.ended(sequenceId);
      else if (this.startingIds.size > 0)
        await Promise.race([this.open, delay(MAX_WAIT_MS, undefined, { ref: false })]);
    });
  }

  /** A generation begins on this sequence: the others make way until its first decode is queued. */
  starting(sequenceId: number): void {
    if (this.startingIds.size === 0) this.open = new Promise((resolve) => (this.openNow = resolve));
    this.startingIds.add(sequenceId);
  }

  /** Its first decode is queued, or it ended without one. */
  ended(sequenceId: number): void {
    if (!this.startingIds.delete(sequenceId) || this.startingIds.size > 0) return;
    this.openNow();
  }
}
