import type { NodeState } from "../core/node-state.js";
import type { Component } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import { statusPayload } from "../mqtt/status.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";
import { withDeadline } from "../util/deadline.js";

export interface NodeStatusDeps {
  logger: Logger;
  topics: Topics;
  publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
}

/** The retained status topic: loading from the first connection, online when serving, offline on stop. */
export class NodeStatus implements Component {
  readonly name = "status";
  private readonly deps: NodeStatusDeps;
  private current: NodeState = "loading";

  constructor(deps: NodeStatusDeps) {
    this.deps = deps;
  }

  get topic(): string {
    return this.deps.topics.status;
  }

  get state(): NodeState {
    return this.current;
  }

  async set(next: NodeState): Promise<void> {
    this.current = next;
    await this.announce();
  }

  /** Publishes the current state again (after every reconnection: the broker may have lost it). */
  async announce(): Promise<void> {
    await this.deps.publish(this.deps.topics.status, statusPayload(this.current), { qos: 1, retain: true });
  }

  /**
   * Nothing to publish: the connection announces the current state ("loading" until online) on
   * every connect, the first one included, so a start publishes loading once.
   */
  start(): void {
    this.current = "loading";
  }

  async stop(): Promise<void> {
    // The broker may be gone: the last will then says offline for us.
    const published = await withDeadline(
      this.set("offline").then(() => true),
      2000,
      false,
    ).catch(() => false);
    if (!published) this.deps.logger.warn("could not publish offline; the last will covers it");
  }
}
