import { z } from "zod";
import type { RequestLimitsConfig } from "../config/app-config.js";
import type { FinishReason, GenerationRequest, GenerationResult, RequestInput } from "../core/generation.js";
import { EdgeError, type ErrorCode } from "../errors.js";
import { jsonSchemaProblems } from "./json-schema-check.js";
import { REQUEST_PACKET_HEADROOM_BYTES } from "./packet-size.js";
import { ID_PATTERN } from "./topics.js";

/** Requests arrive as untrusted bytes: everything here is validated before the daemon acts on it. */

export type ParsedRequest =
  | { ok: true; request: GenerationRequest }
  /** `id`/`replyTo` are what could be salvaged to address the error reply; null sends it to `_errors`. */
  | { ok: false; id: string | null; replyTo: string | undefined; error: EdgeError };

const MAX_JSON_DEPTH = 32;
const idSchema = z
  .string()
  .regex(ID_PATTERN, "must be 1-64 characters of [A-Za-z0-9_-], not starting with _");

function requestSchema(limits: RequestLimitsConfig) {
  // Lengths are checked after parsing, over all texts together, to answer payload_too_large.
  const text = z.string();
  const message = z.strictObject({ role: z.enum(["system", "user", "assistant"]), content: text });
  return z
    .strictObject({
      id: idSchema.optional(),
      transaction: idSchema.optional(),
      prompt: text.optional(),
      messages: z.array(message).min(1).max(limits.maxMessages).optional(),
      system: text.optional(),
      raw: z.boolean().optional(),
      stream: z.boolean().optional(),
      max_tokens: z.number().int().min(1).max(limits.maxTokensCap).optional(),
      temperature: z.number().min(0).max(2).optional(),
      top_p: z.number().min(0).max(1).optional(),
      top_k: z.number().int().min(0).max(1000).optional(),
      min_p: z.number().min(0).max(1).optional(),
      seed: z
        .number()
        .int()
        .min(0)
        .max(2 ** 32 - 1)
        .optional(),
      stop: z.union([z.string().min(1).max(64), z.array(z.string().min(1).max(64)).max(8)]).optional(),
      json_schema: z.record(z.string(), z.unknown()).optional(),
      conversation_id: idSchema.optional(),
      reply_to: z.string().min(1).max(512).optional(),
      timeout_ms: z.number().int().min(1).max(limits.maxTimeoutMs).optional(),
    })
    .superRefine((value, ctx) => {
      if ((value.prompt === undefined) === (value.messages === undefined)) {
        ctx.addIssue({ code: "custom", message: "exactly one of prompt or messages is required" });
      }
      if (value.raw && value.prompt === undefined) {
        ctx.addIssue({ code: "custom", message: "raw needs prompt, not messages", path: ["raw"] });
      }
      if (value.id !== undefined && value.transaction !== undefined && value.id !== value.transaction) {
        ctx.addIssue({ code: "custom", message: "id and transaction differ", path: ["transaction"] });
      }
      if (value.json_schema !== undefined) {
        for (const problem of jsonSchemaProblems(value.json_schema))
          ctx.addIssue({ code: "custom", message: problem });
      }
      if (value.messages && !value.messages.some((m) => m.role === "user")) {
        ctx.addIssue({ code: "custom", message: "messages need at least one user turn", path: ["messages"] });
      }
    });
}

function jsonDepth(value: unknown, depth = 0): number {
  if (depth > MAX_JSON_DEPTH || typeof value !== "object" || value === null) return depth;
  let max = depth;
  for (const child of Object.values(value)) max = Math.max(max, jsonDepth(child, depth + 1));
  return max;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.join(".");
      if (issue.code === "unrecognized_keys") return `unknown field(s): ${issue.keys.join(", ")}`;
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/** The id and reply_to an error reply can still use, taken only when they are valid. */
function salvageAddress(value: unknown): { id: string | null; replyTo: string | undefined } {
  if (typeof value !== "object" || value === null) return { id: null, replyTo: undefined };
  const record = value as Record<string, unknown>;
  const idCandidate = record.id ?? record.transaction;
  const id = typeof idCandidate === "string" && ID_PATTERN.test(idCandidate) ? idCandidate : null;
  const replyTo =
    typeof record.reply_to === "string" && record.reply_to.length <= 512 ? record.reply_to : undefined;
  return { id, replyTo };
}

export interface ParseRequestOptions {
  limits: RequestLimitsConfig;
  /** Makes an id for requests that bring none. */
  newId: () => string;
}

function parseOrUndefined(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString("utf8"));
  } catch {
    return undefined;
  }
}

function failure(code: ErrorCode, message: string, address = salvageAddress(undefined)): ParsedRequest {
  return { ok: false, ...address, error: new EdgeError(code, message) };
}

