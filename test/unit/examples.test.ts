import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { buildDiscoveryConfigs } from "../../src/health/home-assistant.js";
import { topicMatches } from "../../src/mqtt/topic-filter.js";
import { createTopics } from "../../src/mqtt/topics.js";
import { PROJECT_ROOT } from "../helpers/daemon-process.js";

/** The examples are written for node "pi" on the default base topic and discovery prefix. */
const topics = createTopics({
  baseTopic: "tinyllama",
  nodeId: "pi",
  poolGroup: "",
  discoveryPrefix: "homeassistant",
});
const entityIds = buildDiscoveryConfigs({
  topics,
  nodeId: "pi",
  version: "1",
  model: "m",
  hasTemperature: true,
  lastAnswer: true,
  askEntities: true,
}).map(({ payload }) => payload.default_entity_id);

const examples = join(PROJECT_ROOT, "examples");
const read = (path: string) => readFileSync(join(examples, path), "utf8");

/** Every value under the given key, anywhere in a parsed document. */
function valuesOf(node: unknown, key: string): unknown[] {
  if (Array.isArray(node)) return node.flatMap((child) => valuesOf(child, key));
  if (typeof node !== "object" || node === null) return [];
  return Object.entries(node).flatMap(([name, value]) => [
    ...(name === key ? [value] : []),
    ...valuesOf(value, key),
  ]);
}

/** Entity ids named in a YAML document or its templates. */
function entitiesIn(text: string): string[] {
  return [...text.matchAll(/\b(?:sensor|event|text|button|notify|binary_sensor)\.tinyllama_[a-z0-9_]+/g)].map(
    (m) => m[0],
  );
}

describe("examples/home-assistant", () => {
  it("the script publishes the prompt on the ask topic and waits for the answer topic", () => {
    const script = parse(read("home-assistant/script.yaml")) as Record<string, { sequence: unknown[] }>;
    const sequence = script.ask_tinyllama!.sequence;
    const publish = sequence[0] as { action: string; data: { topic: string; payload: string } };
    expect(publish.action).toBe("mqtt.publish");
    expect(publish.data.topic).toBe(topics.nodeAsk);
    expect(publish.data.payload).toBe("{{ prompt }}");
    const wait = sequence[1] as { wait_for_trigger: Array<{ trigger: string; topic: string }> };
    expect(wait.wait_for_trigger).toEqual([{ trigger: "mqtt", topic: topics.answer }]);
    expect(valuesOf(script, "response_variable")).toEqual(["reply"]);
  });

  it("the automation and the dashboard card use the entities discovery creates", () => {
    for (const file of ["home-assistant/automation-tts.yaml", "home-assistant/dashboard-card.yaml"]) {
      const text = read(file);
      parse(text);
      const used = entitiesIn(text);
      expect(used.length, file).toBeGreaterThan(0);
      for (const entity of used) expect(entityIds, `${file}: ${entity}`).toContain(entity);
    }
    const automation = parse(read("home-assistant/automation-tts.yaml")) as {
      triggers: Array<{ entity_id: string }>;
    };
    expect(automation.triggers[0]!.entity_id).toBe("event.tinyllama_pi_answer");
  });
});

describe("examples/node-red/flow.json", () => {
  const flow = JSON.parse(read("node-red/flow.json")) as Array<{ type: string; topic?: string; id: string }>;

  it("publishes only to the daemon's request and ask topics", () => {
    const published = flow.filter((node) => node.type === "mqtt out").map((node) => node.topic);
    expect(published.sort()).toEqual([topics.nodeAsk, topics.nodeRequest].sort());
  });

  it("subscribes to what the daemon publishes for those: answer events, the stream and the final", () => {
    const filters = flow.filter((node) => node.type === "mqtt in").map((node) => node.topic!);
    const published = [
      topics.answer,
      topics.stream(topics.response("node", "x1")),
      topics.response("node", "x1"),
    ];
    for (const topic of published)
      expect(filters.filter((filter) => topicMatches(filter, topic))).toHaveLength(1);
  });
});
