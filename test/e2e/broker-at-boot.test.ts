// An installed node at boot: the broker may come up after the daemon. The model loads meanwhile,
// no embedded broker takes the port, and replies stay under the node's base topic by default.
import { afterAll, describe, expect, it } from "vitest";
import { mayEmbedBroker } from "../../src/components/broker.js";
import { loadConfig } from "../../src/config/load-config.js";
import { freePort } from "../../src/util/free-port.js";
import { type DaemonProcess, startDaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { TINY_MODEL_PATH } from "../helpers/models.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const BASE = "tinyllama";
const NODE = "boot";

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("the embedded broker rule", () => {
  const rule = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const { config, setKeys } = loadConfig({ argv, env, defaultConfigPath: "/nonexistent" });
    return mayEmbedBroker({ config, env, urlConfigured: setKeys.has("mqtt.url") });
  };

  it("allows it only for the quick start in a checkout", () => {
    expect(rule([])).toBe(true);
    expect(rule([], { NODE_ENV: "production" })).toBe(false);
    // Spelled out at its default value, as config/production.json does: still ruled out.
    expect(rule(["--mqtt.url", "mqtt://localhost:1883"])).toBe(false);
    expect(rule([], { TINYLLAMA_EDGE_MQTT_URL: "mqtt://localhost:1883" })).toBe(false);
    expect(rule(["--mqtt.embeddedBroker", "never"])).toBe(false);
  });
});

describe("a broker that comes up after the daemon", () => {
  let daemon: DaemonProcess | undefined;
  let broker: TestBroker | undefined;
  let probe: MqttProbe | undefined;

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("loads the model meanwhile, then comes online, and keeps replies under its base topic", async () => {
    const port = await freePort();
    daemon = startDaemonProcess(
      [
        "--mqtt.url",
        `mqtt://127.0.0.1:${port}`,
        "--node.id",
        NODE,
        "--model.path",
        TINY_MODEL_PATH,
        "--runtime.threads",
        "1",
        "--homeassistant.enabled",
        "false",
        "--mqtt.reconnectMaxMs",
        "1000",
      ],
      { NODE_ENV: "production" },
    );
    const logged = (message: string) => daemon!.logs().some((line) => line.msg === message);
    await waitFor(() => logged("model loaded") || daemon!.child.exitCode !== null, 60_000, "model loaded");
    expect(logged("model loaded"), daemon.lines.join("\n")).toBe(true);
    expect(logged("MQTT connected")).toBe(false);
    expect(daemon.lines.join("\n")).not.toContain("embedded broker");

    broker = await startTestBroker({ port });
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    await probe.subscribe(`${BASE}/#`, "zigbee2mqtt/#");
    await probe.waitForJson(`${BASE}/${NODE}/status`, (s) => s.state === "online", 30_000);

    // A reply topic outside the base topic is refused by default, on the default reply topic.
    await probe.publish(`${BASE}/${NODE}/request`, {
      id: "z1",
      prompt: "hi",
      max_tokens: 2,
      reply_to: "zigbee2mqtt/bridge/request/restart",
    });
    const refused = await probe.waitForJson(`${BASE}/${NODE}/response/z1`);
    expect(refused.json).toMatchObject({ status: "error", error: { code: "invalid_request" } });
    expect(probe.on("zigbee2mqtt/bridge/request/restart")).toHaveLength(0);

    // One under the base topic is served.
    await probe.publish(`${BASE}/${NODE}/request`, {
      id: "z2",
      prompt: "hi",
      max_tokens: 2,
      reply_to: `${BASE}/replies/z2`,
    });
    const served = await probe.waitForJson(`${BASE}/replies/z2`);
    expect(served.json).toMatchObject({ id: "z2", status: "ok" });
  });
});

describe("the status of one start", () => {
  it("is loading once, then online", async () => {
    const broker = await startTestBroker();
    const probe = await MqttProbe.connect(broker.url);
    let daemon: DaemonProcess | undefined;
    try {
      await probe.subscribe(`${BASE}/once/status`);
      daemon = startTinyDaemon(broker.url, "once");
      await probe.waitForJson(`${BASE}/once/status`, (s) => s.state === "online", 60_000);
      const states = probe.on(`${BASE}/once/status`).map((m) => (m.json as { state: string }).state);
      expect(states).toEqual(["loading", "online"]);
    } finally {
      await daemon?.stop("SIGKILL");
      await probe.close();
      await broker.stop();
    }
  });
});
