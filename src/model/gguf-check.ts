import { statSync } from "node:fs";
import { type GgufFileInfo, GgufFileType, readGgufFileInfo } from "node-llama-cpp";
import { EdgeError } from "../errors.js";

/**
 * llama.cpp aborts the whole process (GGML_ASSERT, exit 134) on some malformed files, so a header
 * is checked here before any load: the keys llama.cpp needs must be present and sane.
 */
const REQUIRED_ARCHITECTURE_KEYS = [
  "context_length",
  "embedding_length",
  "block_count",
  "feed_forward_length",
  "attention.head_count",
] as const;

function lookup(record: unknown, dotted: string): unknown {
  let node: unknown = record;
  for (const part of dotted.split(".")) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

export interface ModelHeaderFacts {
  architecture: string;
  name: string | null;
  layers: number;
  embedding: number;
  contextLength: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  /** GGML quantization name from general.file_type (e.g. "Q4_0"), null when absent or unknown. */
  quantization: string | null;
  fileBytes: number;
  hasChatTemplate: boolean;
}

export async function checkGgufHeader(path: string): Promise<ModelHeaderFacts> {
  let fileBytes: number;
  try {
    fileBytes = statSync(path).size;
  } catch (err) {
    throw new EdgeError("model_invalid", `model file ${path} cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let info: GgufFileInfo;
  try {
    info = await readGgufFileInfo(path, { logWarnings: false });
  } catch (err) {
    throw new EdgeError("model_invalid", `${path} is not a readable GGUF file: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const metadata = info.metadata as unknown as Record<string, unknown>;
  const architecture = lookup(metadata, "general.architecture");
  if (typeof architecture !== "string" || architecture.length === 0) {
    throw new EdgeError("model_invalid", `${path}: GGUF header has no general.architecture`);
  }
  const archMetadata = metadata[architecture];
  const problems: string[] = [];
  for (const key of REQUIRED_ARCHITECTURE_KEYS) {
    const value = lookup(archMetadata, key);
    if (typeof value !== "number" || !(value > 0)) problems.push(`${architecture}.${key}`);
  }
  if (lookup(metadata, "tokenizer.ggml.model") === undefined) problems.push("tokenizer.ggml.model");
  if (!Array.isArray(lookup(metadata, "tokenizer.ggml.tokens"))) problems.push("tokenizer.ggml.tokens");
  if (Number(info.totalTensorCount) <= 0) problems.push("tensors");
  if (problems.length > 0) {
    throw new EdgeError("model_invalid", `${path}: GGUF header lacks or has invalid ${problems.join(", ")}`);
  }
  const minimum = minimumGgufFileBytes(info);
  if (fileBytes < minimum) {
    throw new EdgeError(
      "model_invalid",
      `${path} is incomplete: ${fileBytes} bytes, its header describes at least ${minimum}`,
    );
  }
  const name = lookup(metadata, "general.name");
  const heads = lookup(archMetadata, "attention.head_count") as number;
  const kvHeads = lookup(archMetadata, "attention.head_count_kv");
  const fileType = lookup(metadata, "general.file_type");
  return {
    architecture,
    name: typeof name === "string" ? name : null,
    layers: lookup(archMetadata, "block_count") as number,
    embedding: lookup(archMetadata, "embedding_length") as number,
    contextLength: lookup(archMetadata, "context_length") as number,
    heads,
    kvHeads: typeof kvHeads === "number" && kvHeads > 0 ? kvHeads : heads,
    vocabSize: (lookup(metadata, "tokenizer.ggml.tokens") as unknown[]).length,
    quantization:
      typeof fileType === "number" ? (GgufFileType[fileType]?.replace(/^(MOSTLY|ALL)_/, "") ?? null) : null,
    fileBytes,
    hasChatTemplate: typeof lookup(metadata, "tokenizer.chat_template") === "string",
  };
}

/** [elements per block, bytes per block] of the ggml types found in llama GGUF files. */
const GGML_BLOCK_LAYOUT: Readonly<Record<number, readonly [number, number]>> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  9: [32, 36], // Q8_1
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  24: [1, 1], // I8
  25: [1, 2], // I16
  26: [1, 4], // I32
  27: [1, 8], // I64
  28: [1, 8], // F64
  30: [1, 2], // BF16
};

/**
 * The smallest size a complete file can have: the end of the last tensor's data. The header check
 * alone passes a file cut off in its tensor data (an interrupted copy), which llama.cpp then rejects.
 */
export function minimumGgufFileBytes(info: GgufFileInfo): number {
  let end = info.infoEndOffset ?? 0;
  for (const tensor of info.fullTensorInfo ?? info.tensorInfo ?? []) {
    const offset = Number(tensor.fileOffset);
    const layout = GGML_BLOCK_LAYOUT[tensor.ggmlType];
    const elements = tensor.dimensions.reduce<number>((product, dimension) => product * Number(dimension), 1);
    // An unknown type still has to start inside the file.
    const bytes = layout === undefined ? 1 : Math.ceil(elements / layout[0]) * layout[1];
    end = Math.max(end, offset + bytes);
  }
  return end;
}
