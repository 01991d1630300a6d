/**
 * Home Assistant MQTT discovery: one retained config per entity under `<prefix>/<component>/<id>/config`,
 * all grouped under one device per node. The sensors read the topics the daemon already publishes
 * (status, health, last_answer when enabled); the Ask notify and text entities publish to the ask
 * topic, the Answer event entity reads the answer topic and the Cancel button publishes to ask/cancel.
 */
import { createHash } from "node:crypto";
import type { NodeState } from "../core/node-state.js";
import type { Logger } from "../logging/logger.js";
import type { Topics } from "../mqtt/topics.js";
import type { PublishOptions } from "../mqtt/transport.js";

export type DiscoveryComponent = "sensor" | "binary_sensor" | "notify" | "text" | "event" | "button";

/** Home Assistant caps a state at 255 characters; the full text goes into the attributes. */
export const HA_STATE_MAX_CHARS = 255;

const MODEL_STATES: readonly NodeState[] = ["loading", "online", "offline"];

export interface DiscoveryAvailability {
  topic: string;
  value_template: string;
  payload_available: string;
  payload_not_available: string;
}

/** The discovery keys this daemon uses (https://www.home-assistant.io/integrations/mqtt/). */
export interface DiscoveryPayload {
  name: string;
  unique_id: string;
  /** `<domain>.<object id>`: the entity id Home Assistant suggests (replaces `object_id`). */
  default_entity_id: string;
  state_topic?: string;
  value_template?: string;
  command_topic?: string;
  availability?: DiscoveryAvailability[];
  device: {
    identifiers: string[];
    name: string;
    model: string;
    manufacturer: string;
    sw_version: string;
    hw_version?: string;
  };
  origin: { name: string; sw_version: string; support_url?: string };
  device_class?: string;
  state_class?: "measurement" | "total" | "total_increasing";
  unit_of_measurement?: string;
  suggested_display_precision?: number;
  options?: string[];
  payload_on?: string;
  payload_off?: string;
  json_attributes_topic?: string;
  json_attributes_template?: string;
  entity_category?: "diagnostic" | "config";
  expire_after?: number;
  icon?: string;
  /** text: Home Assistant caps a text entity at 255 characters. */
  min?: number;
  max?: number;
  mode?: "text";
  /** event: the `event_type` values the answer topic carries. */
  event_types?: string[];
  /** button: what a press publishes. */
  payload_press?: string;
  qos?: 0 | 1;
  retain?: boolean;
}

export interface DiscoveryConfig {
  topic: string;
  payload: DiscoveryPayload;
}

export interface DiscoveryInput {
  topics: Pick<
    Topics,
    "status" | "health" | "lastAnswer" | "nodeAsk" | "askCancel" | "answer" | "discoveryConfig"
  >;
  nodeId: string;
  /** tinyllama-edge's version (device sw_version, origin sw_version). */
  version: string;
  /** Device model shown in Home Assistant: the model and its quantization. */
  model: string;
  /** The board (device hw_version), when known. */
  hardware?: string;
  supportUrl?: string;
  /** When given, sensors fed by health go unavailable after three missed periods. */
  healthIntervalSeconds?: number;
  /** The node reads a CPU temperature (else no temperature or thermal throttling entity). */
  hasTemperature?: boolean;
  /** `homeassistant.lastAnswer`: the retained last answer and its sensor. */
  lastAnswer?: boolean;
  /** The node serves the ask topic: the Ask, Prompt, Answer and Cancel entities. */
  askEntities?: boolean;
}

type Source = "status" | "health" | "lastAnswer" | "answer";
type Feature = "temperature" | "lastAnswer" | "ask";

interface EntitySpec {
  component: DiscoveryComponent;
  key: string;
  name: string;
  source?: Source;
  valueTemplate?: string;
  /** Published to by Home Assistant: the ask topic or its cancel topic. */
  command?: "ask" | "askCancel";
  /** Only on nodes that have this. */
  needs?: Feature;
  /** Entities that show the node's state themselves must not go unavailable with it. */
  withoutAvailability?: boolean;
  extra: Partial<DiscoveryPayload>;
}

