import { describe, expect, it } from "vitest";
import { createTopics, isPublishableTopic, isValidId, nodeIdFromHostname } from "../../src/mqtt/topics.js";

const topics = createTopics({
  baseTopic: "tinyllama",
  nodeId: "pi5-kitchen",
  poolGroup: "",
  discoveryPrefix: "homeassistant",
});

describe("topics", () => {
  it("builds the contract's topics", () => {
    expect(topics.status).toBe("tinyllama/pi5-kitchen/status");
    expect(topics.info).toBe("tinyllama/pi5-kitchen/info");
    expect(topics.health).toBe("tinyllama/pi5-kitchen/health");
    expect(topics.nodeRequest).toBe("tinyllama/pi5-kitchen/request");
    expect(topics.nodeCancel).toBe("tinyllama/pi5-kitchen/cancel");
    expect(topics.poolRequestShared).toBe("$share/tinyllama/tinyllama/pool/request");
    expect(topics.poolCancel).toBe("tinyllama/pool/cancel");
    expect(topics.errors).toBe("tinyllama/pi5-kitchen/response/_errors");
    expect(topics.response("node", "k-42")).toBe("tinyllama/pi5-kitchen/response/k-42");
    expect(topics.response("pool", "k-42")).toBe("tinyllama/pool/response/k-42");
    expect(topics.stream("home/llm")).toBe("home/llm/stream");
    expect(topics.discoveryConfig("sensor", "tle_pi5_tps")).toBe("homeassistant/sensor/tle_pi5_tps/config");
  });

  it("refuses ids and levels that would make wildcard or empty topics", () => {
    for (const id of ["a/b", "a+b", "a#", "", "_x", "x".repeat(65), "a b"]) {
      expect(isValidId(id)).toBe(false);
      expect(() => topics.response("node", id)).toThrow();
    }
    expect(() =>
      createTopics({ baseTopic: "t", nodeId: "a/b", poolGroup: "", discoveryPrefix: "h" }),
    ).toThrow();
    expect(() => topics.discoveryConfig("sensor", "a+b")).toThrow();
  });

  it("tells a pool request from a node request", () => {
    expect(topics.originOf("tinyllama/pool/request")).toBe("pool");
    expect(topics.originOf("tinyllama/pi5-kitchen/request")).toBe("node");
  });

  it("reserves the daemon's own, other nodes' and discovery topics", () => {
    expect(topics.isReserved("tinyllama/pi5-kitchen/status")).toBe(true);
    expect(topics.isReserved("tinyllama/other-node/health")).toBe(true);
    expect(topics.isReserved("tinyllama/pool/request")).toBe(true);
    expect(topics.isReserved("homeassistant/sensor/x/config")).toBe(true);
    expect(topics.isReserved("tinyllama/pi5-kitchen/response/x")).toBe(false);
    // A reply into an ask topic would become a new prompt; into answer, it would pose as an answer.
    expect(topics.isReserved("tinyllama/pi5-kitchen/ask")).toBe(true);
    expect(topics.isReserved("tinyllama/pool/ask")).toBe(true);
    expect(topics.isReserved("tinyllama/pi5-kitchen/ask/cancel")).toBe(true);
    expect(topics.isReserved("tinyllama/other/answer")).toBe(true);
    expect(topics.isReserved("home/assistant/llm")).toBe(false);
  });

  it("checks publishable topics", () => {
    expect(isPublishableTopic("home/llm")).toBe(true);
    const brokerRefuses = [
      "a\tb",
      "a\u0085b",
      "a\uffffb",
      "a\ufdd0b",
      "a\u{1fffe}b",
      "a\u{10ffff}b",
      Array.from({ length: 250 }, () => "x").join("/"),
    ];
    for (const topic of ["", "a/#", "a/+/b", "$SYS/x", "a//b", "/a", "a/", "a\0b", ...brokerRefuses]) {
      expect(isPublishableTopic(topic), JSON.stringify(topic.slice(0, 20))).toBe(false);
    }
    expect(isPublishableTopic("home/küche/llm")).toBe(true);
  });

  it("turns host names into node ids", () => {
    expect(nodeIdFromHostname("Pi5-Kitchen.local")).toBe("pi5-kitchen");
    expect(nodeIdFromHostname("my host!")).toBe("my-host-");
    expect(nodeIdFromHostname("___")).toBe("node");
  });
});
