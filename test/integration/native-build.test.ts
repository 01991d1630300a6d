import { existsSync } from "node:fs";
import { cp, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Llama } from "node-llama-cpp";
import { afterAll, describe, expect, it } from "vitest";
import { nodeLlamaCppFolder } from "../../src/inference/llama-internals.js";
import { binaryOf, openLlama } from "../../src/inference/open-llama.js";
import { nativeBuild } from "../../src/runtime/native-build.js";

/**
 * Loading a local llama.cpp build, and falling back to the prebuilt binary when it does not load,
 * without compiling anything: a copy of the prebuilt binary stands in for a build, at the folder
 * node-llama-cpp looks in for these (test-only) cmake options.
 */
const OPTIONS = { GGML_NATIVE: "ON", TINYLLAMA_EDGE_TEST: "stand-in" };
const PLATFORM = `${process.platform}-${process.arch}`;
const PREBUILT = join(nodeLlamaCppFolder(), "..", "@node-llama-cpp", PLATFORM, "bins", PLATFORM);

describe.skipIf(!existsSync(PREBUILT))("the native build", () => {
  const { folder } = nativeBuild(OPTIONS);
  const warnings: string[] = [];
  const open = async (nativeBuildOptions: typeof OPTIONS | null): Promise<Llama> => {
    const llama = await openLlama({
      gpu: false,
      maxThreads: 1,
      nativeBuild: nativeBuildOptions,
      onLog: (_level, message) => warnings.push(message),
    });
    if (!llama) throw new Error("no binary loaded");
    return llama;
  };

  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("is loaded from the folder node-llama-cpp keeps it in, once it is complete", async () => {
    // A run that crashed may have left its stand-in behind.
    await rm(folder, { recursive: true, force: true });
    await mkdir(join(folder, "Release"), { recursive: true });
    await cp(PREBUILT, join(folder, "Release"), { recursive: true });
    expect(nativeBuild(OPTIONS).complete).toBe(false);
    await writeFile(join(folder, "buildDone.status"), "");
    expect(nativeBuild(OPTIONS).complete).toBe(true);

    const llama = await open(OPTIONS);
    expect(binaryOf(llama)).toBe("native");
    await llama.dispose();
    const ignored = await open(null);
    expect(binaryOf(ignored)).toBe("prebuilt");
    await ignored.dispose();
  });

  it("falls back to the prebuilt binary, in one warning, when it does not load", async () => {
    // A new file, not the loaded one overwritten in place (that one is mapped into this process).
    await rm(join(folder, "Release", "llama-addon.node"));
    await writeFile(join(folder, "Release", "llama-addon.node"), "not a shared object");
    warnings.length = 0;
    const llama = await open(OPTIONS);
    expect(binaryOf(llama)).toBe("prebuilt");
    await llama.dispose();
    expect(warnings.filter((line) => /native llama\.cpp build .* did not load/.test(line))).toHaveLength(1);
  });
});
