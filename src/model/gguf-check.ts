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
  info: GgufFileInfo;
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
    info,
  };
}
