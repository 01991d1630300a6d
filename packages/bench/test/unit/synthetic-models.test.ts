import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildSyntheticModelSpec,
  ensureSyntheticModel,
  SYNTHETIC_CHAT_TEMPLATE,
  writeSyntheticModel,
} from "../../src/model/synthetic-models.js";
import { buildSyntheticVocabulary, TOKEN_TYPE } from "../../src/model/synthetic-vocabulary.js";

describe("buildSyntheticVocabulary", () => {
  it("lays out special, byte and template tokens like a llama vocabulary", () => {
    const vocabulary = buildSyntheticVocabulary();
    expect(vocabulary.tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(vocabulary.types.slice(0, 4)).toEqual([
      TOKEN_TYPE.unknown,
      TOKEN_TYPE.control,
      TOKEN_TYPE.control,
      6,
    ]);
    expect(vocabulary.tokens[3 + 0x0a]).toBe("<0x0A>");
    expect(vocabulary.tokens[258]).toBe("<0xFF>");
    expect(vocabulary.tokens.slice(259, 262)).toEqual(["<|system|>", "<|user|>", "<|assistant|>"]);
    expect(vocabulary.firstNormalTokenId).toBe(262);
    expect(vocabulary.tokens).toContain("\u2581the");
    expect(new Set(vocabulary.tokens).size).toBe(vocabulary.tokens.length);
    expect(vocabulary.tokens.length).toBeGreaterThan(400);
    expect(vocabulary.tokens.length).toBeLessThan(1000);
  });

  it("fills up to an exact size with unique made-up pieces", () => {
    const vocabulary = buildSyntheticVocabulary(32000);
    expect(vocabulary.tokens).toHaveLength(32000);
    expect(vocabulary.scores).toHaveLength(32000);
    expect(vocabulary.types).toHaveLength(32000);
    expect(new Set(vocabulary.tokens).size).toBe(32000);
    expect(() => buildSyntheticVocabulary(300)).toThrow(/at least/);
  });
});

describe("buildSyntheticModelSpec", () => {
  it("keeps norms in F32 and quantizes the matrices", () => {
    const { tensors, metadata } = buildSyntheticModelSpec("tinyllama", "q8_0", { blockCount: 1 });
    expect(tensors.map((tensor) => [tensor.name, tensor.type])).toEqual([
      ["token_embd.weight", "Q8_0"],
      ["blk.0.attn_norm.weight", "F32"],
      ["blk.0.attn_q.weight", "Q8_0"],
      ["blk.0.attn_k.weight", "Q8_0"],
      ["blk.0.attn_v.weight", "Q8_0"],
      ["blk.0.attn_output.weight", "Q8_0"],
      ["blk.0.ffn_norm.weight", "F32"],
      ["blk.0.ffn_gate.weight", "Q8_0"],
      ["blk.0.ffn_up.weight", "Q8_0"],
      ["blk.0.ffn_down.weight", "Q8_0"],
      ["output_norm.weight", "F32"],
      ["output.weight", "Q8_0"],
    ]);
    expect(metadata["llama.block_count"]).toEqual({ type: "u32", value: 1 });
    expect(metadata["general.file_type"]).toEqual({ type: "u32", value: 7 });
    expect(metadata["tokenizer.chat_template"]).toEqual({ type: "string", value: SYNTHETIC_CHAT_TEMPLATE });
  });

  it("keeps special tokens out of the output matrix", () => {
    const { tensors } = buildSyntheticModelSpec("tiny", "f32");
    expect(tensors.at(-1)?.data).toMatchObject({ kind: "random", zeroRows: { from: 0, to: 262 } });
  });

  it("uses the Zephyr template with a leading BOS", () => {
    expect(SYNTHETIC_CHAT_TEMPLATE.startsWith("{{ bos_token }}{% for message in messages %}\n")).toBe(true);
    expect(SYNTHETIC_CHAT_TEMPLATE).toContain("{{ '<|assistant|>\n'  + message['content'] + eos_token }}");
  });
});

describe("ensureSyntheticModel", () => {
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), "synthetic-cache-"));
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it("writes the file once, then reuses it", async () => {
    const cacheDir = join(directory, "nested", "cache");
    const path = await ensureSyntheticModel(cacheDir, "tiny", "q8_0");
    expect(path).toBe(join(cacheDir, "synthetic-tiny-q8_0.gguf"));
    const first = await stat(path);
    expect(await ensureSyntheticModel(cacheDir, "tiny", "q8_0")).toBe(path);
    expect((await stat(path)).mtimeMs).toBe(first.mtimeMs);
    expect(await readdir(cacheDir)).toEqual(["synthetic-tiny-q8_0.gguf"]);
  });

  it("writes the same bytes for the same seed", async () => {
    const a = await writeSyntheticModel({
      preset: "tiny",
      quantization: "q4_0",
      path: join(directory, "a.gguf"),
    });
    const b = await writeSyntheticModel({
      preset: "tiny",
      quantization: "q4_0",
      path: join(directory, "b.gguf"),
    });
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
  });

  it("leaves neither the target nor a temporary file when interrupted", async () => {
    const controller = new AbortController();
    controller.abort();
    const folder = join(directory, "interrupted");
    await mkdir(folder);
    await expect(
      writeSyntheticModel({
        preset: "tiny",
        quantization: "f32",
        path: join(folder, "model.gguf"),
        signal: controller.signal,
      }),
    ).rejects.toThrow();
    expect(await readdir(folder)).toEqual([]);
  });
});
