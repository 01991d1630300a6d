import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { buildHealthPayload } from "../../src/health/health-reporter.js";
import {
  buildDiscoveryConfigs,
  buildLastAnswerPayload,
  type DiscoveryConfig,
  HomeAssistantDiscovery,
  retiredDiscoveryTopics,
} from "../../src/health/home-assistant.js";
import { createTopics, isPublishableTopic } from "../../src/mqtt/topics.js";
import type { PublishOptions } from "../../src/mqtt/transport.js";
import { ServingStats } from "../../src/serving/serving-stats.js";

const topics = createTopics({
  baseTopic: "tinyllama",
  nodeId: "pi5-kitchen",
  poolGroup: "",
  discoveryPrefix: "homeassistant",
});

const fullInput = {
  topics,
  nodeId: "pi5-kitchen",
  version: "0.1.0",
  model: "TinyLlama-1.1B-Chat-v1.0 Q4_0",
  hardware: "Raspberry Pi 5 Model B Rev 1.0",
  supportUrl: "https://example.org/tinyllama-edge",
  healthIntervalSeconds: 30,
  hasTemperature: true,
  lastAnswer: true,
  askEntities: true,
};
const configs = buildDiscoveryConfigs(fullInput);

/** A sample answer event as the ask topic's answer publishes it. */
const answerEvent = {
  event_type: "answer",
  id: "ask-1",
  prompt: "Is it cold?",
  text: "No.",
  usage: { prompt_tokens: 1, completion_tokens: 1, prompt_tokens_evaluated: 1 },
  timings: { queue_ms: 0, ttft_ms: 1, total_ms: 2, tokens_per_second: null },
};

/** Units Home Assistant accepts for the device classes used here. */
const unitsByDeviceClass: Record<string, readonly string[]> = {
  temperature: ["°C", "°F", "K"],
  duration: ["d", "h", "min", "s", "ms"],
  data_size: ["B", "kB", "MB", "GB", "KiB", "MiB", "GiB"],
};

const template = z.string().regex(/^\{\{.*\}\}$/s);

const publishTopic = z.string().refine(isPublishableTopic);
const availability = z
  .array(
    z.strictObject({
      topic: publishTopic,
      value_template: template.optional(),
      payload_available: z.string(),
      payload_not_available: z.string(),
    }),
  )
  .min(1)
  .optional();

/** Keys every MQTT entity shares (Home Assistant's MQTT_ENTITY_COMMON_SCHEMA and device/origin blocks). */
const common = {
  name: z.string().min(1),
  unique_id: z.string().regex(/^[A-Za-z0-9_-]+$/),
  availability,
  device: z.strictObject({
    identifiers: z.array(z.string().min(1)).min(1),
    name: z.string().min(1),
    model: z.string().min(1),
    manufacturer: z.string().min(1),
    sw_version: z.string().min(1),
    hw_version: z.string().min(1).optional(),
  }),
  origin: z.strictObject({
    name: z.string().min(1),
    sw_version: z.string().optional(),
    support_url: z.url().optional(),
  }),
  entity_category: z.enum(["diagnostic", "config"]).optional(),
  icon: z
    .string()
    .regex(/^mdi:[a-z0-9-]+$/)
    .optional(),
  json_attributes_topic: publishTopic.optional(),
  json_attributes_template: template.optional(),
};
const entityId = (domain: string) => z.string().regex(new RegExp(`^${domain}\\.[a-z0-9_]+$`));
const commandKeys = {
  command_topic: publishTopic,
  qos: z.union([z.literal(0), z.literal(1)]),
  retain: z.literal(false),
};

/**
 * The Home Assistant MQTT discovery keys this daemon uses, per platform (sensor, binary_sensor,
 * notify, text, event, button: the keys of homeassistant/components/mqtt/<platform>.py); anything
 * else is a mistake.
 */
