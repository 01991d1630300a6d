import { mkdtemp, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type PromptStateIdentity, PromptStateStore } from "../../src/inference/prompt-state-store.js";

const IDENTITY: PromptStateIdentity = {
  model: "/models/tiny.gguf|1000|1",
  build: "node-llama-cpp 3.22.1|ggml-org/llama.cpp@b1|prebuilt|false",
  context: "ctx 2048|flash false|gpuLayers 0",
};

const bytes = (count: number) => async (path: string) => writeFile(path, Buffer.alloc(count, 7));

describe("PromptStateStore", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "prompt-state-store-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps a saved state that matches, and tells what differs for one that does not", async () => {
    const store = new PromptStateStore(dir, { maxEntries: 4, maxBytes: 10_000 });
    const saved = await store.save(IDENTITY, [1, 2, 3], 2, bytes(100));
    expect(saved?.meta).toMatchObject({ prefixTokens: 3, stateBytes: 100, hits: 2 });
    const [entry] = (await store.list()).stored;
    expect(await store.problem(entry!, IDENTITY)).toBeNull();
    expect(await store.problem(entry!, { ...IDENTITY, model: "/models/other.gguf|1000|1" })).toBe(
      "saved for another model file",
    );
    expect(
      await store.problem(entry!, { ...IDENTITY, build: "node-llama-cpp 3.22.1|b2|localBuild|false" }),
    ).toBe("saved by another llama.cpp build");
    expect(await store.problem(entry!, { ...IDENTITY, context: "ctx 1024|flash false|gpuLayers 0" })).toBe(
      "saved with other context settings",
    );
  });

  it("refuses a truncated state file and a missing one", async () => {
    const store = new PromptStateStore(dir, { maxEntries: 4, maxBytes: 10_000 });
    const saved = await store.save(IDENTITY, [1, 2, 3], 2, bytes(100));
    await truncate(saved!.statePath, 60);
    expect(await store.problem(saved!, IDENTITY)).toBe("its state file has 60 bytes, 100 were saved");
    await rm(saved!.statePath);
    expect(await store.problem(saved!, IDENTITY)).toBe("its state file is missing");
  });

  it("lists an unreadable description as refused", async () => {
    const store = new PromptStateStore(dir, { maxEntries: 4, maxBytes: 10_000 });
    await store.save(IDENTITY, [1], 2, bytes(10));
    await writeFile(join(store.dir, "broken.json"), "{ not json");
    const { stored, refused } = await store.list();
    expect(stored).toHaveLength(1);
    expect(refused).toEqual([{ key: "broken", reason: expect.stringMatching(/^unreadable description/) }]);
  });

  it("stays within its count and byte bounds, removing the least used first", async () => {
    const store = new PromptStateStore(dir, { maxEntries: 2, maxBytes: 250 });
    await store.save(IDENTITY, [1], 5, bytes(100));
    await store.save(IDENTITY, [2], 2, bytes(100));
    // A third: the one used least (hits 2) goes.
    expect(await store.save(IDENTITY, [3], 3, bytes(100))).not.toBeNull();
    const hits = (await store.list()).stored.map((e) => e.meta.hits).sort();
    expect(hits).toEqual([3, 5]);
    // Colder than everything kept: not saved, nothing removed.
    expect(await store.save(IDENTITY, [4], 1, bytes(100))).toBeNull();
    // Larger than the byte bound on its own: not saved.
    expect(await store.save(IDENTITY, [5], 9, bytes(300))).toBeNull();
    const files = await readdir(store.dir);
    expect(files.filter((f) => f.endsWith(".state"))).toHaveLength(2);
    expect(files.filter((f) => f.endsWith(".partial"))).toHaveLength(0);
  });
});
