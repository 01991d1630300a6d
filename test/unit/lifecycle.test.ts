import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Component } from "../../src/lifecycle/component.js";
import { Lifecycle } from "../../src/lifecycle/lifecycle.js";
import { subscriptionMatches, TopicRouter } from "../../src/lifecycle/topic-router.js";
import type { IncomingMessage, Subscription } from "../../src/mqtt/transport.js";

const logger = pino({ level: "silent" });

function message(topic: string): IncomingMessage {
  return {
    topic,
    payload: Buffer.from("{}"),
    responseTopic: undefined,
    correlationData: undefined,
    messageExpirySeconds: undefined,
    userProperties: undefined,
    retained: false,
    receivedAt: 0,
  };
}

describe("subscriptionMatches", () => {
  it.each([
    ["tinyllama/node/request", "tinyllama/node/request", true],
    ["tinyllama/node/request", "tinyllama/node/cancel", false],
    ["tinyllama/+/request", "tinyllama/node/request", true],
    ["tinyllama/#", "tinyllama/node/request", true],
    ["tinyllama/#", "tinyllama", true],
    ["$share/tinyllama/tinyllama/pool/request", "tinyllama/pool/request", true],
    ["$share/g/tinyllama/pool/request", "tinyllama/node/request", false],
    ["$share/g/tinyllama/+/cancel", "tinyllama/pool/cancel", true],
    ["#", "$SYS/broker/uptime", false],
    ["+/broker/uptime", "$SYS/broker/uptime", false],
    ["$SYS/#", "$SYS/broker/uptime", true],
  ])("%s delivers %s: %s", (filter, topic, expected) => {
    expect(subscriptionMatches(filter, topic)).toBe(expected);
  });
});

describe("TopicRouter", () => {
  it("routes each message to the handlers whose filters deliver it, and survives a throwing one", () => {
    const router = new TopicRouter(logger);
    const seen: string[] = [];
    router.add("requests", [
      { filter: "t/n/request", qos: 1, handle: (m) => seen.push(`request ${m.topic}`) },
    ]);
    router.add("pool", [
      { filter: "$share/g/t/pool/request", qos: 1, handle: (m) => seen.push(`pool ${m.topic}`) },
      {
        filter: "t/pool/cancel",
        qos: 1,
        handle: () => {
          throw new Error("boom");
        },
      },
    ]);
    router.route(message("t/n/request"));
    router.route(message("t/pool/request"));
    router.route(message("t/pool/cancel"));
    router.route(message("t/other"));
    expect(seen).toEqual(["request t/n/request", "pool t/pool/request"]);
  });
});

/** A component that records its start and stop in a shared journal. */
function recorder(name: string, journal: string[], options: { failStart?: boolean; topics?: string[] } = {}) {
  const component: Component = {
    name,
    topics: (options.topics ?? []).map((filter) => ({ filter, qos: 1 as const, handle: () => undefined })),
    start: async () => {
      journal.push(`start ${name}`);
      if (options.failStart) throw new Error(`${name} failed`);
    },
    stop: async () => {
      journal.push(`stop ${name}`);
    },
  };
  return component;
}

describe("Lifecycle", () => {
  function lifecycle(components: Component[], journal: string[]) {
    const router = new TopicRouter(logger);
    return new Lifecycle(components, {
      logger,
      router,
      subscribe: async (subscriptions: Subscription[]) => {
        journal.push(`subscribe ${subscriptions.map((s) => s.topic).join(",")}`);
      },
    });
  }

  it("starts in order, subscribes each component's topics once it started, stops in reverse", async () => {
    const journal: string[] = [];
    const list = lifecycle(
      [recorder("a", journal), recorder("b", journal, { topics: ["t/b", "t/b2"] }), recorder("c", journal)],
      journal,
    );
    await list.start(new AbortController().signal);
    await list.stop();
    await list.stop();
    expect(journal).toEqual([
      "start a",
      "start b",
      "subscribe t/b,t/b2",
      "start c",
      "stop c",
      "stop b",
      "stop a",
    ]);
  });

  it("on a start failure leaves what started (the failing one too) to stop, and never starts the rest", async () => {
    const journal: string[] = [];
    const list = lifecycle(
      [recorder("a", journal), recorder("b", journal, { failStart: true }), recorder("c", journal)],
      journal,
    );
    await expect(list.start(new AbortController().signal)).rejects.toThrow("b failed");
    await list.stop();
    expect(journal).toEqual(["start a", "start b", "stop b", "stop a"]);
  });

  it("stops the rest when one component fails to stop", async () => {
    const journal: string[] = [];
    const failing: Component = {
      name: "b",
      stop: () => {
        throw new Error("stuck");
      },
    };
    const list = lifecycle([recorder("a", journal), failing, recorder("c", journal)], journal);
    await list.start(new AbortController().signal);
    await list.stop();
    expect(journal).toEqual(["start a", "start c", "stop c", "stop a"]);
  });

  it("starts nothing more once the signal aborted", async () => {
    const journal: string[] = [];
    const controller = new AbortController();
    const aborting: Component = { name: "b", start: () => controller.abort() };
    const list = lifecycle([recorder("a", journal), aborting, recorder("c", journal)], journal);
    await expect(list.start(controller.signal)).rejects.toMatchObject({ code: "shutting_down" });
    expect(journal).toEqual(["start a"]);
  });
});

describe("TopicRouter while the daemon starts", () => {
  it("holds what arrives before its handler is added, delivers it in order, and drops the rest on release", () => {
    const router = new TopicRouter(logger);
    const seen: string[] = [];
    router.route(message("t/n/request"));
    router.route(message("t/other"));
    router.route(message("t/n/request"));
    router.add("requests", [{ filter: "t/n/+", qos: 1, handle: (m) => seen.push(m.topic) }]);
    expect(seen).toEqual(["t/n/request", "t/n/request"]);
    router.release();
    router.add("other", [{ filter: "t/other", qos: 1, handle: (m) => seen.push(m.topic) }]);
    router.route(message("t/x"));
    expect(seen).toEqual(["t/n/request", "t/n/request"]);
  });
});