const schemas = {
  sensor: z.strictObject({
    ...common,
    default_entity_id: entityId("sensor"),
    state_topic: publishTopic,
    value_template: template,
    device_class: z.enum(["enum", "duration", "temperature", "data_size"]).optional(),
    state_class: z.enum(["measurement", "total", "total_increasing"]).optional(),
    unit_of_measurement: z.string().min(1).optional(),
    suggested_display_precision: z.number().int().min(0).optional(),
    options: z.array(z.string().min(1)).min(1).optional(),
    expire_after: z.number().int().positive().optional(),
  }),
  binary_sensor: z.strictObject({
    ...common,
    default_entity_id: entityId("binary_sensor"),
    state_topic: publishTopic,
    value_template: template,
    device_class: z.enum(["connectivity", "problem"]).optional(),
    payload_on: z.string(),
    payload_off: z.string(),
    expire_after: z.number().int().positive().optional(),
  }),
  notify: z.strictObject({ ...common, ...commandKeys, default_entity_id: entityId("notify") }),
  text: z
    .strictObject({
      ...common,
      ...commandKeys,
      default_entity_id: entityId("text"),
      min: z.number().int().min(0),
      max: z.number().int().max(255),
      mode: z.enum(["text", "password"]),
    })
    .refine((text) => text.min < text.max, "text min must be below max"),
  event: z.strictObject({
    ...common,
    default_entity_id: entityId("event"),
    state_topic: publishTopic,
    event_types: z.array(z.string().min(1)).min(1),
  }),
  button: z.strictObject({
    ...common,
    ...commandKeys,
    default_entity_id: entityId("button"),
    payload_press: z.string().min(1),
  }),
};

function validate(topic: string, payload: unknown) {
  const component = topic.split("/")[1] as keyof typeof schemas;
  const schema = schemas[component];
  if (!schema) return { success: false as const, error: { issues: [`unknown component ${component}`] } };
  const result = schema.safeParse(payload);
  if (!result.success) return result;
  const sensor = payload as {
    device_class?: string;
    options?: unknown;
    state_class?: unknown;
    unit_of_measurement?: string;
  };
  const issues: string[] = [];
  if (sensor.device_class === "enum" && (!sensor.options || sensor.state_class || sensor.unit_of_measurement))
    issues.push("an enum sensor has options and no state class or unit");
  const units = sensor.device_class ? unitsByDeviceClass[sensor.device_class] : undefined;
  if (units && !units.includes(sensor.unit_of_measurement ?? ""))
    issues.push(`unit ${sensor.unit_of_measurement} for ${sensor.device_class}`);
  const attributes = payload as { json_attributes_template?: string; json_attributes_topic?: string };
  if (attributes.json_attributes_template && !attributes.json_attributes_topic)
    issues.push("an attributes template needs an attributes topic");
  return issues.length ? { success: false as const, error: { issues } } : result;
}

function byKey(key: string): DiscoveryConfig {
  const config = configs.find(
    (candidate) => candidate.payload.unique_id === `tinyllama_edge_pi5-kitchen_${key}`,
  );
  if (!config) throw new Error(`no ${key} entity`);
  return config;
}

/** Walks the `value_json.a.b` paths a template reads. */
function pathsRead(templateText: string): string[][] {
  return [...templateText.matchAll(/value_json((?:\.[a-z_]+)+)/g)].map((match) =>
    match[1]!.slice(1).split("."),
  );
}

