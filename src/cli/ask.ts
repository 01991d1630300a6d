import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { EdgeClient, type RequestTarget } from "../client/edge-client.js";
import type { FinalResult } from "../mqtt/messages.js";
import { nodeIdFromHostname } from "../mqtt/topics.js";
import { chooseNode } from "./ask-target.js";
import type { Command } from "./command.js";
import { loadCommandConfig } from "./config-problems.js";
import { splitOwnFlags } from "./own-flags.js";

const USAGE = `usage: tinyllama-edge ask [options] [--<config key> <value> ...] "prompt"

  --pool              send to the pool (any node) instead of one node
  --node.id ID        the node to ask (default: this machine's node if it is up, else the one
                      node online; an offline or unknown node fails at once)
  --system TEXT       system prompt
  --schema FILE       constrain the answer to the JSON schema in FILE
  --max-tokens N      most tokens to generate
  --temperature T     sampling temperature
  --timeout MS        request deadline (timeout_ms)
  --raw               plain completion, no chat template
  --json              print the final answer object as JSON instead of the text
Ctrl-C cancels the request and exits 130.`;

const OPTIONS = {
  pool: { type: "boolean" },
  system: { type: "string" },
  schema: { type: "string" },
  "max-tokens": { type: "string" },
  temperature: { type: "string" },
  timeout: { type: "string" },
  raw: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function positiveNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) throw new Error(`--${name} must be a number >= 0`);
  return number;
}

/** `tinyllama-edge ask "…"`: publish a prompt, print tokens as they stream, exit non-zero on an error reply. */
export const ask: Command = async (ctx) => {
  let parsed: ReturnType<typeof splitOwnFlags<typeof OPTIONS>>;
  let body: Record<string, unknown>;
  try {
    parsed = splitOwnFlags(ctx.argv, OPTIONS);
    if (parsed.values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const prompt = parsed.positionals.join(" ");
    if (!prompt) throw new Error("a prompt is required");
    const { values } = parsed;
    body = { prompt, stream: true };
    if (values.system !== undefined) body.system = values.system;
    if (values.raw) body.raw = true;
    if (values.schema !== undefined) body.json_schema = JSON.parse(readFileSync(values.schema, "utf8"));
    const maxTokens = positiveNumber("max-tokens", values["max-tokens"]);
    if (maxTokens !== undefined) body.max_tokens = maxTokens;
    const temperature = positiveNumber("temperature", values.temperature);
    if (temperature !== undefined) body.temperature = temperature;
    const timeout = positiveNumber("timeout", values.timeout);
    if (timeout !== undefined) body.timeout_ms = timeout;
  } catch (err) {
    process.stderr.write(`tinyllama-edge ask: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const loaded = loadCommandConfig(parsed.configArgs, ctx.env);
  if (!loaded.ok) return loaded.exitCode;
  const { config } = loaded;
  const local = nodeIdFromHostname(hostname());
  let client: EdgeClient;
  try {
    client = await EdgeClient.connect(config.mqtt, config.node.id || local);
  } catch (err) {
    process.stderr.write(
      `tinyllama-edge ask: cannot reach the broker at ${config.mqtt.url}: ${(err as Error).message}\n`,
    );
    return 1;
  }
  let target: RequestTarget = { kind: "pool" };
  if (!parsed.values.pool) {
    // The retained statuses say at once whether anyone can answer; waiting would only time out.
    const chosen = chooseNode({ configured: config.node.id, local, states: await client.nodeStates() });
    if (!chosen.ok) {
      process.stderr.write(`tinyllama-edge ask: ${chosen.message}\n`);
      await client.close();
      return 1;
    }
    client.useNode(chosen.nodeId);
    target = { kind: "node", nodeId: chosen.nodeId };
  }
  const id = client.newId();
  const cancelled = new AbortController();
  const onInterrupt = () => {
    // Wait briefly for the daemon's final (partial text), then give up.
    const giveUp = () => setTimeout(() => cancelled.abort(new Error("cancelled")), 300);
    client.cancel(target, id).then(giveUp, giveUp);
  };
  ctx.signal.addEventListener("abort", onInterrupt, { once: true });
  try {
    const waitMs =
      (typeof body.timeout_ms === "number" ? body.timeout_ms : config.requests.defaultTimeoutMs) + 30_000;
    const run = await client.send(
      target,
      { ...body, id },
      {
        waitMs,
        signal: cancelled.signal,
        onChunk: (chunk) => {
          if (!parsed.values.json) process.stdout.write(chunk.text);
        },
      },
    );
    const final = run.final;
    if (final.status === "error") {
      process.stderr.write(`\nerror ${final.error.code}: ${final.error.message}\n`);
      return ctx.signal.aborted ? 130 : 1;
    }
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify(final)}\n`);
    } else {
      if (run.chunks.length === 0) process.stdout.write(final.text);
      process.stdout.write("\n");
      process.stderr.write(`${summary(final)}\n`);
    }
    return ctx.signal.aborted ? 130 : 0;
  } catch (err) {
    if (ctx.signal.aborted) {
      process.stderr.write("\ncancelled\n");
      return 130;
    }
    process.stderr.write(`\ntinyllama-edge ask: ${(err as Error).message}\n`);
    return 1;
  } finally {
    ctx.signal.removeEventListener("abort", onInterrupt);
    await client.close();
  }
};

function summary(final: FinalResult): string {
  const { usage, timings } = final;
  return [
    `[${final.node} · ${final.model} · ${final.finish_reason}]`,
    `prompt ${usage.prompt_tokens} tokens, generated ${usage.completion_tokens}`,
    `first token ${timings.ttft_ms ?? "-"} ms, total ${timings.total_ms} ms, ${timings.tokens_per_second ?? "-"} tokens/s`,
  ].join("  ");
}
