import { writeFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { makeModel, parseMakeModelArgs } from "../../src/cli/make-model.js";

function run(argv: string[], signal = new AbortController().signal) {
  return makeModel({ argv, env: {}, interactive: false, signal });
}

function captured(stream: "stdout" | "stderr") {
  const spy = vi.spyOn(process[stream], "write").mockImplementation(() => true);
  return () => spy.mock.calls.map(([chunk]) => String(chunk)).join("");
}

describe("parseMakeModelArgs", () => {
  it("applies the preset's default quantization and seed", () => {
    expect(parseMakeModelArgs(["--preset", "tinyllama", "--out", "m.gguf"])).toEqual({
      kind: "run",
      args: { preset: "tinyllama", quantization: "q4_0", out: "m.gguf", seed: 1 },
    });
    expect(
      parseMakeModelArgs(["--preset", "tiny", "--quant", "Q8_0", "--out", "m.gguf", "--seed", "9"]),
    ).toEqual({
      kind: "run",
      args: { preset: "tiny", quantization: "q8_0", out: "m.gguf", seed: 9 },
    });
  });

  it.each([
    [[], /--preset/],
    [["--preset", "huge", "--out", "m"], /--preset/],
    [["--preset", "tiny", "--quant", "q2_k", "--out", "m"], /--quant/],
    [["--preset", "tiny"], /--out/],
    [["--preset", "tiny", "--out", "m", "--seed", "-1"], /--seed/],
    [["--preset", "tiny", "--out", "m", "extra"], /positional/],
    [["--preset", "tiny", "--out", "m", "--bogus"], /bogus/],
  ])("rejects %j", (argv, reason) => {
    const parsed = parseMakeModelArgs(argv);
    expect(parsed.kind).toBe("invalid");
    expect(parsed.kind === "invalid" && parsed.reason).toMatch(reason);
  });
});

describe("make-model", () => {
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), "make-model-"));
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it("prints usage and exits 2 on bad arguments", async () => {
    const stderr = captured("stderr");
    expect(await run(["--preset", "nope"])).toBe(2);
    expect(stderr()).toMatch(/Usage: make-model/);
  });

  it("prints usage and exits 0 on --help", async () => {
    const stdout = captured("stdout");
    expect(await run(["--help"])).toBe(0);
    expect(stdout()).toMatch(/Usage: make-model/);
  });

  it("writes the model and reports progress", async () => {
    const stdout = captured("stdout");
    const out = join(directory, "tiny.gguf");
    expect(await run(["--preset", "tiny", "--quant", "q8_0", "--out", out])).toBe(0);
    expect((await stat(out)).size).toBeGreaterThan(0);
    expect(stdout()).toMatch(/tiny q8_0: 100% /);
    expect(stdout()).toContain(`wrote ${out}`);
  });

  it("exits 1 with a message when the file cannot be written", async () => {
    const stderr = captured("stderr");
    // A regular file where a directory is needed: no one can write there, root included.
    const blocker = join(directory, "blocker");
    writeFileSync(blocker, "");
    expect(await run(["--preset", "tiny", "--out", join(blocker, "tiny.gguf")])).toBe(1);
    expect(stderr()).toMatch(/ENOTDIR|EEXIST/);
  });

  it("exits 130 when interrupted", async () => {
    captured("stderr");
    const controller = new AbortController();
    controller.abort();
    expect(await run(["--preset", "tiny", "--out", join(directory, "aborted.gguf")], controller.signal)).toBe(
      130,
    );
  });
});
