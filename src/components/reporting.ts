import type { AppConfig } from "../config/app-config.js";
import type { GenerationResult } from "../core/generation.js";
import { createRootedFileReader } from "../hardware/rooted-file-reader.js";
import { createCommandRunner } from "../hardware/run-command.js";
import { HealthReporter, type ServingSnapshot } from "../health/health-reporter.js";
import {
  buildDiscoveryConfigs,
  buildLastAnswerPayload,
  type DiscoveryInput,
  HomeAssistantDiscovery,
  retiredDiscoveryTopics,
} from "../health/home-assistant.js";
import { PrometheusExporter } from "../health/prometheus-exporter.js";
import { nodeHostFacts, SystemMetrics } from "../health/system-metrics.js";
import { ThermalGuard, type ThermalStatus } from "../health/thermal-guard.js";
import type { Component, TopicHandler } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";
import { withDeadline } from "../util/deadline.js";

type Publish = (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;

/** The board's figures (load, memory, temperature, throttling) that health and the thermal guard read. */
export class Sensors implements Component {
  readonly name = "sensors";
  readonly metrics: SystemMetrics;

  constructor(deps: { config: AppConfig }) {
    this.metrics = new SystemMetrics({
      files: createRootedFileReader("/"),
      sensorPath: deps.config.thermal.sensorPath,
      runCommand: createCommandRunner(),
      host: nodeHostFacts(),
      now: () => performance.now(),
    });
  }

  start(): Promise<void> {
    return this.metrics.start();
  }

  stop(): void {
    this.metrics.stop();
  }
}

/** Lowers the inference threads while the SoC is too hot and restores them once it cooled. */
export class Thermal implements Component {
  readonly name = "thermal";
  private readonly deps: {
    config: AppConfig;
    logger: Logger;
    sensors: Sensors;
    threads: () => number;
    setThreads: (threads: number) => void;
    onStateChange: () => void;
  };
  private guard: ThermalGuard | undefined;

  constructor(deps: Thermal["deps"]) {
    this.deps = deps;
  }

  status(): ThermalStatus | null {
    return this.guard?.status() ?? null;
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    this.guard = new ThermalGuard({
      logger: this.deps.logger.child({ component: "thermal" }),
      sensor: this.deps.sensors.metrics,
      settings: {
        throttleAtC: config.thermal.throttleAtC,
        resumeBelowC: config.thermal.resumeBelowC,
        reducedThreads: config.thermal.reducedThreads,
        checkIntervalMs: config.thermal.checkSeconds * 1000,
      },
      configuredThreads: this.deps.threads(),
      setThreads: this.deps.setThreads,
      onStateChange: this.deps.onStateChange,
    });
    await this.guard.start();
  }

  stop(): void {
    this.guard?.stop();
  }
}

/**
 * The retained health topic, on its period and at once on busy/idle and thermal changes. Its last
 * publication on stop says offline: the node is leaving.
 */
export class Health implements Component {
  readonly name = "health";
  readonly reporter: HealthReporter;
  private readonly snapshot: () => ServingSnapshot;
  private leaving = false;
  private wasBusy = false;

  constructor(deps: {
    config: AppConfig;
    logger: Logger;
    topics: Topics;
    sensors: Sensors;
    thermal: Thermal;
    snapshot: () => ServingSnapshot;
    publish: Publish;
    connected: () => boolean;
  }) {
    this.snapshot = deps.snapshot;
    this.reporter = new HealthReporter({
      logger: deps.logger.child({ component: "health" }),
      topics: deps.topics,
      intervalMs: deps.config.health.intervalSeconds * 1000,
      // Skips its period while the broker is away: nothing queues up.
      publish: (topic, payload, options) =>
        deps.connected() ? deps.publish(topic, payload, options) : Promise.resolve(),
      metrics: deps.sensors.metrics,
      snapshot: () => {
        const now = deps.snapshot();
        return this.leaving ? { ...now, state: "offline" } : now;
      },
      thermal: () => deps.thermal.status(),
    });
  }

  start(): Promise<void> {
    this.leaving = false;
    return this.reporter.start();
  }

  publishNow(): void {
    this.reporter.publishNow().catch(() => undefined);
  }

  /** Health goes out at once on busy ↔ idle, not only on its period. */
  activityChanged(): void {
    const busy = this.snapshot().activeRequests > 0;
    if (busy !== this.wasBusy) {
      this.wasBusy = busy;
      this.publishNow();
    }
  }

  async stop(): Promise<void> {
    this.leaving = true;
    await withDeadline(this.reporter.publishNow(), 2000, undefined).catch(() => undefined);
    this.reporter.stop();
  }
}

/**
 * Home Assistant discovery: the entities, sent again when Home Assistant announces itself on its
 * status topic (it forgets non-retained state), and the retained last answer when enabled.
 */
export class Discovery implements Component {
  readonly name = "discovery";
  private readonly deps: {
    config: AppConfig;
    logger: Logger;
    topics: Topics;
    nodeId: string;
    version: string;
    sensors: Sensors;
    /** Device model shown in Home Assistant: the model and its quantization. */
    deviceModel: () => string;
    /** The board (Home Assistant's hw_version), when known. */
    hardware?: () => string | undefined;
    /** Home Assistant's link for help (the origin's support_url). */
    supportUrl?: string;
    /** The node serves the ask topic: Home Assistant gets entities to ask with. */
    askEntities?: boolean;
    publish: Publish;
  };
  private discovery: HomeAssistantDiscovery | undefined;

  constructor(deps: Discovery["deps"]) {
    this.deps = deps;
  }

  get topics(): readonly TopicHandler[] {
    if (!this.deps.config.homeassistant.enabled) return [];
    return [
      {
        filter: this.deps.topics.homeAssistantStatus,
        // QoS 0: a flood of announcements must not fill the broker's queue for this client.
        qos: 0,
        handle: (m) => {
          this.discovery?.handleHomeAssistantStatus(m.payload).catch(() => undefined);
        },
      },
    ];
  }

  private get keepsLastAnswer(): boolean {
    const { homeassistant } = this.deps.config;
    return homeassistant.enabled && homeassistant.lastAnswer;
  }

  async start(): Promise<void> {
    const { config, topics } = this.deps;
    const hardware = this.deps.hardware?.();
    // Discovery after the first reading: a temperature entity only where a sensor answers.
    const input: DiscoveryInput = {
      topics,
      nodeId: this.deps.nodeId,
      version: this.deps.version,
      model: this.deps.deviceModel(),
      ...(hardware ? { hardware } : {}),
      ...(this.deps.supportUrl ? { supportUrl: this.deps.supportUrl } : {}),
      healthIntervalSeconds: config.health.intervalSeconds,
      hasTemperature: (await this.deps.sensors.metrics.readTemperatureC()) !== null,
      lastAnswer: config.homeassistant.lastAnswer,
      askEntities: this.deps.askEntities ?? false,
    };
    this.discovery = new HomeAssistantDiscovery({
      logger: this.deps.logger.child({ component: "homeassistant" }),
      enabled: config.homeassistant.enabled,
      configs: buildDiscoveryConfigs(input),
      retired: retiredDiscoveryTopics(input),
      publish: this.deps.publish,
      minRepublishMs: config.homeassistant.republishMinSeconds * 1000,
    });
    await this.discovery.start();
    if (!this.keepsLastAnswer) {
      // Answers an earlier run kept on the broker are removed: they are no longer wanted there.
      await this.deps.publish(topics.lastAnswer, "", { qos: 1, retain: true });
    }
  }

  /** The retained last answer (Home Assistant's "last answer" sensor), when enabled. */
  answered(result: GenerationResult): void {
    if (!this.keepsLastAnswer) return;
    const payload = buildLastAnswerPayload({
      id: result.id,
      text: result.text,
      finishReason: result.finishReason,
    });
    this.deps
      .publish(this.deps.topics.lastAnswer, JSON.stringify(payload), { qos: 1, retain: true })
      .catch((err: unknown) => this.deps.logger.warn({ err }, "could not publish the last answer"));
  }

  stop(): void {
    this.discovery?.stop();
  }
}

/** The optional Prometheus endpoint, serving the health figures. */
export class Metrics implements Component {
  readonly name = "metrics";
  private readonly exporter: PrometheusExporter;

  constructor(deps: { config: AppConfig; logger: Logger; health: Health }) {
    this.exporter = new PrometheusExporter({
      logger: deps.logger.child({ component: "prometheus" }),
      port: deps.config.metrics.http.port,
      host: deps.config.metrics.http.host,
      readHealth: () => deps.health.reporter.payload(),
    });
  }

  start(): Promise<void> {
    return this.exporter.start();
  }

  stop(): Promise<void> {
    return this.exporter.stop();
  }
}
