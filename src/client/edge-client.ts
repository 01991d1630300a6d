import { randomBytes } from "node:crypto";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { MqttConfig } from "../config/app-config.js";
import { credentialOptions } from "../mqtt/client-options.js";
import type { ErrorReply, FinalResult, StreamChunk } from "../mqtt/messages.js";
import { createTopics, type Topics } from "../mqtt/topics.js";

/** MQTT 3.1.1's CONNACK return code for a protocol level the broker does not speak. */
const UNACCEPTABLE_PROTOCOL_VERSION = 1;

/** Where a request goes: one node, or any node of the pool. */
export type RequestTarget = { kind: "node"; nodeId: string } | { kind: "pool" };

export interface RequestRun {
  id: string;
  final: FinalResult | ErrorReply;
  chunks: StreamChunk[];
  /** performance.now() values seen by this client. */
  sentAt: number;
  firstChunkAt: number | null;
  finalAt: number;
  chunkTimes: number[];
}

export interface SendOptions {
  onChunk?: (chunk: StreamChunk) => void;
  signal?: AbortSignal;
  /** Give up waiting for the final after this long (the request may still run on the daemon). */
  waitMs: number;
}

/**
 * The client side of the MQTT contract, shared by `ask` and the benchmark: publish a request, follow
 * its stream, resolve with the final answer.
 */
export class EdgeClient {
  private readonly client: MqttClient;
  private topics: Topics;
  private readonly config: MqttConfig;
  private readonly listeners = new Map<string, (topic: string, payload: Buffer) => void>();

  private constructor(client: MqttClient, config: MqttConfig, nodeId: string) {
    this.client = client;
    this.config = config;
    this.topics = EdgeClient.topicsFor(config, nodeId);
    client.on("message", (topic, payload) => {
      const base = topic.endsWith("/stream") ? topic.slice(0, -"/stream".length) : topic;
      this.listeners.get(base)?.(topic, payload);
    });
  }

  static async connect(config: MqttConfig, nodeId: string, url = config.url): Promise<EdgeClient> {
    const options: IClientOptions = {
      clientId: `tinyllama-edge-client-${randomBytes(4).toString("hex")}`,
      protocolVersion: config.protocolVersion,
      connectTimeout: config.connectTimeoutMs,
      reconnectPeriod: 1000,
      ...credentialOptions(config),
    };
    const client = await mqtt.connectAsync(url, options).catch((err: Error & { code?: number }) => {
      // A 3.1.1-only broker (the embedded quick-start one) refuses MQTT 5 with return code 1; the
      // contract needs nothing of MQTT 5 on the client side, so ask again in 3.1.1.
      if (options.protocolVersion !== 5 || err.code !== UNACCEPTABLE_PROTOCOL_VERSION) throw err;
      return mqtt.connectAsync(url, { ...options, protocolVersion: 4 });
    });
    return new EdgeClient(client, config, nodeId);
  }

  private static topicsFor(config: MqttConfig, nodeId: string): Topics {
    return createTopics({
      baseTopic: config.baseTopic,
      nodeId,
      poolGroup: config.pool.group,
      discoveryPrefix: "homeassistant",
    });
  }

  /** Sends to another node from now on. */
  useNode(nodeId: string): void {
    this.topics = EdgeClient.topicsFor(this.config, nodeId);
  }

  /**
   * Every node's retained status (node id → loading/online/offline), read from `<base>/+/status`.
   * The broker sends retained messages right after the subscription is granted, so a short wait
   * after that gathers them all.
   */
  async nodeStates(settleMs = 250): Promise<Map<string, string>> {
    const filter = `${this.config.baseTopic}/+/status`;
    const prefix = `${this.config.baseTopic}/`;
    const states = new Map<string, string>();
    const onMessage = (topic: string, payload: Buffer) => {
      const node = topic.slice(prefix.length, -"/status".length);
      if (!topic.startsWith(prefix) || !topic.endsWith("/status") || node.includes("/")) return;
      try {
        const state = (JSON.parse(payload.toString("utf8")) as { state?: unknown }).state;
        if (typeof state === "string") states.set(node, state);
      } catch {
        // not a status payload
      }
    };
    this.client.on("message", onMessage);
    try {
      await this.client.subscribeAsync(filter, { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, settleMs));
    } finally {
      this.client.off("message", onMessage);
      await this.client.unsubscribeAsync(filter).catch(() => undefined);
    }
    return states;
  }

  newId(): string {
    return `ask-${randomBytes(5).toString("hex")}`;
  }

  requestTopic(target: RequestTarget): string {
    return target.kind === "pool" ? this.topics.poolRequest : this.topics.nodeRequest;
  }

  /** Sends `body` (its `id` is set when missing) and resolves with the final result or error reply. */
  async send(
    target: RequestTarget,
    body: Record<string, unknown>,
    options: SendOptions,
  ): Promise<RequestRun> {
    const id = typeof body.id === "string" ? body.id : this.newId();
    const replyTopic = this.topics.response(target.kind, id);
    const chunks: StreamChunk[] = [];
    const chunkTimes: number[] = [];
    let firstChunkAt: number | null = null;
    let sentAt = 0;
    const finalReceived = new Promise<{ final: FinalResult | ErrorReply; at: number }>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no answer to ${id} within ${options.waitMs} ms`));
      }, options.waitMs);
      const onAbort = () => {
        cleanup();
        reject(options.signal?.reason ?? new Error("aborted"));
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(replyTopic);
        options.signal?.removeEventListener("abort", onAbort);
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.listeners.set(replyTopic, (topic, payload) => {
        const at = performance.now();
        let message: unknown;
        try {
          message = JSON.parse(payload.toString("utf8"));
        } catch {
          return;
        }
        if (topic === replyTopic) {
          cleanup();
          resolve({ final: message as FinalResult | ErrorReply, at });
          return;
        }
        const chunk = message as StreamChunk;
        firstChunkAt ??= at;
        chunks.push(chunk);
        chunkTimes.push(at);
        options.onChunk?.(chunk);
      });
    });
    // Keep the pending answer from being reported as unhandled while subscribing.
    finalReceived.catch(() => undefined);
    await this.client.subscribeAsync([replyTopic, this.topics.stream(replyTopic)], { qos: 1 });
    sentAt = performance.now();
    await this.client.publishAsync(this.requestTopic(target), JSON.stringify({ ...body, id }), { qos: 1 });
    try {
      const { final, at } = await finalReceived;
      return { id, final, chunks, sentAt, firstChunkAt, finalAt: at, chunkTimes };
    } finally {
      await this.client.unsubscribeAsync([replyTopic, this.topics.stream(replyTopic)]).catch(() => undefined);
    }
  }

  async cancel(target: RequestTarget, id: string): Promise<void> {
    const topic = target.kind === "pool" ? this.topics.poolCancel : this.topics.nodeCancel;
    await this.client.publishAsync(topic, JSON.stringify({ id }), { qos: 1 });
  }

  /** The retained status of a node, or null when none arrives within the wait. */
  async nodeState(waitMs: number): Promise<string | null> {
    const topic = this.topics.status;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(null), waitMs);
      const finish = (state: string | null) => {
        clearTimeout(timer);
        this.listeners.delete(topic);
        this.client.unsubscribeAsync(topic).catch(() => undefined);
        resolve(state);
      };
      this.listeners.set(topic, (_t, payload) => {
        try {
          finish((JSON.parse(payload.toString("utf8")) as { state: string }).state);
        } catch {
          finish(null);
        }
      });
      this.client.subscribeAsync(topic, { qos: 1 }).catch(() => finish(null));
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(false);
  }
}