const ENTITIES: readonly EntitySpec[] = [
  {
    component: "binary_sensor",
    key: "connectivity",
    name: "Connection",
    source: "status",
    valueTemplate: "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
    withoutAvailability: true,
    extra: {
      device_class: "connectivity",
      payload_on: "ON",
      payload_off: "OFF",
      entity_category: "diagnostic",
    },
  },
  {
    component: "sensor",
    key: "model_state",
    name: "Model state",
    source: "status",
    valueTemplate: "{{ value_json.state }}",
    // Its options include "offline": it shows it instead of going unavailable.
    withoutAvailability: true,
    extra: { device_class: "enum", options: [...MODEL_STATES], icon: "mdi:brain" },
  },
  {
    component: "sensor",
    key: "tokens_per_second",
    name: "Tokens per second",
    source: "health",
    valueTemplate: "{{ value_json.tokens_per_second.last }}",
    extra: {
      state_class: "measurement",
      unit_of_measurement: "tok/s",
      suggested_display_precision: 1,
      icon: "mdi:speedometer",
    },
  },
  {
    component: "sensor",
    key: "time_to_first_token",
    name: "Time to first token",
    source: "health",
    valueTemplate: "{{ value_json.ttft_ms_last }}",
    extra: {
      device_class: "duration",
      state_class: "measurement",
      unit_of_measurement: "ms",
      suggested_display_precision: 0,
    },
  },
  {
    component: "sensor",
    key: "queue_depth",
    name: "Queue depth",
    source: "health",
    valueTemplate: "{{ value_json.queue_depth }}",
    extra: { state_class: "measurement", icon: "mdi:tray-full" },
  },
  {
    component: "sensor",
    key: "requests_served",
    name: "Requests served",
    source: "health",
    valueTemplate: "{{ value_json.totals.requests }}",
    extra: { state_class: "total_increasing", icon: "mdi:counter" },
  },
  {
    component: "sensor",
    key: "cpu_temperature",
    name: "CPU temperature",
    source: "health",
    needs: "temperature",
    valueTemplate: "{{ value_json.cpu_temp_c }}",
    extra: {
      device_class: "temperature",
      state_class: "measurement",
      unit_of_measurement: "°C",
      suggested_display_precision: 1,
      entity_category: "diagnostic",
    },
  },
  {
    component: "sensor",
    key: "cpu_load",
    name: "CPU load",
    source: "health",
    valueTemplate: "{{ value_json.cpu_load_percent }}",
    extra: {
      state_class: "measurement",
      unit_of_measurement: "%",
      suggested_display_precision: 0,
      entity_category: "diagnostic",
      icon: "mdi:cpu-64-bit",
    },
  },
  {
    component: "sensor",
    key: "process_memory",
    name: "Process memory",
    source: "health",
    valueTemplate: "{{ (value_json.process_rss_bytes / 1048576) | round(1) }}",
    extra: {
      device_class: "data_size",
      state_class: "measurement",
      unit_of_measurement: "MiB",
      suggested_display_precision: 0,
      entity_category: "diagnostic",
    },
  },
  {
    component: "binary_sensor",
    key: "thermal_throttling",
    name: "Thermal throttling",
    source: "health",
    needs: "temperature",
    valueTemplate: "{{ 'ON' if value_json.thermal.state == 'throttled' else 'OFF' }}",
    extra: {
      // On while inference runs on fewer threads because of heat: a problem, not a heat alarm.
      device_class: "problem",
      payload_on: "ON",
      payload_off: "OFF",
      entity_category: "diagnostic",
      json_attributes_template:
        "{{ {'threads': value_json.threads, 'thermal': value_json.thermal, 'throttling': value_json.throttling} | tojson }}",
    },
  },
  {
    component: "sensor",
    key: "last_answer",
    name: "Last answer",
    source: "lastAnswer",
    needs: "lastAnswer",
    valueTemplate: `{{ value_json.text[:${HA_STATE_MAX_CHARS}] }}`,
    extra: { json_attributes_template: "{{ value_json | tojson }}", icon: "mdi:message-text" },
  },
  {
    // notify.send_message with this entity publishes the message as the prompt.
    component: "notify",
    key: "ask",
    name: "Ask",
    command: "ask",
    needs: "ask",
    extra: { qos: 1, retain: false, icon: "mdi:chat-question" },
  },
  {
    component: "text",
    key: "prompt",
    name: "Prompt",
    command: "ask",
    needs: "ask",
    extra: { min: 1, max: HA_STATE_MAX_CHARS, mode: "text", qos: 1, retain: false, icon: "mdi:form-textbox" },
  },
  {
    // Each answer is one event; its attributes hold the full text, the prompt, usage and timings.
    component: "event",
    key: "answer",
    name: "Answer",
    source: "answer",
    needs: "ask",
    extra: { event_types: ["answer", "error"], icon: "mdi:message-reply-text" },
  },
  {
    component: "button",
    key: "cancel",
    name: "Cancel",
    command: "askCancel",
    needs: "ask",
    extra: { payload_press: "cancel", qos: 1, retain: false, icon: "mdi:stop-circle-outline" },
  },
];

