import type { NodeState } from "../core/node-state.js";

/** The retained status payload; `offline` is also the last will. */
export function statusPayload(state: NodeState, now: Date = new Date()): string {
  return JSON.stringify({ state, ts: now.toISOString() });
}
