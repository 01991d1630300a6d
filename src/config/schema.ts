import { AUTO_SENSOR, FIRMWARE_THROTTLE_C } from "../hardware/soc-sensors.js";

/**
 * The configuration schema: the single source of truth for every key, its default, its format and
 * its documentation. The table in docs/configuration.md is generated from it (npm run docs:config).
 * Environment variables and CLI flags are derived from the key path (see withEnvAndArgs).
 */
export const configSchema = {
  mqtt: {
    url: {
      doc: "Broker URL (mqtt://, mqtts://, ws://, wss://). The daemon waits and reconnects until the broker answers; only when no config source sets it (a checkout, not NODE_ENV=production) and nothing listens on localhost:1883 does it start an embedded broker (mqtt.embeddedBroker).",
      format: "mqtt-url",
      default: "mqtt://localhost:1883",
    },
    username: { doc: "Broker user name (empty: anonymous).", format: String, default: "" },
    password: { doc: "Broker password. Never logged.", format: String, default: "", sensitive: true },
    clientId: {
      doc: 'MQTT client id (empty: "tinyllama-edge-<node>"). Stable so a persistent session survives restarts.',
      format: String,
      default: "",
    },
    protocolVersion: {
      doc: "MQTT protocol version: 5, or 4 (3.1.1) for old brokers.",
      format: [4, 5],
      default: 5,
    },
    baseTopic: { doc: "First level of every topic.", format: "topic-prefix", default: "tinyllama" },
    keepaliveSeconds: { doc: "MQTT keep-alive interval.", format: "positive-int", default: 30 },
    connectTimeoutMs: {
      doc: "Time allowed for one connection attempt.",
      format: "positive-int",
      default: 10000,
    },
    reconnectMinMs: {
      doc: "First reconnect delay; doubles on each failure.",
      format: "positive-int",
      default: 1000,
    },
    reconnectMaxMs: { doc: "Longest reconnect delay.", format: "positive-int", default: 30000 },
    streamQos: { doc: "QoS of token stream chunks.", format: [0, 1], default: 0 },
    maxPacketBytes: {
      doc: "Largest MQTT packet the daemon sends (0: the broker's Maximum Packet Size from MQTT 5 CONNACK, else no limit). Set it to the broker's max_packet_size for MQTT 3.1.1 brokers: a larger reply would cost the connection. Stream chunks that do not fit are dropped, a final is replaced by a short payload_too_large error.",
      format: "non-negative-int",
      default: 0,
    },
    replyTopicAllow: {
      doc: 'Topic filters a request\'s reply_to / Response Topic may match besides <base>/# (always allowed), e.g. ["home/llm/#"]; ["#"] allows any topic. $-topics, wildcards, Home Assistant discovery and the daemons\' own status/info/health/request/cancel topics are refused whatever this says.',
      format: "topic-filter-list",
      default: [],
    },
    sessionExpirySeconds: {
      doc: "A persistent session the broker keeps this long while the daemon is away, so QoS 1 requests sent during a restart are delivered when it is back (3.1.1: kept until the broker drops it). 0: a clean session on every connect.",
      format: "non-negative-int",
      default: 3600,
    },
    embeddedBroker: {
      doc: '"auto": in a checkout, when no config source sets mqtt.url and nothing listens on localhost:1883, start an embedded broker on 127.0.0.1 (never under NODE_ENV=production: an installed node waits and reconnects). "never": always use the configured broker.',
      format: ["auto", "never"],
      default: "auto",
    },
    tls: {
      ca: { doc: "Path of a CA certificate (PEM) to verify the broker.", format: String, default: "" },
      cert: { doc: "Path of a client certificate (PEM).", format: String, default: "" },
      key: {
        doc: "Path of the client certificate's key (PEM).",
        format: String,
        default: "",
        sensitive: true,
      },
      rejectUnauthorized: { doc: "Verify the broker's certificate.", format: Boolean, default: true },
    },
    pool: {
      enabled: {
        doc: "Subscribe to the shared pool request topic ($share/<group>/<base>/pool/request).",
        format: Boolean,
        default: true,
      },
      group: {
        doc: "Shared subscription group (empty: the base topic).",
        format: "optional-topic-level",
        default: "",
      },
    },
  },
  node: {
    id: {
      doc: "Node id in topics (empty: the host name, lower-cased, reduced to [a-z0-9_-]).",
      format: "optional-topic-level",
      default: "",
    },
  },
  model: {
    path: {
      doc: "A local GGUF file to serve. Takes precedence over model.uri.",
      format: String,
      default: "",
    },
    uri: {
      doc: "An hf: URI or https URL of a GGUF to download into model.dir (empty: the TinyLlama-1.1B-Chat-v1.0 GGUF of the planned quantization).",
      format: String,
      default: "",
    },
    dir: { doc: "Where downloaded models are kept.", format: String, default: "models" },
    downloadTimeoutMs: {
      doc: "Longest silence from the download server before giving up.",
      format: "positive-int",
      default: 60000,
    },
    sha256: {
      doc: "Expected SHA-256 of the model file (empty: no check beyond the GGUF header).",
      format: String,
      default: "",
    },
  },
  runtime: {
    quantization: {
      doc: 'TinyLlama quantization to use ("auto": chosen for the hardware), e.g. Q4_0, Q4_K_M, Q8_0.',
      format: String,
      default: "auto",
    },
    threads: {
      doc: 'Inference threads ("auto": physical performance cores, tuned).',
      format: "auto-or-positive-int",
      default: "auto",
    },
    gpu: {
      doc: 'GPU backend: "auto", "cuda", "vulkan", "metal" or "off".',
      format: ["auto", "cuda", "vulkan", "metal", "off"],
      default: "auto",
    },
    gpuLayers: {
      doc: 'Layers to offload to the GPU: "auto", "max" or a count.',
      format: "gpu-layers",
      default: "auto",
    },
    contextSize: {
      doc: 'Context tokens per sequence ("auto": from memory).',
      format: "auto-or-positive-int",
      default: "auto",
    },
    parallelSequences: {
      doc: 'Requests generated at once ("auto": from memory and cores).',
      format: "auto-or-positive-int",
      default: "auto",
    },
    batchSize: { doc: 'Prompt batch size ("auto").', format: "auto-or-positive-int", default: "auto" },
    useMmap: {
      doc: 'Map the model file ("auto": off where llama.cpp repacks weights).',
      format: "auto-or-boolean",
      default: "auto",
    },
    batching: {
      doc: '"full": each decode waits (a few microtask turns at most) until every request of the previous batch has its next token, and puts them in sequence order, so 4 requests decode as one batch of 4 in one pass over the weights; "eager": node-llama-cpp\'s default, which often decodes 3 + 1.',
      format: ["full", "eager"],
      default: "full",
    },
    nativeBuild: {
      doc: '"auto": without a GPU, load the llama.cpp build compiled on this machine by `tinyllama-edge build` when there is one (the prebuilt binary if it fails to load); "off": always the prebuilt binary.',
      format: ["auto", "off"],
      default: "auto",
    },
    llamaInternals: {
      doc: '"verified": use node-llama-cpp\'s private internals (batch order, start gate, sampling guard) only on the node-llama-cpp release they were checked against, otherwise its own behaviour; "off": never; a version number: trust them on that release instead (after running test/integration/llama-internals.test.ts on it).',
      format: String,
      default: "verified",
    },
    autotune: {
      doc: 'With runtime.threads "auto": measure generation at a few thread counts on first start and keep the fastest (cached in state.dir per hardware and model).',
      format: Boolean,
      default: true,
    },
    memoryReserveMiB: {
      doc: 'RAM left for the OS and other services when planning ("auto": 300 MiB, less on boards under 2.4 GB).',
      format: "auto-or-positive-int",
      default: "auto",
    },
  },
  requests: {
    maxPayloadBytes: { doc: "Largest request payload accepted.", format: "positive-int", default: 65536 },
    maxPromptBytes: {
      doc: "Largest prompt (all messages together) accepted.",
      format: "positive-int",
      default: 16384,
    },
    maxMessages: { doc: "Most chat messages in one request.", format: "positive-int", default: 64 },
    defaultMaxTokens: { doc: "max_tokens when a request gives none.", format: "positive-int", default: 256 },
    maxTokensCap: { doc: "Upper bound for max_tokens.", format: "positive-int", default: 2048 },
    defaultTemperature: {
      doc: "temperature when a request gives none.",
      format: "non-negative-number",
      default: 0.7,
    },
    defaultTimeoutMs: {
      doc: "timeout_ms when a request gives none.",
      format: "positive-int",
      default: 120000,
    },
    maxTimeoutMs: { doc: "Upper bound for timeout_ms.", format: "positive-int", default: 600000 },
    systemPrompt: {
      doc: "System prompt used when a request gives none.",
      format: String,
      default: "You are a concise, helpful assistant for a smart home.",
    },
  },
  scheduler: {
    maxQueue: {
      doc: "Requests waiting beyond the running ones; more are answered busy.",
      format: "non-negative-int",
      default: 16,
    },
    fairness: {
      doc: '"sender": senders (reply topics without their last level) take turns, so one flooding client cannot starve the others. "fifo": strict arrival order.',
      format: ["sender", "fifo"],
      default: "sender",
    },
    senderProperty: {
      doc: "An MQTT 5 user property that the broker sets to the publishing client's id or user name (empty: none). Fairness and the rate limit then go by it; otherwise by the reply topic, which a client chooses. Name it only where the broker overwrites it: a client could set it itself.",
      format: String,
      default: "",
    },
    ratePerMinute: {
      doc: "Requests a minute one sender may make (bursts up to the same number); more are answered busy. 0: no limit.",
      format: "non-negative-int",
      default: 600,
    },
  },
  conversations: {
    maxCount: {
      doc: "Conversations (conversation_id) kept on the node; the least recently used goes first.",
      format: "non-negative-int",
      default: 64,
    },
    maxAgeSeconds: {
      doc: "A conversation untouched this long is forgotten.",
      format: "positive-int",
      default: 1800,
    },
    maxMessages: {
      doc: "Messages kept per conversation; the oldest exchanges go first.",
      format: "positive-int",
      default: 20,
    },
    maxChars: {
      doc: "Characters kept per conversation, so its history fits the context.",
      format: "positive-int",
      default: 4000,
    },
  },
  health: {
    intervalSeconds: { doc: "Period of the retained health topic.", format: "positive-int", default: 30 },
  },
  homeassistant: {
    enabled: { doc: "Publish Home Assistant MQTT discovery.", format: Boolean, default: true },
    discoveryPrefix: {
      doc: "Home Assistant discovery prefix.",
      format: "topic-prefix",
      default: "homeassistant",
    },
    republishMinSeconds: {
      doc: "Discovery is republished when Home Assistant announces itself online, at most once in this period (a flood of announcements makes one republish).",
      format: "positive-int",
      default: 30,
    },
    lastAnswer: {
      doc: "Also publish every answer's text, retained, on <base>/<node>/last_answer with a \"Last answer\" sensor. Off by default: it keeps every client's answers on the broker and in Home Assistant's recorder.",
      format: Boolean,
      default: false,
    },
  },
  log: {
    level: {
      doc: "Log level.",
      format: ["fatal", "error", "warn", "info", "debug", "trace", "silent"],
      default: "info",
    },
    pretty: {
      doc: '"auto": human-readable logs on a terminal, JSON otherwise (journald).',
      format: ["auto", "always", "never"],
      default: "auto",
    },
  },
  state: {
    dir: {
      doc: "Where the daemon keeps tuning results and other state.",
      format: String,
      default: ".cache/state",
    },
  },
  promptState: {
    enabled: {
      doc: "Keep the KV cache of often used prompt prefixes (long system prompts) in state.dir, and load it at start, so the first request after a restart does not evaluate them again.",
      format: Boolean,
      default: true,
    },
    minTokens: {
      doc: "Shortest prefix worth keeping, in tokens (shorter ones evaluate in a blink).",
      format: "positive-int",
      default: 64,
    },
    maxEntries: {
      doc: "Most prefixes kept on disk; the least used goes first.",
      format: "non-negative-int",
      default: 4,
    },
    maxMegabytes: {
      doc: "Most disk space the kept prefixes take (TinyLlama: about 22 MB per 1,000 tokens).",
      format: "positive-int",
      default: 256,
    },
    warmSystemPrompt: {
      doc: "At start, evaluate requests.systemPrompt (when it has minTokens or more) before going online, and keep it.",
      format: Boolean,
      default: true,
    },
  },
  shutdown: {
    deadlineMs: {
      doc: "Longest graceful shutdown before the process is forced to exit.",
      format: "positive-int",
      default: 20000,
    },
  },
  thermal: {
    sensorPath: {
      doc: 'File giving the SoC temperature in millidegrees Celsius ("auto": the thermal zone whose type names the SoC or CPU, as detect reports it; empty: no temperature).',
      format: String,
      default: AUTO_SENSOR,
    },
    throttleAtC: {
      doc: "At or above this temperature (°C) inference runs on thermal.reducedThreads, before the firmware throttles the clocks.",
      format: "non-negative-number",
      default: FIRMWARE_THROTTLE_C,
    },
    resumeBelowC: {
      doc: "Below this temperature (°C) the configured thread count is restored (kept under thermal.throttleAtC so the two do not flap).",
      format: "non-negative-number",
      default: 75,
    },
    reducedThreads: {
      doc: 'Inference threads while hot ("auto": half the configured threads, at least 1).',
      format: "auto-or-positive-int",
      default: "auto",
    },
    checkSeconds: {
      doc: "Period of the temperature and throttling check.",
      format: "positive-int",
      default: 10,
    },
  },
  http: {
    enabled: {
      doc: "Serve an Ollama-compatible HTTP API (/api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version) on the same queue as MQTT, for Home Assistant's Ollama integration (Assist) and other Ollama clients.",
      format: Boolean,
      default: false,
    },
    host: {
      doc: "Address the Ollama-compatible API listens on (0.0.0.0: every interface; it has no authentication).",
      format: String,
      default: "127.0.0.1",
    },
    port: { doc: "Port of the Ollama-compatible API.", format: "port", default: 11434 },
  },
  metrics: {
    http: {
      port: {
        doc: "Port of the Prometheus endpoint /metrics (0: off).",
        format: "port",
        default: 0,
      },
      host: {
        doc: "Address the Prometheus endpoint listens on.",
        format: String,
        default: "127.0.0.1",
      },
    },
  },
} as const;
