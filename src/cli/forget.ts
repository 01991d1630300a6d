import { hostname } from "node:os";
import mqtt from "mqtt";
import { allDiscoveryTopics } from "../health/home-assistant.js";
import { credentialOptions } from "../mqtt/client-options.js";
import { createTopics, nodeIdFromHostname } from "../mqtt/topics.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";

const USAGE = `usage: tinyllama-edge forget [--config PATH] [--<config key> <value> ...]

Removes what this node keeps on the broker: its Home Assistant entities (empty retained discovery
configs) and its retained status, info, health and last answer. Run it with the daemon stopped
(deploy/uninstall.sh --purge does).`;

/** `tinyllama-edge forget`: empty every retained topic this node publishes. */
export const forget: Command = async (ctx) => {
  if (ctx.argv.includes("--help") || ctx.argv.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const loaded = loadCommandConfig(ctx.argv, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  const nodeId = config.node.id || nodeIdFromHostname(hostname());
  const topics = createTopics({
    baseTopic: config.mqtt.baseTopic,
    nodeId,
    poolGroup: config.mqtt.pool.group,
    discoveryPrefix: config.homeassistant.discoveryPrefix,
  });
  const retained = [
    ...allDiscoveryTopics({ topics, nodeId }),
    topics.status,
    topics.info,
    topics.health,
    topics.lastAnswer,
  ];
  let client: mqtt.MqttClient;
  try {
    client = await mqtt.connectAsync(config.mqtt.url, {
      clientId: `tinyllama-edge-forget-${nodeId}`.slice(0, 64),
      protocolVersion: config.mqtt.protocolVersion,
      connectTimeout: config.mqtt.connectTimeoutMs,
      reconnectPeriod: 0,
      ...credentialOptions(config.mqtt),
    });
  } catch (err) {
    process.stderr.write(
      `tinyllama-edge forget: cannot reach the broker at ${config.mqtt.url}: ${(err as Error).message}\n`,
    );
    return 1;
  }
  try {
    await Promise.all(retained.map((topic) => client.publishAsync(topic, "", { qos: 1, retain: true })));
    process.stdout.write(
      `removed node ${nodeId}'s ${retained.length} retained topics from ${config.mqtt.url}\n`,
    );
    return 0;
  } finally {
    await client.endAsync();
  }
};
