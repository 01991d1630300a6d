/**
 * The optional Ollama-compatible HTTP endpoint (`http.enabled`). Requests go through the same
 * RequestService as MQTT requests (one queue, one set of limits, senders take turns); a client
 * that disconnects cancels its request.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RequestLimitsConfig } from "../config/app-config.js";
import type { GenerationRequest, GenerationResult } from "../core/generation.js";
import type { EdgeError } from "../errors.js";
import type { Logger } from "../logging/logger.js";
import { createRequestValidator } from "../mqtt/messages.js";
import type { AnswerSink } from "../serving/request-service.js";
import { closeServer, listenOn } from "../util/http-listener.js";
import {
  type ApiKind,
  chunkLine,
  failureOf,
  finalLine,
  isServedModel,
  loadLine,
  OLLAMA_API_VERSION,
  type OllamaFailure,
  psResponse,
  readCall,
  type ServedModel,
  showResponse,
  tagsResponse,
} from "./ollama-api.js";

export interface OllamaServerDeps {
  logger: Logger;
  host: string;
  port: number;
  limits: RequestLimitsConfig;
  requests: {
    submit(request: GenerationRequest, sink: AnswerSink, from: { sender: string }): void;
    cancel(id: string, requester: string): boolean;
  };
  /** The served model; null while it loads. */
  model: () => ServedModel | null;
}

class BodyError extends Error {
  constructor(readonly failure: OllamaFailure) {
    super(failure.error);
  }
}

export class OllamaServer {
  private readonly deps: OllamaServerDeps;
  private readonly validate: ReturnType<typeof createRequestValidator>;
  private server: Server | undefined;

  constructor(deps: OllamaServerDeps) {
    this.deps = deps;
    this.validate = createRequestValidator({ limits: deps.limits, newId: () => newRequestId() });
  }

