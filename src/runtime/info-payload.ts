import { basename } from "node:path";
import { getModuleVersion } from "node-llama-cpp";
import { packageVersion } from "../version.js";
import type { PreparedRuntime } from "./prepare-runtime.js";

export interface InfoPayloadInput {
  nodeId: string;
  runtime: PreparedRuntime;
  maxQueue: number;
}

/** The retained info topic: what runs here, on what, with which plan and why, and what it can do. */
export async function buildInfoPayload({
  nodeId,
  runtime,
  maxQueue,
}: InfoPayloadInput): Promise<Record<string, unknown>> {
  const { hardware, plan, header, llama } = runtime;
  return {
    version: packageVersion(),
    node: nodeId,
    engine: {
      node_llama_cpp: await getModuleVersion(),
      llama_cpp: llama.llamaCppRelease.release,
      gpu: llama.gpu,
    },
    hardware: {
      board: hardware.board,
      arch: hardware.arch,
      cpu: hardware.cpu,
      memory: hardware.memory,
      gpu: hardware.gpu,
    },
    model: {
      file: basename(runtime.modelPath),
      source: runtime.modelSource,
      name: header.name,
      architecture: header.architecture,
      size_bytes: header.fileBytes,
    },
    plan,
    capabilities: {
      stream: true,
      json_schema: true,
      cancel: true,
      conversations: true,
      max_queue: maxQueue,
      max_parallel: plan.parallelSequences,
      context_size: plan.contextSize,
    },
  };
}
