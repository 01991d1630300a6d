import { afterEach, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { type JsonObject, MqttProbe } from "../helpers/mqtt-probe.js";
import { MiB, rssBytes } from "../helpers/process-stats.js";
import { mosquittoPath, startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "limits";
const REQ = `tinyllama/${NODE}/request`;
const STATUS = `tinyllama/${NODE}/status`;
const reply = (id: string) => `tinyllama/${NODE}/response/${id}`;

// Mosquitto's max_packet_size: a client that publishes a larger packet is disconnected.
describe.skipIf(mosquittoPath() === null)("a broker's maximum packet size", () => {
  let broker: TestBroker | undefined;
  let probe: MqttProbe | undefined;
  let daemon: DaemonProcess | undefined;

  afterEach(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
    daemon = probe = broker = undefined;
  });

  /** maxPacketSize 0: the broker's own limit (none). */
  async function start(maxPacketSize: number, flags: string[], probeVersion: 4 | 5 = 5) {
    broker = await startTestBroker(maxPacketSize > 0 ? { maxPacketSize } : {});
    probe = await MqttProbe.connect(broker.url, { protocolVersion: probeVersion });
    await probe.subscribe(`tinyllama/${NODE}/#`, "limits/#");
    daemon = startTinyDaemon(broker.url, NODE, flags);
    await probe.waitForJson(STATUS, (s) => s.state === "online", 60_000);
    return { probe, daemon };
  }

  const lastStatus = (p: MqttProbe) => (p.on(STATUS).at(-1)?.json as JsonObject | undefined)?.state;

  it("refuses oversized correlation data with a short error and stays online for the next request", async () => {
    const { probe } = await start(20_000, []);
    await probe.publish(
      REQ,
      { id: "big-corr", prompt: "hello", max_tokens: 4 },
      {
        qos: 1,
        properties: { responseTopic: "limits/replies/big", correlationData: Buffer.alloc(19_700, 0x61) },
      },
    );
    const refused = await probe.waitForJson("limits/replies/big");
    expect(refused.json).toMatchObject({
      id: "big-corr",
      status: "error",
      error: { code: "invalid_request" },
    });
    expect(refused.correlationData).toBeUndefined();

    // A correlation id of ordinary size still rides on every message of the reply.
    const corr = Buffer.from("c".repeat(200));
    await probe.publish(
      REQ,
      { id: "small-corr", prompt: "hello", max_tokens: 4 },
      { qos: 1, properties: { responseTopic: "limits/replies/small", correlationData: corr } },
    );
    const answered = await probe.waitForJson("limits/replies/small");
    expect(answered.json).toMatchObject({ id: "small-corr", status: "ok" });
    expect(answered.correlationData?.equals(corr)).toBe(true);

    await probe.publish(REQ, { id: "after-big", prompt: "hello", max_tokens: 4 });
    expect((await probe.waitForJson(reply("after-big"))).json).toMatchObject({ status: "ok" });
    expect(lastStatus(probe)).toBe("online");
  });

  it("comes online under a 1200-byte limit, replaces a final that does not fit with payload_too_large", async () => {
    const { probe, daemon } = await start(1200, ["--homeassistant.enabled", "true"]);
    await probe.publish(REQ, { id: "long", prompt: "tell a story", max_tokens: 600 });
    const long = await probe.waitForJson(reply("long"));
    expect(long.json).toMatchObject({ id: "long", status: "error", error: { code: "payload_too_large" } });
    // Stream chunks that fit went out; the node stays connected.
    expect(probe.on(`${reply("long")}/stream`).length).toBeGreaterThan(0);
    await probe.publish(REQ, { id: "short", prompt: "hi", max_tokens: 2 });
    expect((await probe.waitForJson(reply("short"))).json).toMatchObject({ id: "short", status: "ok" });
    expect(lastStatus(probe)).toBe("online");
    // The cause is in the log, not a bare "read ECONNRESET".
    const warned = daemon.logs().map((l) => String(l.msg));
    expect(warned.some((m) => m.includes("larger than the broker's maximum packet size"))).toBe(true);
  });

  it("keeps an MQTT 3.1.1 connection within mqtt.maxPacketBytes", async () => {
    const { probe } = await start(
      1200,
      ["--mqtt.protocolVersion", "4", "--mqtt.maxPacketBytes", "1200", "--mqtt.reconnectMinMs", "200"],
      4,
    );
    await probe.publish(REQ, { id: "long-v4", prompt: "tell a story", max_tokens: 600 });
    const long = await probe.waitForJson(reply("long-v4"));
    expect(long.json).toMatchObject({ status: "error", error: { code: "payload_too_large" } });
    await probe.publish(REQ, { id: "short-v4", prompt: "hi", max_tokens: 2 });
    expect((await probe.waitForJson(reply("short-v4"))).json).toMatchObject({ status: "ok" });
    expect(lastStatus(probe)).toBe("online");
  });

  it("announces its own maximum packet size: a huge request never reaches the daemon's memory", async () => {
    const { probe, daemon } = await start(0, []);
    await probe.publish(REQ, { id: "warm", prompt: "hi", max_tokens: 2 });
    await probe.waitForJson(reply("warm"));
    const before = rssBytes(daemon.child.pid!);
    const huge = JSON.stringify({ id: "huge", prompt: "x".repeat(60 * MiB) });
    await probe.publish(REQ, huge);
    await probe.publish(REQ, { id: "after-huge", prompt: "hi", max_tokens: 2 });
    expect((await probe.waitForJson(reply("after-huge"))).json).toMatchObject({ status: "ok" });
    expect(rssBytes(daemon.child.pid!) - before).toBeLessThan(30 * MiB);
    expect(lastStatus(probe)).toBe("online");
  });

  it("answers a request just over the payload limit on its own reply topic, with its id", async () => {
    const { probe } = await start(0, []);
    await probe.publish(REQ, {
      id: "too-big",
      reply_to: "limits/too-big",
      prompt: "x".repeat(70_000),
    });
    const refused = await probe.waitForJson("limits/too-big");
    expect(refused.json).toMatchObject({
      id: "too-big",
      status: "error",
      error: { code: "payload_too_large" },
    });
  });
});
