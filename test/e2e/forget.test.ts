// uninstall.sh --purge runs `tinyllama-edge forget`: seen by a fresh subscriber, the node's retained
// state and Home Assistant discovery have left the broker (no ghost device); other nodes' stay.
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILT_MAIN, type DaemonProcess, PROJECT_ROOT, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "leaving";
const OTHER_CONFIG = "homeassistant/sensor/tinyllama_edge_staying_state/config";

function forget(url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BUILT_MAIN, "forget", "--mqtt.url", url, "--node.id", NODE],
      { cwd: PROJECT_ROOT, env: { PATH: process.env.PATH, NODE_ENV: "test" }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Every retained, non-empty message a fresh subscriber gets on these filters. */
async function retained(url: string, ...filters: string[]): Promise<string[]> {
  const late = await MqttProbe.connect(url);
  try {
    await late.subscribe(...filters);
    await new Promise((resolve) => setTimeout(resolve, 700));
    return late.messages.filter((m) => m.retain && m.text.length > 0).map((m) => m.topic);
  } finally {
    await late.close();
  }
}

describe("tinyllama-edge forget", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess | undefined;

  beforeAll(async () => {
    broker = await startTestBroker();
    const probe = await MqttProbe.connect(broker.url);
    try {
      await probe.subscribe(`tinyllama/${NODE}/status`);
      // Another node's discovery config, which must stay.
      await probe.publish(
        OTHER_CONFIG,
        { device: { identifiers: ["tinyllama_edge_staying"] } },
        { qos: 1, retain: true },
      );
      daemon = startTinyDaemon(broker.url, NODE, ["--homeassistant.enabled", "true"]);
      await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
    } finally {
      await probe.close();
    }
    await daemon!.stop("SIGTERM");
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await broker?.stop();
  });

  it("clears the node's retained topics and discovery configs, and only those", async () => {
    const before = await retained(broker.url, "homeassistant/#", `tinyllama/${NODE}/+`);
    expect(before.filter((t) => t.startsWith("homeassistant/") && t !== OTHER_CONFIG).length).toBeGreaterThan(
      3,
    );
    expect(before).toContain(`tinyllama/${NODE}/status`);

    const run = await forget(broker.url);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(NODE);

    const after = await retained(broker.url, "homeassistant/#", `tinyllama/${NODE}/+`);
    expect(after).toEqual([OTHER_CONFIG]);
  });

  it("fails in one line when the broker cannot be reached", async () => {
    const run = await forget("mqtt://127.0.0.1:1");
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("cannot reach the broker");
  });
});
