import {
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  LlamaChat,
  LlamaCompletion,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type { GenerationRequest } from "../core/generation.js";
import { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { createFullBatchStrategy } from "./batching.js";
import { createChatWrapper } from "./chat-wrapper.js";
import { isSamplingFailure, LlamaInternals, VERIFIED_NODE_LLAMA_CPP } from "./llama-internals.js";
import {
  PromptStates,
  type PromptStatesSettings,
  promptStateIdentity,
  sharedPrefixLength,
} from "./prompt-states.js";
import { samplingTemperature } from "./sampling-temperature.js";
import { StartGate } from "./start-gate.js";

export interface EngineSettings {
  modelPath: string;
  threads: number;
  gpuLayers: "auto" | "max" | number;
  contextSize: number;
  sequences: number;
  batchSize: number;
  useMmap: boolean;
  /** "full": decode batches wait for every active sequence; "eager": node-llama-cpp's default. */
  batching: "full" | "eager";
  /**
   * The node-llama-cpp release whose private internals the engine may use (llama-internals.ts);
   * "off" never uses them; "verified" (the default): the release they were checked against.
   */
  llamaInternals?: string;
  /** Where and how much prompt state to keep across restarts; absent: none is kept. */
  promptState?: PromptStatesSettings;
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
  /** Opened by the caller (hardware detection needs it first); the engine does not dispose it. */
  llama: Llama;
  settings: EngineSettings;
  /** llama.cpp error lines seen so far: its JS error on a failed load only says "Failed to load model". */
  nativeErrors: () => string[];
}

/** Owns the model, one context with N sequences, and generation on them. */
export class InferenceEngine {
  private readonly logger: Logger;
  private readonly settings: EngineSettings;
  private readonly llama: Llama;
  private readonly nativeErrors: () => string[];
  private model: LlamaModel | undefined;
  private context: LlamaContext | undefined;
  private chatWrapper: ChatWrapper | undefined;
  private readonly freeSequences: LlamaContextSequence[] = [];
  private readonly sequenceIds = new Map<LlamaContextSequence, number>();
  private startGate: StartGate | undefined;
  private internals: LlamaInternals | undefined;
  private readonly grammarCache = new Map<string, LlamaGrammar>();
  /** Sequences generating right now: the full-batch strategy waits for all of them. */
  private activeGenerations = 0;
  /** The native reason of the last failed token sampling (node-llama-cpp only says "Failed to sample"). */
  private lastSamplingFailure: string | undefined;
  private promptStates: PromptStates | undefined;
  /** The system part's tokens per system prompt text: rendered once, not per request. */
  private readonly systemPrefixes = new Map<string, Token[]>();

  constructor(deps: EngineDeps) {
    this.logger = deps.logger;
    this.settings = deps.settings;
    this.llama = deps.llama;
    this.nativeErrors = deps.nativeErrors;
  }

  get contextSize(): number {
    return this.context?.contextSize ?? this.settings.contextSize;
  }

  get sequenceCount(): number {
    return this.settings.sequences;
  }

  async start(): Promise<void> {
    const { settings } = this;
    const errorsBefore = this.nativeErrors().length;
    try {
      this.model = await this.llama.loadModel({
        modelPath: settings.modelPath,
        gpuLayers: settings.gpuLayers,
        useMmap: settings.useMmap,
      });
    } catch (err) {
      const errors = this.nativeErrors().slice(errorsBefore);
      const reason = errors.length > 0 ? `: ${errors.join("; ")}` : "";
      throw new EdgeError("model_unavailable", `failed to load ${settings.modelPath}${reason}`, {
        cause: err,
      });
    }
    this.context = await this.model.createContext({
      contextSize: settings.contextSize,
      sequences: settings.sequences,
      threads: settings.threads,
      batchSize: settings.batchSize,
      batching:
        settings.batching === "full"
          ? {
              itemPrioritizationStrategy: createFullBatchStrategy({
                activeSequences: () => this.activeGenerations,
                sequenceIdsOf: (items) => this.internals?.sequenceIdsOf(items) ?? null,
              }),
            }
          : undefined,
    });
    this.internals = LlamaInternals.inspect(this.context, {
      expectedVersion:
        settings.llamaInternals === undefined || settings.llamaInternals === "verified"
          ? VERIFIED_NODE_LLAMA_CPP
          : settings.llamaInternals,
      onFallback: (reason) =>
        this.logger.warn(
          { reason },
          "node-llama-cpp internals not used: batches in queue order, no start gate, no sampling guard",
        ),
    });
    this.internals.guardSampling((error) => {
      this.lastSamplingFailure = error.message;
      this.logger.warn(
        { reason: error.message },
        "token sampling failed; the request it was for ends with an error",
      );
    });
    this.startGate = new StartGate(this.internals);
    // llama.cpp's sequence id of each (0, 1, 2… in order on a fresh context): it decides micro-batches.
    for (let i = 0; i < settings.sequences; i++) {
      const sequence = this.context.getSequence();
      this.sequenceIds.set(sequence, this.internals.sequenceIdOf(sequence, i));
      this.freeSequences.push(sequence);
    }
    const { wrapper, source } = createChatWrapper(this.model);
    this.chatWrapper = wrapper;
    if (settings.promptState) {
      const identity = await promptStateIdentity(this.llama, this.model, this.context, settings.modelPath);
      this.promptStates = new PromptStates(
        this.logger.child({ part: "prompt-state" }),
        settings.promptState,
        identity,
      );
    }
    this.logger.info(
      {
        model: settings.modelPath,
        threads: settings.threads,
        contextSize: this.context.contextSize,
        sequences: settings.sequences,
        gpu: this.llama.gpu,
        gpuLayers: this.model.gpuLayers,
        chatTemplate: source,
      },
      "model loaded",
    );
  }

  /**
   * Generation speed in tokens/s over `tokens` tokens of plain completion on a free sequence, timed
   * from the first token to the last (prompt evaluation excluded). Used to tune the thread count.
   */
  async measureGeneration(tokens: number, signal?: AbortSignal): Promise<number> {
    const sequence = this.takeSequenceFor([]);
    this.activeGenerations++;
    try {
      await sequence.clearHistory();
      const times: number[] = [];
      const completion = new LlamaCompletion({ contextSequence: sequence });
      await completion.generateCompletion("The weather in the kitchen today is", {
        maxTokens: tokens,
        temperature: 0.7,
        seed: 1,
        repeatPenalty: false,
        signal,
        stopOnAbortSignal: true,
        onToken: () => {
          times.push(performance.now());
        },
      });
      await sequence.clearHistory();
      if (times.length < 2) return 0;
      return ((times.length - 1) * 1000) / (times.at(-1)! - times[0]!);
    } finally {
      this.activeGenerations--;
      this.freeSequences.push(sequence);
    }
  }

  /**
   * Loads the prompt states saved by earlier runs into free sequences (before the node goes online);
   * returns how many were loaded.
   */
  async restorePromptStates(): Promise<number> {
    if (!this.promptStates) return 0;
    const sequences = [...this.freeSequences].sort((a, b) => this.idOf(a) - this.idOf(b));
    return this.promptStates.restore(sequences);
  }

  /**
   * Evaluates a system prompt's part of the chat on a free sequence, unless one holds it already
   * (loaded from a saved state), and keeps its state; prefixes shorter than promptState.minTokens
   * are left alone. Returns the tokens evaluated.
   */
  async warmSystemPrompt(system: string): Promise<number> {
    const prefix = this.systemPrefixOf(system);
    if (!this.promptStates || prefix.length < this.promptStates.minTokens) return 0;
    const sequence = this.takeSequenceFor(prefix);
    try {
      const shared = sharedPrefixLength(sequence.contextTokens, prefix);
      if (shared < sequence.contextTokens.length)
        await sequence.eraseContextTokenRanges([{ start: shared, end: sequence.contextTokens.length }]);
      if (shared < prefix.length) await sequence.evaluateWithoutGeneratingNewTokens(prefix.slice(shared));
      if (this.promptStates.used(prefix, true)) await this.promptStates.save(sequence, prefix);
      return prefix.length - shared;
    } finally {
      this.freeSequences.push(sequence);
    }
  }

  /** The prompt of this request as tokens, rendered the way it will be evaluated. */
  promptTokensOf(request: GenerationRequest): Token[] {
    const model = this.requireModel();
    if (request.input.kind === "raw") {
      const bos = model.tokens.bos;
      return [...(bos === null ? [] : [bos]), ...model.tokenize(request.input.text)];
    }
    const { contextText } = this.requireChatWrapper().generateContextState({
      chatHistory: [...this.chatHistoryOf(request), { type: "model", response: [] }],
    });
    return contextText.tokenize(model.tokenizer);
  }

  async generate(request: GenerationRequest, options: GenerateOptions): Promise<GenerationOutcome> {
    const tokens = this.promptTokensOf(request);
    const limit = this.contextSize;
    if (tokens.length >= limit) {
      throw new EdgeError(
        "context_overflow",
        `the prompt takes ${tokens.length} tokens; the context holds ${limit} tokens per request`,
        { details: { promptTokens: tokens.length, contextSize: limit } },
      );
    }
    const grammar = request.jsonSchema ? await this.grammarFor(request.jsonSchema) : undefined;
    const prefix = this.keptPrefixOf(request, tokens);
    const savePrefix = prefix !== null && this.promptStates?.used(prefix) === true;
    const sequence = this.takeSequenceFor(tokens);
    this.activeGenerations++;
    this.startGate?.starting(this.idOf(sequence));
    try {
      const outcome = await this.generateOn(sequence, request, tokens.length, grammar, options);
      if (savePrefix) await this.savePrefix(sequence, prefix);
      return outcome;
    } catch (err) {
      // Stopped before the first token (a deadline of 1 ms, an early cancel): node-llama-cpp throws
      // the abort reason instead of returning; it is an ended request, not a failure.
      if (!options.signal.aborted) throw this.explained(err);
      return {
        text: "",
        stopReason: "abort",
        promptTokens: tokens.length,
        evaluatedPromptTokens: 0,
        completionTokens: 0,
        firstTokenAt: null,
      };
    } finally {
      this.startGate?.ended(this.idOf(sequence));
      this.activeGenerations--;
      this.freeSequences.push(sequence);
    }
  }

  /**
   * Saves the sequence's state while it is still this request's: the running ones hold their next
   * token (start gate) so the save gets the context lock at once. Once per prefix, never fails the request.
   */
  private async savePrefix(sequence: LlamaContextSequence, prefix: Token[]): Promise<void> {
    const id = this.idOf(sequence);
    this.startGate?.starting(id);
    try {
      await this.promptStates?.save(sequence, prefix);
    } finally {
      this.startGate?.ended(id);
    }
  }

  /** The system part of a chat prompt when it is long enough to keep across restarts, else null. */
  private keptPrefixOf(request: GenerationRequest, tokens: readonly Token[]): Token[] | null {
    if (!this.promptStates || request.input.kind !== "chat") return null;
    const first = request.input.messages[0];
    const text = request.system ?? (first?.role === "system" ? first.content : null);
    if (!text) return null;
    const system = this.systemPrefixOf(text);
    const length = sharedPrefixLength(system, tokens);
    return length >= this.promptStates.minTokens ? system.slice(0, length) : null;
  }

  /**
   * The tokens a chat with this system prompt and a user turn starts with, whatever the user says:
   * the renderings with two different user texts, up to where they part. That takes in the
   * template's user-turn header, so a prefix loaded after a restart leaves only the user's own
   * words to evaluate, as a prefix still in memory from the previous request does.
   */
  private systemPrefixOf(system: string): Token[] {
    const cached = this.systemPrefixes.get(system);
    if (cached) return cached;
    const render = (user: string) =>
      this.requireChatWrapper()
        .generateContextState({
          chatHistory: [
            { type: "system", text: system },
            { type: "user", text: user },
            { type: "model", response: [] },
          ],
        })
        .contextText.tokenize(this.requireModel().tokenizer);
    const [one, other] = [render("A"), render("?")];
    const prefix = one.slice(0, sharedPrefixLength(one, other));
    if (this.systemPrefixes.size >= 16) this.systemPrefixes.clear();
    this.systemPrefixes.set(system, prefix);
    return prefix;
  }

  /** node-llama-cpp's "Failed to sample next token" with llama.cpp's reason, which only the guard heard. */
  private explained(err: unknown): unknown {
    const failure = this.lastSamplingFailure;
    if (!isSamplingFailure(err) || failure === undefined) return err;
    this.lastSamplingFailure = undefined;
    return new EdgeError("internal", `token sampling failed: ${failure}`, { cause: err });
  }

  /**
   * The free sequence whose cached tokens share the longest prefix with the prompt: its KV cache is
   * reused and only the rest is evaluated (a repeated system prompt, a conversation's earlier turns).
   * On a tie, the lowest id: running sequences with neighbouring ids decode in one micro-batch.
   */
  private takeSequenceFor(tokens: Token[]): LlamaContextSequence {
    if (this.freeSequences.length === 0) {
      throw new EdgeError("internal", "no free sequence: the scheduler let too many requests run");
    }
    let best = 0;
    let bestShared = -1;
    this.freeSequences.forEach((sequence, index) => {
      const shared = sharedPrefixLength(sequence.contextTokens, tokens);
      const tieWon = shared === bestShared && this.idOf(sequence) < this.idOf(this.freeSequences[best]!);
      if (shared > bestShared || tieWon) {
        best = index;
        bestShared = shared;
      }
    });
    return this.freeSequences.splice(best, 1)[0]!;
  }

  private idOf(sequence: LlamaContextSequence): number {
    return this.sequenceIds.get(sequence) ?? 0;
  }

  private async generateOn(
    sequence: LlamaContextSequence,
    request: GenerationRequest,
    promptTokens: number,
    grammar: LlamaGrammar | undefined,
    options: GenerateOptions,
  ): Promise<GenerationOutcome> {
    const meterBefore = sequence.tokenMeter.getState();
    let firstTokenAt: number | null = null;
    let completionTokens = 0;
    // Room for the prompt is guaranteed; generation stops at the context's end, no context shift.
    const maxTokens = Math.min(request.maxTokens, this.contextSize - promptTokens);
    // node-llama-cpp's LlamaChat restarts its token count when it re-renders the response mid-way
    // (seen with sampling: max_tokens 8 gave 9 to 12), so the ceiling is also enforced here.
    const ceiling = new AbortController();
    const signal = AbortSignal.any([options.signal, ceiling.signal]);
    const common = {
      signal,
      stopOnAbortSignal: true,
      maxTokens,
      temperature: samplingTemperature(request.temperature),
      topP: request.topP,
      topK: request.topK,
      minP: request.minP,
      seed: request.seed,
      repeatPenalty: false as const,
      customStopTriggers: request.stop.length > 0 ? request.stop : undefined,
      grammar,
      onToken: (tokens: readonly Token[]) => {
        completionTokens += tokens.length;
        if (completionTokens >= maxTokens) ceiling.abort();
      },
      onTextChunk: (text: string) => {
        firstTokenAt ??= performance.now();
        options.onText(text);
      },
    };
    let text: string;
    let stopReason: string;
    if (request.input.kind === "raw") {
      const completion = new LlamaCompletion({ contextSequence: sequence });
      const result = await completion.generateCompletionWithMeta(request.input.text, common);
      text = result.response;
      stopReason = result.metadata.stopReason;
    } else {
      const chat = new LlamaChat({
        contextSequence: sequence,
        chatWrapper: this.chatWrapper,
        autoDisposeSequence: false,
      });
      try {
        const result = await chat.generateResponse(this.chatHistoryOf(request), common);
        text = result.response;
        stopReason = result.metadata.stopReason;
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    }
    const used = sequence.tokenMeter.diff(meterBefore);
    return {
      text,
      stopReason:
        stopReason === "maxTokens" ||
        (stopReason === "abort" && ceiling.signal.aborted && !options.signal.aborted)
          ? "length"
          : stopReason === "abort"
            ? "abort"
            : "stop",
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
      // biome-ignore lint/suspicious/noExplicitAny: checked by jsonSchemaProblems and by node-llama-cpp itself
      const grammar = await this.llama.createGrammarForJsonSchema(schema as any);
      if (this.grammarCache.size >= 32) this.grammarCache.clear();
      this.grammarCache.set(key, grammar);
      return grammar;
    } catch (err) {
      throw new EdgeError("invalid_request", `json_schema is not supported: ${(err as Error).message}`, {
        cause: err,
      });
    }
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
    this.sequenceIds.clear();
    this.startGate = undefined;
    this.internals = undefined;
    this.grammarCache.clear();
    this.promptStates = undefined;
    this.systemPrefixes.clear();
    await this.context?.dispose();
    await this.model?.dispose();
    this.context = undefined;
    this.model = undefined;
  }
}
