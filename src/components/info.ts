import type { Component } from "../lifecycle/component.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";
import { buildInfoPayload } from "../runtime/info-payload.js";
import type { Model } from "./model.js";

/** The retained info topic: what runs here and why (the plan, its reasons, the model). */
export class Info implements Component {
  readonly name = "info";
  private readonly deps: {
    nodeId: string;
    topics: Topics;
    maxQueue: number;
    model: Model;
    publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
  };

  constructor(deps: Info["deps"]) {
    this.deps = deps;
  }

  private payload: string | undefined;

  async start(): Promise<void> {
    const { nodeId, model, maxQueue } = this.deps;
    const payload = await buildInfoPayload({
      nodeId,
      runtime: model.runtime,
      threadTuning: model.threadTuning,
      generationCeiling: model.ceiling(),
      maxQueue,
    });
    this.payload = JSON.stringify(payload);
    await this.announce();
  }

  /** Publishes info again (after every reconnection: a broker that lost its retained messages lacks it). */
  async announce(): Promise<void> {
    if (this.payload === undefined) return;
    await this.deps.publish(this.deps.topics.info, this.payload, { qos: 1, retain: true });
  }
}