describe("Home Assistant discovery configs", () => {
  it("validates every config against the discovery keys", () => {
    for (const { topic, payload } of configs) {
      const result = validate(topic, payload);
      expect(result.success, `${topic}: ${JSON.stringify(result.error?.issues)}`).toBe(true);
    }
  });

  it("has one config per entity, with distinct unique ids and entity ids", () => {
    const keys = configs.map(({ payload }) => payload.unique_id.replace("tinyllama_edge_pi5-kitchen_", ""));
    expect(keys.sort()).toEqual(
      [
        "connectivity",
        "model_state",
        "tokens_per_second",
        "time_to_first_token",
        "queue_depth",
        "requests_served",
        "cpu_temperature",
        "cpu_load",
        "process_memory",
        "thermal_throttling",
        "last_answer",
        "ask",
        "prompt",
        "answer",
        "cancel",
      ].sort(),
    );
    expect(new Set(configs.map(({ payload }) => payload.unique_id)).size).toBe(configs.length);
    expect(new Set(configs.map(({ payload }) => payload.default_entity_id)).size).toBe(configs.length);
    expect(new Set(configs.map(({ topic }) => topic)).size).toBe(configs.length);
  });

  it("publishes each config on a publishable topic under the prefix, matching its component", () => {
    for (const { topic, payload } of configs) {
      expect(isPublishableTopic(topic)).toBe(true);
      const [prefix, component, objectId, last] = topic.split("/");
      expect(prefix).toBe("homeassistant");
      expect(last).toBe("config");
      expect(objectId).toBe(payload.unique_id);
      expect(payload.default_entity_id.split(".")[0]).toBe(component);
      expect(payload.default_entity_id).toBe(
        `${component}.tinyllama_pi5_kitchen_${objectId!.split("pi5-kitchen_")[1]}`,
      );
    }
  });

  it("puts every entity but those showing offline themselves on the status topic's availability", () => {
    for (const { payload } of configs) {
      if (payload.unique_id.endsWith("_connectivity") || payload.unique_id.endsWith("_model_state")) {
        expect(payload.availability).toBeUndefined();
        continue;
      }
      expect(payload.availability).toEqual([
        {
          topic: "tinyllama/pi5-kitchen/status",
          value_template: "{{ 'offline' if value_json.state == 'offline' else 'online' }}",
          payload_available: "online",
          payload_not_available: "offline",
        },
      ]);
    }
  });

  it("reads only state topics the daemon publishes, and only fields the health payload has", () => {
    const health = buildHealthPayload({
      sample: {
        cpuLoadPercent: 12,
        loadAverage: [1, 1, 1],
        cpuTemperatureC: 50,
        throttling: null,
        memory: { totalBytes: 1, availableBytes: 1 },
        processRssBytes: 1,
        processUptimeSeconds: 1,
        systemUptimeSeconds: 1,
      },
      serving: { state: "online", queueDepth: 0, activeRequests: 0, stats: new ServingStats() },
      thermal: null,
      now: new Date(0),
    });
    const samples: Record<string, unknown> = {
      [topics.status]: { state: "online", ts: "" },
      [topics.health]: health,
      [topics.lastAnswer]: buildLastAnswerPayload({ id: "a", text: "b", finishReason: "stop" }),
      [topics.answer]: answerEvent,
    };
    for (const { payload } of configs) {
      if (!payload.state_topic) continue;
      const sample = samples[payload.state_topic];
      expect(sample, payload.state_topic).toBeDefined();
      const templates = [payload.value_template ?? "", payload.json_attributes_template ?? ""];
      for (const fieldPath of templates.flatMap(pathsRead)) {
        let node: unknown = sample;
        for (const part of fieldPath) {
          expect(node, `${payload.unique_id}: ${fieldPath.join(".")}`).toHaveProperty(part);
          node = (node as Record<string, unknown>)[part];
        }
      }
    }
  });

  it("describes each entity the way Home Assistant shows it", () => {
    expect(byKey("connectivity").payload).toMatchObject({
      state_topic: topics.status,
      device_class: "connectivity",
      payload_on: "ON",
      payload_off: "OFF",
    });
    expect(byKey("model_state").payload).toMatchObject({
      device_class: "enum",
      options: ["loading", "online", "offline"],
      value_template: "{{ value_json.state }}",
    });
    expect(byKey("time_to_first_token").payload).toMatchObject({
      device_class: "duration",
      unit_of_measurement: "ms",
    });
    expect(byKey("cpu_temperature").payload).toMatchObject({
      device_class: "temperature",
      unit_of_measurement: "°C",
    });
    expect(byKey("process_memory").payload).toMatchObject({
      device_class: "data_size",
      unit_of_measurement: "MiB",
    });
    expect(byKey("requests_served").payload.state_class).toBe("total_increasing");
    expect(byKey("tokens_per_second").payload.expire_after).toBe(100);
    const lastAnswer = byKey("last_answer").payload;
    expect(lastAnswer).toMatchObject({
      state_topic: "tinyllama/pi5-kitchen/last_answer",
      json_attributes_topic: "tinyllama/pi5-kitchen/last_answer",
      value_template: "{{ value_json.text[:255] }}",
    });
    expect(lastAnswer.expire_after).toBeUndefined();
    expect(byKey("thermal_throttling").payload.device_class).toBe("problem");
    for (const { payload } of configs) {
      expect(payload.device).toEqual({
        identifiers: ["tinyllama_edge_pi5-kitchen"],
        name: "TinyLlama pi5-kitchen",
        model: "TinyLlama-1.1B-Chat-v1.0 Q4_0",
        manufacturer: "tinyllama-edge",
        sw_version: "0.1.0",
        hw_version: "Raspberry Pi 5 Model B Rev 1.0",
      });
      expect(payload.origin).toEqual({
        name: "tinyllama-edge",
        sw_version: "0.1.0",
        support_url: "https://example.org/tinyllama-edge",
      });
    }
  });

  it("lets Home Assistant ask: notify and text publish to the ask topic, the event reads answers, the button cancels", () => {
    expect(byKey("ask").topic).toBe("homeassistant/notify/tinyllama_edge_pi5-kitchen_ask/config");
    expect(byKey("ask").payload).toMatchObject({ command_topic: "tinyllama/pi5-kitchen/ask", retain: false });
    expect(byKey("prompt").payload).toMatchObject({
      command_topic: "tinyllama/pi5-kitchen/ask",
      min: 1,
      max: 255,
    });
    expect(byKey("answer").payload).toMatchObject({
      state_topic: "tinyllama/pi5-kitchen/answer",
      event_types: ["answer", "error"],
    });
    expect(byKey("answer").payload.value_template).toBeUndefined();
    expect(answerEvent.event_type).toBe("answer");
    expect(byKey("cancel").payload).toMatchObject({ command_topic: "tinyllama/pi5-kitchen/ask/cancel" });
  });

  it("leaves out what the node lacks and names those configs for removal", () => {
    const bare = { ...fullInput, hasTemperature: false, lastAnswer: false, askEntities: false };
    const keys = buildDiscoveryConfigs(bare).map(({ payload }) => payload.unique_id.split("pi5-kitchen_")[1]);
    for (const absent of [
      "cpu_temperature",
      "thermal_throttling",
      "last_answer",
      "ask",
      "prompt",
      "answer",
      "cancel",
    ])
      expect(keys).not.toContain(absent);
    expect(keys).toContain("cpu_load");
    const retired = retiredDiscoveryTopics(bare);
    expect(retired).toContain("homeassistant/sensor/tinyllama_edge_pi5-kitchen_cpu_temperature/config");
    expect(retired).toContain("homeassistant/sensor/tinyllama_edge_pi5-kitchen_last_answer/config");
    expect(retired).toHaveLength(7);
    expect(retiredDiscoveryTopics(fullInput)).toEqual([]);
  });

  it("keeps the last answer off unless asked for", () => {
    const { lastAnswer: _omitted, ...rest } = fullInput;
    const keys = buildDiscoveryConfigs(rest).map(({ payload }) => payload.unique_id);
    expect(keys.some((key) => key.endsWith("_last_answer"))).toBe(false);
  });

  it("keeps discovery topics valid for the longest node ids", () => {
    const nodeId = `Node-${"x".repeat(59)}`;
    const long = createTopics({ baseTopic: "t", nodeId, poolGroup: "", discoveryPrefix: "homeassistant" });
    const built = buildDiscoveryConfigs({ ...fullInput, topics: long, nodeId });
    for (const { topic, payload } of built) {
      expect(isPublishableTopic(topic)).toBe(true);
      expect(validate(topic, payload).success).toBe(true);
    }
    expect(new Set(built.map(({ topic }) => topic)).size).toBe(built.length);
  });
});

