import fc from "fast-check";
import { REQUEST_PACKET_HEADROOM_BYTES } from "../../src/mqtt/packet-size.js";

/**
 * Generators of hostile request payloads for the fuzz test, and an oracle that says where the
 * answer to each must go (docs/protocol.md: the Response Topic / reply_to when usable, else
 * `<base>/<node>/response/<id>`, else `<base>/<node>/response/_errors`).
 *
 * Every valid id a generated payload carries is unique (`<random prefix>-x<case number>`), because a
 * second request with the id of one still in flight is, by design, treated as a redelivery and not
 * answered. Ids that are invalid are random and may repeat: those are answered regardless.
 */

export interface FuzzCase {
  /** Which generator made it, for failure reports and statistics. */
  kind: string;
  payload: Buffer;
}

/** Builds the payload of case number `n` (the number keeps its valid ids unique). */
export type FuzzCaseBuilder = (n: number) => FuzzCase;

export const ID_RE = /^(?!_)[A-Za-z0-9_-]{1,64}$/;
const REQUEST_KEYS = [
  "id",
  "transaction",
  "prompt",
  "messages",
  "system",
  "raw",
  "stream",
  "max_tokens",
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "seed",
  "stop",
  "json_schema",
  "conversation_id",
  "reply_to",
  "timeout_ms",
] as const;

export interface FuzzOptions {
  base: string;
  node: string;
  /** The daemon's requests.maxPayloadBytes. */
  maxPayloadBytes: number;
  /** Valid requests ask for at most this many tokens (the test caps requests.maxTokensCap too). */
  maxTokens: number;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8");
const printable = (maxLength: number) => fc.string({ unit: "grapheme", maxLength });
const anyText = (maxLength: number) =>
  fc.oneof(printable(maxLength), fc.string({ unit: "binary", maxLength }), fc.string({ maxLength }));
const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -1e308, "", [], {}),
);

/** What to put in `id` / `transaction`. */
type IdSpec =
  | { mode: "unique"; prefix: string; field: "id" | "transaction" | "both" }
  | { mode: "absent" }
  | { mode: "invalid"; value: unknown }
  | { mode: "differ"; prefix: string };

const idPrefix = fc.stringMatching(/^[A-Za-z0-9-][A-Za-z0-9_-]{0,40}$/);
const invalidIdValue = fc.oneof(
  printable(80).filter((s) => !ID_RE.test(s)),
  fc.constantFrom("", "_errors", "_x", "a/b", "a+b", "a#", "x".repeat(65), "ü", " a", "a\u0000"),
  fc.integer(),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
);
const idSpec: fc.Arbitrary<IdSpec> = fc.oneof(
  {
    arbitrary: fc.record({
      mode: fc.constant("unique" as const),
      prefix: idPrefix,
      field: fc.constantFrom("id" as const, "id" as const, "transaction" as const, "both" as const),
    }),
    weight: 6,
  },
  { arbitrary: fc.constant({ mode: "absent" as const }), weight: 2 },
  { arbitrary: invalidIdValue.map((value) => ({ mode: "invalid" as const, value })), weight: 2 },
  { arbitrary: idPrefix.map((prefix) => ({ mode: "differ" as const, prefix })), weight: 1 },
);

function applyId(body: Record<string, unknown>, spec: IdSpec, n: number): void {
  delete body.id;
  delete body.transaction;
  switch (spec.mode) {
    case "unique": {
      const id = `${spec.prefix}-x${n}`;
      if (spec.field !== "transaction") body.id = id;
      if (spec.field !== "id") body.transaction = id;
      return;
    }
    case "invalid":
      body.id = spec.value;
      return;
    case "differ":
      body.id = `${spec.prefix}-x${n}`;
      body.transaction = `${spec.prefix}-y${n}`;
      return;
    case "absent":
      return;
  }
}

/**
 * reply_to values: usable ones (unique per case, under `fuzz/`), ones the daemon must refuse
 * (wildcards, $-topics, empty levels, its own and Home Assistant's topics, too long, not a string),
 * and random printable strings. Topic names the broker itself refuses (control characters,
 * non-characters, more than 200 levels) are not here: the fuzz test covers them separately.
 */
type ReplyToSpec = { mode: "usable"; tail: string } | { mode: "value"; value: unknown } | { mode: "absent" };

