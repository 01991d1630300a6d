import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ChatWrapper,
  getLlama,
  JinjaTemplateChatWrapper,
  type Llama,
  LlamaChatSession,
  LlamaCompletion,
  type LlamaContext,
  LlamaLogLevel,
  type LlamaModel,
  readGgufFileInfo,
  resolveChatWrapper,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planGgufLayout } from "../../src/model/gguf-writer.js";
import { buildSyntheticModelSpec, writeSyntheticModel } from "../../src/model/synthetic-models.js";
import { BOS_TOKEN_ID, CHAT_TEMPLATE_TOKENS } from "../../src/model/synthetic-vocabulary.js";

let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "synthetic-model-"));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("tiny synthetic model in node-llama-cpp", () => {
  let path: string;
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;
  let chatWrapper: ChatWrapper;

  beforeAll(async () => {
    path = await writeSyntheticModel({
      preset: "tiny",
      quantization: "f32",
      path: join(directory, "tiny.gguf"),
    });
    llama = await getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: LlamaLogLevel.warn });
    model = await llama.loadModel({ modelPath: path });
    context = await model.createContext({ contextSize: 512, threads: 1 });
    // Automatic resolution renders the template against every built-in wrapper (~0.6 s): do it once.
    chatWrapper = resolveChatWrapper(model);
  });

  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
  });

  it("is well under 1 MB", async () => {
    expect((await stat(path)).size).toBeLessThan(1_000_000);
  });

  it("gets the Jinja chat wrapper from the embedded template", () => {
    expect(chatWrapper).toBeInstanceOf(JinjaTemplateChatWrapper);
  });

  it("tokenizes arbitrary text and the template markers", () => {
    const text = "Hello, wörld! 😀 turn on the kitchen lights 42";
    expect(model.detokenize(model.tokenize(text))).toBe(text);
    for (const marker of CHAT_TEMPLATE_TOKENS) expect(model.tokenize(marker, true)).toHaveLength(1);
    expect(model.tokens.bos).toBe(BOS_TOKEN_ID);
  });

  it("chats: the prompt starts with one BOS and the reply has tokens", async () => {
    const sequence = context.getSequence();
    const session = new LlamaChatSession({
      contextSequence: sequence,
      chatWrapper,
      systemPrompt: "Be brief.",
    });
    try {
      let tokens = 0;
      const reply = await session.promptWithMeta("Turn on the lights", {
        maxTokens: 10,
        temperature: 0,
        onToken: (chunk) => {
          tokens += chunk.length;
        },
      });
      expect(sequence.contextTokens[0]).toBe(BOS_TOKEN_ID);
      expect(sequence.contextTokens[1]).not.toBe(BOS_TOKEN_ID);
      expect(tokens).toBe(10);
      expect(reply.stopReason).toBe("maxTokens");
      expect(reply.responseText.length).toBeGreaterThan(0);
    } finally {
      session.dispose();
      await sequence.dispose();
    }
  });

  it("completes raw text", async () => {
    const sequence = context.getSequence();
    try {
      const before = sequence.tokenMeter.getState();
      const completion = await new LlamaCompletion({ contextSequence: sequence }).generateCompletionWithMeta(
        "The weather today",
        { maxTokens: 10, temperature: 0 },
      );
      expect(sequence.tokenMeter.diff(before).usedOutputTokens).toBe(10);
      expect(completion.response.length).toBeGreaterThan(0);
      expect(sequence.contextTokens[0]).toBe(BOS_TOKEN_ID);
    } finally {
      await sequence.dispose();
    }
  });
});

describe("tinyllama synthetic model", () => {
  it("has TinyLlama-1.1B's header, tensors and size as Q4_0", async () => {
    const path = await writeSyntheticModel({
      preset: "tinyllama",
      quantization: "q4_0",
      path: join(directory, "tinyllama-q4_0.gguf"),
    });
    try {
      const info = await readGgufFileInfo(path, { logWarnings: false });
      expect(info.metadata.general.architecture).toBe("llama");
      expect(info.architectureMetadata).toMatchObject({
        context_length: 2048,
        embedding_length: 2048,
        block_count: 22,
        feed_forward_length: 5632,
        rope: { dimension_count: 64 },
        attention: { head_count: 32, head_count_kv: 4 },
      });
      expect(info.architectureMetadata.attention?.layer_norm_rms_epsilon).toBeCloseTo(1e-5, 9);
      expect(info.metadata.tokenizer.ggml.tokens).toHaveLength(32000);
      expect(info.metadata.tokenizer.chat_template?.startsWith("{{ bos_token }}")).toBe(true);

      const tensors = new Map(info.tensorInfo!.map((tensor) => [tensor.name, tensor]));
      expect(tensors.size).toBe(3 + 22 * 9);
      const q4_0 = 2;
      const f32 = 0;
      const expectTensor = (name: string, dimensions: number[], ggmlType: number) =>
        expect(tensors.get(name), name).toMatchObject({ dimensions, ggmlType });
      expectTensor("token_embd.weight", [2048, 32000], q4_0);
      expectTensor("output.weight", [2048, 32000], q4_0);
      expectTensor("output_norm.weight", [2048], f32);
      expectTensor("blk.21.attn_norm.weight", [2048], f32);
      expectTensor("blk.21.attn_q.weight", [2048, 2048], q4_0);
      expectTensor("blk.21.attn_k.weight", [2048, 256], q4_0);
      expectTensor("blk.21.attn_v.weight", [2048, 256], q4_0);
      expectTensor("blk.21.attn_output.weight", [2048, 2048], q4_0);
      expectTensor("blk.21.ffn_norm.weight", [2048], f32);
      expectTensor("blk.21.ffn_gate.weight", [2048, 5632], q4_0);
      expectTensor("blk.21.ffn_up.weight", [2048, 5632], q4_0);
      expectTensor("blk.21.ffn_down.weight", [5632, 2048], q4_0);

      const { metadata, tensors: specs } = buildSyntheticModelSpec("tinyllama", "q4_0");
      const size = (await stat(path)).size;
      expect(size).toBe(planGgufLayout(metadata, specs).totalBytes);
      expect(size).toBeGreaterThan(600e6);
      expect(size).toBeLessThan(660e6);
    } finally {
      await rm(path, { force: true });
    }
  });
});