describe("HomeAssistantDiscovery", () => {
  const logger = pino({ level: "silent" });

  function recorder() {
    const published: Array<{ topic: string; payload: string; options: PublishOptions }> = [];
    const publish = async (topic: string, payload: string, options: PublishOptions) => {
      published.push({ topic, payload, options });
    };
    return { published, publish };
  }

  it("publishes every config retained on start and again when Home Assistant comes online", async () => {
    const { published, publish } = recorder();
    const discovery = new HomeAssistantDiscovery({
      logger,
      enabled: true,
      configs,
      publish,
      minRepublishMs: 0,
    });
    await discovery.start();
    expect(published).toHaveLength(configs.length);
    expect(published.every(({ options }) => options.qos === 1 && options.retain === true)).toBe(true);
    expect(JSON.parse(published[0]!.payload)).toEqual(configs[0]!.payload);

    await discovery.handleHomeAssistantStatus(Buffer.from("offline"));
    expect(published).toHaveLength(configs.length);
    await discovery.handleHomeAssistantStatus(Buffer.from("online"));
    expect(published).toHaveLength(2 * configs.length);

    discovery.stop();
    await discovery.handleHomeAssistantStatus("online");
    expect(published).toHaveLength(2 * configs.length);
  });

  it("removes what an earlier run published when disabled, and ignores Home Assistant then", async () => {
    const { published, publish } = recorder();
    const retired = ["homeassistant/sensor/gone/config"];
    const discovery = new HomeAssistantDiscovery({
      logger,
      enabled: false,
      configs,
      retired,
      publish,
      minRepublishMs: 0,
    });
    await discovery.start();
    expect(published.map(({ topic }) => topic)).toEqual([...configs.map(({ topic }) => topic), ...retired]);
    expect(published.every(({ payload, options }) => payload === "" && options.retain === true)).toBe(true);
    await discovery.handleHomeAssistantStatus("online");
    expect(published).toHaveLength(configs.length + 1);
  });

  it("empties the configs of entities the node no longer has when it publishes", async () => {
    const { published, publish } = recorder();
    const retired = ["homeassistant/sensor/tinyllama_edge_pi5-kitchen_last_answer/config"];
    await new HomeAssistantDiscovery({
      logger,
      enabled: true,
      configs,
      retired,
      publish,
      minRepublishMs: 0,
    }).start();
    expect(published.filter(({ payload }) => payload === "").map(({ topic }) => topic)).toEqual(retired);
  });

  it("folds a flood of online announcements into one republish per period", async () => {
    vi.useFakeTimers();
    try {
      const { published, publish } = recorder();
      let now = 0;
      const discovery = new HomeAssistantDiscovery({
        logger,
        enabled: true,
        configs,
        publish,
        minRepublishMs: 30_000,
        now: () => now,
      });
      await discovery.start();
      now = 31_000;
      for (let i = 0; i < 1000; i++) await discovery.handleHomeAssistantStatus("online");
      // The first goes out at once, the other 999 make one republish at the end of the period.
      expect(published).toHaveLength(2 * configs.length);
      now = 61_000;
      await vi.advanceTimersByTimeAsync(30_000);
      expect(published).toHaveLength(3 * configs.length);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(published).toHaveLength(3 * configs.length);
      discovery.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
