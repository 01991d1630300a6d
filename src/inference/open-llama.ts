import { getLlama, type Llama, type LlamaGpuType, LlamaLogLevel } from "node-llama-cpp";

export interface OpenLlamaOptions {
  gpu: "auto" | LlamaGpuType;
  /** llama.cpp's thread pool: node-llama-cpp's default of max(4, cores) oversubscribes small boards. */
  maxThreads: number;
  /** llama.cpp's own log lines (warn and above) and this module's fallbacks. */
  onLog: (level: LlamaLogLevel, message: string) => void;
}

/**
 * node-llama-cpp's prebuilt binding; when the GPU one fails, the CPU one; null when neither loads.
 * `build: "never"`: a device never compiles llama.cpp.
 */
export async function openLlama(options: OpenLlamaOptions): Promise<Llama | null> {
  const base = {
    build: "never" as const,
    maxThreads: options.maxThreads,
    logLevel: LlamaLogLevel.warn,
    logger: (level: LlamaLogLevel, message: string) => options.onLog(level, message.trimEnd()),
  };
  if (options.gpu !== false) {
    try {
      return await getLlama({ ...base, gpu: options.gpu });
    } catch (error) {
      options.onLog(
        LlamaLogLevel.warn,
        `GPU bindings failed to load (${(error as Error).message}); using the CPU`,
      );
    }
  }
  try {
    return await getLlama({ ...base, gpu: false });
  } catch (error) {
    options.onLog(LlamaLogLevel.error, `node-llama-cpp could not be loaded: ${(error as Error).message}`);
    return null;
  }
}
