import { createConnection, createServer, type Server } from "node:net";
import { Aedes } from "aedes";

/** The default broker URL: only this one may be replaced by an embedded broker. */
export const DEFAULT_BROKER_URL = "mqtt://localhost:1883";

/** True when something accepts TCP connections on host:port within the timeout. */
export function isPortListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const finish = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

/**
 * A small MQTT 3.1.1 broker (aedes) bound to 127.0.0.1, for the quick start with no broker installed.
 * It has no shared subscriptions and no MQTT 5, so the daemon uses 3.1.1 and no pool with it.
 */
export class EmbeddedBroker {
  private broker: Aedes | undefined;
  private server: Server | undefined;

  async start(port: number, host = "127.0.0.1"): Promise<string> {
    const broker = await Aedes.createBroker();
    // Token chunks are small packets: without TCP_NODELAY, Nagle's algorithm holds them ~40 ms.
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      broker.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.broker = broker;
    this.server = server;
    const address = server.address();
    const actualPort = typeof address === "object" && address ? address.port : port;
    return `mqtt://${host}:${actualPort}`;
  }

  async stop(): Promise<void> {
    const { server, broker } = this;
    this.server = undefined;
    this.broker = undefined;
    // The broker first: it closes its client connections, which lets the server close.
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
