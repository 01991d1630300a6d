import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddedBroker } from "../../src/mqtt/embedded-broker.js";
import { freePort } from "../../src/util/free-port.js";
import { BUILT_MAIN, type DaemonProcess, PROJECT_ROOT, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";

const NODE = "quickstart";

// The quick start with no broker installed: the daemon starts its embedded broker, which speaks
// MQTT 3.1.1 only, and `ask` (MQTT 5 by default) must still get its answer.
describe("ask on a broker that speaks only MQTT 3.1.1 (the embedded quick-start broker)", () => {
  const broker = new EmbeddedBroker();
  let url: string;
  let daemon: DaemonProcess;
  let probe: MqttProbe;

  beforeAll(async () => {
    url = await broker.start(await freePort());
    probe = await MqttProbe.connect(url);
    await probe.subscribe(`tinyllama/${NODE}/status`);
    daemon = startTinyDaemon(url, NODE, ["--mqtt.protocolVersion", "4", "--mqtt.sessionExpirySeconds", "0"]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
  }, 90_000);

  afterAll(async () => {
    await daemon?.stop();
    await probe?.close();
    await broker.stop();
  });

  it("falls back to MQTT 3.1.1 and prints the answer", async () => {
    // Asynchronous: the broker runs in this process and must keep serving while ask runs.
    const run = await promisify(execFile)(
      process.execPath,
      [BUILT_MAIN, "ask", "--mqtt.url", url, "--json", "--max-tokens", "3", "hello"],
      { cwd: PROJECT_ROOT, env: { PATH: process.env.PATH }, encoding: "utf8", timeout: 30_000 },
    ).catch((err: { code: number; stdout: string; stderr: string }) => err);
    expect(run.stderr).not.toContain("Unacceptable protocol version");
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "ok", node: NODE });
  }, 40_000);
});
