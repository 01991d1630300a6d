/**
 * Ollama's HTTP API (docs/api.md of ollama/ollama) translated to and from this daemon's request
 * contract, so Ollama clients (Home Assistant's Ollama integration, Open WebUI, Node-RED's Ollama
 * nodes, the `ollama` npm and Python libraries) use the node unchanged. Pure: no I/O here.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { RequestLimitsConfig } from "../config/app-config.js";
import type { GenerationResult } from "../core/generation.js";
import type { EdgeError } from "../errors.js";

/**
 * The Ollama API level this endpoint answers like; clients read /api/version to decide which
 * features (JSON schema in `format` since 0.5, `think` since 0.9) they may use.
 */
export const OLLAMA_API_VERSION = "0.9.0";

/** The one model this node serves, as Ollama clients see it. */
export interface ServedModel {
  /** Ollama-style `name:tag`, from the file name. */
  name: string;
  fileName: string;
  sizeBytes: number;
  modifiedAt: Date;
  /** Stable id of the file (its configured SHA-256, or a hash of name, size and time). */
  digest: string;
  architecture: string;
  quantization: string | null;
  /** Context tokens per sequence the node runs with. */
  contextLength: number;
}

/** `tinyllama-1.1b-chat-v1.0.Q4_0.gguf` → `tinyllama-1.1b-chat-v1.0.q4_0:latest`. */
export function ollamaModelName(fileName: string): string {
  const stem = fileName
    .replace(/\.gguf$/i, "")
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-");
  return `${stem || "model"}:latest`;
}

/** A stable id of a model file without reading it (hashing 600 MB on a Pi takes a while). */
export function fileDigest(fileName: string, sizeBytes: number, modifiedAt: Date): string {
  return createHash("sha256").update(`${fileName}\0${sizeBytes}\0${modifiedAt.toISOString()}`).digest("hex");
}

/** Clients may name the model with or without its `:latest` tag, or by its file name. */
export function isServedModel(model: ServedModel, requested: string): boolean {
  const wanted = requested.trim().toLowerCase();
  return (
    wanted === model.name ||
    `${wanted}:latest` === model.name ||
    wanted === model.fileName.toLowerCase() ||
    ollamaModelName(wanted) === model.name
  );
}

function details(model: ServedModel) {
  return {
    parent_model: "",
    format: "gguf",
    family: model.architecture,
    families: [model.architecture],
    parameter_size: "",
    quantization_level: model.quantization ?? "",
  };
}

export function tagsResponse(model: ServedModel | null) {
  if (!model) return { models: [] };
  return {
    models: [
      {
        name: model.name,
        model: model.name,
        modified_at: model.modifiedAt.toISOString(),
        size: model.sizeBytes,
        digest: model.digest,
        details: details(model),
      },
    ],
  };
}

/** The model stays loaded as long as the daemon runs. */
const NEVER = "2318-08-02T00:00:00Z";

export function psResponse(model: ServedModel | null) {
  if (!model) return { models: [] };
  return {
    models: [
      {
        name: model.name,
        model: model.name,
        size: model.sizeBytes,
        digest: model.digest,
        details: details(model),
        expires_at: NEVER,
        size_vram: 0,
        context_length: model.contextLength,
      },
    ],
  };
}

export function showResponse(model: ServedModel) {
  return {
    modelfile: `# served by tinyllama-edge\nFROM ${model.fileName}\n`,
    parameters: "",
    template: "",
    details: details(model),
    model_info: {
      "general.architecture": model.architecture,
      [`${model.architecture}.context_length`]: model.contextLength,
    },
    capabilities: ["completion"],
    modified_at: model.modifiedAt.toISOString(),
  };
}

/** An Ollama answer that is not a success: the HTTP status and `{"error": message}`. */
export interface OllamaFailure {
  status: number;
  error: string;
}

const numberOption = z.number().finite();
const optionsSchema = z
  .object({
    temperature: numberOption.optional(),
    top_p: numberOption.optional(),
    top_k: numberOption.optional(),
    min_p: numberOption.optional(),
    num_predict: numberOption.optional(),
    seed: numberOption.optional(),
    stop: z.union([z.string(), z.array(z.string())]).optional(),
    // num_ctx, num_thread, repeat_penalty …: the node's plan decides; accepted and not used, as
    // Ollama itself ignores options a runner does not know.
  })
  .loose();

