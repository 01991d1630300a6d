import { existsSync } from "node:fs";
import { mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { pull } from "../../src/cli/pull.js";
import type { ModelConfig } from "../../src/config/app-config.js";
import type { EdgeError } from "../../src/errors.js";
import type { Logger } from "../../src/logging/logger.js";
import {
  type ModelStoreDeps,
  PARTIAL_DOWNLOAD_SUFFIX,
  parseModelSource,
  resolveModelFile,
  sha256OfFile,
} from "../../src/model/model-store.js";
import { freePort } from "../../src/util/free-port.js";
import {
  createLogProgressReporter,
  LOG_PROGRESS_INTERVAL_MS,
  type ProgressReporter,
} from "../../src/util/progress.js";
import { type MinimalGguf, writeMinimalGguf } from "../helpers/minimal-gguf.js";
import { startTestFileServer, type TestFileServer } from "../helpers/model-store-server.js";

const HF_FILE = "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf";
const HF_URI = `hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/${HF_FILE}`;
const HF_PATH = `/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/resolve/main/${HF_FILE}`;
/** ipull saves its progress per 5 MiB chunk: a resumable file needs a few of them. */
const CHUNK_BYTES = 5 * 1024 * 1024;

const silentLogger = pino({ level: "silent" }) as Logger;

interface RecordingProgress extends ProgressReporter {
  starts: Array<{ label: string; total: number }>;
  updates: number[];
  stops: number;
}

function recordingProgress(onUpdate?: (done: number) => void): RecordingProgress {
  const progress: RecordingProgress = {
    starts: [],
    updates: [],
    stops: 0,
    start: (label, total) => progress.starts.push({ label, total }),
    update: (done) => {
      progress.updates.push(done);
      onUpdate?.(done);
    },
    stop: () => {
      progress.stops++;
    },
  };
  return progress;
}

let workDir: string;
let small: MinimalGguf;
let large: MinimalGguf;
const servers: TestFileServer[] = [];

async function serve(files: Record<string, Buffer>): Promise<TestFileServer> {
  const server = await startTestFileServer(new Map(Object.entries(files)));
  servers.push(server);
  return server;
}

let dirCounter = 0;
function freshDir(): string {
  dirCounter++;
  return join(workDir, `models-${dirCounter}`);
}

function deps(overrides: Partial<ModelConfig>, extra: Partial<ModelStoreDeps> = {}): ModelStoreDeps {
  return {
    model: { path: "", uri: "", dir: freshDir(), downloadTimeoutMs: 5_000, sha256: "", ...overrides },
    defaultUri: HF_URI,
    logger: silentLogger,
    progress: recordingProgress(),
    signal: new AbortController().signal,
    env: {},
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<EdgeError> {
  try {
    await promise;
  } catch (err) {
    return err as EdgeError;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "model-store-"));
  small = await writeMinimalGguf({ path: join(workDir, "small.gguf"), seed: 1 });
  large = await writeMinimalGguf({ path: join(workDir, "large.gguf"), dataBytes: 12 * 1024 * 1024, seed: 2 });
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe("resolveModelFile with model.path", () => {
  it("uses an existing valid GGUF as it is", async () => {
    const resolved = await resolveModelFile(deps({ path: small.path }));
    expect(resolved).toEqual({ path: small.path, source: "local" });
  });

  it("rejects a missing file, naming the setting and the path", async () => {
    const missing = join(workDir, "nope.gguf");
    const err = await rejection(resolveModelFile(deps({ path: missing })));
    expect(err.code).toBe("model_invalid");
    expect(err.message).toContain("model.path");
    expect(err.message).toContain(missing);
  });

  it("rejects a file that is not GGUF", async () => {
    const text = join(workDir, "notes.gguf");
    await writeFile(text, "this is not a model\n".repeat(100));
    const err = await rejection(resolveModelFile(deps({ path: text })));
    expect(err.code).toBe("model_invalid");
    expect(err.message).toContain(text);
  });

  it("rejects a truncated GGUF whose header is intact", async () => {
    const cut = join(workDir, "cut.gguf");
    await writeFile(cut, small.bytes.subarray(0, small.bytes.length - 1000));
    const err = await rejection(resolveModelFile(deps({ path: cut })));
    expect(err.code).toBe("model_invalid");
    expect(err.message).toMatch(/incomplete/);
  });
});

describe("resolveModelFile downloads", () => {
  it("downloads an http:// URL with progress, then reuses the file without the network", async () => {
    const server = await serve({ "/models/small.gguf": small.bytes });
    const progress = recordingProgress();
    const request = deps({ uri: `${server.origin}/models/small.gguf`, sha256: small.sha256 }, { progress });

    const resolved = await resolveModelFile(request);
    expect(resolved).toEqual({ path: join(request.model.dir, "small.gguf"), source: "downloaded" });
    expect(await sha256OfFile(resolved.path)).toBe(small.sha256);
    expect(existsSync(`${resolved.path}${PARTIAL_DOWNLOAD_SUFFIX}`)).toBe(false);
    expect(progress.starts).toEqual([{ label: "small.gguf", total: small.bytes.length }]);
    expect(progress.updates.length).toBeGreaterThan(0);
    expect(Math.max(...progress.updates)).toBe(small.bytes.length);
    expect(progress.stops).toBe(1);

    const requestsBefore = server.requests.length;
    const again = await resolveModelFile({ ...request, progress: recordingProgress() });
    expect(again).toEqual({ path: resolved.path, source: "cached" });
    expect(server.requests.length).toBe(requestsBefore);
  });

  it("downloads an hf: URI from the host in HF_ENDPOINT", async () => {
    const server = await serve({ [HF_PATH]: small.bytes });
    const request = deps({}, { env: { HF_ENDPOINT: server.origin } });
    const resolved = await resolveModelFile(request);
    expect(resolved).toEqual({ path: join(request.model.dir, HF_FILE), source: "downloaded" });
    expect(await sha256OfFile(resolved.path)).toBe(small.sha256);
    expect(server.requests.some((r) => r.path === HF_PATH && r.method === "GET")).toBe(true);
  });

  it("replaces a truncated file found in model.dir", async () => {
    const server = await serve({ "/small.gguf": small.bytes });
    const request = deps({ uri: `${server.origin}/small.gguf` });
    const first = await resolveModelFile(request);
    await truncate(first.path, small.bytes.length - 4096);
    const second = await resolveModelFile(request);
    expect(second.source).toBe("downloaded");
    expect(await sha256OfFile(second.path)).toBe(small.sha256);
  });

  it("resumes an interrupted download from its partial file with range requests", async () => {
    const path = "/large.gguf";
    const flaky = await serve({ [path]: large.bytes });
    flaky.setMode("cut");
    const dir = freshDir();
    const interrupted = deps({ uri: `${flaky.origin}${path}`, dir, downloadTimeoutMs: 1_500 });
    const err = await rejection(resolveModelFile(interrupted));
    expect(err.code).toBe("download_failed");
    expect(err.message).toMatch(/no data for 1500 ms/);
    const target = join(dir, "large.gguf");
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}${PARTIAL_DOWNLOAD_SUFFIX}`)).toBe(true);
    await flaky.close();

    // A new server, so the first download's leftover retries are not counted: only what is missing may be asked for.
    const healthy = await serve({ [path]: large.bytes });
    const resumed = await resolveModelFile({
      ...interrupted,
      model: { ...interrupted.model, uri: `${healthy.origin}${path}` },
    });
    expect(resumed).toEqual({ path: target, source: "downloaded" });
    expect(await sha256OfFile(target)).toBe(large.sha256);
    expect(existsSync(`${target}${PARTIAL_DOWNLOAD_SUFFIX}`)).toBe(false);
    const ranged = healthy.requests.filter((r) => r.method === "GET" && r.range !== undefined);
    expect(ranged.length).toBeGreaterThan(0);
    for (const request of ranged) {
      expect(Number(/^bytes=(\d+)-/.exec(request.range ?? "")?.[1])).toBeGreaterThanOrEqual(CHUNK_BYTES);
    }
  });

  it("rejects a download whose SHA-256 differs, and deletes it", async () => {
    const server = await serve({ "/small.gguf": small.bytes });
    const request = deps({ uri: `${server.origin}/small.gguf`, sha256: "0".repeat(64) });
    const err = await rejection(resolveModelFile(request));
    expect(err.code).toBe("download_failed");
    expect(err.message).toContain("SHA-256");
    expect(existsSync(join(request.model.dir, "small.gguf"))).toBe(false);
    expect(existsSync(join(request.model.dir, `small.gguf${PARTIAL_DOWNLOAD_SUFFIX}`))).toBe(false);
  });

  it("reports a 404 with the URI, without its credentials, and what to do", async () => {
    const server = await serve({});
    const uri = `http://user:secret@${server.origin.slice("http://".length)}/missing.gguf?token=abc`;
    const err = await rejection(resolveModelFile(deps({ uri })));
    expect(err.code).toBe("download_failed");
    expect(err.message).toContain(`${server.origin}/missing.gguf`);
    expect(err.message).toContain("404");
    expect(err.message).toContain("model.path");
    expect(err.message).not.toContain("secret");
    expect(err.message).not.toContain("abc");
    const head = server.requests.find((r) => r.method === "HEAD");
    expect(head?.path).toBe("/missing.gguf");
  });

  it("fails fast when nothing listens at the host", async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await rejection(
      resolveModelFile(deps({ uri: `http://127.0.0.1:${port}/model.gguf`, downloadTimeoutMs: 3_000 })),
    );
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(err.code).toBe("download_failed");
    expect(err.message).toContain("ECONNREFUSED");
  });

  it("rejects on abort and leaves no final file", async () => {
    const server = await serve({ "/large.gguf": large.bytes });
    server.setMode("slow");
    const controller = new AbortController();
    const progress = recordingProgress((done) => {
      if (done > 0) controller.abort();
    });
    const request = deps({ uri: `${server.origin}/large.gguf` }, { progress, signal: controller.signal });
    const started = Date.now();
    const err = await rejection(resolveModelFile(request));
    expect(err.code).toBe("cancelled");
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(existsSync(join(request.model.dir, "large.gguf"))).toBe(false);
  });

  it("gives up when the server accepts the request but never starts the download", async () => {
    const server = await serve({ "/stuck.gguf": small.bytes });
    server.setMode("hang-get");
    const started = Date.now();
    const err = await rejection(
      resolveModelFile(deps({ uri: `${server.origin}/stuck.gguf`, downloadTimeoutMs: 800 })),
    );
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(err.code).toBe("download_failed");
    expect(err.message).toContain("800 ms");
  });
});

describe("parseModelSource", () => {
  it("names the file of each URI form without the network", () => {
    const file = parseModelSource(HF_URI, {});
    expect(file.fileName).toBe(HF_FILE);
    expect(file.fileUrl).toBe(`https://huggingface.co${HF_PATH}?download=true`);
    const tagged = parseModelSource("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:q8_0", {});
    expect(tagged).toMatchObject({ fileName: "TinyLlama-1.1B-Chat-v1.0.Q8_0.gguf", fileUrl: null });
    const branch = parseModelSource("hf:me/repo/sub/dir/m.gguf#dev", { HF_ENDPOINT: "http://mirror:8080" });
    expect(branch.fileUrl).toBe("http://mirror:8080/me/repo/resolve/dev/sub/dir/m.gguf?download=true");
    expect(parseModelSource("https://example.com/files/download", {}).fileName).toBe("download.gguf");
  });

  it("rejects what is neither hf: nor http(s), and a bad HF_ENDPOINT", () => {
    expect(() => parseModelSource("ftp://example.com/m.gguf", {})).toThrow(/hf: URI/);
    expect(() => parseModelSource(HF_URI, { HF_ENDPOINT: "mirror.local" })).toThrow(/HF_ENDPOINT/);
    expect(() => parseModelSource("https://example.com/", {})).toThrow(/file name/);
  });
});

describe("log progress reporter", () => {
  it("logs at most every 10 % or every 5 s, and the final figure", () => {
    const lines: string[] = [];
    const logger = { info: (_fields: unknown, message: string) => lines.push(message) } as unknown as Logger;
    let clock = 0;
    const reporter = createLogProgressReporter(logger, () => clock);
    reporter.start("model.gguf", 1_000_000);
    for (let done = 0; done <= 999_000; done += 1_000) reporter.update(done);
    expect(lines).toHaveLength(10); // 0 %, 10 %, … 90 %
    clock += LOG_PROGRESS_INTERVAL_MS;
    reporter.update(999_500);
    expect(lines).toHaveLength(11);
    reporter.update(999_600);
    expect(lines).toHaveLength(11);
    reporter.stop();
    expect(lines).toHaveLength(12);
    expect(lines.at(-1)).toBe("model.gguf: 99% (1.0 MB of 1.0 MB)");
  });
});

describe("pull command", () => {
  it("prints the path of the model file and exits 0", async () => {
    const server = await serve({ "/small.gguf": small.bytes });
    const dir = freshDir();
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      const code = await pull({
        argv: ["--model.uri", `${server.origin}/small.gguf`, "--model.dir", dir, "--log.level", "silent"],
        env: { NODE_ENV: "test" },
        interactive: false,
        signal: new AbortController().signal,
      });
      expect(code).toBe(0);
      expect(stdout).toHaveBeenCalledWith(`${join(dir, "small.gguf")}\n`);
    } finally {
      stdout.mockRestore();
    }
    expect((await stat(join(dir, "small.gguf"))).size).toBe(small.bytes.length);
  });

  it("prints every configuration problem and exits 2", async () => {
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const code = await pull({
        argv: ["--no.such", "1", "--model.downloadTimeoutMs", "-5"],
        env: { NODE_ENV: "test" },
        interactive: false,
        signal: new AbortController().signal,
      });
      expect(code).toBe(2);
      const written = stderr.mock.calls.map(([chunk]) => String(chunk)).join("");
      expect(written).toContain("--no.such");
      expect(written).toContain("downloadTimeoutMs");
    } finally {
      stderr.mockRestore();
    }
  });

  it("exits 1 with the reason when the download fails", async () => {
    const port = await freePort();
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const code = await pull({
        argv: [
          "--model.uri",
          `http://127.0.0.1:${port}/x.gguf`,
          "--model.dir",
          freshDir(),
          "--log.level",
          "silent",
        ],
        env: { NODE_ENV: "test" },
        interactive: false,
        signal: new AbortController().signal,
      });
      expect(code).toBe(1);
      expect(stderr.mock.calls.map(([chunk]) => String(chunk)).join("")).toContain("ECONNREFUSED");
    } finally {
      stderr.mockRestore();
    }
  });
});
