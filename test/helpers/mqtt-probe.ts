import mqtt, { type IClientPublishOptions, type MqttClient } from "mqtt";

/** A received JSON object; tests read its fields freely. */
// biome-ignore lint/suspicious/noExplicitAny: payloads from the daemon are checked field by field
export type JsonObject = Record<string, any>;

export interface ReceivedMessage {
  topic: string;
  text: string;
  json: unknown;
  retain: boolean;
  correlationData: Buffer | undefined;
  at: number;
}

/** A test client that records every message it receives and waits for the ones a test expects. */
export class MqttProbe {
  readonly messages: ReceivedMessage[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      const text = payload.toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const correlation = packet.properties?.correlationData;
      this.messages.push({
        topic,
        text,
        json,
        retain: packet.retain,
        correlationData: correlation === undefined ? undefined : Buffer.from(correlation),
        at: performance.now(),
      });
      for (const wake of this.waiters) wake();
    });
  }

  static async connect(
    url: string,
    options: {
      protocolVersion?: 4 | 5;
      clientId?: string;
      persistent?: boolean;
      /** Credentials for a broker that refuses anonymous clients. */
      username?: string;
      password?: string;
    } = {},
  ): Promise<MqttProbe> {
    const client = await mqtt.connectAsync(url, {
      protocolVersion: options.protocolVersion ?? 4,
      clientId: options.clientId ?? `probe-${Math.random().toString(16).slice(2, 10)}`,
      reconnectPeriod: 200,
      // A persistent session keeps the probe's subscriptions and queued messages across broker restarts.
      clean: !options.persistent,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    return new MqttProbe(client);
  }

  async subscribe(...topics: string[]): Promise<void> {
    await this.client.subscribeAsync(topics, { qos: 1 });
  }

  async publish(
    topic: string,
    payload: string | object,
    options: IClientPublishOptions = { qos: 1 },
  ): Promise<void> {
    await this.client.publishAsync(
      topic,
      typeof payload === "string" ? payload : JSON.stringify(payload),
      options,
    );
  }

  on(topic: string): ReceivedMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** Waits until the predicate over all messages so far returns a value; rejects after the timeout. */
  async waitFor<T>(
    select: (messages: ReceivedMessage[]) => T | undefined | false,
    timeoutMs = 30_000,
    what = "message",
  ): Promise<T> {
    const found = select(this.messages);
    if (found) return found;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        const value = select(this.messages);
        if (!value) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      this.waiters.add(check);
    });
  }

  /** The first message on the topic whose JSON matches. */
  async waitForJson(topic: string, match: (json: JsonObject) => boolean = () => true, timeoutMs = 30_000) {
    return this.waitFor(
      (messages) =>
        messages.find(
          (m) =>
            m.topic === topic && typeof m.json === "object" && m.json !== null && match(m.json as JsonObject),
        ),
      timeoutMs,
      `a message on ${topic}`,
    );
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