const messageSchema = z
  .object({
    role: z.string(),
    content: z.string().optional(),
    images: z.array(z.unknown()).nullish(),
    tool_calls: z.array(z.unknown()).nullish(),
  })
  .loose();

const commonFields = {
  model: z.string().min(1, "model is required"),
  stream: z.boolean().nullish(),
  format: z.union([z.literal(""), z.literal("json"), z.record(z.string(), z.unknown())]).nullish(),
  options: optionsSchema.nullish(),
  keep_alive: z.union([z.number(), z.string()]).nullish(),
  think: z.union([z.boolean(), z.enum(["high", "medium", "low"])]).nullish(),
};

const chatSchema = z
  .object({
    ...commonFields,
    messages: z.array(messageSchema).nullish(),
    tools: z.array(z.unknown()).nullish(),
  })
  .loose();

const generateSchema = z
  .object({
    ...commonFields,
    prompt: z.string().nullish(),
    suffix: z.string().nullish(),
    system: z.string().nullish(),
    raw: z.boolean().nullish(),
    images: z.array(z.unknown()).nullish(),
  })
  .loose();

export type ApiKind = "chat" | "generate";

/** What a chat or generate body asks for, once checked against the model's abilities. */
export type OllamaCall =
  | { kind: ApiKind; model: string; stream: boolean; load: true }
  | {
      kind: ApiKind;
      model: string;
      stream: boolean;
      load: false;
      /** A request in the MQTT contract's shape, for its validator (one set of rules for all). */
      request: Record<string, unknown>;
    };

