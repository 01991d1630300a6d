import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * How the server behaves:
 * - normal: serves files, with byte ranges;
 * - cut: serves ranges that start at byte 0 in full; the first other range is cut halfway through,
 *   and from then on every other range request loses its connection at once (the link went down);
 * - slow: sends 64 KiB every 20 ms;
 * - hang-get: answers HEAD, never answers GET.
 */
export type FileServerMode = "normal" | "cut" | "slow" | "hang-get";

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | undefined;
  status: number;
}

export interface TestFileServer {
  /** http://127.0.0.1:PORT */
  origin: string;
  requests: LoggedRequest[];
  setMode(mode: FileServerMode): void;
  close(): Promise<void>;
}

const SLOW_SLICE_BYTES = 64 * 1024;
const SLOW_INTERVAL_MS = 20;

function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  const match = /^bytes=(\d+)-(\d*)$/.exec(header ?? "");
  if (!match) return null;
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  return start <= end ? { start, end } : null;
}

/** Serves `files` (path → bytes, path without the query string) on 127.0.0.1 with an OS-chosen port. */
export async function startTestFileServer(files: ReadonlyMap<string, Buffer>): Promise<TestFileServer> {
  let mode: FileServerMode = "normal";
  let linkDown = false;
  const requests: LoggedRequest[] = [];

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const range = req.headers.range;
    const entry: LoggedRequest = { method: req.method ?? "", path, range, status: 0 };
    requests.push(entry);
    const body = files.get(path);
    if (!body) {
      entry.status = 404;
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    if (req.method === "GET" && mode === "hang-get") return;
    const parsed = parseRange(range, body.length);
    if (range !== undefined && parsed === null) {
      entry.status = 416;
      res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      return;
    }
    const { start, end } = parsed ?? { start: 0, end: body.length - 1 };
    const slice = body.subarray(start, end + 1);
    if (mode === "cut" && parsed !== null && start > 0 && linkDown) {
      entry.status = -1;
      req.socket.destroy();
      return;
    }
    entry.status = parsed ? 206 : 200;
    res.writeHead(entry.status, {
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      "content-length": String(slice.length),
      ...(parsed ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {}),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    if (mode === "cut" && parsed !== null && start > 0) {
      linkDown = true;
      res.write(slice.subarray(0, Math.floor(slice.length / 2)), () => req.socket.destroy());
      return;
    }
    if (mode === "slow") {
      sendSlowly(res, slice);
      return;
    }
    res.end(slice);
  };

  const server: Server = createServer(handle);
  // closeAllConnections() misses sockets not yet parsed as HTTP: track every one.
  const sockets = new Set<Socket>();
  let closing = false;
  server.on("connection", (socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    setMode(next) {
      mode = next;
      linkDown = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function sendSlowly(res: ServerResponse, slice: Buffer): void {
  let offset = 0;
  const timer = setInterval(() => {
    if (res.destroyed || offset >= slice.length) {
      clearInterval(timer);
      if (!res.destroyed) res.end();
      return;
    }
    res.write(slice.subarray(offset, offset + SLOW_SLICE_BYTES));
    offset += SLOW_SLICE_BYTES;
  }, SLOW_INTERVAL_MS);
  res.on("close", () => clearInterval(timer));
}