function refusedReplyTo(options: FuzzOptions): fc.Arbitrary<unknown> {
  const { base, node } = options;
  return fc.oneof(
    fc.constantFrom(
      "#",
      "+",
      "home/#",
      "home/+/x",
      "$SYS/broker/x",
      "$share/g/x",
      "home//x",
      "/",
      "/home",
      "home/",
      "",
      `${base}/${node}/status`,
      `${base}/${node}/info`,
      `${base}/${node}/health`,
      `${base}/${node}/request`,
      `${base}/${node}/cancel`,
      `${base}/other-node/status`,
      `${base}/pool/request`,
      `${base}/pool/cancel`,
      "homeassistant",
      "homeassistant/sensor/x/config",
      "a\u0000b",
      "x".repeat(513),
    ),
    fc.integer(),
    fc.constant(null),
    fc.boolean(),
    fc.array(fc.string({ maxLength: 5 }), { maxLength: 2 }),
    fc.dictionary(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 }), { maxKeys: 2 }),
  );
}

function replyToSpec(options: FuzzOptions): fc.Arbitrary<ReplyToSpec> {
  return fc.oneof(
    { arbitrary: fc.constant({ mode: "absent" as const }), weight: 6 },
    {
      arbitrary: fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8}){0,3}$/).map((tail) => ({
        mode: "usable" as const,
        tail,
      })),
      weight: 2,
    },
    { arbitrary: refusedReplyTo(options).map((value) => ({ mode: "value" as const, value })), weight: 2 },
    { arbitrary: printable(60).map((value) => ({ mode: "value" as const, value })), weight: 1 },
  );
}

function applyReplyTo(body: Record<string, unknown>, spec: ReplyToSpec, n: number): void {
  if (spec.mode === "usable") body.reply_to = `fuzz/${spec.tail}/r${n}`;
  else if (spec.mode === "value") body.reply_to = spec.value;
}

const VALID_SCHEMAS: Record<string, unknown>[] = [
  { type: "object", properties: { action: { type: "string", enum: ["on", "off"] } }, required: ["action"] },
  { type: "array", items: { type: "integer" }, maxItems: 3 },
  { type: "boolean" },
  { type: "string", maxLength: 8 },
  { anyOf: [{ type: "number" }, { type: "null" }] },
];
const schemaArb = fc.oneof(
  fc.constantFrom(...VALID_SCHEMAS),
  fc.dictionary(
    fc.constantFrom("type", "properties", "enum", "required", "items", "$ref", "anyOf", "const", "maxLength"),
    fc.jsonValue({ maxDepth: 2 }),
    { maxKeys: 3 },
  ),
);

function validBody(options: FuzzOptions) {
  const message = fc.record({
    role: fc.constantFrom("system", "user", "assistant"),
    content: anyText(40),
  });
  const input = fc.oneof(
    fc.record({ prompt: anyText(60) }),
    fc.record({ prompt: anyText(60), raw: fc.constant(true) }),
    fc.array(message, { minLength: 0, maxLength: 4 }).map((rest) => ({
      messages: [...rest, { role: "user", content: "hello" }],
    })),
  );
  const extras = fc.record(
    {
      stream: fc.boolean(),
      temperature: fc.double({ min: 0, max: 2, noNaN: true }),
      top_p: fc.double({ min: 0, max: 1, noNaN: true }),
      top_k: fc.integer({ min: 0, max: 1000 }),
      min_p: fc.double({ min: 0, max: 1, noNaN: true }),
      seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      stop: fc.oneof(
        printable(8).filter((s) => s.length > 0),
        fc.array(
          printable(8).filter((s) => s.length > 0),
          { maxLength: 3 },
        ),
      ),
      system: anyText(40),
      timeout_ms: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1000, max: 60_000 })),
      conversation_id: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
      json_schema: schemaArb,
    },
    { requiredKeys: [] },
  );
  return fc
    .tuple(input, extras, fc.integer({ min: 1, max: options.maxTokens }))
    .map(([inputPart, extraPart, maxTokens]) => ({
      ...extraPart,
      ...inputPart,
      max_tokens: maxTokens,
    }));
}

/** One change that (usually) makes a valid request invalid: a wrong type, a wrong size, a missing part. */
type Mutation = (body: Record<string, unknown>) => void;

