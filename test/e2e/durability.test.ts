import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { mosquittoPath, startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "durable";
const REQ = `tinyllama/${NODE}/request`;
const reply = (id: string) => `tinyllama/${NODE}/response/${id}`;

// Persistent sessions and broker restarts need a real Mosquitto with persistence.
describe.skipIf(mosquittoPath() === null)("MQTT durability: persistent session and broker restarts", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  let daemon: DaemonProcess | undefined;

  const startDaemon = () =>
    startTinyDaemon(broker.url, NODE, [
      "--mqtt.sessionExpirySeconds",
      "600",
      "--mqtt.reconnectMinMs",
      "200",
      "--mqtt.reconnectMaxMs",
      "1000",
    ]);
  const online = () =>
    probe.waitFor(
      (messages) => {
        const last = messages.filter((m) => m.topic === `tinyllama/${NODE}/status`).at(-1);
        return (last?.json as { state?: string } | undefined)?.state === "online" ? last : undefined;
      },
      60_000,
      "online",
    );

  beforeAll(async () => {
    broker = await startTestBroker({ persistence: true });
    probe = await MqttProbe.connect(broker.url, { clientId: "durability-probe", persistent: true });
    await probe.subscribe(`tinyllama/${NODE}/#`);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("answers a request sent while the daemon was stopped", async () => {
    daemon = startDaemon();
    await online();
    expect(await daemon.stop("SIGTERM")).toBe(0);
    await probe.publish(REQ, { id: "while-down", prompt: "hello", max_tokens: 4 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(probe.on(reply("while-down"))).toHaveLength(0);
    daemon = startDaemon();
    const final = await probe.waitForJson(reply("while-down"), () => true, 60_000);
    expect(final.json).toMatchObject({ id: "while-down", status: "ok" });
  });

  it("loses no final when the broker restarts mid-generation, and announces online again", async () => {
    if (!daemon || daemon.child.exitCode !== null) daemon = startDaemon();
    await online();
    const onlineBefore = probe.on(`tinyllama/${NODE}/status`).length;
    await probe.publish(REQ, { id: "across-restart", prompt: "story", max_tokens: 2000, timeout_ms: 60_000 });
    await probe.waitFor(
      (m) => m.some((x) => x.topic === `${reply("across-restart")}/stream`),
      30_000,
      "first chunk",
    );
    await broker.restart(800);
    // The probe reconnects on its own; its persistent session keeps the subscription.
    const final = await probe.waitForJson(reply("across-restart"), () => true, 60_000);
    expect(final.json).toMatchObject({ id: "across-restart", status: "ok" });
    await probe.waitFor(
      (m) =>
        m
          .slice(onlineBefore)
          .some(
            (x) => x.topic === `tinyllama/${NODE}/status` && (x.json as { state: string }).state === "online",
          ),
      30_000,
      "online again",
    );
    expect(probe.on(reply("across-restart"))).toHaveLength(1);
    expect(daemon.logs().some((l) => l.msg === "MQTT connected" && l.sessionPresent === true)).toBe(true);
  });
});
