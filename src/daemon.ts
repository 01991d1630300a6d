import { basename } from "node:path";
import type { AppConfig } from "./config/app-config.js";
import { EdgeError } from "./errors.js";
import { Reporting } from "./health/reporting.js";
import { type EngineSettings, InferenceEngine } from "./inference/engine.js";
import { type ThreadTuning, tuneThreads } from "./inference/thread-tuner.js";
import type { Logger } from "./logging/logger.js";
import { DEFAULT_BROKER_URL, EmbeddedBroker, isPortListening } from "./mqtt/embedded-broker.js";
import { type NodeState, statusPayload } from "./mqtt/status.js";
import { createTopics, nodeIdFromHostname, type Topics } from "./mqtt/topics.js";
import { type IncomingMessage, MqttTransport, type PublishOptions } from "./mqtt/transport.js";
import { buildInfoPayload } from "./runtime/info-payload.js";
import { type PreparedRuntime, prepareRuntime } from "./runtime/prepare-runtime.js";
import { ConversationStore } from "./serving/conversation-store.js";
import { RequestService } from "./serving/request-service.js";
import { ServingStats } from "./serving/serving-stats.js";
import { SdNotify } from "./supervision/sd-notify.js";
import { withDeadline } from "./util/deadline.js";
import { packageVersion } from "./version.js";

export interface DaemonDeps {
  config: AppConfig;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  hostname: string;
  interactive: boolean;
}

export interface Daemon {
  readonly topics: Topics;
  /** Resolves once the node is online; rejects on a start failure (after undoing what was started). */
  start(signal: AbortSignal): Promise<void>;
  /** Graceful stop in reverse order of start. Idempotent. */
  stop(): Promise<void>;
}

function engineSettings(runtime: PreparedRuntime, batching: EngineSettings["batching"]): EngineSettings {
  const { plan } = runtime;
  return {
    modelPath: runtime.modelPath,
    threads: plan.threads,
    gpuLayers: plan.gpuLayers,
    contextSize: plan.contextSize,
    sequences: plan.parallelSequences,
    batchSize: plan.batchSize,
    useMmap: plan.useMmap,
    batching,
  };
}

/**
 * The composition root: starts the broker connection, the hardware plan, the model, request serving
 * and reporting in a fixed order, and stops them in reverse.
 */
