import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import {
  brokerRefusedReplyToArbitrary,
  expectedAddress,
  type FuzzOptions,
  fuzzCaseArbitrary,
} from "../helpers/fuzz-payloads.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { isRunning, MiB, resourceGrowth, resourceUse } from "../helpers/process-stats.js";
import { type FinalReply, ReplyLedger } from "../helpers/reply-ledger.js";
import { mosquittoPath, startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const BASE = "tinyllama";
const NODE = "fuzz";
const REQUEST = `${BASE}/${NODE}/request`;
const STATUS = `${BASE}/${NODE}/status`;
const ERRORS = `${BASE}/${NODE}/response/_errors`;
const response = (id: string) => `${BASE}/${NODE}/response/${id}`;
const OPTIONS: FuzzOptions = { base: BASE, node: NODE, maxPayloadBytes: 65536, maxTokens: 4 };
/** FUZZ_CASES / FUZZ_SEED reproduce or lengthen a run; the seed is printed with every failure. */
const CASES = Number(process.env.FUZZ_CASES ?? 5000);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/**
 * RSS grows while V8's heap and the allocator reach their working size (+28 to +36 MiB over 3,000 to
 * 5,000 payloads here, and falling again after later collections), never without bound.
 */
const MAX_RSS_GROWTH = 80 * MiB;
const MAX_FD_GROWTH = 8;
const ERROR_CODES = new Set([
  "invalid_request",
  "payload_too_large",
  "busy",
  "timeout",
  "cancelled",
  "context_overflow",
  "model_unavailable",
  "shutting_down",
  "internal",
]);

function preview(payload: Buffer): string {
  const text = payload.toString("utf8");
  return JSON.stringify(text.length > 160 ? `${text.slice(0, 160)}… (${payload.length} bytes)` : text);
}

/** What a daemon said before it died: its fatal lines on stderr and its error-level log lines. */
function lastWords(daemon: DaemonProcess): string[] {
  return daemon.lines.filter((line) => !line.startsWith("{") || /"level":(50|60)/.test(line)).slice(-3);
}

function tally(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

// MQTT 5 (Correlation Data ties every answer to its request, whatever its topic): a real Mosquitto.
describe.skipIf(mosquittoPath() === null)("fuzz: random payloads on the request topic", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  let ledger: ReplyLedger;
  let daemon: DaemonProcess;
  const fuzzFinals: FinalReply[] = [];

  /** Sends with Correlation Data = key; the daemon copies it onto the answer, wherever that goes. */
  const send = (payload: Buffer | string, key: string) =>
    probe.client.publishAsync(REQUEST, payload, {
      qos: 1,
      properties: { correlationData: Buffer.from(key) },
    });
  const answerTo = async (payload: object, key: string, timeoutMs = 30_000) => {
    await send(JSON.stringify(payload), key);
    await ledger.waitUntil(() => ledger.finalsFor(key).length > 0, timeoutMs, `the answer to ${key}`);
    return ledger.finalsFor(key)[0]!;
  };
  const mqttTrouble = () =>
    daemon
      .logs()
      .filter((l) => l.component === "mqtt" && typeof l.level === "number" && l.level >= 40)
      .map((l) => String(l.msg));
  const offlineAnnouncements = () =>
    probe.on(STATUS).filter((m) => (m.json as { state?: string } | undefined)?.state === "offline");

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    // Replies may go to any topic a payload names: listen everywhere but on the request topic itself.
    ledger = new ReplyLedger(probe.client, { ignoreTopic: (topic) => topic === REQUEST });
    await probe.subscribe("#");
    daemon = startTinyDaemon(broker.url, NODE, [
      // Busy answers are answers too, but a rate limit or a full queue would hide what the rest does.
      "--scheduler.ratePerMinute",
      "0",
      "--scheduler.maxQueue",
      "10000",
      // Generations stay short: valid payloads that name no max_tokens, or a random one, are cheap.
      "--requests.defaultMaxTokens",
      "4",
      "--requests.maxTokensCap",
      "64",
    ]);
    await probe.waitForJson(STATUS, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    ledger?.detach();
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it(`answers each of ${CASES} random payloads exactly once, where the contract says, and keeps serving in bounded memory`, async () => {
    const pid = daemon.child.pid!;
    // Warm-up: the engine's buffers, a grammar, a conversation and the stream path exist before the baseline.
    const warmUps = [
      { prompt: "warm up", max_tokens: 4 },
      { prompt: "warm up", raw: true, max_tokens: 4 },
      { messages: [{ role: "user", content: "warm up" }], max_tokens: 4, conversation_id: "warm" },
      { prompt: "warm up", max_tokens: 4, json_schema: { type: "boolean" } },
      { prompt: 5 },
    ];
    for (const [i, body] of warmUps.entries()) await answerTo({ id: `warm-${i}`, ...body }, `warm-${i}`);
    const before = await resourceUse(pid);
    const finalsBefore = ledger.finals.length;

    const builders = fc.sample(fuzzCaseArbitrary(OPTIONS), { numRuns: CASES, seed: SEED });
    const cases = builders.map((build, n) => ({ ...build(n), key: `fz-${n}` }));
    const started = performance.now();
    // A window of unanswered requests: the broker queues a bounded number of messages for the daemon and
    // drops the rest, which would look like lost requests.
    for (let i = 0; i < cases.length; i += 200) {
      await Promise.race([
        ledger.waitUntil(
          () => ledger.finals.length - finalsBefore >= i - 2000,
          60_000,
          "the daemon to catch up",
        ),
        daemon.exited.then(() => undefined), // reported below, with its last words
      ]);
      await Promise.all(cases.slice(i, i + 200).map((c) => send(c.payload, c.key)));
    }
    const published = performance.now();
    await Promise.race([
      ledger
        .waitUntil(() => ledger.finals.length - finalsBefore >= cases.length, 90_000, `${CASES} answers`)
        .catch(() => undefined), // the per-case check below says which ones are missing
      daemon.exited,
    ]);
    await ledger.settle(1000);
    const answered = performance.now();

    const problems: string[] = [];
    // A dead daemon leaves every later request unanswered: say why first, not only what is missing.
    if (!isRunning(daemon.child)) {
      problems.push(
        `the daemon exited (${daemon.child.exitCode ?? daemon.child.signalCode}): ${lastWords(daemon).join(" | ")}`,
      );
    }
    for (const c of cases) {
      const finals = ledger.finalsFor(c.key);
      fuzzFinals.push(...finals);
      if (finals.length !== 1) {
        problems.push(`${c.key} (${c.kind}) answered ${finals.length} times: ${preview(c.payload)}`);
        continue;
      }
      const final = finals[0]!;
      const { id } = final.json;
      const expected = expectedAddress(c.payload, OPTIONS);
      if (expected.id !== null && id !== expected.id) {
        problems.push(`${c.key} (${c.kind}) answered with id ${JSON.stringify(id)}, not ${expected.id}`);
      }
      if (expected.id === null && id !== null && !(typeof id === "string" && /^req-[0-9a-f]{12}$/.test(id))) {
        problems.push(`${c.key} (${c.kind}) answered with id ${JSON.stringify(id)}: ${preview(c.payload)}`);
      }
      const fallback = typeof id === "string" ? response(id) : ERRORS;
      const topic = expected.replyTo ?? fallback;
      if (final.topic !== topic) {
        problems.push(`${c.key} (${c.kind}) answered on ${final.topic}, not ${topic}: ${preview(c.payload)}`);
      }
      if (final.status === "error" && !ERROR_CODES.has(final.code ?? "")) {
        problems.push(`${c.key} (${c.kind}) answered with an undocumented code ${final.code}`);
      }
      if (final.json.node !== NODE) problems.push(`${c.key} answered with node ${String(final.json.node)}`);
    }

    const statuses = tally(fuzzFinals.map((f) => (f.status === "ok" ? "ok" : `error:${f.code}`)));
    console.info(
      JSON.stringify({
        seed: SEED,
        cases: cases.length,
        kinds: tally(cases.map((c) => c.kind)),
        answers: statuses,
        streamChunks: ledger.streamChunks,
        publishMs: Math.round(published - started),
        answeredMs: Math.round(answered - started),
      }),
    );
    expect(problems.slice(0, 20), `seed ${SEED}: ${problems.length} problems`).toEqual([]);
    expect(statuses.ok ?? 0, "some payloads were valid and generated text").toBeGreaterThan(0);

    // Still alive, still online, never disconnected, still serving.
    expect(isRunning(daemon.child)).toBe(true);
    expect(offlineAnnouncements()).toHaveLength(0);
    expect(mqttTrouble()).toEqual([]);
    expect(daemon.logs().filter((l) => l.msg === "unexpected failure handling a request")).toHaveLength(0);
    const late = await MqttProbe.connect(broker.url);
    try {
      await late.subscribe(STATUS);
      const status = await late.waitForJson(STATUS);
      expect(status.json).toMatchObject({ state: "online" });
    } finally {
      await late.close();
    }
    const after = await answerTo({ id: "after-fuzz", prompt: "still there?", max_tokens: 4 }, "after-fuzz");
    expect(after.json).toMatchObject({ id: "after-fuzz", status: "ok" });
    expect(after.topic).toBe(response("after-fuzz"));

    const growth = await resourceGrowth(pid, before);
    expect(growth.rssBytes).toBeLessThan(MAX_RSS_GROWTH);
    expect(growth.fds).toBeLessThanOrEqual(MAX_FD_GROWTH);
  }, 150_000);

  it("never answers internal: a timeout_ms that runs out as generation starts is a timeout", async () => {
    // What the fuzz run saw, then a deterministic case: an idle daemon starts the request at once and
    // the deadline passes during prompt evaluation, before the first token.
    const outcomes: string[] = fuzzFinals
      .filter((f) => f.code === "internal")
      .map(
        (f) =>
          `fuzz answer ${String(f.correlation)}: internal: ${String((f.json.error as { message?: unknown }).message)}`,
      );
    for (const timeoutMs of [1, 2, 3, 5, 8, 13, 21]) {
      const key = `tiny-timeout-${timeoutMs}`;
      const final = await answerTo(
        { id: key, prompt: "tell a story", max_tokens: 64, timeout_ms: timeoutMs },
        key,
      );
      const ok =
        (final.status === "error" && final.code === "timeout") ||
        (final.status === "ok" && final.json.finish_reason === "timeout");
      if (!ok) outcomes.push(`${key}: ${JSON.stringify(final.json)}`);
    }
    expect(outcomes).toEqual([]);
  }, 60_000);

  // Last: when it fails, the daemon is left disconnected from the broker.
  it("refuses reply topics the broker would refuse, without losing its connection", async () => {
    const replyTos = [
      "fuzz/tab\there",
      "fuzz/ctrl\u0001",
      "fuzz/nonchar\uFFFF",
      Array.from({ length: 210 }, () => "l").join("/"),
      ...fc.sample(brokerRefusedReplyToArbitrary(), { numRuns: 4, seed: SEED }),
    ];
    const failures: string[] = [];
    for (const [i, replyTo] of replyTos.entries()) {
      const key = `refused-${i}`;
      await send(JSON.stringify({ id: key, prompt: "hi", max_tokens: 2, reply_to: replyTo }), key);
      await ledger.waitUntil(() => ledger.finalsFor(key).length > 0, 10_000, key).catch(() => undefined);
      await ledger.settle(300);
      const finals = ledger.finalsFor(key);
      const problem =
        finals.length !== 1
          ? `answered ${finals.length} times; the daemon's MQTT log since: ${[...new Set(mqttTrouble())].join(" / ")} (${mqttTrouble().length} lines)`
          : finals[0]!.topic !== response(key) || finals[0]!.code !== "invalid_request"
            ? `answered ${JSON.stringify(finals[0]!.json)} on ${finals[0]!.topic}`
            : mqttTrouble().length > 0
              ? `the daemon lost its connection: ${mqttTrouble().join("; ")}`
              : null;
      if (problem) {
        failures.push(
          `reply_to ${JSON.stringify(replyTo.length > 40 ? `${replyTo.slice(0, 40)}…` : replyTo)}: ${problem}`,
        );
        break; // the daemon is now stuck reconnecting: further cases would only repeat this
      }
    }
    expect(failures).toEqual([]);
    expect(offlineAnnouncements()).toHaveLength(0);
    const after = await answerTo(
      { id: "after-refused", prompt: "hi", max_tokens: 2 },
      "after-refused",
      10_000,
    );
    expect(after.json).toMatchObject({ status: "ok" });
  }, 90_000);
});
