// `pull` must fetch the very file `start` loads: both run one detect → plan → file step. Checked for
// every recorded board, through the built CLI for `pull` and the daemon's own runtime preparation
// (which downloads from a local Hugging Face stand-in) for `start`, and through install.sh --dry-run.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exitCodeOf } from "../../src/cli/exit-codes.js";
import { loadConfig } from "../../src/config/load-config.js";
import { type EdgeError, isEdgeError } from "../../src/errors.js";
import type { Logger } from "../../src/logging/logger.js";
import { tinyLlamaCatalog } from "../../src/model/catalog.js";
import { prepareRuntime } from "../../src/runtime/prepare-runtime.js";
import { fixtureBoards, fixtureDeps, fixtureRoot } from "../fixtures/hardware/fixture-deps.js";
import { BUILT_MAIN, PROJECT_ROOT } from "../helpers/daemon-process.js";
import { writeMinimalGguf } from "../helpers/minimal-gguf.js";
import { startTestFileServer, type TestFileServer } from "../helpers/model-store-server.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

let work: string;
let server: TestFileServer;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "tle-same-file-"));
  // Every catalog file, as a small GGUF at the path Hugging Face serves it from.
  const gguf = await writeMinimalGguf({ path: path.join(work, "stand-in.gguf") });
  const files = new Map(
    tinyLlamaCatalog.entries.map((entry) => [
      `/${tinyLlamaCatalog.repository}/resolve/main/${entry.fileName}`,
      gguf.bytes,
    ]),
  );
  server = await startTestFileServer(files);
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

/** The file `start` would load on the board: the daemon's runtime preparation, download included. */
async function startsWith(board: (typeof fixtureBoards)[number], modelDir: string): Promise<string> {
  const { config } = loadConfig({
    argv: ["--model.dir", modelDir],
    env: {},
    defaultConfigPath: "/nonexistent",
  });
  const runtime = await prepareRuntime({
    config,
    logger: pino({ level: "silent" }) as Logger,
    env: { HF_ENDPOINT: server.origin },
    interactive: false,
    signal: new AbortController().signal,
    detection: await fixtureDeps(board),
  });
  await runtime.llama.dispose();
  return runtime.modelPath;
}

describe("pull and start resolve the same model file", () => {
  for (const board of fixtureBoards) {
    it(board, async () => {
      const modelDir = path.join(work, board);
      const pulled = await run(process.execPath, [
        BUILT_MAIN,
        "pull",
        "--dry-run",
        "--board",
        fixtureRoot(board),
        "--model.dir",
        modelDir,
      ]);
      let started: string | null = null;
      let refusal: EdgeError | null = null;
      try {
        started = await startsWith(board, modelDir);
      } catch (err) {
        if (!isEdgeError(err)) throw err;
        refusal = err;
      }
      if (refusal !== null) {
        // Refused by both, for the same reason and with the documented exit code.
        expect(pulled.code, pulled.stderr).toBe(exitCodeOf(refusal));
        expect(pulled.code).not.toBe(0);
        expect(pulled.stderr).toContain(refusal.message.slice(0, 60));
        return;
      }
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(pulled.stdout.trim()).toBe(started!);
      expect(path.dirname(started!)).toBe(modelDir);
    });
  }

  it("names the plan's quantization: Q4_0 on a Pi 5, Q4_K_M on a Pi 4", async () => {
    const pi5 = await startsWith("pi5-8gb", path.join(work, "q-pi5"));
    const pi4 = await startsWith("pi4-8gb", path.join(work, "q-pi4"));
    expect(path.basename(pi5)).toBe("tinyllama-1.1b-chat-v1.0.Q4_0.gguf");
    expect(path.basename(pi4)).toBe("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf");
  });

  it("install.sh --dry-run on a Pi 5 names that file", async () => {
    const prefix = path.join(work, "root");
    const result = await run("bash", [
      path.join(PROJECT_ROOT, "deploy/install.sh"),
      "--dry-run",
      "--prefix",
      prefix,
      "--no-start",
      "--board",
      fixtureRoot("pi5-8gb"),
    ]);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    const expected = path.join(prefix, "var/lib/tinyllama-edge/models/tinyllama-1.1b-chat-v1.0.Q4_0.gguf");
    expect(result.stdout).toContain(`model file: ${expected}`);
  });
});
