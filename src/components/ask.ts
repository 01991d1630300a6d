import type { AppConfig } from "../config/app-config.js";
import type { Component, TopicHandler } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";
import { AskTopic } from "../serving/ask-topic.js";
import type { RequestService } from "../serving/request-service.js";

/**
 * The node's plain-text ask topic and its cancel topic. Subscribed with the request topic, before
 * the model loads: asks that arrive meanwhile queue like requests.
 */
export class Ask implements Component {
  readonly name = "ask";
  readonly asks: AskTopic;
  readonly topics: readonly TopicHandler[];

  constructor(deps: {
    config: AppConfig;
    logger: Logger;
    topics: Topics;
    service: RequestService;
    publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
  }) {
    const { topics } = deps;
    this.asks = new AskTopic({
      logger: deps.logger.child({ component: "ask" }),
      topics,
      limits: deps.config.requests,
      requests: deps.service,
      publish: deps.publish,
    });
    this.topics = [
      { filter: topics.nodeAsk, qos: 1, handle: (m) => this.asks.handleAsk(m) },
      { filter: topics.askCancel, qos: 1, handle: (m) => this.asks.handleCancel(m) },
    ];
  }
}
