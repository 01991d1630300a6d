/**
 * The TinyLlama-1.1B-Chat-v1.0 GGUF files published in TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF,
 * and the architecture facts the planner needs to size memory before anything is downloaded.
 */

export type QuantizationName = "Q2_K" | "Q3_K_M" | "Q4_0" | "Q4_K_M" | "Q5_K_M" | "Q6_K" | "Q8_0";

export const quantizationNames: readonly QuantizationName[] = [
  "Q2_K",
  "Q3_K_M",
  "Q4_0",
  "Q4_K_M",
  "Q5_K_M",
  "Q6_K",
  "Q8_0",
];

export interface CatalogEntry {
  quantization: QuantizationName;
  fileName: string;
  /** node-llama-cpp model URI (`hf:<owner>/<repo>/<file>`). */
  uri: string;
  /** Approximate file size in bytes, from the repository's model card (rounded to 10 MB). */
  sizeBytes: number;
  /** 1 = lowest quality; higher is closer to the original weights. */
  qualityRank: number;
  note: string;
}

/** What sizing memory needs to know about a llama-architecture model. */
export interface ModelArchitecture {
  layers: number;
  embeddingLength: number;
  feedForwardLength: number;
  heads: number;
  kvHeads: number;
  headSize: number;
  vocabSize: number;
  trainedContext: number;
}

export interface ModelCatalog {
  modelName: string;
  repository: string;
  architecture: ModelArchitecture;
  entries: readonly CatalogEntry[];
}

const repository = "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF";

function entry(
  quantization: QuantizationName,
  sizeBytes: number,
  qualityRank: number,
  note: string,
): CatalogEntry {
  const fileName = `tinyllama-1.1b-chat-v1.0.${quantization}.gguf`;
  return { quantization, fileName, uri: `hf:${repository}/${fileName}`, sizeBytes, qualityRank, note };
}

export const tinyLlamaCatalog: ModelCatalog = {
  modelName: "TinyLlama-1.1B-Chat-v1.0",
  repository,
  architecture: {
    layers: 22,
    embeddingLength: 2048,
    feedForwardLength: 5632,
    heads: 32,
    kvHeads: 4,
    headSize: 64,
    vocabSize: 32000,
    trainedContext: 2048,
  },
  entries: [
    entry("Q2_K", 480_000_000, 1, "lowest quality; only where nothing else fits"),
    entry("Q3_K_M", 550_000_000, 2, "noticeably degraded; for boards that cannot hold a 4-bit file"),
    entry("Q4_0", 640_000_000, 3, "repacked at load into fast kernels on ARM with dotprod and x86 with AVX2"),
    entry("Q4_K_M", 670_000_000, 4, "good quality/size balance"),
    entry("Q5_K_M", 780_000_000, 5, "close to Q8_0 quality"),
    entry("Q6_K", 900_000_000, 6, "nearly indistinguishable from Q8_0"),
    entry("Q8_0", 1_170_000_000, 7, "near-lossless"),
  ],
};

/** K and V for every layer at f16: 22 x 2 x 4 x 64 x 2 = 22,528 bytes per token for TinyLlama. */
export function kvCacheBytesPerToken(architecture: ModelArchitecture): number {
  const f16Bytes = 2;
  return architecture.layers * 2 * architecture.kvHeads * architecture.headSize * f16Bytes;
}

export function findCatalogEntry(catalog: ModelCatalog, quantization: string): CatalogEntry | undefined {
  return catalog.entries.find((candidate) => candidate.quantization === quantization);
}

export function isQuantizationName(value: string): value is QuantizationName {
  return (quantizationNames as readonly string[]).includes(value);
}
