import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedBroker } from "tinyllama-edge/mqtt/embedded-broker.js";
import { findMosquitto, waitForPort } from "tinyllama-edge/mqtt/mosquitto-binary.js";
import { freePort } from "tinyllama-edge/util/free-port.js";

/**
 * A private broker on a free port for the benchmark and the soak script, so they never meet a real
 * installation's traffic.
 */
export interface BenchBroker {
  kind: "mosquitto" | "aedes";
  url: string;
  /** MQTT 5: mosquitto has it; the embedded aedes speaks 3.1.1 only. */
  protocolVersion: 4 | 5;
  /** Whether the broker sends small packets at once (mosquitto's set_tcp_nodelay). */
  tcpNoDelay: boolean;
  stop(): Promise<void>;
}

/**
 * "auto": mosquitto where installed (what a home runs), the embedded aedes broker otherwise;
 * "mosquitto" fails when it is not installed; "embedded" always takes aedes.
 */
export async function startBenchBroker(
  choice: "auto" | "mosquitto" | "embedded" = "auto",
): Promise<BenchBroker> {
  const port = await freePort();
  const binary = choice === "embedded" ? null : findMosquitto();
  if (choice === "mosquitto" && !binary) throw new Error("mosquitto is not installed");
  if (!binary) {
    const broker = new EmbeddedBroker();
    const url = await broker.start(port);
    return { kind: "aedes", url, protocolVersion: 4, tcpNoDelay: false, stop: () => broker.stop() };
  }
  const dir = await mkdtemp(join(tmpdir(), "tinyllama-bench-broker-"));
  const conf = join(dir, "mosquitto.conf");
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence false",
      "log_dest none",
      "max_queued_messages 10000",
      // Without it a stream chunk that follows a PUBACK waits for the client's delayed ACK (~40 ms
      // on Linux): that would be the broker's latency, not the daemon's.
      "set_tcp_nodelay true",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(binary, ["-c", conf], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await waitForPort(port, 5000);
  } catch (err) {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    kind: "mosquitto",
    url: `mqtt://127.0.0.1:${port}`,
    protocolVersion: 5,
    tcpNoDelay: true,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
