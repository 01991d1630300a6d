/**
 * The plain-text ask topics: `<base>/<node>/ask` and the pool's `<base>/pool/ask` take the payload as
 * the prompt itself (UTF-8, no JSON), so `mosquitto_pub -m "…"`, Home Assistant's notify and text
 * entities and Node-RED can ask without templates. Each ask is answered by exactly one JSON event on
 * `<base>/<node>/answer` (not retained). Asks go through the same RequestService as JSON requests.
 */
import { randomBytes } from "node:crypto";
import type { RequestLimitsConfig } from "../config/app-config.js";
import type { GenerationRequest } from "../core/generation.js";
import { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { createRequestValidator, type FinalResult, finalResult, type Usage } from "../mqtt/messages.js";
import type { Topics } from "../mqtt/topics.js";
import type { IncomingMessage, PublishOptions } from "../mqtt/transport.js";
import type { AnswerSink } from "./request-service.js";

/** The event on the answer topic; Home Assistant's event entity takes `event_type`, the rest are attributes. */
export type AnswerEvent =
  | {
      event_type: "answer";
      id: string;
      prompt: string;
      text: string;
      finish_reason: FinalResult["finish_reason"];
      usage: Usage;
      timings: FinalResult["timings"];
      node: string;
    }
  | {
      event_type: "error";
      id: string;
      prompt: string | null;
      error: { code: string; message: string };
      node: string;
    };

export interface AskTopicDeps {
  logger: Logger;
  topics: Pick<Topics, "answer" | "nodeId" | "originOf">;
  limits: RequestLimitsConfig;
  requests: {
    submit(request: GenerationRequest, sink: AnswerSink, from: { sender: string; receivedAt?: number }): void;
    cancel(id: string, requester: string): boolean;
  };
  publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export class AskTopic {
  private readonly deps: AskTopicDeps;
  private readonly validate: ReturnType<typeof createRequestValidator>;
  /** Asks queued or running, for the Cancel button. */
  /** Ask ids in flight, with the sender they were submitted as (a cancel names both). */
  private readonly inFlight = new Map<string, string>();

  constructor(deps: AskTopicDeps) {
    this.deps = deps;
    this.validate = createRequestValidator({ limits: deps.limits, newId: newAskId });
  }

  /** A prompt on an ask topic. Never throws; every ask gets one answer event. */
  handleAsk(message: IncomingMessage): void {
    const id = newAskId();
    const origin = this.deps.topics.originOf(message.topic);
    const logger = this.deps.logger.child({ reqId: id, origin, via: "ask" });
    if (message.retained) {
      // A retained prompt would be asked again on every restart.
      logger.warn("retained ask ignored: publish asks without the retain flag");
      return;
    }
    const read = this.readPrompt(message.payload);
    if (!read.ok) {
      logger.warn({ code: read.error.code, reason: read.error.message }, "invalid ask");
      this.publishEvent(logger, errorEvent(id, null, read.error, this.deps.topics.nodeId));
      return;
    }
    const prompt = read.prompt;
    const validated = this.validate({ id, prompt, stream: false });
    if (!validated.ok) {
      logger.warn({ code: validated.error.code, reason: validated.error.message }, "invalid ask");
      this.publishEvent(logger, errorEvent(id, prompt, validated.error, this.deps.topics.nodeId));
      return;
    }
    const sender = `ask:${origin}`;
    this.inFlight.set(id, sender);
    const settle = (event: AnswerEvent) => {
      this.inFlight.delete(id);
      this.publishEvent(logger, event);
    };
    const node = this.deps.topics.nodeId;
    this.deps.requests.submit(
      validated.request,
      {
        chunk: () => undefined,
        final: (result) => {
          const wire = finalResult(result);
          settle({
            event_type: "answer",
            id,
            prompt,
            text: wire.text,
            finish_reason: wire.finish_reason,
            usage: wire.usage,
            timings: wire.timings,
            node,
          });
        },
        error: (error) => settle(errorEvent(id, prompt, error, node)),
      },
      // All asks take one fairness turn together: they carry no sender identity.
      { sender, receivedAt: message.receivedAt },
    );
  }

  /** Any message on the ask cancel topic stops every ask this node holds (queued or running). */
  handleCancel(message: IncomingMessage): void {
    if (message.retained) return;
    const ids = [...this.inFlight.keys()];
    for (const [id, sender] of [...this.inFlight]) this.deps.requests.cancel(id, sender);
    this.deps.logger.info({ cancelled: ids.length }, "asks cancelled");
  }

  private readPrompt(payload: Buffer): { ok: true; prompt: string } | { ok: false; error: EdgeError } {
    const { maxPromptBytes } = this.deps.limits;
    if (payload.length > maxPromptBytes) {
      return {
        ok: false,
        error: new EdgeError(
          "payload_too_large",
          `prompt is ${payload.length} bytes; the limit is ${maxPromptBytes}`,
        ),
      };
    }
    let text: string;
    try {
      text = strictUtf8.decode(payload);
    } catch {
      return { ok: false, error: new EdgeError("invalid_request", "the prompt is not valid UTF-8 text") };
    }
    const prompt = text.trim();
    if (prompt.length === 0) {
      return {
        ok: false,
        error: new EdgeError("invalid_request", "the prompt is empty: publish the question as the payload"),
      };
    }
    return { ok: true, prompt };
  }

  private publishEvent(logger: Logger, event: AnswerEvent): void {
    this.deps
      .publish(this.deps.topics.answer, JSON.stringify(event), { qos: 1, retain: false })
      .catch((err: unknown) => logger.error({ err }, "publishing an answer event failed"));
  }
}

function errorEvent(id: string, prompt: string | null, error: EdgeError, node: string): AnswerEvent {
  return { event_type: "error", id, prompt, error: { code: error.code, message: error.message }, node };
}

function newAskId(): string {
  return `ask-${randomBytes(6).toString("hex")}`;
}
