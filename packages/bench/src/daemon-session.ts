import { EdgeClient, type RequestRun, type RequestTarget } from "tinyllama-edge/client/edge-client.js";
import type { MqttConfig } from "tinyllama-edge/config/app-config.js";
import {
  type DaemonChild,
  type DaemonChildOptions,
  startDaemonChild,
  waitUntilOnline,
} from "./daemon-child.js";

/** How long one benchmark request may take on the daemon, and how long the client waits for it. */
const REQUEST_TIMEOUT_MS = 300_000;
const ONLINE_TIMEOUT_MS = 180_000;

/** A running daemon child and a client that drives it over MQTT. */
export interface DaemonSession {
  daemon: DaemonChild;
  /** Sends one request and resolves with its run; an error reply rejects. */
  request(body: Record<string, unknown>): Promise<OkRun>;
}

export type OkRun = RequestRun & { final: Extract<RequestRun["final"], { status: "ok" }> };

export interface DaemonSessionOptions {
  child: DaemonChildOptions;
  /** The configured MQTT settings (base topic, timeouts); credentials and TLS are left out. */
  mqtt: MqttConfig;
  signal: AbortSignal;
}

/** Starts the built daemon, waits until it is online, runs `use`, and always stops it again. */
export async function withDaemon<T>(
  options: DaemonSessionOptions,
  use: (session: DaemonSession) => Promise<T>,
): Promise<T> {
  const daemon = startDaemonChild(options.child);
  let client: EdgeClient | undefined;
  try {
    // The bench broker is local and anonymous: the configured credentials and TLS are for another.
    const mqtt: MqttConfig = {
      ...options.mqtt,
      protocolVersion: options.child.protocolVersion,
      username: "",
      password: "",
      tls: { ca: "", cert: "", key: "", rejectUnauthorized: true },
    };
    client = await EdgeClient.connect(mqtt, options.child.nodeId, options.child.brokerUrl);
    await waitUntilOnline(client, daemon, ONLINE_TIMEOUT_MS, options.signal);
    const connected = client;
    const target: RequestTarget = { kind: "node", nodeId: options.child.nodeId };
    return await use({
      daemon,
      async request(body) {
        options.signal.throwIfAborted();
        const run = await connected.send(
          target,
          { timeout_ms: REQUEST_TIMEOUT_MS, ...body },
          { waitMs: REQUEST_TIMEOUT_MS + 30_000, signal: options.signal },
        );
        if (run.final.status === "error") {
          const { code, message } = run.final.error;
          throw new Error(`the daemon answered ${code}: ${message}`);
        }
        return run as OkRun;
      },
    });
  } finally {
    await client?.close().catch(() => undefined);
    await daemon.stop();
  }
}
