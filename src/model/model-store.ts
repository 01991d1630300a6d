import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createModelDownloader, type ModelDownloader } from "node-llama-cpp";
import type { ModelConfig } from "../config/app-config.js";
import { EdgeError, isEdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import type { ProgressReporter } from "../util/progress.js";
import { checkGgufHeader } from "./gguf-check.js";

/**
 * Finds the GGUF file to serve: `model.path` as it is, else the file of `model.uri` in `model.dir`,
 * downloaded (and resumed after an interruption) with node-llama-cpp's downloader when missing.
 */

export interface ModelStoreDeps {
  model: ModelConfig;
  /** Used when `model.uri` is empty, e.g. `hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf`. */
  defaultUri: string;
  logger: Logger;
  progress: ProgressReporter;
  signal: AbortSignal;
  /** Read for HF_ENDPOINT (another Hugging Face host, e.g. a mirror) and HF_TOKEN. */
  env: NodeJS.ProcessEnv;
}

export type ModelFileSource = "local" | "cached" | "downloaded";

export interface ResolvedModelFile {
  path: string;
  source: ModelFileSource;
}

/** node-llama-cpp (through ipull) keeps an unfinished download under this suffix, with its progress appended. */
export const PARTIAL_DOWNLOAD_SUFFIX = ".ipull";

const DEFAULT_HUGGING_FACE_ENDPOINT = "https://huggingface.co/";
const DEFAULT_HUGGING_FACE_QUANTIZATION = "Q4_K_M";
/** How long a cancelled downloader may take to close its file before it is left behind. */
const CANCEL_GRACE_MS = 2_000;

/** Where the model file is, or will be once downloaded: `model.path`, else `model.dir` + the URI's file name. */
export type ModelFileLocation =
  | { kind: "local"; path: string }
  | { kind: "download"; path: string; dir: string; source: ModelSource };

/** Names the file without touching the disk or the network (`pull --dry-run`, and every real resolve). */
export function locateModelFile(
  model: ModelConfig,
  defaultUri: string,
  env: NodeJS.ProcessEnv,
): ModelFileLocation {
  if (model.path !== "") return { kind: "local", path: resolve(model.path) };
  const source = parseModelSource(model.uri || defaultUri, env);
  const dir = resolve(model.dir);
  return { kind: "download", path: join(dir, source.fileName), dir, source };
}

export async function resolveModelFile(deps: ModelStoreDeps): Promise<ResolvedModelFile> {
  const { model, logger } = deps;
  const expectedSha256 = parseSha256(model.sha256);
  const location = locateModelFile(model, deps.defaultUri, deps.env);
  if (location.kind === "local") {
    const { path } = location;
    await checkLocalFile(path, expectedSha256);
    logger.info({ path }, "using the model file of model.path");
    return { path, source: "local" };
  }
  const { source, dir, path } = location;
  if (await isUsableCachedFile(path, expectedSha256, logger)) {
    logger.info({ path, uri: source.display }, "using the model file already in model.dir");
    return { path, source: "cached" };
  }
  await mkdir(dir, { recursive: true });
  await downloadModelFile(source, dir, deps);
  await verifyDownloadedFile(path, source, expectedSha256);
  logger.info({ path, uri: source.display }, "model downloaded");
  return { path, source: "downloaded" };
}

// ---------------------------------------------------------------------------------------------
// Where the file comes from

export interface ModelSource {
  /** The URI as configured, safe to print: no user, password or query string. */
  display: string;
  /** What node-llama-cpp is given: the URI without credentials (they travel in `headers`). */
  downloaderUri: string;
  /** The file's URL when it is known without asking the network (not for `hf:user/repo:QUANT`). */
  fileUrl: string | null;
  /** The name in model.dir; fixed here so a cached file is found without the network. */
  fileName: string;
  headers: Record<string, string> | undefined;
  huggingFaceEndpoint: string;
}

export function parseModelSource(uri: string, env: NodeJS.ProcessEnv): ModelSource {
  const huggingFaceEndpoint = resolveHuggingFaceEndpoint(env);
  const trimmed = uri.trim();
  if (trimmed.startsWith("hf:")) return parseHuggingFaceUri(trimmed, huggingFaceEndpoint);
  if (/^https?:\/\//i.test(trimmed)) return parseHttpUrl(trimmed, huggingFaceEndpoint);
  throw new EdgeError(
    "config_invalid",
    "model.uri must be an hf: URI (hf:<owner>/<repo>/<file>.gguf) or an http(s) URL of a GGUF file",
  );
}

function resolveHuggingFaceEndpoint(env: NodeJS.ProcessEnv): string {
  const configured = env.HF_ENDPOINT?.trim();
  if (!configured) return DEFAULT_HUGGING_FACE_ENDPOINT;
  // node-llama-cpp silently ignores an endpoint that is not an http(s) URL; say so instead.
  if (!/^https?:\/\//i.test(configured) || !URL.canParse(configured)) {
    throw new EdgeError(
      "config_invalid",
      `HF_ENDPOINT must be an http(s) URL, not ${JSON.stringify(configured)}`,
    );
  }
  return configured.endsWith("/") ? configured : `${configured}/`;
}

function parseHuggingFaceUri(uri: string, endpoint: string): ModelSource {
  const [owner = "", repo = "", ...pathParts] = uri.slice("hf:".length).split("/");
  const invalid = () =>
    new EdgeError(
      "config_invalid",
      `model.uri ${JSON.stringify(uri)} is not a Hugging Face URI: use hf:<owner>/<repo>/<file>.gguf or hf:<owner>/<repo>:<quantization>`,
    );
  if (owner === "" || repo === "") throw invalid();
  const base = { display: uri, downloaderUri: uri, headers: undefined, huggingFaceEndpoint: endpoint };
  if (pathParts.length === 0 || repo.includes(":")) {
    // hf:owner/repo:QUANT: node-llama-cpp looks the file up in a manifest, so its URL is not known offline.
    const [repoName = "", tag = ""] = repo.split(":");
    if (repoName === "") throw invalid();
    const quantization = (tag.trim() || DEFAULT_HUGGING_FACE_QUANTIZATION).toUpperCase();
    const stem = repoName.replace(/-gguf$/i, "");
    return { ...base, fileUrl: null, fileName: safeFileName(`${stem}.${quantization}.gguf`) };
  }
  const joined = pathParts.join("/");
  const hashAt = joined.indexOf("#");
  const filePath = hashAt >= 0 ? joined.slice(0, hashAt) : joined;
  const branch = (hashAt >= 0 ? joined.slice(hashAt + 1) : "") || "main";
  const fileParts = filePath.split("/").filter((part) => part !== "");
  const fileName = fileParts.at(-1);
  if (fileName === undefined) throw invalid();
  // The same URL node-llama-cpp builds for this form, so the probe asks what the download will ask.
  const fileUrl =
    `${endpoint}${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/resolve/` +
    `${encodeURIComponent(branch)}/${fileParts.map(encodeURIComponent).join("/")}?download=true`;
  return { ...base, fileUrl, fileName: safeFileName(fileName) };
}

function parseHttpUrl(uri: string, endpoint: string): ModelSource {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new EdgeError("config_invalid", "model.uri is not a valid URL");
  }
  const display = `${url.origin}${url.pathname}${url.search === "" ? "" : "?…"}`;
  // fetch refuses URLs with credentials: move them into an Authorization header.
  let headers: Record<string, string> | undefined;
  if (url.username !== "" || url.password !== "") {
    const user = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    headers = { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
    url.username = "";
    url.password = "";
  }
  const lastSegment =
    url.pathname
      .split("/")
      .filter((part) => part !== "")
      .at(-1) ?? "";
  let fileName = safeFileName(decodeURIComponent(lastSegment));
  if (!fileName.toLowerCase().endsWith(".gguf")) fileName = `${fileName}.gguf`;
  return {
    display,
    downloaderUri: url.href,
    fileUrl: url.href,
    fileName,
    headers,
    huggingFaceEndpoint: endpoint,
  };
}

/** A plain name inside model.dir: never a path, never hidden. */
function safeFileName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]/g, "_");
  if (cleaned === "" || cleaned.startsWith(".")) {
    throw new EdgeError("config_invalid", "model.uri does not end in a usable file name (e.g. model.gguf)");
  }
  return cleaned;
}

