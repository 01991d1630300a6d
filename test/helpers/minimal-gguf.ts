import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { gguf, writeGgufFile } from "../../packages/bench/src/model/gguf-writer.js";

export interface MinimalGgufOptions {
  path: string;
  /** Size of the one F32 tensor's data, rounded up to whole rows of 1 KiB (default 64 KiB). */
  dataBytes?: number;
  /** Same seed, same bytes. */
  seed?: number;
}

export interface MinimalGguf {
  path: string;
  bytes: Buffer;
  sha256: string;
}

const EMBEDDING = 256;
const TOKENS = ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"];

/**
 * A GGUF whose header passes checkGgufHeader (llama keys, a small tokenizer, one F32 tensor of
 * random values), for tests that move files around; llama.cpp would not load it as a model.
 */
export async function writeMinimalGguf(options: MinimalGgufOptions): Promise<MinimalGguf> {
  const rows = Math.max(1, Math.ceil((options.dataBytes ?? 64 * 1024) / (EMBEDDING * 4)));
  await writeGgufFile({
    path: options.path,
    seed: options.seed ?? 1,
    metadata: {
      "general.architecture": gguf.string("llama"),
      "general.name": gguf.string("minimal test gguf"),
      "llama.context_length": gguf.u32(128),
      "llama.embedding_length": gguf.u32(EMBEDDING),
      "llama.block_count": gguf.u32(1),
      "llama.feed_forward_length": gguf.u32(512),
      "llama.attention.head_count": gguf.u32(4),
      "llama.attention.head_count_kv": gguf.u32(4),
      "llama.attention.layer_norm_rms_epsilon": gguf.f32(1e-5),
      "tokenizer.ggml.model": gguf.string("llama"),
      "tokenizer.ggml.tokens": gguf.array("string", TOKENS),
      "tokenizer.ggml.scores": gguf.array(
        "f32",
        TOKENS.map(() => 0),
      ),
      "tokenizer.ggml.token_type": gguf.array(
        "i32",
        TOKENS.map((_, id) => (id === 0 ? 2 : id < 3 ? 3 : 1)),
      ),
      "tokenizer.ggml.bos_token_id": gguf.u32(1),
      "tokenizer.ggml.eos_token_id": gguf.u32(2),
      "tokenizer.ggml.unknown_token_id": gguf.u32(0),
    },
    tensors: [
      {
        name: "token_embd.weight",
        shape: [EMBEDDING, rows],
        type: "F32",
        data: { kind: "random", amplitude: 1 },
      },
    ],
  });
  const bytes = await readFile(options.path);
  return { path: options.path, bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}
