import { statSync } from "node:fs";
import type { AppConfig } from "../config/app-config.js";
import { fileDigest, ollamaModelName, type ServedModel } from "../http/ollama-api.js";
import { OllamaServer } from "../http/ollama-server.js";
import type { Component } from "../lifecycle/component.js";
import type { Logger } from "../logging/logger.js";
import type { RequestService } from "../serving/request-service.js";
import type { Model } from "./model.js";

/**
 * The optional Ollama-compatible HTTP API (`http.enabled`), on the same request service as MQTT.
 * Started once the node serves; stopped first, so open HTTP requests are cancelled before the drain.
 */
export class HttpApi implements Component {
  readonly name = "http-api";
  private readonly deps: { config: AppConfig; logger: Logger; service: RequestService; model: Model };
  private server: OllamaServer | undefined;
  private served: ServedModel | undefined;

  constructor(deps: HttpApi["deps"]) {
    this.deps = deps;
  }

  async start(): Promise<void> {
    const { config, logger, service } = this.deps;
    if (!config.http.enabled) return;
    this.server = new OllamaServer({
      logger: logger.child({ component: "http" }),
      host: config.http.host,
      port: config.http.port,
      limits: config.requests,
      requests: service,
      model: () => this.servedModel(),
    });
    await this.server.start();
  }

  /** The loaded model as Ollama clients see it. */
  private servedModel(): ServedModel {
    if (this.served) return this.served;
    const { runtime, fileName } = this.deps.model;
    const modified = statSync(runtime.modelPath).mtime;
    const sha256 = this.deps.config.model.sha256.toLowerCase();
    this.served = {
      name: ollamaModelName(fileName),
      fileName,
      sizeBytes: runtime.header.fileBytes,
      modifiedAt: modified,
      // The configured checksum when there is one; else an id of this file (name, size, time).
      digest: sha256 || fileDigest(fileName, runtime.header.fileBytes, modified),
      architecture: runtime.header.architecture,
      quantization: runtime.header.quantization,
      contextLength: runtime.plan.contextSize,
    };
    return this.served;
  }

  stop(): Promise<void> | undefined {
    return this.server?.stop();
  }
}
