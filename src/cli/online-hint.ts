import { createTopics } from "../mqtt/topics.js";

export interface OnlineHintOptions {
  baseTopic: string;
  nodeId: string;
  /** The broker URL the daemon uses. */
  brokerUrl: string;
  /** How the command is called here: `tinyllama-edge` when installed, `npx tinyllama-edge` in a checkout. */
  command: string;
}

/** What a person at the terminal can paste to talk to the node that just came online. */
export function onlineHint(options: OnlineHintOptions): string {
  const topics = createTopics({
    baseTopic: options.baseTopic,
    nodeId: options.nodeId,
    poolGroup: "",
    discoveryPrefix: "homeassistant",
  });
  const url = new URL(options.brokerUrl);
  const broker = `-h ${url.hostname || "localhost"} -p ${url.port || (url.protocol === "mqtts:" ? "8883" : "1883")}`;
  const replies = `${topics.base}/${topics.nodeId}/response/#`;
  return [
    `online: requests on ${topics.nodeRequest}. Try, in another terminal:`,
    `  ${options.command} ask --node.id ${options.nodeId} "hello"`,
    `  mosquitto_sub ${broker} -v -t '${replies}' &`,
    `  mosquitto_pub ${broker} -t ${topics.nodeRequest} -m '{"id":"t1","prompt":"hello","max_tokens":32}'`,
  ].join("\n");
}
