import { getLlama, getLlamaGpuTypes, type Llama, type LlamaGpuType, LlamaLogLevel } from "node-llama-cpp";
import { localBuildFolder } from "./llama-internals.js";

export interface OpenLlamaOptions {
  gpu: "auto" | LlamaGpuType;
  /** llama.cpp's thread pool: node-llama-cpp's default of max(4, cores) oversubscribes small boards. */
  maxThreads: number;
  /** llama.cpp's own log lines (warn and above) and this module's fallbacks. */
  onLog: (level: LlamaLogLevel, message: string) => void;
  /**
   * The custom cmake options that name the native build (`tinyllama-edge build`); null: the prebuilt
   * binary only. Without a GPU (gpu off, or "auto" finding none) a finished native build is loaded
   * instead of the prebuilt one, which stays the fallback.
   */
  nativeBuild?: Readonly<Record<string, string>> | null;
}

/** Which llama.cpp binary a Llama runs: compiled here, or node-llama-cpp's prebuilt one. */
export function binaryOf(llama: Llama): "native" | "prebuilt" {
  return llama.buildType === "localBuild" ? "native" : "prebuilt";
}

/**
 * node-llama-cpp's binding: the GPU one when a GPU is asked for or found; otherwise the native build
 * when there is one, the prebuilt CPU one when not or when it fails to load; null when none loads.
 * `build: "never"`: a device never compiles llama.cpp by itself.
 */
export async function openLlama(options: OpenLlamaOptions): Promise<Llama | null> {
  const base = {
    build: "never" as const,
    maxThreads: options.maxThreads,
    logLevel: LlamaLogLevel.warn,
    logger: (level: LlamaLogLevel, message: string) => options.onLog(level, message.trimEnd()),
  };
  const native = options.nativeBuild ? localBuildFolder(options.nativeBuild) : null;
  const openNative = async (): Promise<Llama | null> => {
    if (!native?.complete || !options.nativeBuild) return null;
    try {
      return await getLlama({
        ...base,
        gpu: false,
        cmakeOptions: { ...options.nativeBuild },
        usePrebuiltBinaries: false,
        progressLogs: false,
      });
    } catch (error) {
      options.onLog(
        LlamaLogLevel.warn,
        `the native llama.cpp build in ${native.folder} did not load (${firstLine(error)}); using the prebuilt binary (rebuild with: tinyllama-edge build)`,
      );
      return null;
    }
  };

  // The native build is CPU only: it is for a machine without a usable GPU.
  const gpuWanted =
    options.gpu !== false &&
    (options.gpu !== "auto" || (await getLlamaGpuTypes("supported")).some((type) => type !== false));
  if (gpuWanted) {
    try {
      return await getLlama({ ...base, gpu: options.gpu });
    } catch (error) {
      options.onLog(LlamaLogLevel.warn, `GPU bindings failed to load (${firstLine(error)}); using the CPU`);
    }
  }
  // One binary per process: the prebuilt one is not loaded first (both name their libraries alike).
  const nativeLlama = await openNative();
  if (nativeLlama) return nativeLlama;
  try {
    return await getLlama({ ...base, gpu: false });
  } catch (error) {
    options.onLog(LlamaLogLevel.error, `node-llama-cpp could not be loaded: ${firstLine(error)}`);
    return null;
  }
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}
