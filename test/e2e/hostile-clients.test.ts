import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { type JsonObject, MqttProbe } from "../helpers/mqtt-probe.js";
import { mosquittoPath, startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const request = (node: string) => `tinyllama/${node}/request`;
const cancel = (node: string) => `tinyllama/${node}/cancel`;
const response = (node: string, id: string) => `tinyllama/${node}/response/${id}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// One client must not be able to run, steal, cancel or crowd out another's requests.
describe.skipIf(mosquittoPath() === null)("hostile clients on a shared broker", () => {
  let broker: TestBroker;
  let victim: MqttProbe;
  let attacker: MqttProbe;
  const daemons: DaemonProcess[] = [];

  const startOnline = async (node: string, flags: string[] = []) => {
    const daemon = startTinyDaemon(broker.url, node, flags);
    daemons.push(daemon);
    await victim.waitForJson(`tinyllama/${node}/status`, (s) => s.state === "online", 60_000);
    return daemon;
  };
  const finalOn = async (probe: MqttProbe, topic: string, timeoutMs = 60_000) =>
    (await probe.waitForJson(topic, () => true, timeoutMs)).json as JsonObject;

  beforeAll(async () => {
    broker = await startTestBroker();
    victim = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    attacker = await MqttProbe.connect(broker.url, { protocolVersion: 5 });
    await victim.subscribe("tinyllama/#", "victim/#");
    await attacker.subscribe("attacker/#");
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop("SIGKILL")));
    await victim?.close();
    await attacker?.close();
    await broker?.stop();
  });

  describe("retained requests", () => {
    it("does not run a retained request on start (MQTT 5: none delivered)", async () => {
      await attacker.publish(
        request("ret5"),
        { id: "stored-5", prompt: "hi", max_tokens: 2 },
        { qos: 1, retain: true },
      );
      await startOnline("ret5");
      await victim.publish(request("ret5"), { id: "live-5", prompt: "hi", max_tokens: 2 });
      expect(await finalOn(victim, response("ret5", "live-5"))).toMatchObject({ status: "ok" });
      await sleep(300);
      expect(victim.on(response("ret5", "stored-5"))).toHaveLength(0);
    });

    it("answers a retained request with an error instead of running it (MQTT 3.1.1)", async () => {
      await attacker.publish(
        request("ret4"),
        { id: "stored-4", prompt: "hi", max_tokens: 2 },
        { qos: 1, retain: true },
      );
      await startOnline("ret4", ["--mqtt.protocolVersion", "4"]);
      const refused = await finalOn(victim, response("ret4", "stored-4"));
      expect(refused).toMatchObject({ status: "error", error: { code: "invalid_request" } });
      expect(refused.error.message).toContain("retained");
    });
  });

  describe("ids, cancels, reply topics and conversations", () => {
    const NODE = "guard";
    beforeAll(async () => {
      await startOnline(NODE, [
        "--runtime.parallelSequences",
        "2",
        "--scheduler.maxQueue",
        "8",
        "--scheduler.ratePerMinute",
        "10",
      ]);
    });

    it("runs a second request with an id already in flight from another requester", async () => {
      await attacker.publish(request(NODE), {
        id: "same-id",
        prompt: "story",
        max_tokens: 300,
        reply_to: "attacker/r/same-id",
      });
      await victim.publish(request(NODE), {
        id: "same-id",
        prompt: "hello",
        max_tokens: 4,
        reply_to: "victim/r/same-id",
      });
      expect(await finalOn(victim, "victim/r/same-id")).toMatchObject({ id: "same-id", status: "ok" });
      expect(await finalOn(attacker, "attacker/r/same-id")).toMatchObject({ status: "ok" });
    });

    it("answers a different request reusing a live id on the same reply topic with an error", async () => {
      await victim.publish(request(NODE), {
        id: "reused",
        prompt: "story",
        max_tokens: 300,
        reply_to: "victim/reuse",
      });
      await victim.publish(request(NODE), {
        id: "reused",
        prompt: "another",
        max_tokens: 4,
        reply_to: "victim/reuse",
      });
      await victim.waitFor(
        (m) => m.filter((x) => x.topic === "victim/reuse").length >= 2,
        60_000,
        "2 answers",
      );
      const answers = victim.on("victim/reuse").map((m) => m.json as JsonObject);
      expect(answers.map((a) => a.status).sort()).toEqual(["error", "ok"]);
      expect(answers.find((a) => a.status === "error")!.error.code).toBe("invalid_request");
    });

    it("takes a cancel only from the requester: reply topic or cancel token, not the id alone", async () => {
      await victim.publish(request(NODE), {
        id: "mine",
        prompt: "story",
        max_tokens: 2000,
        reply_to: "victim/c/mine",
      });
      const first = await victim.waitForJson("victim/c/mine/stream");
      expect(typeof (first.json as JsonObject).cancel_token).toBe("string");
      await attacker.publish(cancel(NODE), { id: "mine" });
      await attacker.publish(cancel(NODE), { id: "mine", cancel_token: "guessed" });
      await sleep(300);
      expect(victim.on("victim/c/mine")).toHaveLength(0);
      await victim.publish(cancel(NODE), { id: "mine", reply_to: "victim/c/mine" });
      expect(await finalOn(victim, "victim/c/mine")).toMatchObject({ finish_reason: "cancelled" });

      await victim.publish(request(NODE), {
        id: "mine-2",
        prompt: "story",
        max_tokens: 2000,
        reply_to: "victim/c/mine-2",
      });
      const chunk = (await victim.waitForJson("victim/c/mine-2/stream")).json as JsonObject;
      await victim.publish(cancel(NODE), { id: "mine-2", cancel_token: chunk.cancel_token });
      expect(await finalOn(victim, "victim/c/mine-2")).toMatchObject({ finish_reason: "cancelled" });
    });

    it("refuses a reply_to aimed at another request's response topic", async () => {
      await attacker.publish(request(NODE), {
        id: "aimed",
        prompt: "hi",
        max_tokens: 2,
        reply_to: response(NODE, "victims-id"),
      });
      const refused = await finalOn(victim, response(NODE, "aimed"));
      expect(refused).toMatchObject({ status: "error", error: { code: "invalid_request" } });
      await sleep(200);
      expect(victim.on(response(NODE, "victims-id"))).toHaveLength(0);
    });

    it("keeps one client's conversation from another using the same conversation_id", async () => {
      const ask = async (probe: MqttProbe, who: string, id: string) => {
        await probe.publish(request(NODE), {
          id,
          messages: [{ role: "user", content: "remember the code word" }],
          conversation_id: "living-room",
          max_tokens: 8,
          reply_to: `${who}/conv/${id}`,
        });
        return finalOn(probe, `${who}/conv/${id}`);
      };
      const a1 = await ask(victim, "victim", "conv-a1");
      const a2 = await ask(victim, "victim", "conv-a2");
      // The victim's own follow-up sees its first exchange...
      expect(a2.usage.prompt_tokens).toBeGreaterThan(a1.usage.prompt_tokens);
      // ...the attacker's request with the same conversation_id starts afresh.
      const b1 = await ask(attacker, "attacker", "conv-b1");
      expect(b1.usage.prompt_tokens).toBe(a1.usage.prompt_tokens);
    });

    it("does not count every client on the default reply topic as one sender", async () => {
      const ids = Array.from({ length: 14 }, (_, i) => `anon-${i}`);
      for (const id of ids) await attacker.publish(request(NODE), { id, prompt: "hi", max_tokens: 2 });
      const answers = await Promise.all(ids.map((id) => finalOn(victim, response(NODE, id))));
      const limited = answers.filter((a) => a.error?.message?.includes("too many requests from this sender"));
      expect(limited).toHaveLength(0);
    });
  });

  describe("queue share", () => {
    const NODE = "share";
    beforeAll(async () => {
      await startOnline(NODE, ["--runtime.parallelSequences", "1", "--scheduler.maxQueue", "4"]);
    });

    it("a full queue displaces the largest sender's newest job, not a newcomer", async () => {
      const flood = Array.from({ length: 7 }, (_, i) => `flood-${i}`);
      for (const id of flood)
        await attacker.publish(request(NODE), {
          id,
          prompt: "story",
          max_tokens: 200,
          reply_to: `attacker/flood/${id}`,
        });
      // One runs, four wait, two are refused.
      await attacker.waitFor(
        (m) => m.filter((x) => (x.json as JsonObject)?.error?.code === "busy").length >= 2,
        30_000,
        "busy",
      );
      await victim.publish(request(NODE), {
        id: "newcomer",
        prompt: "hi",
        max_tokens: 2,
        reply_to: "victim/share/newcomer",
      });
      expect(await finalOn(victim, "victim/share/newcomer")).toMatchObject({ status: "ok" });
      await attacker.waitFor(
        (m) => m.filter((x) => (x.json as JsonObject)?.error?.code === "busy").length >= 3,
        30_000,
        "the displaced job's busy",
      );
      for (const id of flood) await attacker.publish(cancel(NODE), { id, reply_to: `attacker/flood/${id}` });
    });
  });

  describe("shutdown", () => {
    it("ends a running request with finish_reason shutdown, not cancelled", async () => {
      const daemon = await startOnline("shut");
      await victim.publish(request("shut"), { id: "cut", prompt: "story", max_tokens: 2000 });
      await victim.waitForJson(`${response("shut", "cut")}/stream`);
      expect(await daemon.stop("SIGTERM")).toBe(0);
      expect(await finalOn(victim, response("shut", "cut"))).toMatchObject({
        status: "ok",
        finish_reason: "shutdown",
      });
    });
  });
});
