import { createHash, randomBytes } from "node:crypto";
import type { RequestLimitsConfig } from "../config/app-config.js";
import type { FinishReason, GenerationRequest, GenerationResult } from "../core/generation.js";
import { EdgeError, toEdgeError } from "../errors.js";
import type { GenerateOptions, GenerationOutcome } from "../inference/engine.js";
import type { Logger } from "../logging/logger.js";
import { createRequestParser, parseCancel } from "../mqtt/messages.js";
import { topicMatches } from "../mqtt/topic-filter.js";
import { isPublishableTopic, type Topics } from "../mqtt/topics.js";
import type { IncomingMessage } from "../mqtt/transport.js";
import type { ConversationStore } from "./conversation-store.js";
import { RateLimiter } from "./rate-limiter.js";
import { type Publish, ReplyChannel } from "./reply-channel.js";
import { type JobHandle, Scheduler, type StopCause } from "./scheduler.js";
import type { ServingStats } from "./serving-stats.js";

/** What the service needs from the inference engine. */
export interface Generator {
  generate(request: GenerationRequest, options: GenerateOptions): Promise<GenerationOutcome>;
}

export interface RequestServiceDeps {
  logger: Logger;
  topics: Topics;
  limits: RequestLimitsConfig;
  maxQueue: number;
  /** Reply topic filters a request may name (reserved topics are refused regardless). */
  replyTopicAllow: string[];
  fairness: "sender" | "fifo";
  /**
   * An MQTT 5 user property the broker sets to the publishing client's identity (empty: none). Only
   * worth naming where the broker overwrites it; a client could set it itself otherwise.
   */
  senderProperty?: string;
  /** Requests a minute per sender; 0: unlimited. */
  ratePerMinute: number;
  /** Requests generated at once; 0 holds them in the queue until startServing(). */
  slots: number;
  streamQos: 0 | 1;
  publish: Publish;
  generator: Generator;
  stats: ServingStats;
  conversations: ConversationStore;
  /** Told when requests start and end, and of every result (health, Home Assistant). */
  events?: { activityChanged(): void; answered(result: GenerationResult): void };
  /** File name of the served model, reported in every result. */
  modelName: () => string;
}

/**
 * Correlation data rides on every message of a reply: a cap keeps a request from multiplying its
 * size onto every stream chunk (MQTT allows 64 KB; clients use ids of a few dozen bytes).
 */
export const MAX_CORRELATION_BYTES = 256;

/** Where one request's answer goes, whatever the transport: chunks, then exactly one final or error. */
export interface AnswerSink {
  chunk(text: string): void;
  final(result: GenerationResult): void;
  error(error: EdgeError): void;
}

/** Guards a sink from outside the service: one settle only, counted in the stats. */
function settleOnce(sink: AnswerSink, logger: Logger, onSettled: (ok: boolean) => void): AnswerSink {
  let settled = false;
  const settle = (ok: boolean, send: () => void) => {
    if (settled) {
      logger.warn("second answer suppressed");
      return;
    }
    settled = true;
    send();
    onSettled(ok);
  };
  return {
    chunk: (text) => {
      if (!settled) sink.chunk(text);
    },
    final: (result) => settle(true, () => sink.final(result)),
    error: (error) => settle(false, () => sink.error(error)),
  };
}

interface Job extends JobHandle {
  request: GenerationRequest;
  reply: AnswerSink;
  logger: Logger;
  /** Whose conversations the request may read and extend. */
  conversationScope: string;
  /** A cancel must bring the request's correlation data, or its token. */
  correlation: Buffer | undefined;
  cancelToken: string | undefined;
  /** Hash of the message: a QoS 1 redelivery has the same, a reused id another. */
  fingerprint: string | undefined;
}

/** Where a request came from, as the queue, cancels and conversations see it. */
interface Origin {
  /** Fairness and rate-limit key. */
  sender: string;
  /** The reply address: with the id, it names the job (see JobHandle.key). */
  requester: string;
  conversationScope: string;
  receivedAt: number;
  expiryMs: number;
  logger: Logger;
  logFields: Record<string, unknown>;
  correlation?: Buffer | undefined;
  cancelToken?: string | undefined;
  fingerprint?: string | undefined;
}

