import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BatchItem, LlamaContext, LlamaContextSequence } from "node-llama-cpp";

/**
 * Every use of node-llama-cpp's private fields and behaviour goes through this module.
 *
 * The engine's speed and robustness rest on four of them (see docs/upstream.md for the public APIs
 * that would replace them):
 * - the context's decode queue (`_queuedDecodes`), to know which sequence each batch item is for,
 *   so batches go to llama.cpp in ascending sequence order;
 * - the context's decode entry point (`_decodeTokens`), where the start gate holds running
 *   sequences back while one starts;
 * - the native sampler (`_ctx.sampleToken`), whose rejection would otherwise escape the dispatch
 *   loop as an unhandled rejection and leave its generation waiting forever;
 * - llama.cpp's sequence id of each sequence (`_sequenceId`), handed out 0, 1, 2… in order;
 * and on node-llama-cpp's message when sampling gave no token ("Failed to sample next token"), and
 * where its `source build` puts a local build (localBuildFolder).
 *
 * They were checked against one release. On any other release, or when a field has another shape,
 * the engine says so once and runs node-llama-cpp's own behaviour: slower parallel batches and no
 * sampling guard, but nothing private touched. test/integration/llama-internals.test.ts is the
 * contract: it fails on an upgrade that changes any of them.
 */

/** The node-llama-cpp release these internals were checked against (package.json pins it). */
export const VERIFIED_NODE_LLAMA_CPP = "3.22.1";

/** node-llama-cpp's error when sampling gave no token (thrown inside the generation that asked). */
const SAMPLING_FAILED = /Failed to sample/;

/** What a failed sampling turns into: node-llama-cpp's "no token" value. */
const NO_TOKEN = -1;

/** The context's decode entry point (its first argument names the sequence). */
type DecodeTokens = (request: { sequenceId: number }, ...rest: unknown[]) => Promise<unknown>;

/** The native context's sampling call: (batch index, sampler, ...flags) → token or [token, ...]. */
type SampleToken = (...args: unknown[]) => Promise<unknown>;

/** What node-llama-cpp keeps per queued decode, in the order it hands the items to the strategy. */
interface QueuedDecode {
  sequenceId: number;
  tokens: readonly unknown[];
}

interface PrivateContext {
  _queuedDecodes?: unknown;
  _decodeTokens?: unknown;
  _ctx?: { sampleToken?: unknown };
}

export interface InternalsOptions {
  /** The release the internals are trusted for; "off" never touches them. */
  expectedVersion: string;
  /** The installed release (read from node-llama-cpp's package.json when not given). */
  installedVersion?: string | null;
}

/** node-llama-cpp's installed version, from its package.json; null when it cannot be read. */
export function installedNodeLlamaCppVersion(): string | null {
  try {
    // Its package.json is not exported: found beside the entry point's folder (dist/index.js).
    const packageJson = JSON.parse(
      readFileSync(new URL("../package.json", import.meta.resolve("node-llama-cpp")), "utf8"),
    );
    return typeof packageJson.version === "string" ? packageJson.version : null;
  } catch {
    return null;
  }
}

/** node-llama-cpp's package folder (its package.json is not exported: found from its entry point). */
export function nodeLlamaCppFolder(): string {
  return fileURLToPath(new URL("..", import.meta.resolve("node-llama-cpp")));
}

/**
 * Where node-llama-cpp keeps a local CPU build of its bundled llama.cpp made with these custom cmake
 * options (its \`source build\` with NODE_LLAMA_CPP_CMAKE_OPTION_<KEY>=<value>), and whether the build
 * finished there. getLlama looks for it by the same name: platform, arch, and a hash of the options.
 */
export function localBuildFolder(cmakeOptions: Readonly<Record<string, string>>): {
  folder: string;
  complete: boolean;
} {
  const platform = { darwin: "mac", win32: "win" }[process.platform as string] ?? process.platform;
  const options = Object.keys(cmakeOptions)
    .sort()
    .map((key) => `${encodeURIComponent(key)}=${encodeURIComponent(cmakeOptions[key]!)}`)
    .join(";");
  // SHA-1, each byte in base 36, as node-llama-cpp names the folder.
  const hash = Array.from(createHash("sha1").update(options).digest(), (byte) => byte.toString(36)).join("");
  const folder = join(nodeLlamaCppFolder(), "llama", "localBuilds", `${platform}-${process.arch}-${hash}`);
  return { folder, complete: existsSync(join(folder, "buildDone.status")) };
}

/** Whether an error is node-llama-cpp's "no token from sampling". */
export function isSamplingFailure(err: unknown): err is Error {
  return err instanceof Error && SAMPLING_FAILED.test(err.message);
}

