import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VERIFIED_NODE_LLAMA_CPP } from "../../src/inference/llama-internals.js";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "fallbacks";
const BASE = "tinyllama";

/**
 * The daemon when node-llama-cpp is not the release its internals were checked against (here: a
 * deliberately wrong expected version): it says so in one log line and serves with node-llama-cpp's
 * own behaviour, instead of failing.
 */
describe("the daemon on a node-llama-cpp whose internals it does not trust", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    await probe.subscribe(`${BASE}/${NODE}/#`);
    daemon = startTinyDaemon(broker.url, NODE, [
      "--runtime.llamaInternals",
      "0.0.1",
      "--runtime.parallelSequences",
      "2",
    ]);
    await probe.waitForJson(`${BASE}/${NODE}/status`, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("logs why in one line, answers parallel requests, and names the binary it runs in info", async () => {
    await Promise.all(
      ["a", "b"].map((id) =>
        probe.publish(`${BASE}/${NODE}/request`, { id, prompt: `hi ${id}`, max_tokens: 8 }),
      ),
    );
    for (const id of ["a", "b"]) {
      const final = await probe.waitForJson(`${BASE}/${NODE}/response/${id}`);
      expect((final.json as { status: string }).status).toBe("ok");
    }
    const fallbacks = daemon.logs().filter((line) => /internals not used/.test(String(line.msg)));
    expect(fallbacks).toHaveLength(1);
    expect(fallbacks[0]!.reason).toBe(
      `node-llama-cpp ${VERIFIED_NODE_LLAMA_CPP} is installed; its internals were checked for 0.0.1`,
    );
    expect(daemon.lines.some((line) => /unhandled|fatal/i.test(line))).toBe(false);
    const info = await probe.waitForJson(`${BASE}/${NODE}/info`);
    expect((info.json as { engine: { binary: string } }).engine.binary).toMatch(/^(prebuilt|native)$/);
  });
});
