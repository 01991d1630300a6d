import { EdgeError } from "../errors.js";
import { isQuantizationName, type ModelCatalog, type QuantizationName } from "../model/catalog.js";

/** Facts read from the header of a GGUF that is not in the catalog (the user's own file). */
export interface CustomModelFacts {
  path: string;
  fileSizeBytes: number;
  layers: number;
  embeddingLength: number;
  kvHeads: number;
  headSize: number;
  /** Defaults to embeddingLength / headSize. */
  heads?: number;
  /** Defaults to 32000 (the Llama 2 tokenizer). */
  vocabSize?: number;
  /** Defaults to 2048. */
  trainedContext?: number;
  /** The header's file type when it is one of the catalog's quantizations (decides repacking). */
  quantization?: string;
}

/** Figures node-llama-cpp's GgufInsights gave for a file whose header the caller has read. */
export interface MeasuredEstimate {
  /** Weights in memory (estimateModelResourceRequirementsV2 at gpuLayers 0: cpuRam). */
  modelBytes?: number;
  /** One context configuration and what it was estimated to take; calibrates the planner's formula. */
  context?: { contextSize: number; sequences: number; batchSize: number; bytes: number };
}

/** The user's wishes: every field "auto" or a value that the plan honours (and checks). */
export interface PlanRequest {
  /** "auto" or a catalog quantization (Q2_K ... Q8_0). */
  quantization: string;
  threads: "auto" | number;
  gpuLayers: "auto" | "max" | number;
  /** Tokens per sequence. */
  contextSize: "auto" | number;
  parallelSequences: "auto" | number;
  batchSize: "auto" | number;
  useMmap: "auto" | boolean;
  /** RAM kept free for the OS and other services; "auto" scales it to the board. */
  memoryReserveMiB: "auto" | number;
  customModel?: CustomModelFacts;
  /** Keyed by quantization, or "custom" for customModel. */
  measured?: Partial<Record<QuantizationName | "custom", MeasuredEstimate>>;
}

export const defaultPlanRequest: Readonly<PlanRequest> = Object.freeze({
  quantization: "auto",
  threads: "auto",
  gpuLayers: "auto",
  contextSize: "auto",
  parallelSequences: "auto",
  batchSize: "auto",
  useMmap: "auto",
  memoryReserveMiB: "auto",
});

function isPositiveInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value > 0;
}

/** Lists every problem at once so a misconfigured device is fixed in one go. */
export function validatePlanRequest(request: PlanRequest, catalog: ModelCatalog): void {
  const problems: string[] = [];
  const positiveOrAuto = (name: keyof PlanRequest, value: unknown) => {
    if (value !== "auto" && !isPositiveInteger(value)) {
      problems.push(`${name} must be "auto" or a positive integer, got ${JSON.stringify(value)}`);
    }
  };
  if (
    request.customModel === undefined &&
    request.quantization !== "auto" &&
    !(
      isQuantizationName(request.quantization) &&
      catalog.entries.some((e) => e.quantization === request.quantization)
    )
  ) {
    const names = catalog.entries.map((entry) => entry.quantization).join(", ");
    problems.push(
      `quantization must be "auto" or one of ${names}, got ${JSON.stringify(request.quantization)}`,
    );
  }
  positiveOrAuto("threads", request.threads);
  positiveOrAuto("contextSize", request.contextSize);
  positiveOrAuto("parallelSequences", request.parallelSequences);
  positiveOrAuto("batchSize", request.batchSize);
  const { gpuLayers } = request;
  if (
    gpuLayers !== "auto" &&
    gpuLayers !== "max" &&
    !(typeof gpuLayers === "number" && Number.isInteger(gpuLayers) && gpuLayers >= 0)
  ) {
    problems.push(`gpuLayers must be "auto", "max" or a layer count, got ${JSON.stringify(gpuLayers)}`);
  }
  if (request.useMmap !== "auto" && typeof request.useMmap !== "boolean") {
    problems.push(`useMmap must be "auto", true or false, got ${JSON.stringify(request.useMmap)}`);
  }
  const reserve = request.memoryReserveMiB;
  if (reserve !== "auto" && !(typeof reserve === "number" && Number.isFinite(reserve) && reserve >= 0)) {
    problems.push(`memoryReserveMiB must be "auto" or a number of MiB >= 0, got ${JSON.stringify(reserve)}`);
  }
  const custom = request.customModel;
  if (custom !== undefined) {
    for (const key of ["fileSizeBytes", "layers", "embeddingLength", "kvHeads", "headSize"] as const) {
      if (!isPositiveInteger(custom[key])) problems.push(`customModel.${key} must be a positive integer`);
    }
  }
  if (problems.length > 0) {
    throw new EdgeError("config_invalid", `Invalid runtime settings: ${problems.join("; ")}.`, {
      details: { problems },
    });
  }
}