function describeZod(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => (issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ");
}

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

/** Ollama's options in the contract's names; out-of-range values are clamped as a runner would. */
function mapOptions(options: z.infer<typeof optionsSchema>, limits: RequestLimitsConfig) {
  const mapped: Record<string, unknown> = {};
  if (options.temperature !== undefined) mapped.temperature = clamp(options.temperature, 0, 2);
  if (options.top_p !== undefined) mapped.top_p = clamp(options.top_p, 0, 1);
  if (options.top_k !== undefined) mapped.top_k = clamp(Math.round(options.top_k), 0, 1000);
  if (options.min_p !== undefined) mapped.min_p = clamp(options.min_p, 0, 1);
  // -1 (until done) and -2 (fill the context) both mean "as long as allowed" here.
  if (options.num_predict !== undefined && options.num_predict !== 0) {
    mapped.max_tokens =
      options.num_predict > 0
        ? clamp(Math.round(options.num_predict), 1, limits.maxTokensCap)
        : limits.maxTokensCap;
  }
  // Ollama's -1 (or any negative seed) means a random one.
  if (options.seed !== undefined && options.seed >= 0)
    mapped.seed = clamp(Math.round(options.seed), 0, 2 ** 32 - 1);
  if (options.stop !== undefined) {
    const stops = (typeof options.stop === "string" ? [options.stop] : options.stop).filter(
      (s) => s.length > 0,
    );
    if (stops.length > 0) mapped.stop = stops;
  }
  return mapped;
}

function mapFormat(format: z.infer<typeof commonFields.format>): Record<string, unknown> | undefined {
  if (format === "json") return { type: "object", additionalProperties: true };
  if (format && typeof format === "object") return format;
  return undefined;
}

/**
 * Reads a /api/chat or /api/generate body: an Ollama-shaped failure (400), or the call to make.
 * Abilities a 1B chat model lacks (tools, thinking, images, fill-in-the-middle) are refused with
 * Ollama's own words, so clients fall back the way they do with any such Ollama model.
 */
export function readCall(
  kind: ApiKind,
  body: unknown,
  limits: RequestLimitsConfig,
  id: string,
): { ok: true; call: OllamaCall } | { ok: false; failure: OllamaFailure } {
  const bad = (error: string) => ({ ok: false as const, failure: { status: 400, error } });
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return bad("request body must be a JSON object");
  const parsed = (kind === "chat" ? chatSchema : generateSchema).safeParse(body);
  if (!parsed.success) return bad(describeZod(parsed.error));
  const value = parsed.data;
  const model = value.model;
  const stream = value.stream ?? true;
  if (value.think === true || typeof value.think === "string")
    return bad(`"${model}" does not support thinking`);

  const request: Record<string, unknown> = { id, stream, ...mapOptions(value.options ?? {}, limits) };
  const schema = mapFormat(value.format);
  if (schema) request.json_schema = schema;

  if (kind === "chat") {
    const chat = value as z.infer<typeof chatSchema>;
    if (chat.tools && chat.tools.length > 0) return bad(`"${model}" does not support tools`);
    const messages = chat.messages ?? [];
    if (messages.length === 0) return { ok: true, call: { kind, model, stream, load: true } };
    for (const message of messages) {
      if (message.images && message.images.length > 0) return bad(`"${model}" does not support images`);
      if (!["system", "user", "assistant"].includes(message.role))
        return bad(
          `invalid message role ${JSON.stringify(message.role)}: this model has system, user and assistant`,
        );
    }
    request.messages = messages.map((m) => ({ role: m.role, content: m.content ?? "" }));
  } else {
    const generate = value as z.infer<typeof generateSchema>;
    if (generate.images && generate.images.length > 0) return bad(`"${model}" does not support images`);
    if (generate.suffix) return bad(`"${model}" does not support insert`);
    if (!generate.prompt) return { ok: true, call: { kind, model, stream, load: true } };
    request.prompt = generate.prompt;
    if (generate.raw) request.raw = true;
    else if (generate.system) request.system = generate.system;
  }
  return { ok: true, call: { kind, model, stream, load: false, request } };
}

/** Milliseconds to Ollama's nanoseconds. */
const ns = (ms: number | null | undefined) => Math.max(0, Math.round((ms ?? 0) * 1e6));

/** One streamed piece of the answer. */
export function chunkLine(kind: ApiKind, model: string, text: string, now = new Date()) {
  const head = { model, created_at: now.toISOString() };
  return kind === "chat"
    ? { ...head, message: { role: "assistant", content: text }, done: false }
    : { ...head, response: text, done: false };
}

/**
 * The last object of a stream (text empty: it was streamed) or the whole answer (stream false),
 * with Ollama's counters and durations from the result's usage and timings.
 */
export function finalLine(
  kind: ApiKind,
  model: string,
  result: GenerationResult,
  text: string,
  now = new Date(),
) {
  const { timings, usage } = result;
  const promptStart = timings.queueMs;
  const firstToken = timings.ttftMs ?? timings.totalMs;
  const head = { model, created_at: now.toISOString() };
  const body = kind === "chat" ? { message: { role: "assistant", content: text } } : { response: text };
  return {
    ...head,
    ...body,
    done: true,
    // Ollama knows stop and length; a deadline ends an answer the way a length limit does.
    done_reason: result.finishReason === "length" || result.finishReason === "timeout" ? "length" : "stop",
    total_duration: ns(timings.totalMs),
    load_duration: 0,
    prompt_eval_count: usage.promptTokens,
    prompt_eval_duration: ns(firstToken - promptStart),
    eval_count: usage.completionTokens,
    eval_duration: ns(timings.totalMs - firstToken),
  };
}

/** The answer to a chat or generate with nothing to say (Ollama's "load the model" call). */
export function loadLine(kind: ApiKind, model: string, now = new Date()) {
  const head = { model, created_at: now.toISOString() };
  const body = kind === "chat" ? { message: { role: "assistant", content: "" } } : { response: "" };
  return { ...head, ...body, done: true, done_reason: "load" };
}

/** An error of the daemon as Ollama would answer it (its status codes and, for busy, its words). */
export function failureOf(error: EdgeError): OllamaFailure {
  switch (error.code) {
    case "busy":
      return { status: 503, error: "server busy, please try again.  maximum pending requests exceeded" };
    case "invalid_request":
    case "context_overflow":
      return { status: 400, error: error.message };
    case "payload_too_large":
      return { status: 413, error: error.message };
    case "model_unavailable":
    case "shutting_down":
      return { status: 503, error: error.message };
    case "timeout":
      return { status: 504, error: error.message };
    case "cancelled":
      return { status: 499, error: "request canceled" };
    default:
      return { status: 500, error: error.message };
  }
}
