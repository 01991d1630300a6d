/** Which node `ask` talks to, from the retained statuses, or why none can answer. */
export type AskTarget = { ok: true; nodeId: string } | { ok: false; message: string };

export interface ChooseNodeInput {
  /** node.id as configured; "" when not set. */
  configured: string;
  /** This machine's own node id (the daemon's default), tried when node.id is not set. */
  local: string;
  /** Node id → retained state (loading, online, offline). */
  states: ReadonlyMap<string, string>;
}

function listOnline(states: ReadonlyMap<string, string>): string {
  const online = [...states].filter(([, state]) => state === "online").map(([node]) => node);
  return online.length === 0 ? "no node is online" : `online: ${online.sort().join(", ")}`;
}

/**
 * A named node must be online or loading (requests queue while it loads). Without a name: this
 * machine's node when it is up, else the one node online; otherwise it fails at once, naming the
 * nodes that are online, instead of waiting for an answer that cannot come.
 */
export function chooseNode({ configured, local, states }: ChooseNodeInput): AskTarget {
  const up = (node: string) => states.get(node) === "online" || states.get(node) === "loading";
  if (configured !== "") {
    if (up(configured)) return { ok: true, nodeId: configured };
    const state = states.get(configured);
    const why = state === undefined ? "is not known to the broker" : `is ${state}`;
    return { ok: false, message: `node ${configured} ${why} (${listOnline(states)})` };
  }
  if (up(local)) return { ok: true, nodeId: local };
  const online = [...states].filter(([, state]) => state === "online").map(([node]) => node);
  if (online.length === 1) return { ok: true, nodeId: online[0]! };
  if (online.length === 0)
    return {
      ok: false,
      message: "no node is online: start one (tinyllama-edge start), or check mqtt.url and mqtt.baseTopic",
    };
  return {
    ok: false,
    message: `several nodes are online (${online.sort().join(", ")}): choose one with --node.id`,
  };
}
