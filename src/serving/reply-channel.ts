import type { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { type ErrorReply, errorReply, type FinalResult } from "../mqtt/messages.js";
import type { PublishOptions } from "../mqtt/transport.js";

export type Publish = (topic: string, payload: string, options: PublishOptions) => Promise<void>;

export interface ReplyChannelOptions {
  id: string | null;
  topic: string;
  streamTopic: string | null;
  correlationData: Buffer | undefined;
  streamQos: 0 | 1;
  node: string;
  publish: Publish;
  logger: Logger;
  /** Called once with whether the answer was a result (true) or an error (false). */
  onSettled: (ok: boolean) => void;
}

/** Where one request's answer goes. Guarantees exactly one final message, whatever happens. */
export class ReplyChannel {
  private readonly options: ReplyChannelOptions;
  private seq = 0;
  private settled = false;

  constructor(options: ReplyChannelOptions) {
    this.options = options;
  }

  get isSettled(): boolean {
    return this.settled;
  }

  /** One stream chunk; QoS 0 by default, never awaited so generation does not wait on the network. */
  chunk(text: string): void {
    const { streamTopic, id } = this.options;
    if (this.settled || streamTopic === null || id === null || text.length === 0) return;
    this.send(streamTopic, JSON.stringify({ id, seq: this.seq++, text }), this.options.streamQos);
  }

  final(result: FinalResult): void {
    this.settle(result, true);
  }

  error(error: EdgeError): void {
    this.settle(errorReply(this.options.id, error, this.options.node), false);
  }

  private settle(payload: FinalResult | ErrorReply, ok: boolean): void {
    if (this.settled) {
      this.options.logger.warn({ reqId: this.options.id }, "second answer suppressed");
      return;
    }
    this.settled = true;
    this.send(this.options.topic, JSON.stringify(payload), 1);
    this.options.onSettled(ok);
  }

  private send(topic: string, payload: string, qos: 0 | 1): void {
    this.options
      .publish(topic, payload, { qos, correlationData: this.options.correlationData })
      .catch((err: unknown) =>
        this.options.logger.error({ reqId: this.options.id, err, topic }, "publishing a reply failed"),
      );
  }
}