function jobKey(requester: string, id: string): string {
  return `${requester}\n${id}`;
}

/**
 * Turns MQTT messages into answered requests: validation, reply addressing, queueing, generation,
 * streaming and the one final answer per request.
 */
export class RequestService {
  private readonly deps: RequestServiceDeps;
  private readonly parse: (payload: Buffer) => ReturnType<ReturnType<typeof createRequestParser>>;
  private readonly scheduler: Scheduler<Job>;
  private readonly rateLimiter: RateLimiter;
  private accepting = true;

  constructor(deps: RequestServiceDeps) {
    this.deps = deps;
    this.parse = createRequestParser({
      limits: deps.limits,
      newId: () => `req-${randomBytes(6).toString("hex")}`,
    });
    this.rateLimiter = new RateLimiter({ perMinute: deps.ratePerMinute });
    this.scheduler = new Scheduler<Job>({
      maxQueue: deps.maxQueue,
      slots: deps.slots,
      run: (job, signal) => this.run(job, signal),
      reject: (job, error) => {
        job.logger.info({ code: error.code }, "request not run");
        job.reply.error(error);
      },
      averageJobMs: () => deps.stats.averageJobMs,
    });
  }

  /** The model is loaded: queued requests start, on this many parallel sequences. */
  startServing(slots: number): void {
    this.scheduler.open(slots);
  }

  get queueDepth(): number {
    return this.scheduler.queueDepth;
  }

  get activeCount(): number {
    return this.scheduler.activeCount;
  }

  /** Never throws: every message gets exactly one answer, or is logged when it cannot be addressed. */
  handleRequest(message: IncomingMessage): void {
    try {
      this.accept(message);
    } catch (err) {
      this.deps.logger.error({ err }, "unexpected failure handling a request");
    }
  }

  private accept(message: IncomingMessage): void {
    const { topics, logger } = this.deps;
    const origin = topics.originOf(message.topic);
    const parsed = this.parse(message.payload);
    const id = parsed.ok ? parsed.request.id : parsed.id;
    const replyTo = parsed.ok ? parsed.request.replyTo : parsed.replyTo;
    const address = this.resolveReplyTopic(id, origin, message.responseTopic, replyTo);
    const reqLogger = logger.child({ reqId: id ?? undefined, origin });
    const correlationBytes = message.correlationData?.length ?? 0;
    const correlationTooLong = correlationBytes > MAX_CORRELATION_BYTES;
    const cancelToken = randomBytes(12).toString("base64url");
    const reply = new ReplyChannel({
      id,
      topic: address.topic,
      streamTopic: parsed.ok && parsed.request.stream ? topics.stream(address.topic) : null,
      correlationData: correlationTooLong ? undefined : message.correlationData,
      streamQos: this.deps.streamQos,
      cancelToken,
      node: topics.nodeId,
      publish: this.deps.publish,
      logger: reqLogger,
      onSettled: (ok) => this.deps.stats.recordAnswer(ok),
    });
    if (!parsed.ok) {
      reqLogger.warn({ code: parsed.error.code, reason: parsed.error.message }, "invalid request");
      reply.error(parsed.error);
      return;
    }
    if (address.problem) {
      reqLogger.warn({ reason: address.problem }, "invalid reply topic");
      reply.error(new EdgeError("invalid_request", address.problem));
      return;
    }
    if (message.retained) {
      // Delivered from the broker's store (an MQTT 3.1.1 subscription; MQTT 5 asks for none): it
      // would run again on every restart and reconnect.
      reqLogger.warn("retained request not run");
      reply.error(
        new EdgeError(
          "invalid_request",
          "retained requests are not run (they would run again on every restart): publish without the retain flag",
        ),
      );
      return;
    }
    if (correlationTooLong) {
      const reason = `correlation data is ${correlationBytes} bytes; the limit is ${MAX_CORRELATION_BYTES}`;
      reqLogger.warn({ reason }, "invalid request");
      reply.error(new EdgeError("invalid_request", reason));
      return;
    }
    const expiryMs =
      message.messageExpirySeconds === undefined ? Infinity : message.messageExpirySeconds * 1000;
    const client = this.clientOf(address.topic, message);
    this.enqueue(parsed.request, reply, {
      // Without a stamped identity, a request on its default reply topic says nothing about its
      // client: it counts on its own rather than with every other client that named no reply topic.
      sender: client.stamped || !address.isDefault ? client.id : `request:${address.topic}`,
      requester: address.topic,
      conversationScope: client.id,
      receivedAt: message.receivedAt,
      expiryMs,
      logger: reqLogger,
      logFields: { replyTopic: address.topic },
      correlation: message.correlationData,
      cancelToken,
      fingerprint: createHash("sha256")
        .update(message.payload)
        .update(message.correlationData ?? Buffer.alloc(0))
        .digest("base64url"),
    });
  }

