import { EdgeError } from "../errors.js";

/** Why a job stopped early; the runner maps it to finish_reason or an error code. */
export type StopCause = "cancelled" | "timeout" | "shutting_down";

export interface JobHandle {
  id: string;
  /**
   * The job's identity: its requester and id together (ids are chosen by clients, so two clients
   * may use the same one). Cancels and duplicate checks go by it.
   */
  key: string;
  /** Fairness key: jobs of different senders take turns and share the queue. */
  sender: string;
  /** performance.now() when the request arrived. */
  receivedAt: number;
  /** performance.now() after which the job must not start, and must stop if running. */
  deadline: number;
}

export interface SchedulerDeps<J extends JobHandle> {
  maxQueue: number;
  /** Jobs run at once (the context's sequences); 0 queues everything until open() is called. */
  slots: number;
  /** Runs one job to its end; the signal aborts with a StopCause as reason. Must not throw. */
  run: (job: J, signal: AbortSignal) => Promise<void>;
  /** Answers a job that never ran (queue expiry, cancel, shutdown). Must not throw. */
  reject: (job: J, error: EdgeError) => void;
  /** Milliseconds one job takes on average, for retry_after_ms; null before any job finished. */
  averageJobMs: () => number | null;
  now?: () => number;
}

interface Queued<J> {
  job: J;
  timer: NodeJS.Timeout;
}

/**
 * A bounded queue in front of a fixed number of slots. Senders take turns (round-robin over their
 * own FIFO queues) and share the queue: when it is full, a newcomer displaces the newest job of the
 * sender holding the most, so one flooding client cannot keep the others out. Every job ends in
 * exactly one of run() or reject().
 */
export class Scheduler<J extends JobHandle> {
  private readonly deps: SchedulerDeps<J>;
  private readonly now: () => number;
  /** Insertion-ordered: the round-robin visits senders in the order they first queued. */
  private readonly queues = new Map<string, Queued<J>[]>();
  private readonly running = new Map<string, { job: J; controller: AbortController; done: Promise<void> }>();
  private queuedCount = 0;
  private closed = false;
  private slots: number;

