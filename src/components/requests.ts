import type { AppConfig } from "../config/app-config.js";
import type { GenerationResult } from "../core/generation.js";
import type { Component, TopicHandler } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import type { Topics } from "../mqtt/topics.js";
import type { IncomingMessage, PublishOptions } from "../mqtt/transport.js";
import { ConversationStore } from "../serving/conversation-store.js";
import { type Generator, RequestService } from "../serving/request-service.js";
import type { ServingStats } from "../serving/serving-stats.js";

export interface RequestsDeps {
  config: AppConfig;
  logger: Logger;
  topics: Topics;
  stats: ServingStats;
  generator: Generator;
  modelName: () => string;
  publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
  connected: () => boolean;
  events: { activityChanged(): void; answered(result: GenerationResult): void };
}

/**
 * The node's request topic. Subscribed before the model loads: what arrives meanwhile (a persistent
 * session delivers it at once) waits in the queue, beyond it is answered busy. `serving` opens the
 * slots; `cancel` and `pool` route into the same service.
 */
export class Requests implements Component {
  readonly name = "requests";
  readonly service: RequestService;
  readonly topics: readonly TopicHandler[];

  constructor(deps: RequestsDeps) {
    const { config, topics } = deps;
    this.service = new RequestService({
      logger: deps.logger.child({ component: "requests" }),
      topics,
      limits: config.requests,
      maxQueue: config.scheduler.maxQueue,
      // Replies stay under the node's own base topic unless the owner widens the list.
      replyTopicAllow: [`${config.mqtt.baseTopic}/#`, ...config.mqtt.replyTopicAllow],
      fairness: config.scheduler.fairness,
      senderProperty: config.scheduler.senderProperty,
      ratePerMinute: config.scheduler.ratePerMinute,
      slots: 0,
      streamQos: config.mqtt.streamQos,
      // Offline, stream chunks are dropped (late tokens help nobody); finals are queued by mqtt.js.
      publish: (topic, payload, options) =>
        options.qos === 0 && !deps.connected() ? Promise.resolve() : deps.publish(topic, payload, options),
      generator: deps.generator,
      stats: deps.stats,
      events: deps.events,
      conversations: new ConversationStore({
        maxCount: config.conversations.maxCount,
        maxAgeMs: config.conversations.maxAgeSeconds * 1000,
        maxMessages: config.conversations.maxMessages,
        maxChars: config.conversations.maxChars,
      }),
      modelName: deps.modelName,
    });
    this.topics = [{ filter: topics.nodeRequest, qos: 1, handle: (m) => this.service.handleRequest(m) }];
  }

  /** After a failed start (serving never opened), what queued meanwhile is answered shutting_down. */
  stop(): Promise<void> {
    return this.service.drain();
  }
}

/** The node's cancel topic. */
export class Cancel implements Component {
  readonly name = "cancel";
  readonly topics: readonly TopicHandler[];

  constructor(deps: { topics: Topics; service: RequestService }) {
    this.topics = [{ filter: deps.topics.nodeCancel, qos: 1, handle: (m) => deps.service.handleCancel(m) }];
  }
}

/**
 * Opens the request slots once the model is loaded; on stop, drains: queued requests are answered
 * shutting_down, running ones end with their partial text.
 */
export class Serving implements Component {
  readonly name = "serving";
  private readonly deps: { service: RequestService; slots: () => number };

  constructor(deps: { service: RequestService; slots: () => number }) {
    this.deps = deps;
  }

  start(): void {
    this.deps.service.startServing(this.deps.slots());
  }

  stop(): Promise<void> {
    return this.deps.service.drain();
  }
}

/**
 * The pool's shared request and ask topics and its cancel topic, joined only once this node serves
 * (until then the other nodes take its share). Not on the embedded broker, which has no shared
 * subscriptions.
 */
export class Pool implements Component {
  readonly name = "pool";
  private readonly deps: {
    enabled: boolean;
    topics: Topics;
    service: RequestService;
    /** Handles a plain-text ask (the ask component). */
    ask: (message: IncomingMessage) => void;
    broker: { readonly embedded: boolean };
  };

  constructor(deps: Pool["deps"]) {
    this.deps = deps;
  }

  get topics(): readonly TopicHandler[] {
    const { enabled, broker, topics, service, ask } = this.deps;
    if (!enabled || broker.embedded) return [];
    return [
      { filter: topics.poolRequestShared, qos: 1, handle: (m) => service.handleRequest(m) },
      { filter: topics.poolAskShared, qos: 1, handle: ask },
      { filter: topics.poolCancel, qos: 1, handle: (m) => service.handleCancel(m) },
    ];
  }
}
