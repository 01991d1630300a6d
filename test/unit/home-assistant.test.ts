import { pino } from "pino";
import { describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { buildHealthPayload } from "../../src/health/health-reporter.js";
import {
  buildDiscoveryConfigs,
  buildLastAnswerPayload,
  type DiscoveryConfig,
  HomeAssistantDiscovery,
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

const configs = buildDiscoveryConfigs({
  topics,
  nodeId: "pi5-kitchen",
  version: "0.1.0",
  model: "tinyllama-1.1b-chat-v1.0.Q4_0.gguf on Raspberry Pi 5",
  supportUrl: "https://example.org/tinyllama-edge",
  healthIntervalSeconds: 30,
});

/** Units Home Assistant accepts for the device classes used here. */
const unitsByDeviceClass: Record<string, readonly string[]> = {
  temperature: ["°C", "°F", "K"],
  duration: ["d", "h", "min", "s", "ms"],
  data_size: ["B", "kB", "MB", "GB", "KiB", "MiB", "GiB"],
};

const template = z.string().regex(/^\{\{.*\}\}$/s);

/** The Home Assistant MQTT discovery keys this daemon uses; anything else is a mistake. */
const discoverySchema = z
  .strictObject({
    name: z.string().min(1),
    unique_id: z.string().regex(/^[A-Za-z0-9_-]+$/),
    default_entity_id: z.string().regex(/^(sensor|binary_sensor)\.[a-z0-9_]+$/),
    state_topic: z.string().refine(isPublishableTopic),
    value_template: template,
    availability: z
      .array(
        z.strictObject({
          topic: z.string().refine(isPublishableTopic),
          value_template: template.optional(),
          payload_available: z.string(),
          payload_not_available: z.string(),
        }),
      )
      .min(1)
      .optional(),
    device: z.strictObject({
      identifiers: z.array(z.string().min(1)).min(1),
      name: z.string().min(1),
      model: z.string().min(1),
      manufacturer: z.string().min(1),
      sw_version: z.string().min(1),
    }),
    origin: z.strictObject({
      name: z.string().min(1),
      sw_version: z.string().optional(),
      support_url: z.url().optional(),
    }),
    device_class: z
      .enum(["connectivity", "heat", "enum", "duration", "temperature", "data_size", "problem"])
      .optional(),
    state_class: z.enum(["measurement", "total", "total_increasing"]).optional(),
    unit_of_measurement: z.string().min(1).optional(),
    suggested_display_precision: z.number().int().min(0).optional(),
    options: z.array(z.string().min(1)).min(1).optional(),
    payload_on: z.string().optional(),
    payload_off: z.string().optional(),
    json_attributes_topic: z.string().refine(isPublishableTopic).optional(),
    json_attributes_template: template.optional(),
    entity_category: z.enum(["diagnostic", "config"]).optional(),
    expire_after: z.number().int().positive().optional(),
    icon: z
      .string()
      .regex(/^mdi:[a-z0-9-]+$/)
      .optional(),
  })
  .superRefine((payload, ctx) => {
    if (
      payload.device_class === "enum" &&
      (!payload.options || payload.state_class || payload.unit_of_measurement)
    ) {
      ctx.addIssue({ code: "custom", message: "an enum sensor has options and no state class or unit" });
    }
    const units = payload.device_class ? unitsByDeviceClass[payload.device_class] : undefined;
    if (units && !units.includes(payload.unit_of_measurement ?? "")) {
      ctx.addIssue({
        code: "custom",
        message: `unit ${payload.unit_of_measurement} for ${payload.device_class}`,
      });
    }
    if (payload.json_attributes_template && !payload.json_attributes_topic) {
      ctx.addIssue({ code: "custom", message: "an attributes template needs an attributes topic" });
    }
  });

function byKey(key: string): DiscoveryConfig {
  const config = configs.find((candidate) => candidate.payload.unique_id.endsWith(`_${key}`));
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
      const result = discoverySchema.safeParse(payload);
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

  it("puts every entity but connectivity itself on the status topic's availability", () => {
    for (const { payload } of configs) {
      if (payload.unique_id.endsWith("_connectivity")) {
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
    };
    for (const { payload } of configs) {
      const sample = samples[payload.state_topic];
      expect(sample, payload.state_topic).toBeDefined();
      const templates = [payload.value_template, payload.json_attributes_template ?? ""];
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
    for (const { payload } of configs) {
      expect(payload.device).toEqual({
        identifiers: ["tinyllama_edge_pi5-kitchen"],
        name: "TinyLlama pi5-kitchen",
        model: "tinyllama-1.1b-chat-v1.0.Q4_0.gguf on Raspberry Pi 5",
        manufacturer: "tinyllama-edge",
        sw_version: "0.1.0",
      });
      expect(payload.origin).toEqual({
        name: "tinyllama-edge",
        sw_version: "0.1.0",
        support_url: "https://example.org/tinyllama-edge",
      });
    }
  });

  it("keeps discovery topics valid for the longest node ids", () => {
    const nodeId = `Node-${"x".repeat(59)}`;
    const long = createTopics({ baseTopic: "t", nodeId, poolGroup: "", discoveryPrefix: "homeassistant" });
    const built = buildDiscoveryConfigs({ topics: long, nodeId, version: "1", model: "m" });
    for (const { topic, payload } of built) {
      expect(isPublishableTopic(topic)).toBe(true);
      expect(discoverySchema.safeParse(payload).success).toBe(true);
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
    const discovery = new HomeAssistantDiscovery({ logger, enabled: true, configs, publish, minRepublishMs: 0 });
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
    const discovery = new HomeAssistantDiscovery({ logger, enabled: false, configs, publish, minRepublishMs: 0 });
    await discovery.start();
    expect(published.map(({ topic }) => topic)).toEqual(configs.map(({ topic }) => topic));
    expect(published.every(({ payload, options }) => payload === "" && options.retain === true)).toBe(true);
    await discovery.handleHomeAssistantStatus("online");
    expect(published).toHaveLength(configs.length);
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