/** Why the internals cannot be used on this context, or null when they all have the expected shape. */
export function internalsMismatch(context: LlamaContext, options: InternalsOptions): string | null {
  if (options.expectedVersion === "off") return "turned off by runtime.llamaInternals";
  const installed =
    options.installedVersion === undefined ? installedNodeLlamaCppVersion() : options.installedVersion;
  if (installed !== options.expectedVersion) {
    return `node-llama-cpp ${installed ?? "(unknown version)"} is installed; its internals were checked for ${options.expectedVersion}`;
  }
  const internal = context as unknown as PrivateContext;
  if (!Array.isArray(internal._queuedDecodes)) return "the context has no _queuedDecodes array";
  if (typeof internal._decodeTokens !== "function") return "the context has no _decodeTokens function";
  if (typeof internal._ctx?.sampleToken !== "function") return "the context has no _ctx.sampleToken function";
  return null;
}

/** The engine's handle on node-llama-cpp's internals for one context: patched, or plain fallbacks. */
export class LlamaInternals {
  private constructor(
    private readonly context: LlamaContext,
    /** Why node-llama-cpp's own behaviour runs; null when the internals are in use. */
    readonly fallbackReason: string | null,
  ) {}

  /**
   * Checks the installed version and the context's shapes once. `onFallback` hears, in one line, why
   * node-llama-cpp's own behaviour runs instead (not called when all is as expected).
   */
  static inspect(
    context: LlamaContext,
    options: InternalsOptions & { onFallback: (reason: string) => void },
  ): LlamaInternals {
    const reason = internalsMismatch(context, options);
    if (reason !== null) options.onFallback(reason);
    return new LlamaInternals(context, reason);
  }

  get active(): boolean {
    return this.fallbackReason === null;
  }

  /**
   * llama.cpp's sequence id of a sequence; `fallback` (its position among the context's sequences)
   * when the internals are off or the field is missing.
   */
  sequenceIdOf(sequence: LlamaContextSequence, fallback: number): number {
    if (!this.active) return fallback;
    const id = (sequence as unknown as { _sequenceId?: unknown })._sequenceId;
    return typeof id === "number" ? id : fallback;
  }

  /**
   * The sequence id behind each batch item, read from the decode queue, which node-llama-cpp turns
   * into the strategy's items one by one, sharing the token arrays. Null when the internals are off
   * or the queue does not line up with the items: batches then stay in queue order.
   */
  sequenceIdsOf(items: readonly BatchItem[]): number[] | null {
    if (!this.active) return null;
    const queue = (this.context as unknown as { _queuedDecodes?: QueuedDecode[] })._queuedDecodes;
    if (!Array.isArray(queue) || queue.length !== items.length) return null;
    const ids: number[] = [];
    for (const [index, item] of items.entries()) {
      const queued = queue[index];
      if (queued?.tokens !== item.tokens || typeof queued.sequenceId !== "number") return null;
      ids.push(queued.sequenceId);
    }
    return ids;
  }

  /**
   * Runs `beforeDecode` with the sequence id before each decode a sequence queues (and waits for it).
   * False when the internals are off: decodes are queued as node-llama-cpp does.
   */
  gateDecodes(beforeDecode: (sequenceId: number) => Promise<void> | void): boolean {
    if (!this.active) return false;
    const internal = this.context as unknown as { _decodeTokens: DecodeTokens };
    const original = internal._decodeTokens.bind(this.context);
    const gated: DecodeTokens = async (request, ...rest) => {
      await beforeDecode(request.sequenceId);
      return original(request, ...rest);
    };
    Object.defineProperty(this.context, "_decodeTokens", {
      value: gated,
      configurable: true,
      writable: true,
    });
    return true;
  }

  /**
   * Turns a failed token sampling into a failed generation instead of a dead process.
   *
   * node-llama-cpp samples inside its batch dispatch loop, which it starts with `void`: when
   * llama.cpp's sampler throws (seen: a JSON-schema grammar refusing the token its own check had just
   * let through, "Unexpected empty grammar stack after accepting piece"), the rejection escapes as an
   * unhandled rejection and the generation that asked for the token waits forever. Answering "no
   * token" (-1) instead makes node-llama-cpp throw "Failed to sample next token" inside that
   * generation. `onFailure` hears the native reason. False when the internals are off.
   */
  guardSampling(onFailure: (error: Error) => void): boolean {
    if (!this.active) return false;
    const native = (this.context as unknown as { _ctx: { sampleToken: SampleToken } })._ctx;
    const sampleToken = native.sampleToken.bind(native);
    const guarded: SampleToken = async (...args) => {
      try {
        return await sampleToken(...args);
      } catch (err) {
        onFailure(err instanceof Error ? err : new Error(String(err)));
        // Called with (index, sampler) it resolves to a token; with flags for probabilities,
        // confidence or logits, to a tuple whose first item is the token.
        return args.length > 2 ? [NO_TOKEN, undefined, undefined, undefined, undefined] : NO_TOKEN;
      }
    };
    // The addon's methods are read-only on its prototype: an own property of this one object shadows it.
    Object.defineProperty(native, "sampleToken", { value: guarded, configurable: true, writable: true });
    return true;
  }
}
