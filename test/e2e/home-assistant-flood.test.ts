import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "haflood";
const REQ = `tinyllama/${NODE}/request`;

describe("a flood of homeassistant/status online", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  let flooder: MqttProbe;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url);
    flooder = await MqttProbe.connect(broker.url);
    await probe.subscribe(`tinyllama/${NODE}/#`, "homeassistant/+/+/config");
    daemon = startTinyDaemon(broker.url, NODE, [
      "--homeassistant.enabled",
      "true",
      "--homeassistant.republishMinSeconds",
      "2",
    ]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await flooder?.close();
    await probe?.close();
    await broker?.stop();
  });

  const configCount = () => probe.messages.filter((m) => m.topic.endsWith("/config")).length;

  it("republishes discovery once, not once per announcement, and keeps answering", async () => {
    const entities = await probe.waitFor(() => configCount() || undefined, 10_000, "discovery");
    // Past the period of the first publish: the next announcement republishes at once.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const before = configCount();
    await Promise.all(
      Array.from({ length: 2000 }, () => flooder.publish("homeassistant/status", "online", { qos: 0 })),
    );
    const sentAt = performance.now();
    await probe.publish(REQ, { id: "during-flood", prompt: "hi", max_tokens: 4 });
    await probe.waitForJson(`tinyllama/${NODE}/response/during-flood`, (r) => r.status === "ok", 30_000);
    const waitedMs = performance.now() - sentAt;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // One republish at once and one folding the rest at the end of the 2 s period, not 2000.
    expect(configCount() - before).toBeGreaterThanOrEqual(entities);
    expect(configCount() - before).toBeLessThanOrEqual(2 * entities);
    expect(waitedMs).toBeLessThan(5000);
  });
});