function mutations(): fc.Arbitrary<Mutation> {
  const setField = (key: string, value: unknown): Mutation => {
    return (body) => {
      body[key] = value;
    };
  };
  const wrongType = fc
    .tuple(fc.constantFrom(...REQUEST_KEYS.filter((k) => k !== "id" && k !== "transaction")), anyValue)
    .map(([key, value]) => setField(key, value));
  const badSize = fc.constantFrom<Mutation>(
    setField("max_tokens", 0),
    setField("max_tokens", -1),
    setField("max_tokens", 1.5),
    setField("max_tokens", 1e9),
    setField("max_tokens", "3"),
    setField("temperature", 2.5),
    setField("temperature", -0.1),
    setField("top_p", 1.01),
    setField("top_k", 1001),
    setField("top_k", -1),
    setField("min_p", -0.5),
    setField("seed", -1),
    setField("seed", 2 ** 32),
    setField("stop", ["a", "b", "c", "d", "e", "f", "g", "h", "i"]),
    setField("stop", "s".repeat(65)),
    setField("stop", ""),
    setField("stop", [""]),
    setField("timeout_ms", 0),
    setField("timeout_ms", 1e12),
    setField("timeout_ms", 2.5),
    setField("conversation_id", "c".repeat(65)),
    setField("conversation_id", "a/b"),
    setField("prompt", "p".repeat(16_385)),
    setField("system", "s".repeat(20_000)),
    setField(
      "messages",
      Array.from({ length: 65 }, () => ({ role: "user", content: "a" })),
    ),
    setField("messages", []),
    setField("messages", [{ role: "system", content: "only a system turn" }]),
    setField("messages", [{ role: "wizard", content: "x" }]),
    setField("messages", [{ role: "user" }]),
    setField("messages", [{ role: "user", content: "x", name: "extra" }]),
    setField("json_schema", { type: "frobnicate" }),
    setField("json_schema", { enum: [] }),
    setField("json_schema", { required: [1] }),
    setField("json_schema", { properties: { a: { type: "nope" } } }),
    setField("json_schema", { a: JSON.parse(`${"[".repeat(40)}${"]".repeat(40)}`) }),
  );
  const structural = fc.constantFrom<Mutation>(
    (body) => {
      delete body.prompt;
      delete body.messages;
    },
    (body) => {
      body.prompt = "both";
      body.messages = [{ role: "user", content: "both" }];
    },
    (body) => {
      delete body.prompt;
      body.messages = [{ role: "user", content: "x" }];
      body.raw = true;
    },
  );
  const unknownKey = fc
    .tuple(
      printable(12).filter((k) => !(REQUEST_KEYS as readonly string[]).includes(k)),
      anyValue,
    )
    .map(([key, value]) => setField(key, value));
  return fc.oneof(wrongType, badSize, structural, unknownKey);
}

/** A valid request, changed by up to three mutations, with generated id and reply_to. */
function nearValid(options: FuzzOptions): fc.Arbitrary<FuzzCaseBuilder> {
  return fc
    .tuple(validBody(options), fc.array(mutations(), { maxLength: 3 }), idSpec, replyToSpec(options))
    .map(([body, changes, id, replyTo]) => (n: number) => {
      const copy: Record<string, unknown> = { ...body };
      for (const change of changes) change(copy);
      applyId(copy, id, n);
      applyReplyTo(copy, replyTo, n);
      return { kind: changes.length === 0 ? "valid" : "near-valid", payload: json(copy) };
    });
}

/** An object made of request keys (and some others) with random values. */
function randomObject(options: FuzzOptions): fc.Arbitrary<FuzzCaseBuilder> {
  return fc
    .tuple(
      fc.dictionary(fc.oneof(fc.constantFrom(...REQUEST_KEYS), printable(10)), anyValue, { maxKeys: 8 }),
      idSpec,
      replyToSpec(options),
    )
    .map(([body, id, replyTo]) => (n: number) => {
      const copy: Record<string, unknown> = { ...body };
      // Random values of max_tokens could ask for long generations: keep them within the cap.
      if (typeof copy.max_tokens === "number" && copy.max_tokens > options.maxTokens) copy.max_tokens = 1;
      applyId(copy, id, n);
      if (!("reply_to" in body)) applyReplyTo(copy, replyTo, n);
      return { kind: "random-object", payload: json(copy) };
    });
}

const constant =
  (kind: string, payload: Buffer): FuzzCaseBuilder =>
  () => ({ kind, payload });