function parseSha256(value: string): string | null {
  const normalized = value.trim().toLowerCase();
  if (normalized === "") return null;
  if (!/^[0-9a-f]{64}$/.test(normalized)) {
    throw new EdgeError("config_invalid", "model.sha256 must be 64 hexadecimal digits (or empty)");
  }
  return normalized;
}

// ---------------------------------------------------------------------------------------------
// Checking files

async function fileSize(path: string): Promise<number | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : null;
  } catch {
    return null;
  }
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Header check, completeness and (when configured) SHA-256; throws EdgeError("model_invalid"). */
async function checkModelFile(path: string, expectedSha256: string | null): Promise<void> {
  // The header check also refuses a file shorter than its tensors need (an interrupted copy).
  await checkGgufHeader(path);
  if (expectedSha256 !== null) {
    const actual = await sha256OfFile(path);
    if (actual !== expectedSha256) {
      throw new EdgeError(
        "model_invalid",
        `${path} has SHA-256 ${actual}, model.sha256 expects ${expectedSha256}`,
      );
    }
  }
}

async function checkLocalFile(path: string, expectedSha256: string | null): Promise<void> {
  if ((await fileSize(path)) === null) {
    throw new EdgeError(
      "model_invalid",
      `model.path ${path} does not exist or is not a file: fix model.path, or leave it empty to download model.uri`,
    );
  }
  try {
    await checkModelFile(path, expectedSha256);
  } catch (err) {
    if (!isEdgeError(err)) throw err;
    throw new EdgeError("model_invalid", `model.path: ${err.message}`, { cause: err, details: err.details });
  }
}

