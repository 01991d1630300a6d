import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from "mqtt";
import type { MqttConfig } from "../config/app-config.js";
import { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { credentialOptions } from "./client-options.js";
import { publishPacketBytes } from "./packet-size.js";

export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  /** MQTT 5 properties of the request, when the sender set them. */
  responseTopic: string | undefined;
  correlationData: Buffer | undefined;
  messageExpirySeconds: number | undefined;
  /** MQTT 5 user properties of the message (a broker may stamp the sender's identity into one). */
  userProperties: Record<string, string | string[]> | undefined;
  /** Delivered from the broker's retained store, not published live. */
  retained: boolean;
  receivedAt: number;
}

export interface PublishOptions {
  qos: 0 | 1;
  retain?: boolean;
  correlationData?: Buffer | undefined;
}

export interface Subscription {
  topic: string;
  qos: 0 | 1;
}

export interface TransportDeps {
  logger: Logger;
  config: MqttConfig;
  /** The broker URL actually used (the embedded broker's, when one was started). */
  url: string;
  clientId: string;
  will: { topic: string; payload: string };
  /** Called on every (re)connection, e.g. to announce the current status again. */
  onConnect: () => Promise<void>;
  onMessage: (message: IncomingMessage) => void;
  /** MQTT 5 Maximum Packet Size announced on connect: the broker drops larger messages for us. */
  maxIncomingPacketBytes?: number;
  /** A failure the daemon cannot recover from by reconnecting (two daemons with one client id). */
  onFatal?: (error: EdgeError) => void;
}

/** MQTT 5 DISCONNECT reason 0x8E: another connection with the same client id took this session. */
const SESSION_TAKEN_OVER = 0x8e;
/** Takeovers within this window that mean a second daemon, not one stale connection. */
const TAKEOVER_WINDOW_MS = 60_000;
const TAKEOVERS_FATAL = 3;
/**
 * Brokers before MQTT 5's DISCONNECT 0x8E (Mosquitto < 2.0.15, any 3.1.1 connection) just close the
 * displaced connection. Closes without an error, each soon after connecting, this many times in the
 * window, mean the same (a broker restart or a network fault brings errors and slower reconnects).
 */
const SILENT_DROPS_FATAL = 5;
const SILENT_DROP_MAX_CONNECTED_MS = 10_000;

/** mqtt.js with a last will, exponential reconnect backoff and subscriptions that survive reconnects. */
export class MqttTransport {
  private readonly deps: TransportDeps;
  private client: MqttClient | undefined;
  private subscriptions: Subscription[] = [];
  private reconnectDelayMs: number;
  /** Failed attempts since the last successful connection, for the logs. */
  private failedAttempts = 0;
  /** mqtt.js emits some socket and TLS errors twice (from the socket and from its stream): logged once. */
  private lastError: Error | undefined;
  private stopping = false;
  /** The broker's Maximum Packet Size (CONNACK) or mqtt.maxPacketBytes, whichever is smaller. */
  private maxPacketBytes = Infinity;
  private readonly takeovers: number[] = [];
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly silentDrops: number[] = [];
  /** When the current connection came up (0: not connected); and whether it ended with a reason. */
  private connectedAt = 0;
  private closeExplained = false;