  /**
   * A request that arrived by another way than the JSON request topic (the ask topic, HTTP): the
   * same queue, limits and fairness, its answer told to `sink` exactly once. Never throws.
   */
  submit(request: GenerationRequest, sink: AnswerSink, from: { sender: string; receivedAt?: number }): void {
    const reqLogger = this.deps.logger.child({ reqId: request.id, origin: from.sender });
    const reply = settleOnce(sink, reqLogger, (ok) => this.deps.stats.recordAnswer(ok));
    try {
      this.enqueue(request, reply, {
        sender: from.sender,
        requester: from.sender,
        conversationScope: from.sender,
        receivedAt: from.receivedAt ?? performance.now(),
        expiryMs: Infinity,
        logger: reqLogger,
        logFields: {},
      });
    } catch (err) {
      reqLogger.error({ err }, "unexpected failure handling a request");
      reply.error(toEdgeError(err));
    }
  }

  /** Stops a queued or running request of this requester (the `sender` it was submitted with); true when it was here. */
  cancel(id: string, requester: string): boolean {
    return this.scheduler.cancel(jobKey(requester, id), "cancelled");
  }

  private enqueue(request: GenerationRequest, reply: AnswerSink, from: Origin): void {
    const reqLogger = from.logger;
    const key = jobKey(from.requester, request.id);
    const existing = this.scheduler.get(key);
    if (existing) {
      if (from.fingerprint !== undefined && existing.fingerprint === from.fingerprint) {
        // A QoS 1 redelivery: the one in flight answers.
        reqLogger.warn("redelivery of a request in flight ignored");
        return;
      }
      reqLogger.warn("request id already in flight for this requester");
      reply.error(
        new EdgeError(
          "invalid_request",
          `id ${request.id} is already in flight on this reply topic: use a new id`,
        ),
      );
      return;
    }
    if (!this.accepting) {
      reply.error(new EdgeError("shutting_down", "the daemon is shutting down"));
      return;
    }
    const waitMs = this.rateLimiter.take(from.sender);
    if (waitMs > 0) {
      reqLogger.warn({ retryAfterMs: waitMs }, "sender over its rate limit");
      reply.error(
        new EdgeError("busy", "too many requests from this sender", { details: { retryAfterMs: waitMs } }),
      );
      return;
    }
    const job: Job = {
      id: request.id,
      key,
      // Fairness turns go per sender, or to everyone at once in fifo mode.
      sender: this.deps.fairness === "fifo" ? "" : from.sender,
      receivedAt: from.receivedAt,
      deadline: from.receivedAt + Math.min(request.timeoutMs, from.expiryMs),
      request,
      reply,
      logger: reqLogger,
      conversationScope: from.conversationScope,
      correlation: from.correlation,
      cancelToken: from.cancelToken,
      fingerprint: from.fingerprint,
    };
    reqLogger.info(
      {
        kind: request.input.kind,
        maxTokens: request.maxTokens,
        stream: request.stream,
        ...from.logFields,
      },
      "request accepted",
    );
    reqLogger.debug({ input: request.input, system: request.system }, "request input");
    try {
      this.scheduler.submit(job);
    } catch (err) {
      const error = toEdgeError(err);
      reqLogger.warn({ code: error.code }, "request refused");
      reply.error(error);
    }
  }

