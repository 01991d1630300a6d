import { describe, expect, it } from "vitest";
import { onlineHint } from "../../src/cli/online-hint.js";

describe("the hint printed when a node comes online on a terminal", () => {
  it("names the request topic and ready-to-paste ask, mosquitto_sub and mosquitto_pub lines", () => {
    const hint = onlineHint({
      baseTopic: "tinyllama",
      nodeId: "demo",
      brokerUrl: "mqtt://192.168.1.5:1884",
      command: "npx tinyllama-edge",
    });
    expect(hint).toContain("requests on tinyllama/demo/request");
    expect(hint).toContain('npx tinyllama-edge ask --node.id demo "hello"');
    expect(hint).toContain("mosquitto_sub -h 192.168.1.5 -p 1884 -v -t 'tinyllama/demo/response/#' &");
    expect(hint).toContain(
      `mosquitto_pub -h 192.168.1.5 -p 1884 -t tinyllama/demo/request -m '{"id":"t1","prompt":"hello","max_tokens":32}'`,
    );
  });

  it("fills in the default port", () => {
    const hint = onlineHint({
      baseTopic: "home/llm",
      nodeId: "pi",
      brokerUrl: "mqtt://localhost",
      command: "tinyllama-edge",
    });
    expect(hint).toContain("-h localhost -p 1883");
    expect(hint).toContain("home/llm/pi/request");
  });
});
