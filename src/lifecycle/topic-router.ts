import type { Logger } from "../logging/logger.js";
import { topicMatches } from "../mqtt/topic-filter.js";
import type { IncomingMessage } from "../mqtt/transport.js";
import type { TopicHandler } from "./component.js";

const SHARED_PREFIX = /^\$share\/[^/]+\//;

/**
 * True when a message on `topic` is one a subscription to `filter` delivers. A shared subscription
 * (`$share/<group>/<filter>`) delivers its filter's topics; wildcards at the first level never match
 * `$`-topics (MQTT 3.1.1 §4.7.2, MQTT 5 §4.7.2).
 */
export function subscriptionMatches(filter: string, topic: string): boolean {
  const plain = filter.replace(SHARED_PREFIX, "");
  if (topic.startsWith("$") && (plain.startsWith("+") || plain.startsWith("#"))) return false;
  return topicMatches(plain, topic);
}

interface Route extends TopicHandler {
  component: string;
}

/** Messages held while the daemon starts; beyond this many they are dropped (and logged). */
const MAX_HELD = 1000;

/**
 * Hands each received message to every handler whose filter delivers it. Until `release()`, a
 * message no handler takes yet is held: a persistent session delivers what was sent while the node
 * was down as soon as it connects, before the component that handles it has started.
 */
export class TopicRouter {
  private readonly logger: Logger;
  private readonly routes: Route[] = [];
  private held: IncomingMessage[] | null = [];

  constructor(logger: Logger) {
    this.logger = logger;
  }

  add(component: string, handlers: readonly TopicHandler[]): void {
    const added = handlers.map((handler) => ({ ...handler, component }));
    this.routes.push(...added);
    if (!this.held) return;
    const waiting = this.held;
    this.held = [];
    for (const message of waiting) {
      if (!this.deliver(added, message)) this.held.push(message);
    }
  }

  /** Start is over: from now on a message nobody handles is dropped. */
  release(): void {
    const dropped = this.held ?? [];
    this.held = null;
    for (const message of dropped) this.unhandled(message);
  }

  route(message: IncomingMessage): void {
    if (this.deliver(this.routes, message)) return;
    if (!this.held) this.unhandled(message);
    else if (this.held.length < MAX_HELD) this.held.push(message);
    else this.logger.warn({ topic: message.topic }, "too many messages while starting: dropped one");
  }

  private deliver(routes: readonly Route[], message: IncomingMessage): boolean {
    let handled = false;
    for (const route of routes) {
      if (!subscriptionMatches(route.filter, message.topic)) continue;
      handled = true;
      try {
        route.handle(message);
      } catch (err) {
        this.logger.error(
          { err, component: route.component, topic: message.topic },
          "message handler failed",
        );
      }
    }
    return handled;
  }

  private unhandled(message: IncomingMessage): void {
    this.logger.debug({ topic: message.topic }, "message on a topic nobody handles");
  }
}