/** Every kind of hostile payload, weighted towards the ones that get deepest into the daemon. */
export function fuzzCaseArbitrary(options: FuzzOptions): fc.Arbitrary<FuzzCaseBuilder> {
  const oversize = fc.integer({ min: options.maxPayloadBytes + 1, max: options.maxPayloadBytes + 4096 });
  return fc.oneof(
    { arbitrary: nearValid(options), weight: 10 },
    { arbitrary: randomObject(options), weight: 4 },
    {
      arbitrary: fc
        .uint8Array({ maxLength: 300 })
        .map((bytes) => constant("random-bytes", Buffer.from(bytes))),
      weight: 2,
    },
    {
      arbitrary: fc
        .string({ unit: "binary", maxLength: 200 })
        .map((text) => constant("random-text", Buffer.from(text, "utf8"))),
      weight: 1,
    },
    {
      arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => constant("random-json", json(value))),
      weight: 2,
    },
    {
      arbitrary: fc
        .tuple(fc.integer({ min: 20, max: 400 }), fc.constantFrom("[", '{"a":'))
        .map(([depth, open]) => {
          const close = open === "[" ? "]" : "}";
          return constant("deep-json", Buffer.from(`${open.repeat(depth)}1${close.repeat(depth)}`));
        }),
      weight: 1,
    },
    {
      arbitrary: fc.tuple(oversize, idPrefix).map(([size, prefix]) => (n: number) => {
        const head = JSON.stringify({ id: `${prefix}-x${n}`, prompt: "" }).slice(0, -2);
        return { kind: "oversize", payload: Buffer.from(`${head}${"z".repeat(size)}"}`) };
      }),
      weight: 1,
    },
    {
      arbitrary: fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 60 }))
        .map(([bytes, cut]) => (n: number) => {
          // A valid request cut short or with random bytes spliced in: almost JSON.
          const text = JSON.stringify({ id: `cut-x${n}`, prompt: "hi", max_tokens: 1 });
          const at = Math.min(cut, text.length);
          return {
            kind: "corrupted-json",
            payload: Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(bytes)]),
          };
        }),
      weight: 1,
    },
  );
}

/**
 * Reply topics the broker (Mosquitto 2) refuses as topic names: control characters, Unicode
 * non-characters, more than 200 levels. A daemon that publishes to one of them is disconnected.
 */
export function brokerRefusedReplyToArbitrary(): fc.Arbitrary<string> {
  const control = fc
    .integer({ min: 0, max: 0x9f })
    .filter((c) => c !== 0 && (c < 0x20 || c >= 0x7f))
    .map((c) => String.fromCharCode(c));
  const nonCharacter = fc.oneof(
    fc.constantFrom("\uFFFE", "\uFFFF", "\u{1FFFE}", "\u{10FFFF}"),
    fc.integer({ min: 0xfdd0, max: 0xfdef }).map((c) => String.fromCharCode(c)),
  );
  return fc.oneof(
    fc
      .tuple(printable(10), fc.oneof(control, nonCharacter), printable(10))
      .map(([a, bad, b]) => `fuzz/${a}${bad}${b}`),
    fc.integer({ min: 202, max: 255 }).map((levels) => Array.from({ length: levels }, () => "l").join("/")),
  );
}

/** Where the answer to a payload must go, per docs/protocol.md. `replyTo` null: the default topic. */
export interface ExpectedAddress {
  /** The id the answer must carry; null: none could be salvaged (the answer carries null or a made-up id). */
  id: string | null;
  replyTo: string | null;
}

function isPublishable(topic: string): boolean {
  return (
    topic.length > 0 &&
    topic.length <= 1024 &&
    !/[+#\0]/.test(topic) &&
    !topic.startsWith("$") &&
    topic.split("/").every((level) => level.length > 0)
  );
}

function isReserved(topic: string, base: string): boolean {
  if (topic === "homeassistant" || topic.startsWith("homeassistant/")) return true;
  if (!topic.startsWith(`${base}/`)) return false;
  const rest = topic.slice(base.length + 1).split("/");
  return (
    rest.length === 2 && ["status", "info", "health", "last_answer", "request", "cancel"].includes(rest[1]!)
  );
}

export function expectedAddress(payload: Buffer, options: FuzzOptions): ExpectedAddress {
  const none = { id: null, replyTo: null };
  // Beyond the payload limit the daemon still reads the address of what fits in the packet size it
  // announces (limit + headroom), so such an error reaches the requester; larger ones go to _errors.
  if (payload.length > options.maxPayloadBytes + REQUEST_PACKET_HEADROOM_BYTES) return none;
  let value: unknown;
  try {
    value = JSON.parse(payload.toString("utf8"));
  } catch {
    return none;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return none;
  const record = value as Record<string, unknown>;
  const candidate = record.id ?? record.transaction;
  const id = typeof candidate === "string" && ID_RE.test(candidate) ? candidate : null;
  const replyTo = record.reply_to;
  const usable =
    typeof replyTo === "string" &&
    replyTo.length <= 512 &&
    isPublishable(replyTo) &&
    !isReserved(replyTo, options.base);
  // Topics travel as UTF-8: a lone surrogate arrives as U+FFFD.
  return { id, replyTo: usable ? Buffer.from(replyTo, "utf8").toString("utf8") : null };
}
