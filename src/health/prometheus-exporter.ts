/**
 * Optional Prometheus endpoint (`metrics.http.port`, off by default): the health figures as
 * gauges and counters named `tinyllama_edge_*`, read fresh on every scrape. Each exporter owns
 * its registry, so two daemons in one process (tests) never share metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Registry } from "prom-client";
import type { Logger } from "../logging/logger.js";
import { closeServer, listenOn } from "../util/http-listener.js";
import type { HealthPayload, ThrottlingPayload } from "./health-reporter.js";

const PREFIX = "tinyllama_edge_";

export interface PrometheusExporterDeps {
  logger: Logger;
  /** `metrics.http.port`; 0 leaves the endpoint off. */
  port: number;
  host: string;
  /** The same figures the health topic carries (HealthReporter.payload). */
  readHealth: () => Promise<HealthPayload>;
}

type NullableGauge = Gauge<string>;

const THROTTLING_FLAGS: Array<keyof Omit<ThrottlingPayload, "raw">> = [
  "under_voltage",
  "frequency_capped",
  "throttled",
  "soft_temperature_limit",
  "under_voltage_occurred",
  "frequency_capped_occurred",
  "throttled_occurred",
  "soft_temperature_limit_occurred",
];

/** Gauges with no value are left out of the exposition rather than shown as 0. */
function setOrRemove(gauge: NullableGauge, value: number | null): void {
  if (value === null) gauge.remove();
  else gauge.set(value);
}

/** The health figures as Prometheus metrics in a registry of their own. */
export class HealthMetrics {
  readonly registry = new Registry();
  private readonly gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name: PREFIX + name, help, labelNames, registers: [this.registry] });
  private readonly counter = (name: string, help: string) =>
    new Counter({ name: PREFIX + name, help, registers: [this.registry] });

  private readonly modelState = this.gauge("model_state", "1 for the current model state.", ["state"]);
  private readonly cpuLoad = this.gauge(
    "cpu_load_percent",
    "Busy share of all cores since the previous sample.",
  );
  private readonly loadAverage = this.gauge("load_average", "System load average.", ["period"]);
  private readonly temperature = this.gauge("cpu_temperature_celsius", "SoC temperature.");
  private readonly throttling = this.gauge(
    "firmware_throttling",
    "Raspberry Pi firmware throttling flags (1 = set); *_occurred since boot.",
    ["flag"],
  );
  private readonly memoryTotal = this.gauge("memory_total_bytes", "RAM of the machine.");
  private readonly memoryAvailable = this.gauge(
    "memory_available_bytes",
    "RAM the kernel could hand out now.",
  );
  private readonly rss = this.gauge("process_resident_memory_bytes", "Resident memory of the daemon.");
  private readonly uptime = this.gauge("uptime_seconds", "Seconds the daemon has run.");
  private readonly queueDepth = this.gauge("queue_depth", "Requests waiting for a slot.");
  private readonly active = this.gauge("active_requests", "Requests generating now.");
  private readonly requests = this.counter("requests_total", "Requests answered.");
  private readonly errors = this.counter("request_errors_total", "Requests answered with an error.");
  private readonly promptTokens = this.counter("prompt_tokens_total", "Prompt tokens processed.");
  private readonly completionTokens = this.counter("completion_tokens_total", "Tokens generated.");
  private readonly tokensPerSecond = this.gauge("tokens_per_second", "Generation speed.", ["window"]);
  private readonly ttft = this.gauge(
    "time_to_first_token_seconds",
    "Time to first token of the last request.",
  );
  private readonly threads = this.gauge("threads", "Inference threads.", ["kind"]);
  private readonly thermalThrottled = this.gauge(
    "thermal_throttled",
    "1 while the thermal guard runs inference on fewer threads.",
  );
  private readonly counted = new Map<Counter<string>, number>();

  /** Sets every metric from one health payload. */
  update(health: HealthPayload): void {
    for (const state of ["loading", "online", "offline"]) {
      this.modelState.set({ state }, health.state === state ? 1 : 0);
    }
    setOrRemove(this.cpuLoad, health.cpu_load_percent);
    const [one, five, fifteen] = health.load_avg;
    this.loadAverage.set({ period: "1m" }, one);
    this.loadAverage.set({ period: "5m" }, five);
    this.loadAverage.set({ period: "15m" }, fifteen);
    setOrRemove(this.temperature, health.cpu_temp_c);
    this.throttling.reset();
    if (health.throttling) {
      for (const flag of THROTTLING_FLAGS) this.throttling.set({ flag }, health.throttling[flag] ? 1 : 0);
    }
    setOrRemove(this.memoryTotal, health.memory.total_bytes);
    setOrRemove(this.memoryAvailable, health.memory.available_bytes);
    this.rss.set(health.process_rss_bytes);
    this.uptime.set(health.uptime_s);
    this.queueDepth.set(health.queue_depth);
    this.active.set(health.active_requests);
    this.advance(this.requests, health.totals.requests);
    this.advance(this.errors, health.totals.errors);
    this.advance(this.promptTokens, health.totals.prompt_tokens);
    this.advance(this.completionTokens, health.totals.completion_tokens);
    this.tokensPerSecond.reset();
    if (health.tokens_per_second.last !== null) {
      this.tokensPerSecond.set({ window: "last" }, health.tokens_per_second.last);
    }
    if (health.tokens_per_second.average !== null) {
      this.tokensPerSecond.set({ window: "average" }, health.tokens_per_second.average);
    }
    setOrRemove(this.ttft, health.ttft_ms_last === null ? null : health.ttft_ms_last / 1000);
    this.threads.reset();
    if (health.threads.configured !== null)
      this.threads.set({ kind: "configured" }, health.threads.configured);
    if (health.threads.current !== null) this.threads.set({ kind: "current" }, health.threads.current);
    this.thermalThrottled.set(health.thermal.state === "throttled" ? 1 : 0);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The serving counters are running totals; a counter only moves forward by their difference. */
  private advance(counter: Counter<string>, total: number): void {
    const previous = this.counted.get(counter) ?? 0;
    if (total < previous) counter.reset();
    const delta = total < previous ? total : total - previous;
    if (delta > 0) counter.inc(delta);
    this.counted.set(counter, total);
  }
}

export class PrometheusExporter {
  private readonly deps: PrometheusExporterDeps;
  private readonly metrics = new HealthMetrics();
  private server: Server | undefined;

  constructor(deps: PrometheusExporterDeps) {
    this.deps = deps;
  }

  /** The address it listens on; null while off. */
  get address(): { host: string; port: number } | null {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address ? { host: address.address, port: address.port } : null;
  }

  /** The exposition text now (what GET /metrics returns). */
  async render(): Promise<string> {
    this.metrics.update(await this.deps.readHealth());
    return this.metrics.render();
  }

  async start(): Promise<void> {
    const { port, host, logger } = this.deps;
    if (port === 0 || this.server) return;
    const server = createServer((request, response) => {
      this.handle(request, response).catch((err: unknown) => {
        logger.warn({ err }, "serving /metrics failed");
        if (!response.headersSent) response.writeHead(500);
        response.end();
      });
    });
    await listenOn(server, host, port, "metrics endpoint");
    server.on("error", (err) => logger.warn({ err }, "metrics endpoint error"));
    this.server = server;
    logger.info({ url: `http://${host}:${port}/metrics` }, "Prometheus metrics endpoint listening");
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await closeServer(server);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const body = await this.render();
    response.writeHead(200, { "content-type": this.metrics.registry.contentType });
    response.end(request.method === "HEAD" ? undefined : body);
  }
}
