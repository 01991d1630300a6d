import type { IncomingMessage } from "../mqtt/transport.js";

/** A topic a component handles: the daemon subscribes `filter` and routes what arrives on it to `handle`. */
export interface TopicHandler {
  /** An MQTT topic filter; `+`, `#` and shared subscriptions (`$share/<group>/...`) are allowed. */
  filter: string;
  qos: 0 | 1;
  /** Must not throw: a component answers bad input itself (a thrown error is only logged). */
  handle(message: IncomingMessage): void;
}

/**
 * One feature of the daemon. `start` does its I/O (constructors only assign); `stop` undoes it and
 * must be safe to call after a failed or partial start. `topics` is read once `start` has resolved,
 * so a component can decide then what it subscribes (an empty list subscribes nothing).
 */
export interface Component {
  readonly name: string;
  readonly topics?: readonly TopicHandler[];
  start?(signal: AbortSignal): Promise<void> | void;
  stop?(): Promise<void> | void;
}