  constructor(deps: SchedulerDeps<J>) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.slots = deps.slots;
  }

  /** Starts running queued jobs on this many slots (the model is loaded). */
  open(slots: number): void {
    this.slots = slots;
    this.fill();
  }

  get queueDepth(): number {
    return this.queuedCount;
  }

  get activeCount(): number {
    return this.running.size;
  }

  /** The queued or running job with this key. */
  get(key: string): J | undefined {
    return this.running.get(key)?.job ?? this.findQueued(key)?.job;
  }

  /** Every queued and running job with this id (clients choose ids: several may share one). */
  withId(id: string): J[] {
    const queued = [...this.queues.values()].flatMap((queue) => queue.map((entry) => entry.job));
    return [...[...this.running.values()].map((entry) => entry.job), ...queued].filter(
      (job) => job.id === id,
    );
  }

  /** Queues the job or throws busy / shutting_down; the job is then owned by the scheduler. */
  submit(job: J): void {
    if (this.closed) throw new EdgeError("shutting_down", "the daemon is shutting down");
    if (this.running.size < this.slots && this.queuedCount === 0) {
      this.start(job);
      return;
    }
    if (this.queuedCount >= this.deps.maxQueue && !this.displaceFor(job.sender)) {
      throw new EdgeError("busy", `queue full (${this.queuedCount} waiting)`, {
        details: { retryAfterMs: this.retryAfterMs() },
      });
    }
    const delay = Math.max(0, job.deadline - this.now());
    const timer = setTimeout(() => this.expire(job.key), delay);
    const queue = this.queues.get(job.sender) ?? [];
    queue.push({ job, timer });
    this.queues.set(job.sender, queue);
    this.queuedCount++;
  }

  /**
   * Makes room for a job of `sender` in a full queue by refusing the newest job of the sender with
   * the most queued, when that sender would still hold more than `sender` after. False: no room.
   */
  private displaceFor(sender: string): boolean {
    const own = this.queues.get(sender)?.length ?? 0;
    let largest: Queued<J>[] | undefined;
    for (const queue of this.queues.values()) if (!largest || queue.length > largest.length) largest = queue;
    if (!largest || largest.length <= own + 1) return false;
    const victim = largest.at(-1)!.job;
    this.removeQueued(victim.key);
    this.deps.reject(
      victim,
      new EdgeError("busy", "queue full: displaced by another sender (this one holds the most waiting)", {
        details: { retryAfterMs: this.retryAfterMs() },
      }),
    );
    return true;
  }

  /** A guess at when a slot frees up, from the measured average job time. */
  private retryAfterMs(): number {
    const average = this.deps.averageJobMs() ?? 5000;
    return Math.ceil((average * (this.queuedCount + this.running.size)) / Math.max(1, this.slots));
  }

  /** True when the job with this key was queued or running here. */
  cancel(key: string, cause: StopCause = "cancelled"): boolean {
    const running = this.running.get(key);
    if (running) {
      running.controller.abort(cause);
      return true;
    }
    const queued = this.removeQueued(key);
    if (!queued) return false;
    this.deps.reject(
      queued,
      cause === "cancelled"
        ? new EdgeError("cancelled", "cancelled before it started")
        : new EdgeError("shutting_down", "the daemon is shutting down"),
    );
    return true;
  }

  private expire(key: string): void {
    const job = this.removeQueued(key);
    if (job) this.deps.reject(job, new EdgeError("timeout", "the request expired while queued"));
  }

  private findQueued(key: string): Queued<J> | undefined {
    for (const queue of this.queues.values()) {
      const found = queue.find((entry) => entry.job.key === key);
      if (found) return found;
    }
    return undefined;
  }

  private removeQueued(key: string): J | undefined {
    for (const [sender, queue] of this.queues) {
      const index = queue.findIndex((entry) => entry.job.key === key);
      if (index < 0) continue;
      const [entry] = queue.splice(index, 1);
      if (queue.length === 0) this.queues.delete(sender);
      clearTimeout(entry!.timer);
      this.queuedCount--;
      return entry!.job;
    }
    return undefined;
  }

  /** Next job by round-robin: the first sender's oldest job, and that sender moves to the back. */
  private takeNext(): J | undefined {
    for (const [sender, queue] of this.queues) {
      const entry = queue.shift()!;
      this.queues.delete(sender);
      if (queue.length > 0) this.queues.set(sender, queue);
      clearTimeout(entry.timer);
      this.queuedCount--;
      return entry.job;
    }
    return undefined;
  }

  private start(job: J): void {
    const controller = new AbortController();
    const remaining = job.deadline - this.now();
    const timer = setTimeout(() => controller.abort("timeout" satisfies StopCause), Math.max(0, remaining));
    const done = this.deps.run(job, controller.signal).finally(() => {
      clearTimeout(timer);
      this.running.delete(job.key);
      this.fill();
    });
    this.running.set(job.key, { job, controller, done });
  }

  private fill(): void {
    while (!this.closed && this.running.size < this.slots) {
      const next = this.takeNext();
      if (!next) return;
      if (next.deadline <= this.now()) {
        this.deps.reject(next, new EdgeError("timeout", "the request expired while queued"));
        continue;
      }
      this.start(next);
    }
  }

  /**
   * Stops intake, answers every queued job with shutting_down, stops running ones (they end with
   * their partial text) and waits for them.
   */
  async drain(): Promise<void> {
    this.closed = true;
    for (const queue of [...this.queues.values()]) {
      for (const entry of [...queue]) this.cancel(entry.job.key, "shutting_down");
    }
    for (const { controller } of this.running.values()) controller.abort("shutting_down" satisfies StopCause);
    await Promise.all([...this.running.values()].map((entry) => entry.done));
  }
}
