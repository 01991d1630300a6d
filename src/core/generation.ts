/**
 * What the daemon does, apart from how it is asked: a generation request and its result. The MQTT
 * messages (mqtt/messages.ts) and the HTTP API (http/) translate to and from these; inference,
 * serving and health work on them only. Error codes are EdgeError's (errors.ts).
 */

export type ChatRole = "system" | "user" | "assistant";
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export type RequestInput =
  | { kind: "chat"; messages: ChatMessage[] }
  /** Plain completion of the text, no chat template. */
  | { kind: "raw"; text: string };

export interface GenerationRequest {
  id: string;
  input: RequestInput;
  /** System prompt for chat input; null when the messages bring their own or raw is used. */
  system: string | null;
  stream: boolean;
  maxTokens: number;
  temperature: number;
  topP: number | undefined;
  topK: number | undefined;
  minP: number | undefined;
  seed: number | undefined;
  stop: string[];
  jsonSchema: Record<string, unknown> | undefined;
  conversationId: string | undefined;
  replyTo: string | undefined;
  timeoutMs: number;
}

/** "shutdown": the daemon stopped while it ran (not the requester's cancel). */
export type FinishReason = "stop" | "length" | "cancelled" | "timeout" | "shutdown";

/** A generation that ran: its text, why it ended, its token counts and timings. */
export interface GenerationResult {
  id: string;
  text: string;
  /** The text parsed, for a request with a JSON schema (null when it is not valid JSON). */
  json?: unknown;
  finishReason: FinishReason;
  usage: {
    promptTokens: number;
    completionTokens: number;
    /** Prompt tokens actually evaluated: fewer than promptTokens when a cached prefix was reused. */
    promptTokensEvaluated: number;
  };
  timings: {
    queueMs: number;
    ttftMs: number | null;
    totalMs: number;
    tokensPerSecond: number | null;
  };
  /** File name of the model that generated it. */
  model: string;
  /** Node id of the daemon that served it. */
  node: string;
  conversationId?: string;
}
