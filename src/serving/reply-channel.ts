import type { GenerationResult } from "../core/generation.js";
import { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import {
  type ErrorReply,
  errorReply,
  type FinalResult,
  finalResult,
  type StreamChunk,
} from "../mqtt/messages.js";
import type { PublishOptions } from "../mqtt/transport.js";

/** Resolves false when the message was not sent because it exceeds the broker's maximum packet size. */
export type Publish = (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;

export interface ReplyChannelOptions {
  id: string | null;
  topic: string;
  streamTopic: string | null;
  correlationData: Buffer | undefined;
  streamQos: 0 | 1;
  /** Sent on the first stream chunk, so the requester can cancel (and nobody who only knows the id). */
  cancelToken?: string;
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
  private chunksDropped = 0;

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
    const chunk: StreamChunk = { id, seq: this.seq++, text };
    if (chunk.seq === 0 && this.options.cancelToken) chunk.cancel_token = this.options.cancelToken;
    this.send(streamTopic, JSON.stringify(chunk), this.options.streamQos, () => {
      if (this.chunksDropped++ === 0)
        this.options.logger.warn(
          { reqId: id, topic: streamTopic },
          "stream chunks dropped: larger than the broker's maximum packet size",
        );
    });
  }

  final(result: GenerationResult): void {
    this.settle(finalResult(result), true);
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
    const text = JSON.stringify(payload);
    this.send(this.options.topic, text, 1, () => this.replaceTooLarge(Buffer.byteLength(text)));
    this.options.onSettled(ok);
  }

  /** The final did not fit the broker's packet limit: a short error goes instead, so the requester knows. */
  private replaceTooLarge(bytes: number): void {
    const { id, node, topic, logger } = this.options;
    logger.warn({ reqId: id, topic, bytes }, "final answer larger than the broker's maximum packet size");
    const error = new EdgeError(
      "payload_too_large",
      `the answer (${bytes} bytes) exceeds the broker's maximum packet size`,
    );
    const short = JSON.stringify(errorReply(id, error, node));
    this.send(topic, short, 1, () =>
      // Even the error did not fit with the correlation data on it: send it without.
      this.sendWith(topic, short, { qos: 1 }, () =>
        logger.error(
          { reqId: id, topic },
          "no answer could be published: the broker's maximum packet size is too small",
        ),
      ),
    );
  }

  private send(topic: string, payload: string, qos: 0 | 1, onTooLarge: () => void): void {
    this.sendWith(topic, payload, { qos, correlationData: this.options.correlationData }, onTooLarge);
  }

  private sendWith(topic: string, payload: string, options: PublishOptions, onTooLarge: () => void): void {
    this.options.publish(topic, payload, options).then(
      (sent) => {
        if (sent === false) onTooLarge();
      },
      (err: unknown) =>
        this.options.logger.error({ reqId: this.options.id, err, topic }, "publishing a reply failed"),
    );
  }
}