export function createRequestParser(options: ParseRequestOptions): (payload: Buffer) => ParsedRequest {
  const validate = createRequestValidator(options);
  const { limits } = options;
  return (payload) => {
    if (payload.length > limits.maxPayloadBytes) {
      return failure(
        "payload_too_large",
        `payload is ${payload.length} bytes; the limit is ${limits.maxPayloadBytes}`,
        // Within the packet size the daemon announces, the id and reply_to are still read, so the
        // answer reaches the requester and not only _errors.
        salvageAddress(
          payload.length <= limits.maxPayloadBytes + REQUEST_PACKET_HEADROOM_BYTES
            ? parseOrUndefined(payload)
            : undefined,
        ),
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return failure("invalid_request", "payload is not valid JSON");
    }
    return validate(json);
  };
}

/**
 * Validates a request already decoded from its transport (the MQTT payload's JSON, or what the
 * ask topic and the HTTP endpoint translate theirs into), so every way in shares one set of rules.
 */
export function createRequestValidator(options: ParseRequestOptions): (json: unknown) => ParsedRequest {
  const schema = requestSchema(options.limits);
  const { limits } = options;

  return (json) => {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return failure("invalid_request", "payload must be a JSON object");
    }
    const address = salvageAddress(json);
    if (jsonDepth(json) > MAX_JSON_DEPTH) {
      return failure("invalid_request", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`, address);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) return failure("invalid_request", describeIssues(parsed.error), address);
    const body = parsed.data;

    const promptBytes =
      Buffer.byteLength(body.prompt ?? "") +
      Buffer.byteLength(body.system ?? "") +
      (body.messages ?? []).reduce((sum, m) => sum + Buffer.byteLength(m.content), 0);
    if (promptBytes > limits.maxPromptBytes) {
      return failure(
        "payload_too_large",
        `prompt is ${promptBytes} bytes; the limit is ${limits.maxPromptBytes}`,
        address,
      );
    }

    const input: RequestInput =
      body.prompt === undefined
        ? { kind: "chat", messages: body.messages ?? [] }
        : body.raw
          ? { kind: "raw", text: body.prompt }
          : { kind: "chat", messages: [{ role: "user", content: body.prompt }] };
    const ownSystem = input.kind === "chat" && input.messages.some((m) => m.role === "system");
    const system = input.kind === "raw" || ownSystem ? null : (body.system ?? limits.systemPrompt);
    return {
      ok: true,
      request: {
        id: body.id ?? body.transaction ?? options.newId(),
        input,
        system,
        stream: body.stream ?? true,
        maxTokens: body.max_tokens ?? Math.min(limits.defaultMaxTokens, limits.maxTokensCap),
        temperature: body.temperature ?? limits.defaultTemperature,
        topP: body.top_p,
        topK: body.top_k,
        minP: body.min_p,
        seed: body.seed,
        stop: typeof body.stop === "string" ? [body.stop] : (body.stop ?? []),
        jsonSchema: body.json_schema,
        conversationId: body.conversation_id,
        replyTo: body.reply_to,
        timeoutMs: body.timeout_ms ?? Math.min(limits.defaultTimeoutMs, limits.maxTimeoutMs),
      },
    };
  };
}

/** What a cancel names: the request's id and, to prove it comes from the requester, its reply address or token. */
export interface CancelRequest {
  id: string;
  /** The request's reply_to (requests that named one; MQTT 5 clients may give the Response Topic instead). */
  replyTo: string | undefined;
  /** The token of the request's first stream chunk. */
  cancelToken: string | undefined;
}

/** `{"id":"…","reply_to"?:"…","cancel_token"?:"…"}` on a cancel topic. */
export function parseCancel(
  payload: Buffer,
): { ok: true; cancel: CancelRequest } | { ok: false; message: string } {
  try {
    const json: unknown = JSON.parse(payload.toString("utf8"));
    const parsed = z
      .object({
        id: idSchema,
        reply_to: z.string().min(1).max(512).optional(),
        cancel_token: z.string().min(1).max(64).optional(),
      })
      .safeParse(json);
    return parsed.success
      ? {
          ok: true,
          cancel: {
            id: parsed.data.id,
            replyTo: parsed.data.reply_to,
            cancelToken: parsed.data.cancel_token,
          },
        }
      : { ok: false, message: describeIssues(parsed.error) };
  } catch {
    return { ok: false, message: "payload is not valid JSON" };
  }
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  /** Prompt tokens actually evaluated: fewer than prompt_tokens when a cached prefix was reused. */
  prompt_tokens_evaluated: number;
}

export interface Timings {
  queue_ms: number;
  ttft_ms: number | null;
  total_ms: number;
  tokens_per_second: number | null;
}

/** The final answer on the wire (docs/protocol.md). */
export interface FinalResult {
  id: string;
  status: "ok";
  text: string;
  json?: unknown;
  finish_reason: FinishReason;
  usage: Usage;
  timings: Timings;
  model: string;
  node: string;
  conversation_id?: string;
}

export interface ErrorReply {
  id: string | null;
  status: "error";
  error: { code: ErrorCode; message: string };
  retry_after_ms?: number;
  node: string;
}

export interface StreamChunk {
  id: string;
  seq: number;
  text: string;
  /** On the first chunk only: what a cancel must carry to prove it comes from the requester. */
  cancel_token?: string;
}

/** A generation result as the MQTT final answer. */
export function finalResult(result: GenerationResult): FinalResult {
  const { usage, timings } = result;
  const final: FinalResult = {
    id: result.id,
    status: "ok",
    text: result.text,
    finish_reason: result.finishReason,
    usage: {
      prompt_tokens: usage.promptTokens,
      completion_tokens: usage.completionTokens,
      prompt_tokens_evaluated: usage.promptTokensEvaluated,
    },
    timings: {
      queue_ms: timings.queueMs,
      ttft_ms: timings.ttftMs,
      total_ms: timings.totalMs,
      tokens_per_second: timings.tokensPerSecond,
    },
    model: result.model,
    node: result.node,
  };
  if ("json" in result) final.json = result.json;
  if (result.conversationId !== undefined) final.conversation_id = result.conversationId;
  return final;
}

export function errorReply(id: string | null, error: EdgeError, node: string): ErrorReply {
  const reply: ErrorReply = {
    id,
    status: "error",
    error: { code: error.code, message: error.message },
    node,
  };
  const retry = error.details?.retryAfterMs;
  if (typeof retry === "number") reply.retry_after_ms = Math.max(0, Math.round(retry));
  return reply;
}