/** A file in model.dir is reused only when it checks out; a bad one is removed so it is fetched again. */
async function isUsableCachedFile(
  path: string,
  expectedSha256: string | null,
  logger: Logger,
): Promise<boolean> {
  if ((await fileSize(path)) === null) return false;
  try {
    await checkModelFile(path, expectedSha256);
    return true;
  } catch (err) {
    if (!isEdgeError(err)) throw err;
    logger.warn(
      { path, reason: err.message },
      "the model file in model.dir is unusable: removing it and downloading again",
    );
    await rm(path, { force: true });
    return false;
  }
}

async function verifyDownloadedFile(
  path: string,
  source: ModelSource,
  expectedSha256: string | null,
): Promise<void> {
  try {
    await checkModelFile(path, expectedSha256);
  } catch (err) {
    if (!isEdgeError(err)) throw err;
    // A bad file must not be picked up as "cached" next time.
    await rm(path, { force: true });
    throw new EdgeError(
      "download_failed",
      `the file downloaded from ${source.display} was rejected and deleted: ${err.message}. ` +
        "Check model.uri and model.sha256.",
      { cause: err, details: { uri: source.display } },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Downloading

function advice(dir: string, fileName: string): string {
  return `Check the network and model.uri, or copy the GGUF file to ${join(dir, fileName)}, or set model.path to a local GGUF file.`;
}

function describeCause(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, a TLS error) is in `cause`.
  const inner = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${inner}`;
}

function downloadFailed(source: ModelSource, dir: string, reason: string, cause?: unknown): EdgeError {
  return new EdgeError(
    "download_failed",
    `cannot download ${source.display}: ${reason}. ${advice(dir, source.fileName)}`,
    {
      cause,
      details: { uri: source.display },
    },
  );
}

function cancelled(source: ModelSource): EdgeError {
  return new EdgeError(
    "cancelled",
    `download of ${source.display} cancelled; the partial file is kept and the next attempt resumes it`,
  );
}

/** Settles with the promise, or reports that `ms` passed or `signal` fired first. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  signal?: AbortSignal,
): Promise<{ outcome: "settled"; value: T } | { outcome: "timeout" | "aborted" }> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const interrupted = new Promise<{ outcome: "timeout" | "aborted" }>((done) => {
    timer = setTimeout(() => done({ outcome: "timeout" }), ms);
    onAbort = () => done({ outcome: "aborted" });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([
      promise.then((value) => ({ outcome: "settled" as const, value })),
      interrupted,
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * One request before handing over to the downloader, whose own retries (150, up to 5 s apart) turn
 * a refused connection or a 5xx into minutes of silence: this fails fast with the reason.
 */
async function probeFileUrl(
  source: ModelSource,
  fileUrl: string,
  dir: string,
  deps: ModelStoreDeps,
): Promise<void> {
  const timeoutMs = deps.model.downloadTimeoutMs;
  let response: Response;
  try {
    response = await fetch(fileUrl, {
      method: "HEAD",
      redirect: "follow",
      headers: source.headers,
      signal: AbortSignal.any([deps.signal, AbortSignal.timeout(timeoutMs)]),
    });
  } catch (err) {
    if (deps.signal.aborted) throw cancelled(source);
    if (err instanceof Error && err.name === "TimeoutError") {
      throw downloadFailed(source, dir, `no answer within ${timeoutMs} ms (model.downloadTimeoutMs)`, err);
    }
    throw downloadFailed(source, dir, describeCause(err), err);
  }
  const { status, statusText } = response;
  // 401/403: the downloader may hold a token (HF_TOKEN); 405/501: the server does not do HEAD.
  if (response.ok || [401, 403, 405, 501].includes(status)) return;
  const hint = status === 404 || status === 410 ? " (no such file)" : "";
  throw downloadFailed(source, dir, `the server answered ${status} ${statusText}${hint}`);
}

/** Fires when no new byte arrived for `ms` (model.downloadTimeoutMs: the longest silence allowed). */
function createStallWatchdog(ms: number, onStall: () => void) {
  let timer: NodeJS.Timeout | undefined;
  let last = -1;
  let most = 0;
  return {
    start() {
      timer = setTimeout(onStall, ms);
    },
    /** Any change counts: a retried chunk starts over, so the running total can go down and up again. */
    feed(received: number) {
      if (received === last) return;
      last = received;
      most = Math.max(most, received);
      timer?.refresh();
    },
    stop() {
      clearTimeout(timer);
    },
    get mostBytes() {
      return most;
    },
  };
}

async function downloadModelFile(source: ModelSource, dir: string, deps: ModelStoreDeps): Promise<void> {
  const { model, logger, progress, signal } = deps;
  const timeoutMs = model.downloadTimeoutMs;
  const resuming = (await fileSize(join(dir, `${source.fileName}${PARTIAL_DOWNLOAD_SUFFIX}`))) !== null;
  logger.info(
    { uri: source.display, dir, fileName: source.fileName, resuming },
    resuming ? "resuming an interrupted model download" : "downloading the model",
  );
  if (source.fileUrl !== null) await probeFileUrl(source, source.fileUrl, dir, deps);

  let stalled = false;
  const interrupt = new AbortController();
  const watchdog = createStallWatchdog(timeoutMs, () => {
    stalled = true;
    interrupt.abort(new Error("download stalled"));
  });
  const creation = createModelDownloader({
    modelUri: source.downloaderUri,
    dirPath: dir,
    fileName: source.fileName,
    headers: source.headers,
    endpoints: { huggingFace: source.huggingFaceEndpoint },
    tokens: { huggingFace: deps.env.HF_TOKEN },
    deleteTempFileOnCancel: false,
    skipExisting: true,
    onProgress: ({ downloadedSize }) => {
      watchdog.feed(downloadedSize);
      progress.update(downloadedSize);
    },
  });
  // Offline, createModelDownloader() can hang for minutes and takes no signal (NODE-LLAMA-CPP.md trap 5).
  const created = await within(creation, timeoutMs, signal).catch((err: unknown) => {
    throw downloadFailed(source, dir, describeCause(err), err);
  });
  if (created.outcome !== "settled") {
    // Whenever it does finish, release its file handle instead of leaking it.
    creation
      .then(
        (late) => late.cancel({ deleteTempFile: false }),
        () => undefined,
      )
      .catch(() => undefined);
    if (created.outcome === "aborted") throw cancelled(source);
    throw downloadFailed(
      source,
      dir,
      `the server did not start the download within ${timeoutMs} ms (model.downloadTimeoutMs)`,
    );
  }
  const downloader = created.value;

  const forwardAbort = () => interrupt.abort(signal.reason);
  if (signal.aborted) forwardAbort();
  else signal.addEventListener("abort", forwardAbort, { once: true });
  progress.start(source.fileName, downloader.totalSize);
  progress.update(downloader.downloadedSize);
  watchdog.start();
  try {
    await runDownload(downloader, interrupt.signal);
  } catch (err) {
    if (!signal.aborted && !stalled) throw downloadFailed(source, dir, describeCause(err), err);
  } finally {
    watchdog.stop();
    progress.stop();
    signal.removeEventListener("abort", forwardAbort);
  }
  // download() resolves with the path even after an abort, with no file there (trap 5).
  if (signal.aborted) throw cancelled(source);
  if (stalled) {
    throw downloadFailed(
      source,
      dir,
      `no data for ${timeoutMs} ms (model.downloadTimeoutMs) after ${watchdog.mostBytes} of ${downloader.totalSize} bytes; the partial file is kept and the next attempt resumes it`,
    );
  }
  if ((await fileSize(downloader.entrypointFilePath)) === null) {
    throw downloadFailed(source, dir, "the downloader finished without writing the file");
  }
}

/**
 * After an abort, ipull's download() only settles once its retry loops give up (minutes when the
 * server is gone): stop waiting at the abort, close the partial file, and leave the rest behind.
 */
async function runDownload(downloader: ModelDownloader, signal: AbortSignal): Promise<void> {
  const finished = downloader.download({ signal });
  finished.catch(() => undefined);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<"aborted">((done) => {
    onAbort = () => done("aborted");
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const first = await Promise.race([finished.then(() => "finished" as const), aborted]);
    if (first === "finished") return;
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
  }
  await within(
    downloader.cancel({ deleteTempFile: false }).catch(() => undefined),
    CANCEL_GRACE_MS,
  );
}
