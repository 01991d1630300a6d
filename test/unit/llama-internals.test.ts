import type { BatchItem, LlamaContext, LlamaContextSequence } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import {
  internalsMismatch,
  isSamplingFailure,
  LlamaInternals,
  VERIFIED_NODE_LLAMA_CPP,
} from "../../src/inference/llama-internals.js";

const item = (tokens: number): BatchItem => ({
  tokens: Array.from({ length: tokens }, (_, i) => i as never),
  logits: [],
  evaluationPriority: 5,
});

/** A context with the private shapes the module relies on; `fields` replace or remove some. */
function fakeContext(fields: Record<string, unknown> = {}): LlamaContext {
  return {
    _queuedDecodes: [],
    _decodeTokens: async () => [],
    _ctx: { sampleToken: async () => 0 },
    ...fields,
  } as unknown as LlamaContext;
}

const verified = { expectedVersion: VERIFIED_NODE_LLAMA_CPP, installedVersion: VERIFIED_NODE_LLAMA_CPP };

describe("the check of node-llama-cpp's internals", () => {
  it.each([
    ["the verified release with every shape", verified, {}, null],
    ["another installed release", { ...verified, installedVersion: "3.23.0" }, {}, /3\.23\.0 is installed/],
    ["an unknown installed release", { ...verified, installedVersion: null }, {}, /unknown version/],
    ["turned off", { ...verified, expectedVersion: "off" }, {}, /turned off/],
    ["no decode queue", verified, { _queuedDecodes: new Map() }, /_queuedDecodes/],
    ["no decode entry point", verified, { _decodeTokens: undefined }, /_decodeTokens/],
    ["no native sampler", verified, { _ctx: {} }, /sampleToken/],
  ])("%s", (_name, options, fields, expected) => {
    const reason = internalsMismatch(fakeContext(fields), options);
    if (expected === null) expect(reason).toBeNull();
    else expect(reason).toMatch(expected);
  });

  it("says why once and then touches nothing private", async () => {
    const heard: string[] = [];
    const decodeTokens = async () => [];
    const sampleToken = async () => 0;
    const context = fakeContext({ _decodeTokens: decodeTokens, _ctx: { sampleToken } });
    const internals = LlamaInternals.inspect(context, {
      ...verified,
      installedVersion: "9.9.9",
      onFallback: (reason) => heard.push(reason),
    });
    expect(heard).toHaveLength(1);
    expect(internals.active).toBe(false);
    expect(internals.gateDecodes(() => undefined)).toBe(false);
    expect(internals.guardSampling(() => undefined)).toBe(false);
    const internal = context as unknown as { _decodeTokens: unknown; _ctx: { sampleToken: unknown } };
    expect(internal._decodeTokens).toBe(decodeTokens);
    expect(internal._ctx.sampleToken).toBe(sampleToken);
    const sequence = { _sequenceId: 5 } as unknown as LlamaContextSequence;
    expect(internals.sequenceIdOf(sequence, 2)).toBe(2);
    expect(internals.sequenceIdsOf([item(1)])).toBeNull();
  });
});

describe("sequence ids of queued decodes", () => {
  /** The ids the internals read for `items` while node-llama-cpp's queue holds `queue`. */
  const withQueue = (queue: unknown) => (items: BatchItem[]) => {
    const context = fakeContext();
    const internals = LlamaInternals.inspect(context, { ...verified, onFallback: () => undefined });
    (context as unknown as { _queuedDecodes: unknown })._queuedDecodes = queue;
    return internals.sequenceIdsOf(items);
  };

  it("reads them from the decode queue the items were made from", () => {
    const items = [item(1), item(2)];
    const queue = [
      { sequenceId: 3, tokens: items[0]!.tokens },
      { sequenceId: 1, tokens: items[1]!.tokens },
    ];
    expect(withQueue(queue)(items)).toEqual([3, 1]);
  });

  it("gives up when the queue does not line up with the items", () => {
    const items = [item(1), item(1)];
    expect(withQueue([{ sequenceId: 0, tokens: items[0]!.tokens }])(items)).toBeNull();
    const shuffled = [
      { sequenceId: 0, tokens: items[1]!.tokens },
      { sequenceId: 1, tokens: items[0]!.tokens },
    ];
    expect(withQueue(shuffled)(items)).toBeNull();
    expect(withQueue(undefined)(items)).toBeNull();
  });
});

describe("node-llama-cpp's sampling failure", () => {
  it("is recognised by its message only", () => {
    expect(isSamplingFailure(new Error("Failed to sample next token"))).toBe(true);
    expect(isSamplingFailure(new Error("Failed to load model"))).toBe(false);
    expect(isSamplingFailure("Failed to sample next token")).toBe(false);
  });
});
