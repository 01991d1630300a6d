import {
  type ChatHistoryItem,
  type ChatWrapper,
  getLlama,
  type Llama,
  LlamaChat,
  LlamaCompletion,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import type { GenerationRequest } from "../mqtt/messages.js";
import { createChatWrapper } from "./chat-wrapper.js";

export interface EngineSettings {
  modelPath: string;
  threads: number;
  gpu: "auto" | "cuda" | "vulkan" | "metal" | false;
  gpuLayers: "auto" | "max" | number;
  contextSize: number;
  sequences: number;
  batchSize: number;
  useMmap: boolean;
}

export interface GenerationOutcome {
  text: string;
  /** "abort": stopped through the signal; the caller knows whether by cancel or deadline. */
  stopReason: "stop" | "length" | "abort";
  promptTokens: number;
  /** Prompt tokens actually evaluated; fewer than promptTokens when a cached prefix was reused. */
  evaluatedPromptTokens: number;
  completionTokens: number;
  /** performance.now() of the first generated text, null when nothing was generated. */
  firstTokenAt: number | null;
}

export interface GenerateOptions {
  signal: AbortSignal;
  onText: (text: string) => void;
}

export interface EngineDeps {
  logger: Logger;
  settings: EngineSettings;
}

/** Owns node-llama-cpp: one model, one context with N sequences, and generation on them. */
export class InferenceEngine {
  private readonly logger: Logger;
  private readonly settings: EngineSettings;
  private llamaInstance: Llama | undefined;
  private model: LlamaModel | undefined;
  private context: LlamaContext | undefined;
  private chatWrapper: ChatWrapper | undefined;
  private readonly freeSequences: LlamaContextSequence[] = [];
  private readonly grammarCache = new Map<string, LlamaGrammar>();
  /** llama.cpp error lines seen during load: its JS error only says "Failed to load model". */
  private readonly loadErrors: string[] = [];

  constructor(deps: EngineDeps) {
    this.logger = deps.logger;
    this.settings = deps.settings;
  }

  get llama(): Llama | undefined {
    return this.llamaInstance;
  }

  get freeSequenceCount(): number {
    return this.freeSequences.length;
  }

  get contextSize(): number {
    return this.context?.contextSize ?? this.settings.contextSize;
  }

  async start(): Promise<void> {
    const { settings } = this;
    this.llamaInstance = await getLlama({
      gpu: settings.gpu,
      build: "never",
      // node-llama-cpp's default is max(4, cores): on a 2-core board that oversubscribes and halves speed.
      maxThreads: settings.threads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => this.logNative(level, message),
    });
    try {
      this.model = await this.llamaInstance.loadModel({
        modelPath: settings.modelPath,
        gpuLayers: settings.gpuLayers,
        useMmap: settings.useMmap,
      });
    } catch (err) {
      const reason = this.loadErrors.length > 0 ? `: ${this.loadErrors.join("; ")}` : "";
      throw new EdgeError("model_unavailable", `failed to load ${settings.modelPath}${reason}`, {
        cause: err,
      });
    }
    this.context = await this.model.createContext({
      contextSize: settings.contextSize,
      sequences: settings.sequences,
      threads: settings.threads,
      batchSize: settings.batchSize,
    });
    for (let i = 0; i < settings.sequences; i++) this.freeSequences.push(this.context.getSequence());
    const { wrapper, source } = createChatWrapper(this.model);
    this.chatWrapper = wrapper;
    this.logger.info(
      {
        model: settings.modelPath,
        threads: settings.threads,
        contextSize: this.context.contextSize,
        sequences: settings.sequences,
        gpu: this.llamaInstance.gpu,
        gpuLayers: this.model.gpuLayers,
        chatTemplate: source,
      },
      "model loaded",
    );
  }

  private logNative(level: LlamaLogLevel, message: string): void {
    const text = message.trim();
    if (text.length === 0) return;
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) {
      this.loadErrors.push(text);
      this.logger.error({ native: true }, text);
    } else if (level === LlamaLogLevel.warn) {
      this.logger.warn({ native: true }, text);
    } else {
      this.logger.debug({ native: true }, text);
    }
  }

  /** Tokens the prompt of this request takes, rendered the way it will be evaluated. */
  countPromptTokens(request: GenerationRequest): number {
    const model = this.requireModel();
    if (request.input.kind === "raw") return model.tokenize(request.input.text).length + 1;
    const { contextText } = this.requireChatWrapper().generateContextState({
      chatHistory: [...this.chatHistoryOf(request), { type: "model", response: [] }],
    });
    return contextText.tokenize(model.tokenizer).length;
  }

  async generate(request: GenerationRequest, options: GenerateOptions): Promise<GenerationOutcome> {
    const sequence = this.freeSequences.pop();
    if (!sequence)
      throw new EdgeError("internal", "no free sequence: the scheduler let too many requests run");
    try {
      return await this.generateOn(sequence, request, options);
    } finally {
      this.freeSequences.push(sequence);
    }
  }

  private async generateOn(
    sequence: LlamaContextSequence,
    request: GenerationRequest,
    options: GenerateOptions,
  ): Promise<GenerationOutcome> {
    const promptTokens = this.countPromptTokens(request);
    const limit = this.contextSize;
    if (promptTokens >= limit) {
      throw new EdgeError(
        "context_overflow",
        `the prompt takes ${promptTokens} tokens; the context holds ${limit} tokens per request`,
        { details: { promptTokens, contextSize: limit } },
      );
    }
    const grammar = request.jsonSchema ? await this.grammarFor(request.jsonSchema) : undefined;
    const meterBefore = sequence.tokenMeter.getState();
    let firstTokenAt: number | null = null;
    let completionTokens = 0;
    const onToken = (tokens: readonly unknown[]) => {
      completionTokens += tokens.length;
    };
    const onTextChunk = (text: string) => {
      if (firstTokenAt === null) firstTokenAt = performance.now();
      options.onText(text);
    };
    const common = {
      signal: options.signal,
      stopOnAbortSignal: true,
      // Room for the prompt is guaranteed above; generation stops at the context's end.
      maxTokens: Math.min(request.maxTokens, limit - promptTokens),
      temperature: request.temperature,
      topP: request.topP,
      topK: request.topK,
      minP: request.minP,
      seed: request.seed,
      repeatPenalty: false as const,
      customStopTriggers: request.stop.length > 0 ? request.stop : undefined,
      onTextChunk,
      onToken,
    };
    let text: string;
    let stopReason: string;
    if (request.input.kind === "raw") {
      const completion = new LlamaCompletion({ contextSequence: sequence });
      const result = await completion.generateCompletionWithMeta(request.input.text, { ...common, grammar });
      text = result.response;
      stopReason = result.metadata.stopReason;
    } else {
      const chat = new LlamaChat({
        contextSequence: sequence,
        chatWrapper: this.chatWrapper,
        autoDisposeSequence: false,
      });
      try {
        const result = await chat.generateResponse(this.chatHistoryOf(request), { ...common, grammar });
        text = result.response;
        stopReason = result.metadata.stopReason;
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    }
    const used = sequence.tokenMeter.diff(meterBefore);
    return {
      text,
      stopReason: stopReason === "maxTokens" ? "length" : stopReason === "abort" ? "abort" : "stop",
      promptTokens,
      // The meter counts the prompt's last token as "output" (it yields logits): add it back.
      evaluatedPromptTokens: used.usedOutputTokens > 0 ? used.usedInputTokens + 1 : used.usedInputTokens,
      completionTokens,
      firstTokenAt,
    };
  }

  private chatHistoryOf(request: GenerationRequest): ChatHistoryItem[] {
    if (request.input.kind !== "chat") return [];
    const history: ChatHistoryItem[] = request.system ? [{ type: "system", text: request.system }] : [];
    for (const message of request.input.messages) {
      if (message.role === "assistant") history.push({ type: "model", response: [message.content] });
      else history.push({ type: message.role, text: message.content });
    }
    return history;
  }

  private async grammarFor(schema: Record<string, unknown>): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    const cached = this.grammarCache.get(key);
    if (cached) return cached;
    try {
      // biome-ignore lint/suspicious/noExplicitAny: the schema is validated by node-llama-cpp itself
      const grammar = await this.requireLlama().createGrammarForJsonSchema(schema as any);
      if (this.grammarCache.size >= 32) this.grammarCache.clear();
      this.grammarCache.set(key, grammar);
      return grammar;
    } catch (err) {
      throw new EdgeError("invalid_request", `json_schema is not supported: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  private requireLlama(): Llama {
    if (!this.llamaInstance) throw new EdgeError("model_unavailable", "the engine is not started");
    return this.llamaInstance;
  }

  private requireModel(): LlamaModel {
    if (!this.model) throw new EdgeError("model_unavailable", "the model is not loaded");
    return this.model;
  }

  private requireChatWrapper(): ChatWrapper {
    if (!this.chatWrapper) throw new EdgeError("model_unavailable", "the model is not loaded");
    return this.chatWrapper;
  }

  /** Callers abort running generations and await them first: disposing under a generation hangs it. */
  async stop(): Promise<void> {
    this.freeSequences.length = 0;
    this.grammarCache.clear();
    await this.context?.dispose();
    await this.model?.dispose();
    await this.llamaInstance?.dispose();
    this.context = undefined;
    this.model = undefined;
    this.llamaInstance = undefined;
  }
}

function sharedPrefixLength(a: readonly Token[], b: readonly Token[]): number {
  const limit = Math.min(a.length, b.length);
  let i = 0;
  while (i < limit && a[i] === b[i]) i++;
  return i;
}