  /** MQTT 5 Response Topic, then reply_to, then the default response topic of the origin. */
  private resolveReplyTopic(
    id: string | null,
    origin: "node" | "pool",
    responseTopic: string | undefined,
    replyTo: string | undefined,
  ): { topic: string; isDefault: boolean; problem?: string } {
    const { topics } = this.deps;
    const fallback = id === null ? topics.errors : topics.response(origin, id);
    const requested = responseTopic ?? replyTo;
    if (requested === undefined || requested === fallback) return { topic: fallback, isDefault: true };
    const allowed = this.deps.replyTopicAllow.some((filter) => topicMatches(filter, requested));
    // Another request's default reply topic would hand its requester a second final.
    if (
      !isPublishableTopic(requested) ||
      topics.isReserved(requested) ||
      topics.isResponse(requested) ||
      !allowed
    ) {
      return {
        topic: fallback,
        isDefault: true,
        problem: `reply topic ${JSON.stringify(requested.slice(0, 128))} is not allowed (wildcards, $-topics, empty levels, the daemons' own, response and discovery topics are refused, and it must match mqtt.replyTopicAllow)`,
      };
    }
    return { topic: requested, isDefault: false };
  }

  /**
   * The client behind a request: the identity the broker stamped (scheduler.senderProperty), else its
   * reply topic without the last level (the id), so one client's requests count together.
   */
  private clientOf(replyTopic: string, message: IncomingMessage): { id: string; stamped: boolean } {
    const property = this.deps.senderProperty;
    const stamped = property ? message.userProperties?.[property] : undefined;
    if (typeof stamped === "string" && stamped.length > 0) return { id: `client:${stamped}`, stamped: true };
    const cut = replyTopic.lastIndexOf("/");
    return { id: cut > 0 ? replyTopic.slice(0, cut) : replyTopic, stamped: false };
  }

  /**
   * A cancel is honoured only from the requester: it names the request's reply topic (MQTT 5 Response
   * Topic, reply_to, or the default one) and brings its correlation data, or it brings the cancel
   * token of the first stream chunk. Knowing an id is not enough.
   */
  handleCancel(message: IncomingMessage): void {
    const { logger, topics } = this.deps;
    if (message.retained) {
      logger.warn({ topic: message.topic }, "retained cancel ignored");
      return;
    }
    const parsed = parseCancel(message.payload);
    if (!parsed.ok) {
      logger.warn({ reason: parsed.message, topic: message.topic }, "invalid cancel ignored");
      return;
    }
    const { id, replyTo, cancelToken } = parsed.cancel;
    const requester = message.responseTopic ?? replyTo ?? topics.response(topics.originOf(message.topic), id);
    const named = this.scheduler.get(jobKey(requester, id));
    const proven =
      named &&
      (named.correlation === undefined ||
        named.correlation.equals(message.correlationData ?? Buffer.alloc(0)))
        ? named
        : cancelToken === undefined
          ? undefined
          : this.scheduler.withId(id).find((job) => job.cancelToken === cancelToken);
    if (!proven) {
      const here = this.scheduler.withId(id).length > 0;
      logger[here ? "warn" : "info"]({ reqId: id, found: false, refused: here }, "cancel");
      return;
    }
    this.scheduler.cancel(proven.key, "cancelled");
    logger.info({ reqId: id, found: true }, "cancel");
  }

  private async run(job: Job, signal: AbortSignal): Promise<void> {
    this.deps.events?.activityChanged();
    try {
      await this.generate(job, signal);
    } finally {
      this.deps.events?.activityChanged();
    }
  }

