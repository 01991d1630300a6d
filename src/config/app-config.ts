/** The validated configuration, as the rest of the daemon sees it. Mirrors config/schema.ts. */
export type Auto = "auto";

export interface MqttConfig {
  url: string;
  username: string;
  password: string;
  clientId: string;
  protocolVersion: 4 | 5;
  baseTopic: string;
  keepaliveSeconds: number;
  connectTimeoutMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  streamQos: 0 | 1;
  maxPacketBytes: number;
  replyTopicAllow: string[];
  sessionExpirySeconds: number;
  embeddedBroker: "auto" | "never";
  tls: { ca: string; cert: string; key: string; rejectUnauthorized: boolean };
  pool: { enabled: boolean; group: string };
}

export interface ModelConfig {
  path: string;
  uri: string;
  dir: string;
  downloadTimeoutMs: number;
  sha256: string;
}

export interface RuntimeConfig {
  quantization: string;
  threads: Auto | number;
  gpu: "auto" | "cuda" | "vulkan" | "metal" | "off";
  gpuLayers: Auto | "max" | number;
  contextSize: Auto | number;
  parallelSequences: Auto | number;
  batchSize: Auto | number;
  useMmap: Auto | boolean;
  memoryReserveMiB: Auto | number;
  autotune: boolean;
  batching: "full" | "eager";
  nativeBuild: "auto" | "off";
  /** "verified", "off" or a node-llama-cpp version (llama-internals.ts). */
  llamaInternals: string;
}

export interface RequestLimitsConfig {
  maxPayloadBytes: number;
  maxPromptBytes: number;
  maxMessages: number;
  defaultMaxTokens: number;
  maxTokensCap: number;
  defaultTemperature: number;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  systemPrompt: string;
}

export interface ThermalConfig {
  /** Empty: no temperature source. */
  sensorPath: string;
  throttleAtC: number;
  resumeBelowC: number;
  reducedThreads: Auto | number;
  checkSeconds: number;
}

export interface PromptStateConfig {
  enabled: boolean;
  minTokens: number;
  maxEntries: number;
  maxMegabytes: number;
  warmSystemPrompt: boolean;
}

export interface AppConfig {
  mqtt: MqttConfig;
  node: { id: string };
  model: ModelConfig;
  runtime: RuntimeConfig;
  requests: RequestLimitsConfig;
  scheduler: { maxQueue: number; fairness: "sender" | "fifo"; senderProperty: string; ratePerMinute: number };
  conversations: { maxCount: number; maxAgeSeconds: number; maxMessages: number; maxChars: number };
  health: { intervalSeconds: number };
  homeassistant: {
    enabled: boolean;
    discoveryPrefix: string;
    republishMinSeconds: number;
    lastAnswer: boolean;
  };
  log: {
    level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
    pretty: "auto" | "always" | "never";
  };
  state: { dir: string };
  promptState: PromptStateConfig;
  shutdown: { deadlineMs: number };
  thermal: ThermalConfig;
  http: { enabled: boolean; host: string; port: number };
  metrics: { http: { port: number; host: string } };
}
