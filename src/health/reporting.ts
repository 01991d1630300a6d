import type { AppConfig } from "../config/app-config.js";
import { createRootedFileReader } from "../hardware/rooted-file-reader.js";
import { createCommandRunner } from "../hardware/run-command.js";
import type { Logger } from "../logging/logger.js";
import type { FinalResult } from "../mqtt/messages.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";
import { HealthReporter, type ServingSnapshot } from "./health-reporter.js";
import {
  buildDiscoveryConfigs,
  buildLastAnswerPayload,
  type DiscoveryInput,
  HomeAssistantDiscovery,
  retiredDiscoveryTopics,
} from "./home-assistant.js";
import { PrometheusExporter } from "./prometheus-exporter.js";
import { nodeHostFacts, SystemMetrics } from "./system-metrics.js";
import { ThermalGuard } from "./thermal-guard.js";

export interface ReportingDeps {
  config: AppConfig;
  logger: Logger;
  topics: Topics;
  nodeId: string;
  version: string;
  /** Device model shown in Home Assistant: the model and its quantization. */
  deviceModel: string;
  /** The board (Home Assistant's hw_version), when known. */
  hardware?: string;
  /** Home Assistant's link for help (the origin's support_url). */
  supportUrl?: string;
  /** The node serves the ask topic: Home Assistant gets entities to ask with. */
  askEntities?: boolean;
  /** Threads the runtime uses; the thermal guard lowers and restores them. */
  threads: number;
  setThreads: (threads: number) => void;
  snapshot: () => ServingSnapshot;
  /** Publishes now; health skips its period while the broker is away (nothing queues up). */
  publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
  connected: () => boolean;
}

/**
 * What a person watching the node needs: the retained health topic, Home Assistant discovery, the
 * last answer, thermal care and the optional Prometheus endpoint. Started after the model is loaded,
 * stopped before the broker connection closes.
 */
export class Reporting {
  private readonly deps: ReportingDeps;
  private readonly metrics: SystemMetrics;
  private readonly thermal: ThermalGuard;
  private readonly health: HealthReporter;
  private discovery: HomeAssistantDiscovery | undefined;
  private readonly prometheus: PrometheusExporter;
  private wasBusy = false;

  constructor(deps: ReportingDeps) {
    this.deps = deps;
    const { config, logger } = deps;
    this.metrics = new SystemMetrics({
      files: createRootedFileReader("/"),
      sensorPath: config.thermal.sensorPath,
      runCommand: createCommandRunner(),
      host: nodeHostFacts(),
      now: () => performance.now(),
    });
    this.thermal = new ThermalGuard({
      logger: logger.child({ component: "thermal" }),
      sensor: this.metrics,
      settings: {
        throttleAtC: config.thermal.throttleAtC,
        resumeBelowC: config.thermal.resumeBelowC,
        reducedThreads: config.thermal.reducedThreads,
        checkIntervalMs: config.thermal.checkSeconds * 1000,
      },
      configuredThreads: deps.threads,
      setThreads: deps.setThreads,
      onStateChange: () => this.publishHealthNow(),
    });
    this.health = new HealthReporter({
      logger: logger.child({ component: "health" }),
      topics: deps.topics,
      intervalMs: config.health.intervalSeconds * 1000,
      publish: (topic, payload, options) =>
        deps.connected() ? deps.publish(topic, payload, options) : Promise.resolve(),
      metrics: this.metrics,
      snapshot: deps.snapshot,
      thermal: () => this.thermal.status(),
    });
    this.prometheus = new PrometheusExporter({
      logger: logger.child({ component: "prometheus" }),
      port: config.metrics.http.port,
      host: config.metrics.http.host,
      readHealth: () => this.health.payload(),
    });
  }

  async start(): Promise<void> {
    const { config, logger, topics } = this.deps;
    await this.metrics.start();
    await this.thermal.start();
    await this.health.start();
    // Discovery after the first reading: a temperature entity only where a sensor answers.
    const input: DiscoveryInput = {
      topics,
      nodeId: this.deps.nodeId,
      version: this.deps.version,
      model: this.deps.deviceModel,
      ...(this.deps.hardware ? { hardware: this.deps.hardware } : {}),
      ...(this.deps.supportUrl ? { supportUrl: this.deps.supportUrl } : {}),
      healthIntervalSeconds: config.health.intervalSeconds,
      hasTemperature: (await this.metrics.readTemperatureC()) !== null,
      lastAnswer: config.homeassistant.lastAnswer,
      askEntities: this.deps.askEntities ?? false,
    };
    this.discovery = new HomeAssistantDiscovery({
      logger: logger.child({ component: "homeassistant" }),
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
    await this.prometheus.start();
  }

  private get keepsLastAnswer(): boolean {
    const { homeassistant } = this.deps.config;
    return homeassistant.enabled && homeassistant.lastAnswer;
  }

  /** Home Assistant announced itself: it forgot non-retained state, so discovery goes out again. */
  handleHomeAssistantStatus(payload: Buffer): void {
    this.discovery?.handleHomeAssistantStatus(payload).catch(() => undefined);
  }

  /** Health goes out at once on busy ↔ idle and thermal changes, not only on its period. */
  activityChanged(): void {
    const busy = this.deps.snapshot().activeRequests > 0;
    if (busy !== this.wasBusy) {
      this.wasBusy = busy;
      this.publishHealthNow();
    }
  }

  /** The retained last answer (Home Assistant's "last answer" sensor), when enabled. */
  answered(result: FinalResult): void {
    if (!this.keepsLastAnswer) return;
    const payload = buildLastAnswerPayload({
      id: result.id,
      text: result.text,
      finishReason: result.finish_reason,
    });
    this.deps
      .publish(this.deps.topics.lastAnswer, JSON.stringify(payload), { qos: 1, retain: true })
      .catch((err: unknown) => this.deps.logger.warn({ err }, "could not publish the last answer"));
  }

  publishHealthNow(): void {
    this.health.publishNow().catch(() => undefined);
  }

  /** Publishes health once more (state offline) and stops everything, in reverse order of start. */
  async stop(): Promise<void> {
    await this.prometheus.stop();
    this.discovery?.stop();
    await this.health.publishNow();
    this.health.stop();
    this.thermal.stop();
    this.metrics.stop();
  }
}
