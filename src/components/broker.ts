import type { AppConfig } from "../config/app-config.js";
import type { Component } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import { DEFAULT_BROKER_URL, EmbeddedBroker, isPortListening } from "../mqtt/embedded-broker.js";

/** Where the daemon's MQTT connection goes, known once the broker component has started. */
export interface BrokerChoice {
  readonly url: string;
  /** An embedded broker: MQTT 3.1.1, no shared subscriptions, no persistent sessions. */
  readonly embedded: boolean;
}

/** The configured broker, or an embedded one for the zero-setup quick start. */
export class BrokerComponent implements Component, BrokerChoice {
  readonly name = "broker";
  private readonly deps: { config: AppConfig; logger: Logger };
  private broker: EmbeddedBroker | undefined;
  private chosen: { url: string; embedded: boolean } | undefined;

  constructor(deps: { config: AppConfig; logger: Logger }) {
    this.deps = deps;
  }

  get url(): string {
    return this.choice().url;
  }

  get embedded(): boolean {
    return this.choice().embedded;
  }

  private choice(): { url: string; embedded: boolean } {
    if (!this.chosen) throw new Error("the broker component has not started");
    return this.chosen;
  }

  async start(): Promise<void> {
    const { mqtt } = this.deps.config;
    if (
      mqtt.url !== DEFAULT_BROKER_URL ||
      mqtt.embeddedBroker === "never" ||
      (await isPortListening("127.0.0.1", 1883))
    ) {
      this.chosen = { url: mqtt.url, embedded: false };
      return;
    }
    this.broker = new EmbeddedBroker();
    const url = await this.broker.start(1883);
    this.chosen = { url, embedded: true };
    this.deps.logger.info(
      { url },
      "no broker on localhost:1883: started the embedded broker (MQTT 3.1.1, no shared subscriptions)",
    );
  }

  async stop(): Promise<void> {
    await this.broker?.stop();
    this.broker = undefined;
  }
}
