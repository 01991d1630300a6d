import type { AppConfig } from "../config/app-config.js";
import { EdgeError } from "../errors.js";
import type { Component } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import { REQUEST_PACKET_HEADROOM_BYTES } from "../mqtt/packet-size.js";
import { statusPayload } from "../mqtt/status.js";
import type { Topics } from "../mqtt/topics.js";
import {
  type IncomingMessage,
  MqttTransport,
  type PublishOptions,
  type Subscription,
} from "../mqtt/transport.js";
import type { BrokerChoice } from "./broker.js";

export interface MqttConnectionDeps {
  config: AppConfig;
  logger: Logger;
  nodeId: string;
  topics: Topics;
  broker: BrokerChoice;
  /** Called on every (re)connection, e.g. to announce the current status again. */
  onConnect: () => Promise<void>;
  onMessage: (message: IncomingMessage) => void;
  /** The connection cannot go on (another daemon with this client id): the daemon must stop. */
  onFatal: (error: EdgeError) => void;
}

/** The daemon's one broker connection, with the offline status as its last will. */
export class MqttConnection implements Component {
  readonly name = "mqtt";
  private readonly deps: MqttConnectionDeps;
  private transport: MqttTransport | undefined;

  constructor(deps: MqttConnectionDeps) {
    this.deps = deps;
  }

  get connected(): boolean {
    return this.transport?.connected ?? false;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { config, broker, topics, nodeId } = this.deps;
    const mqttConfig = broker.embedded
      ? { ...config.mqtt, protocolVersion: 4 as const, sessionExpirySeconds: 0 }
      : config.mqtt;
    this.transport = new MqttTransport({
      logger: this.deps.logger.child({ component: "mqtt" }),
      config: mqttConfig,
      url: broker.url,
      clientId: config.mqtt.clientId || `tinyllama-edge-${nodeId}`,
      will: { topic: topics.status, payload: statusPayload("offline") },
      onConnect: this.deps.onConnect,
      onMessage: this.deps.onMessage,
      onFatal: this.deps.onFatal,
      // The broker drops requests far over the payload limit instead of sending them into memory.
      maxIncomingPacketBytes: config.requests.maxPayloadBytes + REQUEST_PACKET_HEADROOM_BYTES,
    });
    await this.transport.start(signal);
  }

  /** Resolves when the broker has it (QoS 1) or it was written (QoS 0); queued by mqtt.js while offline. */
  publish(topic: string, payload: string, options: PublishOptions): Promise<boolean> {
    if (!this.transport) return Promise.reject(new EdgeError("internal", "MQTT transport is not started"));
    return this.transport.publish(topic, payload, options);
  }

  subscribe(subscriptions: Subscription[]): Promise<void> {
    if (!this.transport) return Promise.reject(new EdgeError("internal", "MQTT transport is not started"));
    return this.transport.subscribe(subscriptions);
  }

  async stop(): Promise<void> {
    await this.transport?.stop();
  }
}
