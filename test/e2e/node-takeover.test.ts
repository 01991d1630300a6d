import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { mosquittoPath, startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "twin";
const FLAGS = ["--mqtt.reconnectMinMs", "200", "--mqtt.reconnectMaxMs", "500"];

// MQTT 5 brokers tell the displaced connection why (DISCONNECT 0x8E, session taken over).
describe.skipIf(mosquittoPath() === null)("two daemons with the same node.id", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  const daemons: DaemonProcess[] = [];

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url);
    await probe.subscribe(`tinyllama/${NODE}/status`);
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop("SIGKILL")));
    await probe?.close();
    await broker?.stop();
  });

  it("stop with a configuration error that names the cause instead of knocking each other off forever", async () => {
    daemons.push(startTinyDaemon(broker.url, NODE, FLAGS));
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
    daemons.push(startTinyDaemon(broker.url, NODE, FLAGS));
    const first = await Promise.race(daemons.map((d) => d.exited.then((code) => ({ daemon: d, code })))).then(
      (exit) => exit,
      () => undefined,
    );
    expect(first?.code).toBe(2);
    const messages = first!.daemon.logs().map((line) => String(line.msg));
    expect(messages.some((m) => m.includes("same node.id"))).toBe(true);
  }, 90_000);
});