/** Entity ids allow only [a-z0-9_]. */
function entitySlug(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9]+/g, "_");
}

/** The discovery topic level: the unique id where it fits 64 characters, a hash of the node otherwise. */
function discoveryObjectId(nodeId: string, key: string): string {
  const full = `tinyllama_edge_${nodeId}_${key}`;
  if (full.length <= 64) return full;
  return `tinyllama_edge_${createHash("sha256").update(nodeId).digest("hex").slice(0, 12)}_${key}`;
}

function applies(entity: EntitySpec, input: DiscoveryInput): boolean {
  if (entity.needs === "temperature") return input.hasTemperature ?? true;
  if (entity.needs === "lastAnswer") return input.lastAnswer ?? false;
  if (entity.needs === "ask") return input.askEntities ?? false;
  return true;
}

function discoveryTopic(input: Pick<DiscoveryInput, "topics" | "nodeId">, entity: EntitySpec): string {
  return input.topics.discoveryConfig(entity.component, discoveryObjectId(input.nodeId, entity.key));
}

/** Every discovery config of a node, as the daemon publishes it (pure). */
export function buildDiscoveryConfigs(input: DiscoveryInput): DiscoveryConfig[] {
  const { topics, nodeId, version } = input;
  const sourceTopics: Record<Source, string> = {
    status: topics.status,
    health: topics.health,
    lastAnswer: topics.lastAnswer,
    answer: topics.answer,
  };
  const commandTopics = { ask: topics.nodeAsk, askCancel: topics.askCancel };
  // "loading" counts as available, so the model state sensor can show it.
  const availability: DiscoveryAvailability[] = [
    {
      topic: topics.status,
      value_template: "{{ 'offline' if value_json.state == 'offline' else 'online' }}",
      payload_available: "online",
      payload_not_available: "offline",
    },
  ];
  const device = {
    identifiers: [`tinyllama_edge_${nodeId}`],
    name: `TinyLlama ${nodeId}`,
    model: input.model,
    manufacturer: "tinyllama-edge",
    sw_version: version,
    ...(input.hardware ? { hw_version: input.hardware } : {}),
  };
  const origin = {
    name: "tinyllama-edge",
    sw_version: version,
    ...(input.supportUrl ? { support_url: input.supportUrl } : {}),
  };
  const expireAfter =
    input.healthIntervalSeconds === undefined ? undefined : input.healthIntervalSeconds * 3 + 10;

  return ENTITIES.filter((entity) => applies(entity, input)).map((entity) => {
    const stateTopic = entity.source ? sourceTopics[entity.source] : undefined;
    const payload: DiscoveryPayload = {
      name: entity.name,
      unique_id: `tinyllama_edge_${nodeId}_${entity.key}`,
      default_entity_id: `${entity.component}.tinyllama_${entitySlug(nodeId)}_${entity.key}`,
      ...(stateTopic ? { state_topic: stateTopic } : {}),
      ...(entity.valueTemplate ? { value_template: entity.valueTemplate } : {}),
      ...(entity.command ? { command_topic: commandTopics[entity.command] } : {}),
      ...entity.extra,
      ...(entity.extra.json_attributes_template ? { json_attributes_topic: stateTopic } : {}),
      ...(entity.source === "health" && expireAfter !== undefined ? { expire_after: expireAfter } : {}),
      ...(entity.withoutAvailability ? {} : { availability }),
      device,
      origin,
    };
    return { topic: discoveryTopic(input, entity), payload };
  });
}

