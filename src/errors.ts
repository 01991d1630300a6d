/** Error codes of the MQTT contract (docs/protocol.md), plus start-up failures that never reach MQTT. */
export type ErrorCode =
  | "invalid_request"
  | "payload_too_large"
  | "busy"
  | "timeout"
  | "cancelled"
  | "context_overflow"
  | "model_unavailable"
  | "shutting_down"
  | "internal"
  | "config_invalid"
  | "model_does_not_fit"
  | "platform_unsupported"
  | "model_invalid"
  | "download_failed";

/** The one error type of the project: a string code, a message safe to show, optional details. */
export class EdgeError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EdgeError";
    this.code = code;
    this.details = options?.details;
  }
}

export function isEdgeError(value: unknown): value is EdgeError {
  return value instanceof EdgeError;
}

/** Turns anything thrown into an EdgeError without leaking stack traces to callers. */
export function toEdgeError(value: unknown, fallback: ErrorCode = "internal"): EdgeError {
  if (value instanceof EdgeError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new EdgeError(fallback, message, { cause: value });
}
