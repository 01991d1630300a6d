import { describe, expect, it, vi } from "vitest";
import { isEdgeError } from "../../src/errors.js";
import { type JobHandle, Scheduler } from "../../src/serving/scheduler.js";
import { useFakeClock } from "../helpers/fakes.js";

/**
 * The scheduler as a table: each case is a script of steps over fake time and a fake job runner,
 * and the journal of what ran, ended and was refused, in order.
 */
type Step =
  | { submit: string; sender?: string; deadlineMs?: number }
  | { finish: string }
  | { cancel: string; expect?: boolean }
  | { advance: number }
  | { open: number }
  | "drain";

interface Case {
  name: string;
  slots: number;
  maxQueue: number;
  steps: Step[];
  journal: string[];
}

function harness(slots: number, maxQueue: number) {
  const journal: string[] = [];
  const finishers = new Map<string, () => void>();
  const scheduler = new Scheduler<JobHandle>({
    slots,
    maxQueue,
    now: () => performance.now(),
    averageJobMs: () => 1000,
    run: (job, signal) =>
      new Promise<void>((resolve) => {
        journal.push(`run ${job.id}`);
        const end = (how: string) => {
          if (!finishers.has(job.id)) return;
          finishers.delete(job.id);
          journal.push(`end ${job.id} ${how}`);
          resolve();
        };
        finishers.set(job.id, () => end("done"));
        signal.addEventListener("abort", () => end(String(signal.reason)), { once: true });
      }),
    reject: (job, error) => journal.push(`reject ${job.id} ${error.code}`),
  });
  let draining: Promise<void> | undefined;
  async function step(s: Step): Promise<void> {
    if (s === "drain") draining = scheduler.drain();
    else if ("submit" in s) {
      const now = performance.now();
      try {
        scheduler.submit({
          id: s.submit,
          key: s.submit,
          sender: s.sender ?? "a",
          receivedAt: now,
          deadline: now + (s.deadlineMs ?? 60_000),
        });
      } catch (err) {
        journal.push(`refuse ${s.submit} ${isEdgeError(err) ? err.code : "?"}`);
      }
    } else if ("finish" in s) finishers.get(s.finish)?.();
    else if ("cancel" in s) {
      const found = scheduler.cancel(s.cancel);
      if (s.expect !== undefined) expect(found).toBe(s.expect);
    } else if ("advance" in s) await vi.advanceTimersByTimeAsync(s.advance);
    else if ("open" in s) scheduler.open(s.open);
    // Runs end and the next job starts in promise callbacks.
    await vi.advanceTimersByTimeAsync(0);
  }
  return { scheduler, journal, step, drained: () => draining };
}

const CASES: Case[] = [
  {
    name: "admission: runs up to the slots, queues up to maxQueue, refuses the rest busy",
    slots: 1,
    maxQueue: 1,
    steps: [{ submit: "a" }, { submit: "b" }, { submit: "c" }, { finish: "a" }, { finish: "b" }],
    journal: ["run a", "refuse c busy", "end a done", "run b", "end b done"],
  },
  {
    name: "zero slots hold everything in the queue until open()",
    slots: 0,
    maxQueue: 4,
    steps: [{ submit: "a" }, { submit: "b" }, { open: 2 }],
    journal: ["run a", "run b"],
  },
  {
    name: "fairness: senders take turns, one flooding sender does not starve the others",
    slots: 1,
    maxQueue: 10,
    steps: [
      { submit: "x1", sender: "x" },
      { submit: "x2", sender: "x" },
      { submit: "x3", sender: "x" },
      { submit: "y1", sender: "y" },
      { submit: "z1", sender: "z" },
      { finish: "x1" },
      { finish: "x2" },
      { finish: "y1" },
      { finish: "z1" },
    ],
    journal: [
      "run x1",
      "end x1 done",
      "run x2",
      "end x2 done",
      "run y1",
      "end y1 done",
      "run z1",
      "end z1 done",
      "run x3",
    ],
  },
  {
    name: "cancel: a queued job is rejected without running, a running one is aborted, an unknown id is not found",
    slots: 1,
    maxQueue: 4,
    steps: [
      { submit: "a" },
      { submit: "b" },
      { cancel: "b", expect: true },
      { cancel: "a", expect: true },
      { cancel: "nope", expect: false },
      { submit: "c" },
    ],
    journal: ["run a", "reject b cancelled", "end a cancelled", "run c"],
  },
  {
    name: "deadlines: a queued job expires at its deadline, a running one is aborted at its own",
    slots: 1,
    maxQueue: 4,
    steps: [
      { submit: "a", deadlineMs: 5_000 },
      { submit: "b", deadlineMs: 1_000 },
      { advance: 999 },
      { advance: 1 },
      { advance: 4_000 },
    ],
    journal: ["run a", "reject b timeout", "end a timeout"],
  },
  {
    name: "a queued job whose deadline passed while waiting never starts",
    slots: 1,
    maxQueue: 4,
    steps: [{ submit: "a" }, { submit: "b", deadlineMs: 0 }, { finish: "a" }],
    journal: ["run a", "reject b timeout", "end a done"],
  },
  {
    name: "drain: queued jobs are answered shutting_down, running ones stop, new ones are refused",
    slots: 1,
    maxQueue: 4,
    steps: [{ submit: "a" }, { submit: "b" }, "drain", { submit: "c" }],
    journal: ["run a", "reject b shutting_down", "end a shutting_down", "refuse c shutting_down"],
  },
];

describe("Scheduler", () => {
  useFakeClock();

  it.each(CASES)("$name", async ({ slots, maxQueue, steps, journal }) => {
    const h = harness(slots, maxQueue);
    for (const s of steps) await h.step(s);
    await h.drained();
    expect(h.journal).toEqual(journal);
  });

  it("says when to retry a busy request, from the average job time and what is ahead", async () => {
    const h = harness(1, 1);
    await h.step({ submit: "a" });
    await h.step({ submit: "b" });
    let retryAfterMs: unknown;
    try {
      h.scheduler.submit({ id: "c", key: "c", sender: "a", receivedAt: 0, deadline: 60_000 });
    } catch (err) {
      retryAfterMs = isEdgeError(err) ? err.details?.retryAfterMs : undefined;
    }
    // One running and one queued, 1000 ms each on one slot.
    expect(retryAfterMs).toBe(2000);
  });

  it("ends every job exactly once, whatever happens to it", async () => {
    const h = harness(2, 3);
    const ids = ["a", "b", "c", "d", "e", "f"];
    for (const id of ids) await h.step({ submit: id, sender: id.charCodeAt(0) % 2 ? "odd" : "even" });
    await h.step({ cancel: "d" });
    await h.step({ finish: "a" });
    await h.step({ advance: 60_000 });
    await h.step("drain");
    await h.drained();
    for (const id of ids) {
      const outcomes = h.journal.filter((line) => {
        const [kind, job] = line.split(" ");
        return job === id && kind !== "run";
      });
      expect(outcomes, `${id}: ${h.journal.join(", ")}`).toHaveLength(1);
    }
  });
});
