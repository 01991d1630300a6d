import { describe, expect, it } from "vitest";
import { ConversationStore } from "../../src/serving/conversation-store.js";

const limits = { maxCount: 2, maxAgeMs: 1000, maxMessages: 4, maxChars: 1000 };

describe("ConversationStore", () => {
  it("keeps turns per conversation, oldest first", () => {
    const store = new ConversationStore(limits, () => 0);
    store.append("a", [
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello" },
    ]);
    store.append("a", [
      { role: "system", content: "ignored" },
      { role: "user", content: "again" },
      { role: "assistant", content: "yes" },
    ]);
    expect(store.history("a").map((m) => m.content)).toEqual(["hi", "hello", "again", "yes"]);
    expect(store.history("b")).toEqual([]);
  });

  it("drops the oldest exchanges beyond the message limit, starting with a user turn", () => {
    const store = new ConversationStore(limits, () => 0);
    for (let i = 0; i < 3; i++) {
      store.append("a", [
        { role: "user", content: `u${i}` },
        { role: "assistant", content: `a${i}` },
      ]);
    }
    expect(store.history("a").map((m) => m.content)).toEqual(["u1", "a1", "u2", "a2"]);
  });

  it("bounds the size in characters", () => {
    const store = new ConversationStore({ ...limits, maxChars: 10 }, () => 0);
    store.append("a", [
      { role: "user", content: "aaaaaa" },
      { role: "assistant", content: "bbbbbb" },
    ]);
    store.append("a", [
      { role: "user", content: "cc" },
      { role: "assistant", content: "dd" },
    ]);
    expect(store.history("a").map((m) => m.content)).toEqual(["cc", "dd"]);
  });

  it("forgets the least recently used beyond the count and expired ones", () => {
    let now = 0;
    const store = new ConversationStore(limits, () => now);
    store.append("a", [{ role: "user", content: "1" }]);
    now = 10;
    store.append("b", [{ role: "user", content: "2" }]);
    now = 20;
    store.append("a", [{ role: "user", content: "3" }]);
    now = 30;
    store.append("c", [{ role: "user", content: "4" }]);
    expect(store.history("b")).toEqual([]);
    expect(store.history("a")).toHaveLength(2);
    now = 2000;
    expect(store.history("a")).toEqual([]);
    expect(store.size).toBe(0);
  });
});
