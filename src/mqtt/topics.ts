/**
 * Every topic the daemon uses is built and parsed here, and nowhere else. Levels that come from
 * outside (ids, node names) are checked so no topic ever holds a wildcard or an empty level.
 */
export const ID_PATTERN = /^(?!_)[A-Za-z0-9_-]{1,64}$/;
const LEVEL_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const ERRORS_ID = "_errors";

export function isValidId(value: string): boolean {
  return ID_PATTERN.test(value);
}

/** A host name reduced to a topic level: lower case, [a-z0-9_-], at most 64 characters. */
export function nodeIdFromHostname(hostname: string): string {
  const reduced = hostname
    .toLowerCase()
    .split(".")[0]!
    .replace(/[^a-z0-9_-]/g, "-")
    .replace(/^[-_]+/, "")
    .slice(0, 64);
  return reduced.length > 0 ? reduced : "node";
}

/**
 * Control characters and Unicode non-characters (U+FDD0-U+FDEF and U+xFFFE/U+xFFFF in every plane):
 * brokers disconnect a client that publishes them.
 */
function hasUnsafeTopicCharacter(topic: string): boolean {
  for (const character of topic) {
    const code = character.codePointAt(0)!;
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return true;
    if ((code >= 0xfdd0 && code <= 0xfdef) || (code & 0xfffe) === 0xfffe) return true;
  }
  return false;
}
/** Mosquitto refuses more than 200 levels; one is kept for the `/stream` suffix. */
const MAX_REPLY_LEVELS = 199;

/**
 * True for a topic a daemon may publish to: no wildcards, no empty level, not a $-topic, nothing a
 * broker would refuse (a refused publish costs the whole connection, and mqtt.js would resend it).
 */
export function isPublishableTopic(topic: string): boolean {
  const levels = topic.split("/");
  return (
    topic.length > 0 &&
    topic.length <= 1024 &&
    !/[+#]/.test(topic) &&
    !hasUnsafeTopicCharacter(topic) &&
    !topic.startsWith("$") &&
    levels.length <= MAX_REPLY_LEVELS &&
    levels.every((level) => level.length > 0)
  );
}

export interface TopicsOptions {
  baseTopic: string;
  nodeId: string;
  poolGroup: string;
  discoveryPrefix: string;
}

export type RequestOrigin = "node" | "pool";

export interface Topics {
  readonly base: string;
  readonly nodeId: string;
  readonly status: string;
  readonly info: string;
  readonly health: string;
  /** The last generated answer, retained, for Home Assistant's "last answer" sensor. */
  readonly lastAnswer: string;
  readonly nodeRequest: string;
  readonly nodeCancel: string;
  readonly poolRequest: string;
  /** The shared-subscription filter for the pool request topic. */
  readonly poolRequestShared: string;
  readonly poolCancel: string;
  /** Plain-text prompts (the payload is the prompt), for Home Assistant entities and shells. */
  readonly nodeAsk: string;
  readonly poolAsk: string;
  readonly poolAskShared: string;
  /** Any payload: cancel what this node runs for the ask topics (Home Assistant's Cancel button). */
  readonly askCancel: string;
  /** One JSON event per ask, not retained (Home Assistant's Answer event entity). */
  readonly answer: string;
  readonly errors: string;
  readonly homeAssistantStatus: string;
  /** Default reply topic of a request that named none. */
  response(origin: RequestOrigin, id: string): string;
  stream(replyTopic: string): string;
  discoveryConfig(component: string, objectId: string): string;
  originOf(topic: string): RequestOrigin;
  /** Topics a request must never redirect replies into. */
  isReserved(topic: string): boolean;
  /** A node's or the pool's default response topics (`<base>/<node|pool>/response/…`). */
  isResponse(topic: string): boolean;
}

function assertLevel(name: string, value: string): void {
  if (!LEVEL_PATTERN.test(value))
    throw new Error(`${name} ${JSON.stringify(value)} is not a valid topic level`);
}

export function createTopics(options: TopicsOptions): Topics {
  const { baseTopic: base, nodeId, discoveryPrefix } = options;
  assertLevel("node id", nodeId);
  const group = options.poolGroup || base.replace(/[^A-Za-z0-9_-]/g, "_");
  assertLevel("pool group", group);
  const nodeRoot = `${base}/${nodeId}`;
  const poolRoot = `${base}/pool`;
  const topics: Topics = {
    base,
    nodeId,
    status: `${nodeRoot}/status`,
    info: `${nodeRoot}/info`,
    health: `${nodeRoot}/health`,
    lastAnswer: `${nodeRoot}/last_answer`,
    nodeRequest: `${nodeRoot}/request`,
    nodeCancel: `${nodeRoot}/cancel`,
    poolRequest: `${poolRoot}/request`,
    poolRequestShared: `$share/${group}/${poolRoot}/request`,
    poolCancel: `${poolRoot}/cancel`,
    nodeAsk: `${nodeRoot}/ask`,
    poolAsk: `${poolRoot}/ask`,
    poolAskShared: `$share/${group}/${poolRoot}/ask`,
    askCancel: `${nodeRoot}/ask/cancel`,
    answer: `${nodeRoot}/answer`,
    errors: `${nodeRoot}/response/${ERRORS_ID}`,
    homeAssistantStatus: `${discoveryPrefix}/status`,
    response(origin, id) {
      if (!isValidId(id)) throw new Error(`invalid request id ${JSON.stringify(id)}`);
      return `${origin === "pool" ? poolRoot : nodeRoot}/response/${id}`;
    },
    stream(replyTopic) {
      return `${replyTopic}/stream`;
    },
    discoveryConfig(component, objectId) {
      assertLevel("component", component);
      assertLevel("object id", objectId);
      return `${discoveryPrefix}/${component}/${objectId}/config`;
    },
    originOf(topic) {
      return topic.startsWith(`${poolRoot}/`) ? "pool" : "node";
    },
    isResponse(topic) {
      if (!topic.startsWith(`${base}/`)) return false;
      const rest = topic.slice(base.length + 1).split("/");
      return rest.length >= 3 && rest[1] === "response";
    },
    isReserved(topic) {
      // Any node's status/info/health/last_answer/request/cancel/ask/answer, the pool's topics and
      // Home Assistant discovery: a reply there would pose as the daemon or become a new prompt.
      if (topic === discoveryPrefix || topic.startsWith(`${discoveryPrefix}/`)) return true;
      if (!topic.startsWith(`${base}/`)) return false;
      const rest = topic.slice(base.length + 1).split("/");
      if (rest.length >= 3 && rest[1] === "ask") return true;
      return (
        rest.length === 2 &&
        ["status", "info", "health", "last_answer", "request", "cancel", "ask", "answer"].includes(rest[1]!)
      );
    },
  };
  return topics;
}
