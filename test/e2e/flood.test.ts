import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { isRunning, MiB, resourceGrowth, resourceUse } from "../helpers/process-stats.js";
import { ReplyLedger } from "../helpers/reply-ledger.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "flood";
const REQUEST = `tinyllama/${NODE}/request`;
const STATUS = `tinyllama/${NODE}/status`;
const response = (id: string) => `tinyllama/${NODE}/response/${id}`;
const COUNT = 1000;
const MAX_QUEUE = 16;
/** After the burst and a short rest, RSS is back near where it was (the queue is bounded). */
const MAX_RSS_GROWTH = 50 * MiB;

describe("flood: a burst of 1,000 requests against a queue of 16", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  let ledger: ReplyLedger;
  let daemon: DaemonProcess;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    ledger = new ReplyLedger(probe.client);
    // Finals only: `+` does not match the `<id>/stream` level below them.
    await probe.subscribe(`tinyllama/${NODE}/response/+`, "flood/after/+", STATUS);
    daemon = startTinyDaemon(broker.url, NODE, ["--scheduler.maxQueue", String(MAX_QUEUE)]);
    await probe.waitForJson(STATUS, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    ledger?.detach();
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("answers every request exactly once, with a result or busy, and returns to its memory level", async () => {
    const pid = daemon.child.pid!;
    // Warm-up, so the baseline includes the engine's working buffers.
    for (let i = 0; i < 10; i++) {
      await probe.publish(REQUEST, { id: `warm-${i}`, prompt: `warm up ${i}`, max_tokens: 16 });
      await ledger.waitUntil(() => ledger.finalsFor(`id:warm-${i}`).length > 0, 30_000, `warm-${i}`);
    }
    const before = await resourceUse(pid);

    const ids = Array.from({ length: COUNT }, (_, i) => `flood-${i}`);
    const answeredCount = () => ids.filter((id) => ledger.finalsFor(`id:${id}`).length > 0).length;
    const started = performance.now();
    await Promise.all(
      ids.map((id, i) => probe.publish(REQUEST, { id, prompt: `question number ${i}`, max_tokens: 16 })),
    );
    await ledger
      .waitUntil(() => ledger.finals.length >= 10 + COUNT, 120_000, `${COUNT} answers`)
      .catch(() => undefined); // the per-request check below names the missing ones
    await ledger.settle(1500);
    const elapsedMs = Math.round(performance.now() - started);

    const problems: string[] = [];
    let ok = 0;
    let busy = 0;
    for (const id of ids) {
      const finals = ledger.finalsFor(`id:${id}`);
      if (finals.length !== 1) {
        problems.push(`${id} answered ${finals.length} times`);
        continue;
      }
      const final = finals[0]!;
      if (final.topic !== response(id)) problems.push(`${id} answered on ${final.topic}`);
      if (final.json.node !== NODE) problems.push(`${id} answered by ${String(final.json.node)}`);
      if (final.status === "ok") ok++;
      else if (final.code === "busy") {
        busy++;
        const retry = final.json.retry_after_ms;
        if (typeof retry !== "number" || retry <= 0) problems.push(`${id} busy without retry_after_ms`);
      } else problems.push(`${id} answered ${JSON.stringify(final.json.error)}`);
    }
    console.info(JSON.stringify({ ok, busy, answered: answeredCount(), elapsedMs }));
    expect(problems.slice(0, 20), `${problems.length} problems`).toEqual([]);
    expect(ok + busy).toBe(COUNT);
    // What was queued or running when the burst arrived was served; the rest was told to come back.
    expect(ok).toBeGreaterThanOrEqual(MAX_QUEUE);
    expect(busy).toBeGreaterThan(0);

    // Alive, online, and serving a sender the flood did not rate-limit.
    expect(isRunning(daemon.child)).toBe(true);
    const states = probe.on(STATUS).map((m) => (m.json as { state: string }).state);
    expect(states.at(-1)).toBe("online");
    expect(states).not.toContain("offline");
    await probe.publish(REQUEST, {
      id: "after-flood",
      prompt: "hi",
      max_tokens: 4,
      reply_to: "flood/after/x",
    });
    const after = await probe.waitForJson("flood/after/x", () => true, 30_000);
    expect(after.json).toMatchObject({ id: "after-flood", status: "ok" });

    await new Promise((resolve) => setTimeout(resolve, 2000));
    const growth = await resourceGrowth(pid, before);
    expect(growth.rssBytes).toBeLessThan(MAX_RSS_GROWTH);
    expect(growth.fds).toBeLessThanOrEqual(8);
  }, 180_000);
});