  /** The address it listens on; null while stopped. */
  get address(): { host: string; port: number } | null {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address ? { host: address.address, port: address.port } : null;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const { host, port, logger } = this.deps;
    const server = createServer((request, response) => {
      this.handle(request, response).catch((err: unknown) => {
        logger.error({ err }, "serving an HTTP request failed");
        if (!response.headersSent) sendJson(response, 500, { error: "internal error" });
        else response.end();
      });
    });
    await listenOn(server, host, port, "Ollama-compatible API");
    server.on("error", (err) => logger.warn({ err }, "HTTP endpoint error"));
    this.server = server;
    const shown = this.address!;
    logger.info({ url: `http://${host}:${shown.port}` }, "Ollama-compatible API listening");
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await closeServer(server);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? "/").split("?")[0]!.replace(/\/+$/, "") || "/";
    const method = request.method ?? "GET";
    const route = ROUTES[path];
    if (!route) {
      response.writeHead(404, { "content-type": "text/plain" }).end("404 page not found");
      return;
    }
    const allowed =
      route === "root" || route === "version" || route === "tags" || route === "ps" ? "GET" : "POST";
    if (method !== allowed && !(allowed === "GET" && method === "HEAD")) {
      response.writeHead(405, { allow: allowed, "content-type": "text/plain" }).end("405 method not allowed");
      return;
    }
    const model = this.deps.model();
    switch (route) {
      case "root":
        response.writeHead(200, { "content-type": "text/plain; charset=utf-8" }).end("Ollama is running");
        return;
      case "version":
        sendJson(response, 200, { version: OLLAMA_API_VERSION });
        return;
      case "tags":
        sendJson(response, 200, tagsResponse(model));
        return;
      case "ps":
        sendJson(response, 200, psResponse(model));
        return;
    }
    let body: unknown;
    try {
      body = await this.readJson(request);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      this.refuse(response, path, err.failure);
      return;
    }
    if (route === "show") {
      const record = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
      const name = record.model ?? record.name;
      if (typeof name !== "string" || name.length === 0) {
        this.refuse(response, path, { status: 400, error: "model is required" });
        return;
      }
      const found = this.findModel(model, name);
      if ("status" in found) this.refuse(response, path, found);
      else sendJson(response, 200, showResponse(found));
      return;
    }
    this.generate(route, body, request, response, model);
  }

  private findModel(model: ServedModel | null, name: string): ServedModel | OllamaFailure {
    if (!model) return { status: 503, error: "the model is still loading; try again shortly" };
    if (!isServedModel(model, name))
      return { status: 404, error: `model "${name}" not found, try pulling it first` };
    return model;
  }

  private generate(
    kind: ApiKind,
    body: unknown,
    request: IncomingMessage,
    response: ServerResponse,
    model: ServedModel | null,
  ): void {
    const path = `/api/${kind}`;
    const id = newRequestId();
    const read = readCall(kind, body, this.deps.limits, id);
    if (!read.ok) {
      this.refuse(response, path, read.failure);
      return;
    }
    const { call } = read;
    const found = this.findModel(model, call.model);
    if ("status" in found) {
      this.refuse(response, path, found);
      return;
    }
    // Answered with the client's own spelling of the model, as Ollama does.
    const name = call.model;
    if (call.load) {
      sendJson(response, 200, loadLine(kind, name));
      return;
    }
    const validated = this.validate(call.request);
    if (!validated.ok) {
      this.refuse(response, path, failureOf(validated.error));
      return;
    }
    let settled = false;
    const sink: AnswerSink = {
      chunk: (text) => {
        if (!call.stream || response.destroyed) return;
        if (!response.headersSent) response.writeHead(200, { "content-type": "application/x-ndjson" });
        response.write(`${JSON.stringify(chunkLine(kind, name, text))}\n`);
      },
      final: (result: GenerationResult) => {
        settled = true;
        if (response.destroyed) return;
        if (call.stream) {
          if (!response.headersSent) response.writeHead(200, { "content-type": "application/x-ndjson" });
          response.end(`${JSON.stringify(finalLine(kind, name, result, ""))}\n`);
        } else sendJson(response, 200, finalLine(kind, name, result, result.text));
      },
      error: (error: EdgeError) => {
        settled = true;
        if (response.destroyed) return;
        const failure = failureOf(error);
        // Mid-stream, Ollama reports an error as one more line; clients raise it.
        if (response.headersSent) response.end(`${JSON.stringify({ error: failure.error })}\n`);
        else this.refuse(response, path, failure);
      },
    };
    const sender = `http:${request.socket.remoteAddress ?? "unknown"}`;
    response.on("close", () => {
      if (settled) return;
      this.deps.logger.info({ reqId: id }, "HTTP client went away: request cancelled");
      this.deps.requests.cancel(id, sender);
    });
    this.deps.requests.submit(validated.request, sink, { sender });
  }

  private refuse(response: ServerResponse, path: string, failure: OllamaFailure): void {
    const level = failure.status >= 500 ? "warn" : "info";
    this.deps.logger[level]({ path, status: failure.status, reason: failure.error }, "HTTP request refused");
    sendJson(response, failure.status, { error: failure.error });
  }

  /** The body as JSON, within the request size limit. */
  private async readJson(request: IncomingMessage): Promise<unknown> {
    const limit = this.deps.limits.maxPayloadBytes;
    const declared = Number(request.headers["content-length"] ?? 0);
    if (declared > limit) throw tooLarge(declared, limit);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw tooLarge(size, limit);
      chunks.push(chunk);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    if (text.trim().length === 0) throw new BodyError({ status: 400, error: "missing request body" });
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new BodyError({ status: 400, error: `invalid JSON: ${(err as Error).message}` });
    }
  }
}

const ROUTES: Record<string, "root" | "version" | "tags" | "ps" | "show" | ApiKind> = {
  "/": "root",
  "/api/version": "version",
  "/api/tags": "tags",
  "/api/ps": "ps",
  "/api/show": "show",
  "/api/chat": "chat",
  "/api/generate": "generate",
};

function tooLarge(size: number, limit: number): BodyError {
  return new BodyError({ status: 413, error: `request body is ${size} bytes; the limit is ${limit}` });
}

function newRequestId(): string {
  return `http-${randomBytes(6).toString("hex")}`;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
}