  constructor(deps: TransportDeps) {
    this.deps = deps;
    this.reconnectDelayMs = deps.config.reconnectMinMs;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  private clientOptions(): IClientOptions {
    const { config, clientId, will } = this.deps;
    const persistent = config.sessionExpirySeconds > 0;
    const options: IClientOptions = {
      clientId,
      protocolVersion: config.protocolVersion,
      keepalive: config.keepaliveSeconds,
      connectTimeout: config.connectTimeoutMs,
      // mqtt.js retries at a fixed period and gives up after a refused CONNACK (wrong password,
      // broker restarting its auth): this transport reconnects itself, backing off (backOff below).
      reconnectPeriod: 0,
      clean: !persistent,
      resubscribe: true,
      reconnectOnConnackError: true,
      will: { topic: will.topic, payload: Buffer.from(will.payload), qos: 1, retain: true },
    };
    if (config.protocolVersion === 5) {
      options.properties = {
        ...(persistent ? { sessionExpiryInterval: config.sessionExpirySeconds } : {}),
        ...(this.deps.maxIncomingPacketBytes ? { maximumPacketSize: this.deps.maxIncomingPacketBytes } : {}),
      };
    }
    Object.assign(options, credentialOptions(config));
    return options;
  }

  /** Resolves on the first successful connection; keeps retrying until then, or until the signal aborts. */
  async start(signal: AbortSignal): Promise<void> {
    const { logger, url } = this.deps;
    let options: IClientOptions;
    try {
      options = this.clientOptions();
    } catch (err) {
      throw new EdgeError("config_invalid", `MQTT TLS files cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const client = mqtt.connect(url, options);
    this.client = client;
    client.on("message", (topic, payload, packet) => this.dispatch(topic, payload, packet));
    client.on("error", (err) => {
      if (err === this.lastError) return;
      this.lastError = err;
      const { msg, hint } = describeMqttError(err);
      logger.error(
        { err: { message: err.message, code: (err as { code?: unknown }).code }, url: redactUrl(url), hint },
        msg,
      );
    });
    client.on("disconnect", (packet) => this.brokerDisconnected(packet.reasonCode ?? 0));
    client.on("close", () => {
      this.noteClose();
      this.backOff();
    });
    client.on("connect", (connack) => {
      this.connectedAt = Date.now();
      this.closeExplained = false;
      this.reconnectDelayMs = this.deps.config.reconnectMinMs;
      this.failedAttempts = 0;
      this.lastError = undefined;
      // Token chunks are small packets: without TCP_NODELAY, Nagle's algorithm holds them ~40 ms.
      (client.stream as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true);
      const brokerLimit = connack.properties?.maximumPacketSize;
      const configured = this.deps.config.maxPacketBytes;
      this.maxPacketBytes = Math.min(brokerLimit ?? Infinity, configured > 0 ? configured : Infinity);
      logger.info(
        {
          url: redactUrl(url),
          sessionPresent: connack.sessionPresent,
          ...(Number.isFinite(this.maxPacketBytes) ? { maxPacketBytes: this.maxPacketBytes } : {}),
        },
        "MQTT connected",
      );
      this.deps.onConnect().catch((err: unknown) => logger.error({ err }, "announcing on connect failed"));
    });

    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        cleanup();
        reject(new EdgeError("shutting_down", "stopped before the broker was reached"));
      };
      const onConnect = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        client.off("connect", onConnect);
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) return onAbort();
      client.on("connect", onConnect);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * After every lost or refused connection: the next attempt after a delay that doubles with every
   * failure up to the maximum, through mqtt.js's public reconnect() with its message stores kept, so
   * QoS 1 messages queued while offline still go out.
   */
  private backOff(): void {
    const client = this.client;
    if (!client || this.stopping || client.disconnecting || this.reconnectTimer) return;
    const url = redactUrl(this.deps.url);
    if (this.failedAttempts === 0) this.deps.logger.warn({ url }, "MQTT connection lost or refused");
    this.failedAttempts++;
    const delayMs = this.reconnectDelayMs;
    this.deps.logger.warn({ url, attempt: this.failedAttempts, delayMs }, "MQTT reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopping || client.connected) return;
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delayMs);
    this.reconnectDelayMs = Math.min(delayMs * 2, this.deps.config.reconnectMaxMs);
  }

  /** The broker closed the connection with a reason (MQTT 5): say which, and stop a takeover loop. */
  private brokerDisconnected(reasonCode: number): void {
    const { logger } = this.deps;
    this.closeExplained = true;
    if (reasonCode !== SESSION_TAKEN_OVER) {
      logger.warn({ reasonCode }, `MQTT broker closed the connection: ${describeDisconnect(reasonCode)}`);
      return;
    }
    const count = countRecent(this.takeovers, TAKEOVER_WINDOW_MS);
    const message = `another MQTT client with the client id "${this.deps.clientId}" took over this connection: two daemons with the same node.id (or mqtt.clientId) knock each other off; give each node its own node.id`;
    logger.error({ reasonCode, takeovers: count }, message);
    if (count >= TAKEOVERS_FATAL) this.fatal(message);
  }

  /** A connection that the broker closed soon after it came up, with no error and no reason. */
  private noteClose(): void {
    const { connectedAt } = this;
    this.connectedAt = 0;
    if (connectedAt === 0 || this.closeExplained || this.lastError !== undefined || this.stopping) return;
    if (Date.now() - connectedAt > SILENT_DROP_MAX_CONNECTED_MS) return;
    const count = countRecent(this.silentDrops, TAKEOVER_WINDOW_MS);
    if (count < SILENT_DROPS_FATAL) return;
    const message = `the broker closed this connection ${count} times in a minute right after it was made, without an error: most likely another MQTT client uses the client id "${this.deps.clientId}" (two daemons with the same node.id or mqtt.clientId); give each node its own node.id`;
    this.deps.logger.error({ drops: count }, message);
    this.fatal(message);
  }

  private fatal(message: string): void {
    if (!this.deps.onFatal) return;
    this.stopping = true;
    // Gone for good: publishes fail at once and stop() has nothing left to close.
    this.client?.end(true);
    this.client = undefined;
    this.deps.onFatal(new EdgeError("config_invalid", message));
  }

  private dispatch(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const properties = packet.properties;
    const correlation = properties?.correlationData;
    this.deps.onMessage({
      topic,
      payload,
      responseTopic: properties?.responseTopic,
      correlationData: correlation === undefined ? undefined : Buffer.from(correlation),
      messageExpirySeconds: properties?.messageExpiryInterval,
      userProperties: properties?.userProperties,
      retained: packet.retain,
      receivedAt: performance.now(),
    });
  }

  async subscribe(subscriptions: Subscription[]): Promise<void> {
    const client = this.requireClient();
    this.subscriptions = [...this.subscriptions, ...subscriptions];
    // Retain handling 2: the broker sends no stored retained message on subscribe. A retained
    // request would otherwise run again on every restart; the daemon wants none on any topic.
    const granted = await client.subscribeAsync(
      Object.fromEntries(subscriptions.map((s) => [s.topic, { qos: s.qos, rh: 2 }])),
    );
    for (const grant of granted) {
      if (grant.qos === 128)
        throw new EdgeError("internal", `the broker refused the subscription to ${grant.topic}`);
    }
    this.deps.logger.info({ topics: subscriptions.map((s) => s.topic) }, "subscribed");
  }

  get subscribedTopics(): string[] {
    return this.subscriptions.map((s) => s.topic);
  }

  /** The largest packet the broker takes (Infinity when neither it nor mqtt.maxPacketBytes says). */
  get packetLimit(): number {
    return this.maxPacketBytes;
  }

  /**
   * Resolves true when the broker has it (QoS 1) or it was written (QoS 0); queued by mqtt.js while
   * offline. Resolves false, sending nothing, when the packet exceeds the broker's Maximum Packet
   * Size: the broker would drop the connection for it. Callers decide what to send instead; the
   * daemon's own retained state (info, discovery) is logged here.
   */
  async publish(topic: string, payload: string | Buffer, options: PublishOptions): Promise<boolean> {
    const client = this.requireClient();
    const { protocolVersion } = this.deps.config;
    const properties =
      options.correlationData && protocolVersion === 5
        ? { correlationData: options.correlationData }
        : undefined;
    const bytes = publishPacketBytes({
      topic,
      payloadBytes: typeof payload === "string" ? Buffer.byteLength(payload) : payload.length,
      qos: options.qos,
      protocolVersion,
      ...(properties ? { correlationBytes: properties.correlationData.length } : {}),
    });
    if (bytes > this.maxPacketBytes) {
      if (options.retain) {
        this.deps.logger.warn(
          { topic, packetBytes: bytes, maxPacketBytes: this.maxPacketBytes },
          "message not published: larger than the broker's maximum packet size (raise the broker's max_packet_size)",
        );
      }
      return false;
    }
    await client.publishAsync(topic, payload, {
      qos: options.qos,
      retain: options.retain ?? false,
      ...(properties ? { properties } : {}),
    });
    return true;
  }

  private requireClient(): MqttClient {
    if (!this.client) throw new EdgeError("internal", "MQTT transport is not started");
    return this.client;
  }

  /** Disconnects cleanly (no last will), waiting at most `deadlineMs`. Idempotent. */
  async stop(deadlineMs = 3000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    const ended = client.endAsync(false);
    const timer = setTimeout(() => client.end(true), deadlineMs);
    try {
      await ended;
    } finally {
      clearTimeout(timer);
    }
  }
}

const REFUSAL_HINTS: Record<number, string> = {
  1: "check mqtt.protocolVersion",
  2: "check mqtt.clientId",
  4: "check mqtt.username and mqtt.password",
  5: "check mqtt.username and mqtt.password, and the broker's access rules",
  132: "check mqtt.protocolVersion",
  133: "check mqtt.clientId",
  134: "check mqtt.username and mqtt.password",
  135: "check mqtt.username and mqtt.password, and the broker's access rules",
};
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
]);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_|EPROTO$)/;

/**
 * A log message that says what failed: the broker's refusal with its reason (mqtt.js reports a
 * CONNACK refusal as an error whose code is the numeric reason code), a TLS verification failure, or
 * an unreachable broker. Never includes credentials.
 */
function describeMqttError(err: Error): { msg: string; hint: string | undefined } {
  const code = (err as { code?: unknown }).code;
  if (typeof code === "number" && err.message.startsWith("Connection refused")) {
    const reason = err.message.replace(/^Connection refused:\s*/, "") || "unknown reason";
    return {
      msg: `MQTT broker refused the connection: ${reason} (reason code ${code})`,
      hint: REFUSAL_HINTS[code],
    };
  }
  if (typeof code === "string" && TLS_CODE.test(code)) {
    return {
      msg: `MQTT TLS handshake failed: ${err.message} (${code})`,
      hint: code.includes("ALTNAME")
        ? "the broker's certificate does not name the host in mqtt.url"
        : "the broker's certificate is not trusted: check mqtt.tls.ca (and mqtt.tls.cert/key where the broker asks for a client certificate)",
    };
  }
  if (typeof code === "string" && NETWORK_CODES.has(code)) {
    return {
      msg: `MQTT broker unreachable: ${err.message}`,
      hint: "check mqtt.url and that the broker runs",
    };
  }
  return { msg: `MQTT error: ${err.message}`, hint: undefined };
}

/** Records now in `times` and returns how many fall within the window. */
function countRecent(times: number[], windowMs: number): number {
  const now = Date.now();
  times.push(now);
  while (times.length > 0 && now - times[0]! > windowMs) times.shift();
  return times.length;
}

const DISCONNECT_REASONS: Record<number, string> = {
  135: "not authorized",
  137: "server busy",
  139: "server shutting down",
  141: "keep alive timeout",
  147: "receive maximum exceeded",
  149: "packet too large (check mqtt.maxPacketBytes and the broker's max_packet_size)",
  151: "quota exceeded",
  152: "administrative action",
};

function describeDisconnect(reasonCode: number): string {
  return DISCONNECT_REASONS[reasonCode] ?? `reason code ${reasonCode}`;
}

/** Broker URLs can hold credentials: never log them. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "redacted";
    return parsed.toString();
  } catch {
    return "[unparseable url]";
  }
}
