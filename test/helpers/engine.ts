import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import { pino } from "pino";
import { afterAll, beforeAll } from "vitest";
import type { GenerationRequest } from "../../src/core/generation.js";
import { type EngineSettings, InferenceEngine } from "../../src/inference/engine.js";
import type { Logger } from "../../src/logging/logger.js";
import { TINY_MODEL_PATH } from "./models.js";

/** node-llama-cpp's CPU binding as the tests use it: one thread, llama.cpp's errors only. */
export function openTestLlama(): Promise<Llama> {
  return getLlama({ gpu: false, build: "never", maxThreads: 1, logLevel: LlamaLogLevel.error });
}

/**
 * The tiny engine for one describe block: started before its tests, stopped (and its binding
 * disposed) after them. Read `engine`/`llama` inside tests, once beforeAll has run.
 */
export function useTinyEngine(settings: Partial<EngineSettings> = {}): {
  engine: InferenceEngine;
  llama: Llama;
} {
  const handle = {} as { engine: InferenceEngine; llama: Llama };
  beforeAll(async () => {
    handle.llama = await openTestLlama();
    handle.engine = await startTinyEngine(handle.llama, settings);
  });
  afterAll(async () => {
    await handle.engine?.stop();
    await handle.llama?.dispose();
  });
  return handle;
}

/** The inference engine on the tiny generated model, one thread, started; `settings` override. */
export async function startTinyEngine(
  llama: Llama,
  settings: Partial<EngineSettings> = {},
  logger: Logger = pino({ level: "silent" }),
) {
  const engine = new InferenceEngine({
    logger,
    llama,
    nativeErrors: () => [],
    settings: {
      modelPath: TINY_MODEL_PATH,
      threads: 1,
      gpuLayers: 0,
      contextSize: 512,
      sequences: 2,
      batchSize: 256,
      useMmap: true,
      batching: "full",
      ...settings,
    },
  });
  await engine.start();
  return engine;
}

/** A validated request as the parser would produce it: defaults for everything not given. */
export function generationRequest(
  fields: Partial<GenerationRequest> & Pick<GenerationRequest, "id" | "input">,
): GenerationRequest {
  return {
    system: null,
    stream: false,
    maxTokens: 4,
    temperature: 0.7,
    topP: undefined,
    topK: undefined,
    minP: undefined,
    seed: 1,
    stop: [],
    jsonSchema: undefined,
    conversationId: undefined,
    replyTo: undefined,
    timeoutMs: 60_000,
    ...fields,
  };
}
