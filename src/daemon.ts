import { Ask } from "./components/ask.js";
import { BrokerComponent } from "./components/broker.js";
import { HttpApi } from "./components/http-api.js";
import { Info } from "./components/info.js";
import { Model } from "./components/model.js";
import { MqttConnection } from "./components/mqtt-connection.js";
import { NodeStatus } from "./components/node-status.js";
import { Online } from "./components/online.js";
import { Discovery, Health, Metrics, Sensors, Thermal } from "./components/reporting.js";
import { Cancel, Pool, Requests, Serving } from "./components/requests.js";
import type { AppConfig } from "./config/app-config.js";
import type { EdgeError } from "./errors.js";
import type { Component } from "./lifecycle/component.js";
import { Lifecycle } from "./lifecycle/lifecycle.js";
import { TopicRouter } from "./lifecycle/topic-router.js";
import type { Logger } from "./logging/logger.js";
import { createTopics, nodeIdFromHostname, type Topics } from "./mqtt/topics.js";
import { ServingStats } from "./serving/serving-stats.js";
import { SdNotify } from "./supervision/sd-notify.js";
import { packageHomepage, packageVersion } from "./version.js";

export interface DaemonDeps {
  config: AppConfig;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  hostname: string;
  interactive: boolean;
  /** Keys a config source set (LoadedConfig.setKeys); none by default. */
  configuredKeys?: ReadonlySet<string>;
}

export interface Daemon {
  readonly topics: Topics;
  /** Resolves once the node is online; rejects on a start failure (after undoing what was started). */
  start(signal: AbortSignal): Promise<void>;
  /** Graceful stop in reverse order of start. Idempotent. */
  stop(): Promise<void>;
  /** Settles with the reason when the daemon cannot go on (another daemon took its client id). */
  readonly failed: Promise<EdgeError>;
}

/** The composition root: builds the components, and starts them in list order and stops them in reverse. */
export function createDaemon(deps: DaemonDeps): Daemon {
  const { config, logger } = deps;
  const nodeId = config.node.id || nodeIdFromHostname(deps.hostname);
  const topics = createTopics({
    baseTopic: config.mqtt.baseTopic,
    nodeId,
    poolGroup: config.mqtt.pool.group,
    discoveryPrefix: config.homeassistant.discoveryPrefix,
  });
  const router = new TopicRouter(logger.child({ component: "router" }));
  let fail: (error: EdgeError) => void = () => undefined;
  const failed = new Promise<EdgeError>((resolve) => {
    fail = resolve;
  });
  const stats = new ServingStats();

  const broker = new BrokerComponent({
    config,
    logger,
    env: deps.env,
    configuredKeys: deps.configuredKeys ?? new Set(),
  });
  const mqtt = new MqttConnection({
    config,
    logger,
    nodeId,
    topics,
    broker,
    // The broker may have lost its retained messages while the daemon was away.
    onConnect: async (): Promise<void> => {
      await Promise.all([status.announce(), info.announce()]);
    },
    onMessage: (message) => router.route(message),
    onFatal: (error) => fail(error),
  });
  const publish = mqtt.publish.bind(mqtt);
  const connected = () => mqtt.connected;
  const status = new NodeStatus({ logger, topics, publish });
  const model = new Model({ config, logger, env: deps.env, interactive: deps.interactive });
  const requests = new Requests({
    config,
    logger,
    topics,
    stats,
    generator: model,
    modelName: () => model.fileName,
    publish,
    connected,
    events: {
      activityChanged: () => health.activityChanged(),
      answered: (result) => discovery.answered(result),
    },
  });
  const { service } = requests;
  const sensors = new Sensors({ config });
  const thermal = new Thermal({
    config,
    logger,
    sensors,
    threads: () => model.threads,
    setThreads: (threads) => model.setThreads(threads),
    onStateChange: () => health.publishNow(),
  });
  const health = new Health({
    config,
    logger,
    topics,
    sensors,
    thermal,
    snapshot: () => ({
      state: status.state,
      queueDepth: service.queueDepth,
      activeRequests: service.activeCount,
      stats,
      ceilingTokensPerSecond: model.ceiling()?.tokens_per_second ?? null,
    }),
    publish,
    connected,
  });
  const discovery = new Discovery({
    config,
    logger,
    topics,
    nodeId,
    version: packageVersion(),
    sensors,
    deviceModel: () => {
      const { header, plan } = model.runtime;
      const quantization = header.quantization ?? plan.quantization;
      return `${header.name ?? model.fileName} ${quantization}`;
    },
    hardware: () => {
      const { hardware } = model.runtime;
      return hardware.board ?? hardware.cpu.model ?? undefined;
    },
    supportUrl: packageHomepage(),
    askEntities: true,
    publish,
  });
  const ask = new Ask({ config, logger, topics, service, publish });
  const info = new Info({ nodeId, topics, maxQueue: config.scheduler.maxQueue, model, publish });
  const sdNotify = new SdNotify({ env: deps.env, logger: logger.child({ component: "sd-notify" }) });

  /**
   * The daemon, in start order; stop runs it in reverse. A feature with its own topics is one
   * component (it declares `topics`, the daemon subscribes them once it has started and routes their
   * messages to it) plus one line here. Order facts: requests and cancel are subscribed before the
   * model loads (what arrives meanwhile queues); serving comes after reporting so that a stop drains
   * requests while health and the broker still run; the pool is joined only once serving; online
   * is last (status loading -> online, systemd READY), so it is the first to stop.
   */
  const components: Component[] = [
    broker,
    mqtt,
    status,
    requests,
    new Cancel({ topics, service }),
    ask,
    model,
    info,
    sensors,
    thermal,
    health,
    discovery,
    new Metrics({ config, logger, health }),
    new Serving({ service, slots: () => model.sequences }),
    new Pool({
      enabled: config.mqtt.pool.enabled,
      topics,
      service,
      ask: (m) => ask.asks.handleAsk(m),
      broker,
    }),
    new HttpApi({ config, logger, service, model }),
    new Online({ logger, nodeId, status, sdNotify, publishHealthNow: () => health.publishNow() }),
  ];
  const lifecycle = new Lifecycle(components, {
    logger,
    router,
    subscribe: (subscriptions) => mqtt.subscribe(subscriptions),
  });
  let stopping: Promise<void> | undefined;

  async function start(signal: AbortSignal): Promise<void> {
    const inner = new AbortController();
    const forward = () => inner.abort(signal.reason);
    if (signal.aborted) forward();
    signal.addEventListener("abort", forward, { once: true });
    // The model loads beside the broker connection: a broker down at boot does not hold it up, and a
    // model that cannot load fails the start at once instead of after the broker has been reached.
    const loading = model.beginLoading(inner.signal);
    const started = lifecycle.start(inner.signal);
    try {
      await Promise.race([started, loading.then(() => started)]);
    } catch (err) {
      inner.abort();
      await started.catch(() => {});
      await stop();
      // The model may have failed before its component started, so the lifecycle does not stop it.
      await model.stop();
      throw err;
    } finally {
      signal.removeEventListener("abort", forward);
    }
  }

  function stop(): Promise<void> {
    stopping ??= (async () => {
      logger.info("stopping");
      await lifecycle.stop();
      logger.info("stopped");
    })();
    return stopping;
  }

  return { topics, start, stop, failed };
}
