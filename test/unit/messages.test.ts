import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";
import { createRequestParser, parseCancel } from "../../src/mqtt/messages.js";
import { MALFORMED_CASES } from "../helpers/malformed-payloads.js";

const { config } = loadConfig({ argv: [], env: {}, defaultConfigPath: "/nonexistent.json" });
const parse = createRequestParser({ limits: config.requests, newId: () => "generated-1" });

describe("request validation", () => {
  it("accepts the documented example and fills defaults", () => {
    const result = parse(
      Buffer.from(
        JSON.stringify({
          id: "kitchen-42",
          prompt: "Turn the kitchen lights to 30 percent.",
          system: "You are concise.",
          stream: true,
          max_tokens: 64,
          temperature: 0.2,
          top_p: 0.9,
          top_k: 40,
          min_p: 0.05,
          seed: 1,
          stop: "\n\n",
          json_schema: { type: "object" },
          conversation_id: "living-room",
          reply_to: "home/assistant/llm",
          timeout_ms: 60000,
        }),
      ),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.request).toMatchObject({
      id: "kitchen-42",
      input: {
        kind: "chat",
        messages: [{ role: "user", content: "Turn the kitchen lights to 30 percent." }],
      },
      system: "You are concise.",
      maxTokens: 64,
      stop: ["\n\n"],
      replyTo: "home/assistant/llm",
      timeoutMs: 60000,
    });
  });

  it("makes an id when none is given and takes transaction as an alias", () => {
    const generated = parse(Buffer.from('{"prompt":"hi"}'));
    expect(generated.ok && generated.request.id).toBe("generated-1");
    const aliased = parse(Buffer.from('{"transaction":"z2m-7","prompt":"hi"}'));
    expect(aliased.ok && aliased.request.id).toBe("z2m-7");
  });

  it("uses the configured system prompt for a prompt, none for raw or messages that bring one", () => {
    const plain = parse(Buffer.from('{"prompt":"hi"}'));
    expect(plain.ok && plain.request.system).toBe(config.requests.systemPrompt);
    const raw = parse(Buffer.from('{"prompt":"hi","raw":true}'));
    expect(raw.ok && raw.request.input).toEqual({ kind: "raw", text: "hi" });
    expect(raw.ok && raw.request.system).toBeNull();
    const own = parse(
      Buffer.from(
        JSON.stringify({
          messages: [
            { role: "system", content: "s" },
            { role: "user", content: "u" },
            { role: "assistant", content: "a" },
            { role: "user", content: "u2" },
          ],
        }),
      ),
    );
    expect(own.ok && own.request.system).toBeNull();
  });

  it.each(MALFORMED_CASES.filter((c) => !c.name.startsWith("reply_to")))(
    "rejects $name",
    ({ payload, code, id }) => {
      const result = parse(Buffer.isBuffer(payload) ? payload : Buffer.from(payload));
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.error.code).toBe(code);
      expect(result.error.message.length).toBeGreaterThan(0);
      expect(result.id).toBe(id);
    },
  );

  it("has at least fifty distinct malformed cases", () => {
    expect(new Set(MALFORMED_CASES.map((c) => c.name)).size).toBeGreaterThanOrEqual(50);
  });

  it("names the problem in the message", () => {
    const result = parse(Buffer.from('{"id":"a","prompt":"hi","colour":"blue"}'));
    expect(!result.ok && result.error.message).toContain("colour");
    const both = parse(Buffer.from('{"id":"a"}'));
    expect(!both.ok && both.error.message).toContain("exactly one of prompt or messages");
  });
});

describe("cancel validation", () => {
  it("accepts an id and refuses anything else", () => {
    expect(parseCancel(Buffer.from('{"id":"abc"}'))).toEqual({
      ok: true,
      cancel: { id: "abc", replyTo: undefined, cancelToken: undefined },
    });
    expect(parseCancel(Buffer.from('{"id":"abc","reply_to":"me/r","cancel_token":"t1"}'))).toEqual({
      ok: true,
      cancel: { id: "abc", replyTo: "me/r", cancelToken: "t1" },
    });
    expect(parseCancel(Buffer.from("nope")).ok).toBe(false);
    expect(parseCancel(Buffer.from('{"id":"a/b"}')).ok).toBe(false);
    expect(parseCancel(Buffer.from("{}")).ok).toBe(false);
  });
});

describe("json_schema check", () => {
  it("accepts the schemas automations use and refuses ones the grammar would misread", async () => {
    const { jsonSchemaProblems } = await import("../../src/mqtt/json-schema-check.js");
    expect(
      jsonSchemaProblems({
        type: "object",
        properties: {
          a: { type: ["string", "null"] },
          b: { type: "array", items: { enum: [1, 2] } },
          c: { anyOf: [{ type: "integer" }, { const: "x" }] },
        },
        required: ["a"],
        additionalProperties: false,
      }),
    ).toEqual([]);
    expect(jsonSchemaProblems({ type: "frobnicate" })[0]).toContain("unknown type");
    expect(jsonSchemaProblems({ properties: { a: 5 } })[0]).toContain("json_schema.properties.a");
    expect(jsonSchemaProblems({ anyOf: [] })[0]).toContain("anyOf");
    expect(jsonSchemaProblems({ required: [1] })[0]).toContain("required");
  });
});
