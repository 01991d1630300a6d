/**
 * Payloads no daemon may crash on or leave unanswered. `id` is where the error reply is expected:
 * the request's own response topic when a usable id survives, `_errors` otherwise.
 */
export interface MalformedCase {
  name: string;
  payload: string | Buffer;
  code: "invalid_request" | "payload_too_large";
  /** The id the error reply carries (null: it goes to _errors). */
  id: string | null;
}

const huge = "x".repeat(70_000);
const deep = `${"[".repeat(100)}${"]".repeat(100)}`;

function bad(
  name: string,
  body: unknown,
  id: string | null,
  code: MalformedCase["code"] = "invalid_request",
): MalformedCase {
  return { name, payload: JSON.stringify(body), code, id };
}

export const MALFORMED_CASES: MalformedCase[] = [
  { name: "empty payload", payload: "", code: "invalid_request", id: null },
  { name: "plain text", payload: "hello", code: "invalid_request", id: null },
  { name: "truncated JSON", payload: '{"id":"a1","prompt":"hi"', code: "invalid_request", id: null },
  {
    name: "binary bytes",
    payload: Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]),
    code: "invalid_request",
    id: null,
  },
  { name: "JSON null", payload: "null", code: "invalid_request", id: null },
  { name: "JSON number", payload: "42", code: "invalid_request", id: null },
  { name: "JSON string", payload: '"prompt"', code: "invalid_request", id: null },
  { name: "JSON array", payload: '[{"prompt":"hi"}]', code: "invalid_request", id: null },
  {
    name: "deeply nested",
    payload: `{"id":"m9","prompt":"hi","json_schema":{"a":${deep}}}`,
    code: "invalid_request",
    id: "m9",
  },
  {
    // Just over the limit, within the packet size the daemon announces: its id is still read.
    name: "huge payload",
    payload: JSON.stringify({ id: "m10", prompt: huge }),
    code: "payload_too_large",
    id: "m10",
  },
  bad("no prompt nor messages", { id: "m11" }, "m11"),
  bad(
    "both prompt and messages",
    { id: "m12", prompt: "a", messages: [{ role: "user", content: "b" }] },
    "m12",
  ),
  bad("prompt is a number", { id: "m13", prompt: 5 }, "m13"),
  bad("prompt is null", { id: "m14", prompt: null }, "m14"),
  bad("prompt is an object", { id: "m15", prompt: { text: "x" } }, "m15"),
  bad("messages not an array", { id: "m16", messages: "hi" }, "m16"),
  bad("messages empty", { id: "m17", messages: [] }, "m17"),
  bad("unknown role", { id: "m18", messages: [{ role: "wizard", content: "x" }] }, "m18"),
  bad("message without content", { id: "m19", messages: [{ role: "user" }] }, "m19"),
  bad("message content number", { id: "m20", messages: [{ role: "user", content: 1 }] }, "m20"),
  bad(
    "message with extra field",
    { id: "m21", messages: [{ role: "user", content: "x", name: "bob" }] },
    "m21",
  ),
  bad("only a system message", { id: "m22", messages: [{ role: "system", content: "x" }] }, "m22"),
  bad("unknown field", { id: "m23", prompt: "hi", colour: "blue" }, "m23"),
  bad("max_tokens zero", { id: "m24", prompt: "hi", max_tokens: 0 }, "m24"),
  bad("max_tokens negative", { id: "m25", prompt: "hi", max_tokens: -5 }, "m25"),
  bad("max_tokens fraction", { id: "m26", prompt: "hi", max_tokens: 1.5 }, "m26"),
  bad("max_tokens string", { id: "m27", prompt: "hi", max_tokens: "10" }, "m27"),
  bad("max_tokens above cap", { id: "m28", prompt: "hi", max_tokens: 10_000_000 }, "m28"),
  bad("temperature too high", { id: "m29", prompt: "hi", temperature: 9 }, "m29"),
  bad("temperature string", { id: "m30", prompt: "hi", temperature: "hot" }, "m30"),
  bad("top_p above 1", { id: "m31", prompt: "hi", top_p: 1.5 }, "m31"),
  bad("top_k negative", { id: "m32", prompt: "hi", top_k: -1 }, "m32"),
  bad("min_p string", { id: "m33", prompt: "hi", min_p: "a" }, "m33"),
  bad("seed negative", { id: "m34", prompt: "hi", seed: -1 }, "m34"),
  bad("stop not strings", { id: "m35", prompt: "hi", stop: [1, 2] }, "m35"),
  bad(
    "too many stops",
    { id: "m36", prompt: "hi", stop: ["a", "b", "c", "d", "e", "f", "g", "h", "i"] },
    "m36",
  ),
  bad("empty stop string", { id: "m37", prompt: "hi", stop: [""] }, "m37"),
  bad("stream not boolean", { id: "m38", prompt: "hi", stream: "yes" }, "m38"),
  bad("raw not boolean", { id: "m39", prompt: "hi", raw: 1 }, "m39"),
  bad("raw with messages", { id: "m40", raw: true, messages: [{ role: "user", content: "x" }] }, "m40"),
  bad("json_schema not an object", { id: "m41", prompt: "hi", json_schema: "object" }, "m41"),
  bad("timeout_ms zero", { id: "m42", prompt: "hi", timeout_ms: 0 }, "m42"),
  bad("timeout_ms huge", { id: "m43", prompt: "hi", timeout_ms: 1e12 }, "m43"),
  bad("conversation_id with slash", { id: "m44", prompt: "hi", conversation_id: "a/b" }, "m44"),
  bad("reply_to wildcard", { id: "m45", prompt: "hi", reply_to: "home/#" }, "m45"),
  bad("reply_to $SYS", { id: "m46", prompt: "hi", reply_to: "$SYS/broker" }, "m46"),
  bad("reply_to discovery", { id: "m47", prompt: "hi", reply_to: "homeassistant/sensor/x/config" }, "m47"),
  bad("reply_to own status", { id: "m48", prompt: "hi", reply_to: "tinyllama/e2e/status" }, "m48"),
  bad("reply_to empty level", { id: "m49", prompt: "hi", reply_to: "home//x" }, "m49"),
  bad("id and transaction differ", { id: "m50", transaction: "m50b", prompt: "hi" }, "m50"),
  bad("id with slash", { id: "a/b", prompt: "hi" }, null),
  bad("id with wildcard", { id: "a+b", prompt: "hi" }, null),
  bad("id starting with underscore", { id: "_errors", prompt: "hi" }, null),
  bad("id too long", { id: "x".repeat(65), prompt: "hi" }, null),
  bad("id is a number", { id: 7, prompt: "hi" }, null),
  bad("id empty", { id: "", prompt: "hi" }, null),
  bad("prompt too long", { id: "m57", prompt: "y".repeat(20_000) }, "m57", "payload_too_large"),
  bad("system too long", { id: "m58", prompt: "hi", system: "z".repeat(20_000) }, "m58", "payload_too_large"),
  bad(
    "too many messages",
    { id: "m59", messages: Array.from({ length: 100 }, () => ({ role: "user", content: "a" })) },
    "m59",
  ),
];
