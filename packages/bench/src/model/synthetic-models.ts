import { randomBytes } from "node:crypto";
import { access, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type GgmlTensorType,
  type GgufTensor,
  type GgufValue,
  type GgufWriteProgress,
  gguf,
  writeGgufFile,
} from "./gguf-writer.js";
import {
  BOS_TOKEN_ID,
  buildSyntheticVocabulary,
  EOS_TOKEN_ID,
  type SyntheticVocabulary,
  UNKNOWN_TOKEN_ID,
} from "./synthetic-vocabulary.js";

export type SyntheticPreset = "tiny" | "tinyllama";
export type SyntheticQuantization = "f32" | "q4_0" | "q8_0";

export const SYNTHETIC_PRESET_NAMES: readonly SyntheticPreset[] = ["tiny", "tinyllama"];
export const SYNTHETIC_QUANTIZATIONS: readonly SyntheticQuantization[] = ["f32", "q4_0", "q8_0"];

/** The hyperparameters llama.cpp reads for the llama architecture. */
export interface LlamaShape {
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  rmsEpsilon: number;
  ropeFreqBase: number;
  /** Undefined: just the base pieces of the synthetic vocabulary (a few hundred tokens). */
  vocabularySize: number | undefined;
}

export interface SyntheticPresetSpec {
  displayName: string;
  shape: LlamaShape;
  defaultQuantization: SyntheticQuantization;
}

export const SYNTHETIC_PRESETS: Readonly<Record<SyntheticPreset, SyntheticPresetSpec>> = {
  // Loads in milliseconds; F32 avoids quantizing activations, the fastest path at this size.
  tiny: {
    displayName: "tinyllama-edge synthetic tiny",
    shape: {
      contextLength: 2048,
      embeddingLength: 64,
      blockCount: 2,
      feedForwardLength: 128,
      headCount: 4,
      headCountKv: 2,
      rmsEpsilon: 1e-5,
      ropeFreqBase: 10000,
      vocabularySize: undefined,
    },
    defaultQuantization: "f32",
  },
  // TinyLlama-1.1B-Chat-v1.0's exact shapes, so memory and speed match the real model.
  tinyllama: {
    displayName: "tinyllama-edge synthetic tinyllama",
    shape: {
      contextLength: 2048,
      embeddingLength: 2048,
      blockCount: 22,
      feedForwardLength: 5632,
      headCount: 32,
      headCountKv: 4,
      rmsEpsilon: 1e-5,
      ropeFreqBase: 10000,
      vocabularySize: 32000,
    },
    defaultQuantization: "q4_0",
  },
};

/**
 * TinyLlama-1.1B-Chat-v1.0's Zephyr template, with a leading `{{ bos_token }}`: node-llama-cpp's
 * Jinja chat wrapper adds no BOS on its own.
 */
export const SYNTHETIC_CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}\n" +
  "{% if message['role'] == 'user' %}\n" +
  "{{ '<|user|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'system' %}\n" +
  "{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n" +
  "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n" +
  "{% endif %}\n" +
  "{% if loop.last and add_generation_prompt %}\n" +
  "{{ '<|assistant|>' }}\n" +
  "{% endif %}\n" +
  "{% endfor %}";

/** Uniform weights in [-0.064, 0.064]: Q4_0 block scale 0.008; activations stay well inside f16. */
const WEIGHT_AMPLITUDE = 0.064;

const QUANTIZATION_TYPES: Readonly<
  Record<SyntheticQuantization, { tensorType: GgmlTensorType; fileType: number }>
> = {
  // general.file_type is llama_ftype: ALL_F32 0, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7.
  f32: { tensorType: "F32", fileType: 0 },
  q4_0: { tensorType: "Q4_0", fileType: 2 },
  q8_0: { tensorType: "Q8_0", fileType: 7 },
};

export interface SyntheticModelSpec {
  metadata: Record<string, GgufValue>;
  tensors: GgufTensor[];
  vocabulary: SyntheticVocabulary;
}

/** Everything needed to write the file; `blockCount` overrides the preset's layer count (quicker test files). */
export function buildSyntheticModelSpec(
  preset: SyntheticPreset,
  quantization: SyntheticQuantization,
  options: { blockCount?: number | undefined } = {},
): SyntheticModelSpec {
  const spec = SYNTHETIC_PRESETS[preset];
  const shape = { ...spec.shape, blockCount: options.blockCount ?? spec.shape.blockCount };
  const vocabulary = buildSyntheticVocabulary(shape.vocabularySize);
  const { tensorType, fileType } = QUANTIZATION_TYPES[quantization];
  const metadata: Record<string, GgufValue> = {
    "general.architecture": gguf.string("llama"),
    "general.name": gguf.string(spec.displayName),
    "general.file_type": gguf.u32(fileType),
    ...(quantization === "f32" ? {} : { "general.quantization_version": gguf.u32(2) }),
    ...llamaShapeMetadata(shape, vocabulary.tokens.length),
    "tokenizer.ggml.model": gguf.string("llama"),
    "tokenizer.ggml.tokens": gguf.array("string", vocabulary.tokens),
    "tokenizer.ggml.scores": gguf.array("f32", vocabulary.scores),
    "tokenizer.ggml.token_type": gguf.array("i32", vocabulary.types),
    "tokenizer.ggml.bos_token_id": gguf.u32(BOS_TOKEN_ID),
    "tokenizer.ggml.eos_token_id": gguf.u32(EOS_TOKEN_ID),
    "tokenizer.ggml.unknown_token_id": gguf.u32(UNKNOWN_TOKEN_ID),
    "tokenizer.ggml.padding_token_id": gguf.u32(EOS_TOKEN_ID),
    "tokenizer.ggml.add_bos_token": gguf.bool(true),
    "tokenizer.ggml.add_eos_token": gguf.bool(false),
    "tokenizer.chat_template": gguf.string(SYNTHETIC_CHAT_TEMPLATE),
  };
  return { metadata, tensors: llamaTensors(shape, vocabulary, tensorType), vocabulary };
}

