import type { IPublishPacket, MqttClient } from "mqtt";

/** A final answer (result or error) seen on any topic: `{status:"ok"|"error", node, …}`. */
export interface FinalReply {
  topic: string;
  json: Record<string, unknown>;
  status: "ok" | "error";
  /** The error code, for errors. */
  code: string | undefined;
  /** MQTT 5 Correlation Data as UTF-8, when the request carried one. */
  correlation: string | undefined;
  at: number;
}

export interface ReplyLedgerOptions {
  /** Topics whose messages are never answers (e.g. the request topics a wildcard subscription also sees). */
  ignoreTopic?: (topic: string) => boolean;
  /** How answers are grouped: by default the correlation data, else `id:<id>`. */
  keyOf?: (reply: FinalReply) => string | undefined;
}

/**
 * Counts final answers as they arrive, indexed by request, so tests can check "exactly once" over
 * thousands of requests without rescanning every message received (which grows quadratically).
 * Stream chunks (`{id, seq, text}`) are counted separately, never as answers.
 */
export class ReplyLedger {
  readonly finals: FinalReply[] = [];
  streamChunks = 0;
  private readonly byKey = new Map<string, FinalReply[]>();
  private readonly waiters = new Set<() => void>();
  private readonly listener: (topic: string, payload: Buffer, packet: IPublishPacket) => void;

  constructor(
    private readonly client: MqttClient,
    private readonly options: ReplyLedgerOptions = {},
  ) {
    this.listener = (topic, payload, packet) => this.record(topic, payload, packet);
    client.on("message", this.listener);
  }

  private record(topic: string, payload: Buffer, packet: IPublishPacket): void {
    if (this.options.ignoreTopic?.(topic)) return;
    let json: unknown;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return;
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) return;
    const record = json as Record<string, unknown>;
    if (typeof record.seq === "number" && typeof record.text === "string" && record.status === undefined) {
      this.streamChunks++;
      return;
    }
    if ((record.status !== "ok" && record.status !== "error") || typeof record.node !== "string") return;
    const correlation = packet.properties?.correlationData;
    const error = record.error as { code?: unknown } | undefined;
    const reply: FinalReply = {
      topic,
      json: record,
      status: record.status,
      code: typeof error?.code === "string" ? error.code : undefined,
      correlation: correlation === undefined ? undefined : Buffer.from(correlation).toString("utf8"),
      at: performance.now(),
    };
    this.finals.push(reply);
    const key = this.keyOf(reply);
    if (key !== undefined) {
      const list = this.byKey.get(key) ?? [];
      list.push(reply);
      this.byKey.set(key, list);
    }
    for (const wake of this.waiters) wake();
  }

  private keyOf(reply: FinalReply): string | undefined {
    if (this.options.keyOf) return this.options.keyOf(reply);
    if (reply.correlation !== undefined) return reply.correlation;
    return typeof reply.json.id === "string" ? `id:${reply.json.id}` : undefined;
  }

  /** Every answer recorded under this key (a correlation value, or `id:<id>`). */
  finalsFor(key: string): FinalReply[] {
    return this.byKey.get(key) ?? [];
  }

  get keys(): string[] {
    return [...this.byKey.keys()];
  }

  /** Resolves once the condition holds (checked on every answer); rejects after the timeout. */
  waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.finals.length} answers)`),
        );
      }, timeoutMs);
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  /** Waits until no new answer has arrived for `quietMs` (late duplicates would show up by then). */
  async settle(quietMs: number): Promise<void> {
    let seen = -1;
    while (seen !== this.finals.length) {
      seen = this.finals.length;
      await new Promise((resolve) => setTimeout(resolve, quietMs));
    }
  }

  detach(): void {
    this.client.off("message", this.listener);
    this.waiters.clear();
  }
}