export function createDaemon(deps: DaemonDeps): Daemon {
  const { config, logger } = deps;
  const nodeId = config.node.id || nodeIdFromHostname(deps.hostname);
  const topics = createTopics({
    baseTopic: config.mqtt.baseTopic,
    nodeId,
    poolGroup: config.mqtt.pool.group,
    discoveryPrefix: config.homeassistant.discoveryPrefix,
  });
  const stats = new ServingStats();
  const sdNotify = new SdNotify({ env: deps.env, logger: logger.child({ component: "sd-notify" }) });
  let state: NodeState = "loading";
  let broker: EmbeddedBroker | undefined;
  let transport: MqttTransport | undefined;
  let runtime: PreparedRuntime | undefined;
  let engine: InferenceEngine | undefined;
  let service: RequestService | undefined;
  let threadTuning: ThreadTuning | null = null;
  let reporting: Reporting | undefined;
  let stopping: Promise<void> | undefined;

  const publishStatus = async (next: NodeState) => {
    state = next;
    await transport?.publish(topics.status, statusPayload(next), { qos: 1, retain: true });
  };

  const onMessage = (message: IncomingMessage) => {
    const kind = topics.classify(message.topic);
    // The service exists before the first subscription: nothing that arrives can be missed.
    if (kind === "request") service?.handleRequest(message);
    else if (kind === "cancel") service?.handleCancel(message);
    else if (kind === "homeassistant-status") reporting?.handleHomeAssistantStatus(message.payload);
  };

  /** Offline, stream chunks are dropped (late tokens help nobody); finals are queued by mqtt.js. */
  const publishReply = (topic: string, payload: string, options: PublishOptions): Promise<unknown> => {
    if (!transport) return Promise.reject(new Error("no MQTT transport"));
    if (options.qos === 0 && !transport.connected) return Promise.resolve();
    return transport.publish(topic, payload, options);
  };

  /** The configured broker, or an embedded one for the zero-setup quick start. */
  async function brokerUrl(): Promise<{ url: string; embedded: boolean }> {
    const { mqtt } = config;
    if (mqtt.url !== DEFAULT_BROKER_URL || mqtt.embeddedBroker === "never")
      return { url: mqtt.url, embedded: false };
    if (await isPortListening("127.0.0.1", 1883)) return { url: mqtt.url, embedded: false };
    broker = new EmbeddedBroker();
    const url = await broker.start(1883);
    logger.info(
      { url },
      "no broker on localhost:1883: started the embedded broker (MQTT 3.1.1, no shared subscriptions)",
    );
    return { url, embedded: true };
  }

  /** Measured thread count (issue of rules vs reality on each board); only when threads are "auto". */
  async function maybeTuneThreads(
    prepared: PreparedRuntime,
    loaded: InferenceEngine,
    signal: AbortSignal,
  ): Promise<ThreadTuning | null> {
    const { plan, hardware, header, llama } = prepared;
    if (config.runtime.threads !== "auto" || !config.runtime.autotune || plan.threads <= 1) return null;
    const tuning = await tuneThreads({
      logger: logger.child({ component: "thread-tuner" }),
      stateDir: config.state.dir,
      key: [
        hardware.arch,
        hardware.cpu.model,
        hardware.cpu.physicalCores,
        basename(prepared.modelPath),
        header.fileBytes,
        plan.contextSize,
      ].join("|"),
      maxThreads: plan.threads,
      setThreads: (threads) => {
        llama.maxThreads = threads;
      },
      measure: () => loaded.measureGeneration(32, signal),
    });
    logger.info({ threads: tuning.threads, source: tuning.source, trials: tuning.trials }, "threads tuned");
    return tuning;
  }

  async function start(signal: AbortSignal): Promise<void> {
    try {
      const { url, embedded } = await brokerUrl();
      const mqttConfig = embedded
        ? { ...config.mqtt, protocolVersion: 4 as const, sessionExpirySeconds: 0 }
        : config.mqtt;
      transport = new MqttTransport({
        logger: logger.child({ component: "mqtt" }),
        config: mqttConfig,
        url,
        clientId: config.mqtt.clientId || `tinyllama-edge-${nodeId}`,
        will: { topic: topics.status, payload: statusPayload("offline") },
        onConnect: () => publishStatus(state),
        onMessage,
      });
      // Requests that arrive while the model loads (a persistent session delivers them at once)
      // wait in the queue; beyond it they are answered busy.
      service = new RequestService({
        logger: logger.child({ component: "requests" }),
        topics,
        limits: config.requests,
        maxQueue: config.scheduler.maxQueue,
        replyTopicAllow: config.mqtt.replyTopicAllow,
        fairness: config.scheduler.fairness,
        ratePerMinute: config.scheduler.ratePerMinute,
        slots: 0,
        streamQos: config.mqtt.streamQos,
        publish: publishReply,
        generator: {
          generate: (request, options) => {
            if (!engine) throw new EdgeError("model_unavailable", "the model is not loaded");
            return engine.generate(request, options);
          },
        },
        stats,
        events: {
          activityChanged: () => reporting?.activityChanged(),
          answered: (result) => reporting?.answered(result),
        },
        conversations: new ConversationStore({
          maxCount: config.conversations.maxCount,
          maxAgeMs: config.conversations.maxAgeSeconds * 1000,
          maxMessages: config.conversations.maxMessages,
          maxChars: config.conversations.maxChars,
        }),
        modelName: () => (runtime ? basename(runtime.modelPath) : "none"),
      });
      await transport.start(signal);
      await publishStatus("loading");
      await transport.subscribe([
        { topic: topics.nodeRequest, qos: 1 },
        { topic: topics.nodeCancel, qos: 1 },
      ]);

      runtime = await prepareRuntime({
        config,
        logger,
        env: deps.env,
        interactive: deps.interactive,
        signal,
      });
      const settings = engineSettings(runtime, config.runtime.batching);
      const loading = new InferenceEngine({
        logger: logger.child({ component: "engine" }),
        llama: runtime.llama,
        settings,
        nativeErrors: runtime.nativeErrors,
      });
      await loading.start();
      threadTuning = await maybeTuneThreads(runtime, loading, signal);
      engine = loading;
      service.startServing(settings.sequences);

      // The pool only once this node can serve: until then the other nodes take its share.
      if (config.mqtt.pool.enabled && !embedded) {
        await transport.subscribe([
          { topic: topics.poolRequestShared, qos: 1 },
          { topic: topics.poolCancel, qos: 1 },
        ]);
      }
      await transport.publish(
        topics.info,
        JSON.stringify(
          await buildInfoPayload({ nodeId, runtime, threadTuning, maxQueue: config.scheduler.maxQueue }),
        ),
        { qos: 1, retain: true },
      );
      const threads = threadTuning?.threads ?? runtime.plan.threads;
      const llama = runtime.llama;
      reporting = new Reporting({
        config,
        logger,
        topics,
        nodeId,
        version: packageVersion(),
        deviceModel: [basename(runtime.modelPath), runtime.hardware.board ?? runtime.hardware.cpu.model].join(
          " on ",
        ),
        threads,
        setThreads: (n) => {
          llama.maxThreads = n;
        },
        snapshot: () => ({
          state,
          queueDepth: service?.queueDepth ?? 0,
          activeRequests: service?.activeCount ?? 0,
          stats,
        }),
        publish: (topic, payload, options) => transport!.publish(topic, payload, options),
        connected: () => transport?.connected ?? false,
      });
      await reporting.start();
      if (config.homeassistant.enabled) {
        await transport.subscribe([{ topic: topics.homeAssistantStatus, qos: 1 }]);
      }
      await publishStatus("online");
      reporting.publishHealthNow();
      sdNotify.ready(`online as ${nodeId}`);
      logger.info({ node: nodeId, status: topics.status }, "online");
    } catch (err) {
      await stop();
      throw err;
    }
  }

  async function stopInOrder(): Promise<void> {
    sdNotify.stopping();
    logger.info("stopping");
    await service?.drain();
    if (transport) {
      // The broker may be gone: the last will then says offline for us.
      const published = await withDeadline(
        publishStatus("offline").then(() => true),
        2000,
        false,
      ).catch(() => false);
      if (!published) logger.warn("could not publish offline; the last will covers it");
      if (reporting) await withDeadline(reporting.stop(), 2000, undefined);
      await transport.stop();
    }
    await engine?.stop();
    await runtime?.llama.dispose();
    await broker?.stop();
    logger.info("stopped");
  }

  function stop(): Promise<void> {
    stopping ??= stopInOrder();
    return stopping;
  }

  return { topics, start, stop };
}