/** Every discovery topic a node may have published, whatever it has now (for removing them all). */
export function allDiscoveryTopics(input: Pick<DiscoveryInput, "topics" | "nodeId">): string[] {
  return ENTITIES.map((entity) => discoveryTopic(input, entity));
}

/** Discovery topics of entities this node does not have (now): emptied so Home Assistant drops them. */
export function retiredDiscoveryTopics(input: DiscoveryInput): string[] {
  return ENTITIES.filter((entity) => !applies(entity, input)).map((entity) => discoveryTopic(input, entity));
}

/** The retained payload of `<base>/<node>/last_answer`. */
export interface LastAnswerPayload {
  id: string;
  text: string;
  finish_reason: string;
  ts: string;
}

export function buildLastAnswerPayload(
  answer: { id: string; text: string; finishReason: string },
  now: Date = new Date(),
): LastAnswerPayload {
  return { id: answer.id, text: answer.text, finish_reason: answer.finishReason, ts: now.toISOString() };
}

export interface HomeAssistantDiscoveryDeps {
  logger: Logger;
  /** `homeassistant.enabled`; when false, start() removes what an earlier run published. */
  enabled: boolean;
  configs: readonly DiscoveryConfig[];
  /** Topics of entities this node does not have: emptied, so ones an earlier run published go away. */
  retired?: readonly string[];
  publish: (topic: string, payload: string, options: PublishOptions) => Promise<unknown>;
  /**
   * Republishing on Home Assistant's "online" happens at most once in this period; announcements
   * in between are folded into one republish at its end (a flood of them costs nothing more).
   */
  minRepublishMs: number;
  now?: () => number;
}

export class HomeAssistantDiscovery {
  private readonly deps: HomeAssistantDiscoveryDeps;
  private readonly now: () => number;
  private stopped = true;
  private lastPublishAt = -Infinity;
  private pendingRepublish: NodeJS.Timeout | undefined;

  constructor(deps: HomeAssistantDiscoveryDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
  }

  /** Publishes every config, or removes them all when discovery is disabled. */
  async start(): Promise<void> {
    this.stopped = false;
    if (this.deps.enabled) await this.publishAll();
    else await this.removeAll();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pendingRepublish);
    this.pendingRepublish = undefined;
  }

  async publishAll(): Promise<void> {
    const { configs, publish, logger } = this.deps;
    this.lastPublishAt = this.now();
    await Promise.all([
      ...configs.map(({ topic, payload }) =>
        publish(topic, JSON.stringify(payload), { qos: 1, retain: true }),
      ),
      ...this.empty(this.deps.retired ?? []),
    ]);
    logger.info({ entities: configs.length }, "Home Assistant discovery published");
  }

  /** An empty retained payload deletes the config (and the entity) in Home Assistant and on the broker. */
  async removeAll(): Promise<void> {
    const { configs, logger } = this.deps;
    await Promise.all(this.empty([...configs.map(({ topic }) => topic), ...(this.deps.retired ?? [])]));
    logger.info({ entities: configs.length }, "Home Assistant discovery removed");
  }

  private empty(topics: readonly string[]): Promise<unknown>[] {
    return topics.map((topic) => this.deps.publish(topic, "", { qos: 1, retain: true }));
  }

  /**
   * A message on `<prefix>/status`: Home Assistant announces "online" after it (re)starts and
   * expects discovery again. Never rejects.
   */
  async handleHomeAssistantStatus(payload: Buffer | string): Promise<void> {
    if (this.stopped || !this.deps.enabled) return;
    if (payload.toString().trim() !== "online") return;
    const waitMs = this.lastPublishAt + this.deps.minRepublishMs - this.now();
    if (waitMs <= 0) return this.republish();
    if (this.pendingRepublish) return;
    this.pendingRepublish = setTimeout(() => {
      this.pendingRepublish = undefined;
      if (!this.stopped) void this.republish();
    }, waitMs);
    this.pendingRepublish.unref();
  }

  private async republish(): Promise<void> {
    try {
      await this.publishAll();
    } catch (err) {
      this.deps.logger.warn({ err }, "republishing Home Assistant discovery failed");
    }
  }
}
