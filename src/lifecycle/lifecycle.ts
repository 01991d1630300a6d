import { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import type { Subscription } from "../mqtt/transport.js";
import type { Component } from "./component.js";
import type { TopicRouter } from "./topic-router.js";

export interface LifecycleDeps {
  logger: Logger;
  router: TopicRouter;
  /** Subscribes at the broker; called once a component that declares topics has started. */
  subscribe(subscriptions: Subscription[]): Promise<void>;
}

/**
 * Starts components in list order and stops them in reverse. A component's topics are routed and
 * subscribed as soon as it has started, so a later component's start can rely on them arriving.
 */
export class Lifecycle {
  private readonly components: readonly Component[];
  private readonly deps: LifecycleDeps;
  private readonly started: Component[] = [];

  constructor(components: readonly Component[], deps: LifecycleDeps) {
    this.components = components;
    this.deps = deps;
  }

  /** Rejects on the first failure; what had started (the failing one too) is left for stop(). */
  async start(signal: AbortSignal): Promise<void> {
    try {
      for (const component of this.components) {
        if (signal.aborted) throw new EdgeError("shutting_down", `stopped before ${component.name} started`);
        this.started.push(component);
        await component.start?.(signal);
        const topics = component.topics ?? [];
        if (topics.length === 0) continue;
        this.deps.router.add(component.name, topics);
        await this.deps.subscribe(topics.map((t) => ({ topic: t.filter, qos: t.qos })));
      }
    } finally {
      this.deps.router.release();
    }
  }

  /** Stops what started, in reverse; a component that fails to stop is logged and the rest still stop. */
  async stop(): Promise<void> {
    while (this.started.length > 0) {
      const component = this.started.pop()!;
      try {
        await component.stop?.();
      } catch (err) {
        this.deps.logger.error({ err, component: component.name }, "component failed to stop");
      }
    }
  }
}