function llamaShapeMetadata(shape: LlamaShape, vocabularySize: number): Record<string, GgufValue> {
  return {
    "llama.vocab_size": gguf.u32(vocabularySize),
    "llama.context_length": gguf.u32(shape.contextLength),
    "llama.embedding_length": gguf.u32(shape.embeddingLength),
    "llama.block_count": gguf.u32(shape.blockCount),
    "llama.feed_forward_length": gguf.u32(shape.feedForwardLength),
    "llama.rope.dimension_count": gguf.u32(shape.embeddingLength / shape.headCount),
    "llama.rope.freq_base": gguf.f32(shape.ropeFreqBase),
    "llama.attention.head_count": gguf.u32(shape.headCount),
    "llama.attention.head_count_kv": gguf.u32(shape.headCountKv),
    "llama.attention.layer_norm_rms_epsilon": gguf.f32(shape.rmsEpsilon),
  };
}

function llamaTensors(
  shape: LlamaShape,
  vocabulary: SyntheticVocabulary,
  matrixType: GgmlTensorType,
): GgufTensor[] {
  const embd = shape.embeddingLength;
  const kv = (embd / shape.headCount) * shape.headCountKv;
  const ff = shape.feedForwardLength;
  const vocab = vocabulary.tokens.length;
  const matrix = (name: string, columns: number, rows: number): GgufTensor => ({
    name,
    shape: [columns, rows],
    type: matrixType,
    data: { kind: "random", amplitude: WEIGHT_AMPLITUDE },
  });
  const norm = (name: string): GgufTensor => ({
    name,
    shape: [embd],
    type: "F32",
    data: { kind: "constant", value: 1 },
  });
  const tensors = [matrix("token_embd.weight", embd, vocab)];
  for (let layer = 0; layer < shape.blockCount; layer++) {
    const block = `blk.${layer}`;
    tensors.push(
      norm(`${block}.attn_norm.weight`),
      matrix(`${block}.attn_q.weight`, embd, embd),
      matrix(`${block}.attn_k.weight`, embd, kv),
      matrix(`${block}.attn_v.weight`, embd, kv),
      matrix(`${block}.attn_output.weight`, embd, embd),
      norm(`${block}.ffn_norm.weight`),
      matrix(`${block}.ffn_gate.weight`, embd, ff),
      matrix(`${block}.ffn_up.weight`, embd, ff),
      matrix(`${block}.ffn_down.weight`, ff, embd),
    );
  }
  // Zero logits for special and byte tokens: random weights would otherwise end replies with
  // EOS or emit invisible control tokens at random, and benchmarks need full-length runs.
  const output: GgufTensor = {
    ...matrix("output.weight", embd, vocab),
    data: {
      kind: "random",
      amplitude: WEIGHT_AMPLITUDE,
      zeroRows: { from: 0, to: vocabulary.firstNormalTokenId },
    },
  };
  tensors.push(norm("output_norm.weight"), output);
  return tensors;
}

export interface WriteSyntheticModelOptions {
  preset: SyntheticPreset;
  quantization: SyntheticQuantization;
  path: string;
  seed?: number;
  /** Fewer layers than the preset, for quicker test files with the same tensor shapes. */
  blockCount?: number;
  onProgress?: (progress: GgufWriteProgress) => void;
  signal?: AbortSignal;
}

/**
 * Writes the model next to `path` under a temporary name and renames it into place, so `path`
 * either does not exist or is complete. Resolves with `path`.
 */
export async function writeSyntheticModel(options: WriteSyntheticModelOptions): Promise<string> {
  const { metadata, tensors } = buildSyntheticModelSpec(options.preset, options.quantization, {
    blockCount: options.blockCount,
  });
  const partialPath = `${options.path}.${process.pid}-${randomBytes(4).toString("hex")}.partial`;
  await mkdir(dirname(options.path), { recursive: true });
  try {
    await writeGgufFile({
      path: partialPath,
      metadata,
      tensors,
      seed: options.seed ?? 1,
      onProgress: options.onProgress,
      signal: options.signal,
    });
    await rename(partialPath, options.path);
  } finally {
    await rm(partialPath, { force: true });
  }
  return options.path;
}

export function syntheticModelFileName(preset: SyntheticPreset, quantization: SyntheticQuantization): string {
  return `synthetic-${preset}-${quantization}.gguf`;
}

/** The cached file for a preset, written on first use (default seed) and reused afterwards. */
export async function ensureSyntheticModel(
  cacheDir: string,
  preset: SyntheticPreset,
  quantization: SyntheticQuantization,
  options: { onProgress?: (progress: GgufWriteProgress) => void; signal?: AbortSignal } = {},
): Promise<string> {
  const path = join(cacheDir, syntheticModelFileName(preset, quantization));
  if (await exists(path)) return path;
  await mkdir(cacheDir, { recursive: true });
  return writeSyntheticModel({ preset, quantization, path, ...options });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
