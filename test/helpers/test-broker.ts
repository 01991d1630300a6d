import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedBroker } from "../../src/mqtt/embedded-broker.js";
import { findMosquitto, waitForPort } from "../../src/mqtt/mosquitto-binary.js";
import { freePort } from "../../src/util/free-port.js";

export interface TestBroker {
  kind: "mosquitto" | "aedes";
  url: string;
  port: number;
  /** MQTT 5 and shared subscriptions: mosquitto has them, aedes does not. */
  supportsMqtt5: boolean;
  /** Stops and starts the broker again on the same port (mosquitto keeps its persistence file). */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface TestBrokerOptions {
  /** Extra mosquitto.conf lines (ignored by aedes). */
  extraConfig?: string[];
  /** Keep sessions and queued messages in a file across restarts. */
  persistence?: boolean;
  /** Mosquitto's max_packet_size: larger packets cost the sender its connection (MQTT 5 CONNACK announces it). */
  maxPacketSize?: number;
  /** A port chosen beforehand (e.g. one a daemon was told before any broker listened); free by default. */
  port?: number;
}

/** The installed mosquitto binary, or null (tests that need it are skipped then). */
export const mosquittoPath = findMosquitto;

/** A broker of the test's own on a free port: mosquitto where installed, the embedded aedes otherwise. */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const port = options.port ?? (await freePort());
  const binary = mosquittoPath();
  if (!binary) {
    const broker = new EmbeddedBroker();
    await broker.start(port);
    let current = broker;
    return {
      kind: "aedes",
      url: `mqtt://127.0.0.1:${port}`,
      port,
      supportsMqtt5: false,
      async restart(downMs = 500) {
        await current.stop();
        await new Promise((resolve) => setTimeout(resolve, downMs));
        current = new EmbeddedBroker();
        await current.start(port);
      },
      stop: () => current.stop(),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), "tle-broker-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      options.persistence
        ? `persistence true\npersistence_location ${dir}/\nautosave_interval 1`
        : "persistence false",
      "log_dest none",
      "set_tcp_nodelay true",
      "max_queued_messages 100000",
      ...(options.maxPacketSize === undefined ? [] : [`max_packet_size ${options.maxPacketSize}`]),
      ...(options.extraConfig ?? []),
      "",
    ].join("\n"),
  );
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(binary, ["-c", conf], { stdio: "ignore" });
    await waitForPort(port, 5000);
  };
  const halt = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once("exit", () => resolve());
      running.kill("SIGTERM");
    });
  };
  await launch();
  return {
    kind: "mosquitto",
    url: `mqtt://127.0.0.1:${port}`,
    port,
    supportsMqtt5: true,
    async restart(downMs = 500) {
      await halt();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await launch();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
