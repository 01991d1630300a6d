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

export interface EmbeddedBrokerRuleInput {
  config: AppConfig;
  env: NodeJS.ProcessEnv;
  /** Whether a config file, the environment or a flag gave mqtt.url (even the default value). */
  urlConfigured: boolean;
}

/**
 * Whether an embedded broker may stand in for a missing one: only for the quick start in a checkout.
 * An installed node (NODE_ENV=production) or one told its broker waits and reconnects instead, so it
 * never takes port 1883 from a Mosquitto that starts later and Home Assistant never misses it.
 */
export function mayEmbedBroker({ config, env, urlConfigured }: EmbeddedBrokerRuleInput): boolean {
  return (
    config.mqtt.embeddedBroker === "auto" &&
    config.mqtt.url === DEFAULT_BROKER_URL &&
    !urlConfigured &&
    env.NODE_ENV !== "production"
  );
}

export interface BrokerComponentDeps {
  config: AppConfig;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  /** Keys set by a config source (file, environment, flags); mqtt.url among them rules out the embedded broker. */
  configuredKeys: ReadonlySet<string>;
}

/** The configured broker, or an embedded one for the zero-setup quick start. */
export class BrokerComponent implements Component, BrokerChoice {
  readonly name = "broker";
  private readonly deps: BrokerComponentDeps;
  private broker: EmbeddedBroker | undefined;
  private chosen: { url: string; embedded: boolean } | undefined;

  constructor(deps: BrokerComponentDeps) {
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
    const { config, env, configuredKeys } = this.deps;
    const { mqtt } = config;
    if (
      !mayEmbedBroker({ config, env, urlConfigured: configuredKeys.has("mqtt.url") }) ||
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