  private async generate(job: Job, signal: AbortSignal): Promise<void> {
    const startedAt = performance.now();
    const { reply, logger } = job;
    const request = this.withConversation(job.request, job.conversationScope);
    try {
      const outcome = await this.deps.generator.generate(request, {
        signal,
        onText: (text) => reply.chunk(text),
      });
      const endedAt = performance.now();
      const finishReason: FinishReason =
        outcome.stopReason === "abort" ? stopCauseToFinish(signal.reason) : outcome.stopReason;
      const generationMs = outcome.firstTokenAt === null ? 0 : endedAt - outcome.firstTokenAt;
      const tokensPerSecond =
        outcome.completionTokens > 1 && generationMs > 0
          ? ((outcome.completionTokens - 1) * 1000) / generationMs
          : null;
      const ttftMs = outcome.firstTokenAt === null ? null : outcome.firstTokenAt - job.receivedAt;
      const result: GenerationResult = {
        id: job.id,
        text: outcome.text,
        finishReason,
        usage: {
          promptTokens: outcome.promptTokens,
          completionTokens: outcome.completionTokens,
          promptTokensEvaluated: outcome.evaluatedPromptTokens,
        },
        timings: {
          queueMs: round(startedAt - job.receivedAt),
          ttftMs: ttftMs === null ? null : round(ttftMs),
          totalMs: round(endedAt - job.receivedAt),
          tokensPerSecond: tokensPerSecond === null ? null : round(tokensPerSecond),
        },
        model: this.deps.modelName(),
        node: this.deps.topics.nodeId,
      };
      if (request.jsonSchema) result.json = parseJsonOrNull(outcome.text);
      this.deps.stats.recordGeneration({
        promptTokens: outcome.promptTokens,
        promptTokensEvaluated: outcome.evaluatedPromptTokens,
        completionTokens: outcome.completionTokens,
        tokensPerSecond,
        ttftMs,
        jobMs: endedAt - startedAt,
      });
      logger.info(
        {
          finishReason,
          completionTokens: outcome.completionTokens,
          ttftMs: result.timings.ttftMs,
          tps: result.timings.tokensPerSecond,
        },
        "request answered",
      );
      this.remember(job.request, job.conversationScope, outcome.text, finishReason);
      reply.final(result);
      this.deps.events?.answered(result);
    } catch (err) {
      const error = toEdgeError(err);
      logger[error.code === "internal" ? "error" : "warn"](
        { err: error, code: error.code },
        "request failed",
      );
      reply.error(error);
    }
  }

  /** The request with its conversation's earlier turns put before its own (system messages stay first). */
  private withConversation(request: GenerationRequest, scope: string): GenerationRequest {
    if (!request.conversationId || request.input.kind !== "chat") return request;
    const history = this.deps.conversations.history(jobKey(scope, request.conversationId));
    if (history.length === 0) return request;
    const own = request.input.messages;
    const messages = [
      ...own.filter((m) => m.role === "system"),
      ...history,
      ...own.filter((m) => m.role !== "system"),
    ];
    return { ...request, input: { kind: "chat", messages } };
  }

  /** Conversations belong to their client: another client using the same conversation_id gets its own. */
  private remember(
    request: GenerationRequest,
    scope: string,
    answer: string,
    finishReason: FinishReason,
  ): void {
    if (!request.conversationId || request.input.kind !== "chat") return;
    if (finishReason !== "stop" && finishReason !== "length") return;
    this.deps.conversations.append(jobKey(scope, request.conversationId), [
      ...request.input.messages,
      { role: "assistant", content: answer },
    ]);
  }

  /** Refuses new requests, answers queued ones with shutting_down, ends running ones with their partial text. */
  async drain(): Promise<void> {
    this.accepting = false;
    await this.scheduler.drain();
  }
}

function stopCauseToFinish(reason: unknown): FinishReason {
  const cause = reason as StopCause;
  return cause === "timeout" ? "timeout" : cause === "shutting_down" ? "shutdown" : "cancelled";
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

function parseJsonOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
