import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DaemonProcess, PROJECT_ROOT, startTinyDaemon } from "../helpers/daemon-process.js";
import { type JsonObject, MqttProbe } from "../helpers/mqtt-probe.js";
import { type NodeRedRuntime, startNodeRed } from "../helpers/node-red.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

/** The example's node id: the flow's topics name it. */
const NODE = "pi";
type FlowNode = Record<string, unknown> & { id: string; type: string; wires?: string[][] };

/**
 * examples/node-red/flow.json as a user imports it, pointed at the test broker, plus one "mqtt out"
 * per output the test watches, wired after the example's own nodes.
 */
function exampleFlow(brokerUrl: string): FlowNode[] {
  const flow = JSON.parse(
    readFileSync(join(PROJECT_ROOT, "examples", "node-red", "flow.json"), "utf8"),
  ) as FlowNode[];
  const url = new URL(brokerUrl);
  const broker = flow.find((node) => node.type === "mqtt-broker")!;
  broker.broker = url.hostname;
  broker.port = url.port;
  const tab = flow.find((node) => node.type === "tab")!.id;
  const watch = (after: string, topic: string) => {
    const id = `watch_${after}`;
    flow.find((node) => node.id === after)!.wires![0]!.push(id);
    flow.push({
      id,
      type: "mqtt out",
      z: tab,
      topic,
      qos: "1",
      retain: "false",
      broker: broker.id,
      wires: [],
    });
  };
  watch("answer_in", "nodered-test/answer-event");
  watch("answer_text", "nodered-test/answer-text");
  watch("stream_text", "nodered-test/token");
  watch("final_in", "nodered-test/final");
  return flow;
}

describe("the Node-RED example flow in a real Node-RED runtime", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;
  let red: NodeRedRuntime;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url);
    await probe.subscribe(`tinyllama/${NODE}/status`, "nodered-test/#");
    daemon = startTinyDaemon(broker.url, NODE, ["--requests.defaultMaxTokens", "24"]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
    red = await startNodeRed(exampleFlow(broker.url));
    // The flow's MQTT nodes connect after the flows start.
    await vi.waitFor(
      () => {
        if (!red.lines.some((line) => line.includes("Connected to broker")))
          throw new Error("not connected yet");
      },
      { timeout: 20_000, interval: 100 },
    );
  });

  afterAll(async () => {
    await red?.stop();
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("asks on the ask topic and gets one answer event, its text shown", async () => {
    await red.inject("ask_inject");
    const event = await probe.waitForJson("nodered-test/answer-event", () => true, 30_000);
    const answer = event.json as JsonObject;
    expect(answer).toMatchObject({ event_type: "answer", prompt: "Is it cold outside?", node: NODE });
    expect(answer.text.length).toBeGreaterThan(0);
    const text = await probe.waitFor((m) => m.find((x) => x.topic === "nodered-test/answer-text"), 10_000);
    expect(text.text).toBe(answer.text);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(probe.on("nodered-test/answer-event")).toHaveLength(1);
  });

  it("asks with a JSON request and receives the stream, then the final whose text the tokens make", async () => {
    await red.inject("stream_inject");
    const final = await probe.waitForJson("nodered-test/final", (f) => f.status === "ok", 30_000);
    const result = final.json as JsonObject;
    expect(result.id).toMatch(/^nodered-\d+$/);
    await expect
      .poll(
        () =>
          probe
            .on("nodered-test/token")
            .map((m) => m.text)
            .join(""),
        { timeout: 5000 },
      )
      .toBe(result.text);
  });
});
