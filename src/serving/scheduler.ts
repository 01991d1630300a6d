import { EdgeError } from "../errors.js";

/** Why a job stopped early; the runner maps it to finish_reason or an error code. */
export type StopCause = "cancelled" | "timeout" | "shutting_down";

export interface JobHandle {
  id: string;
  /** Fairness key: jobs of different senders take turns. */
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
 * own FIFO queues) so one flooding client cannot starve the others. Every job ends in exactly one of
 * run() or reject().
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

  has(id: string): boolean {
    return this.running.has(id) || this.findQueued(id) !== undefined;
  }

  /** Queues the job or throws busy / shutting_down; the job is then owned by the scheduler. */
  submit(job: J): void {
    if (this.closed) throw new EdgeError("shutting_down", "the daemon is shutting down");
    if (this.running.size < this.slots && this.queuedCount === 0) {
      this.start(job);
      return;
    }
    if (this.queuedCount >= this.deps.maxQueue) {
      throw new EdgeError("busy", `queue full (${this.queuedCount} waiting)`, {
        details: { retryAfterMs: this.retryAfterMs() },
      });
    }
    const delay = Math.max(0, job.deadline - this.now());
    const timer = setTimeout(() => this.expire(job.id), delay);
    const queue = this.queues.get(job.sender) ?? [];
    queue.push({ job, timer });
    this.queues.set(job.sender, queue);
    this.queuedCount++;
  }

  /** A guess at when a slot frees up, from the measured average job time. */
  private retryAfterMs(): number {
    const average = this.deps.averageJobMs() ?? 5000;
    return Math.ceil((average * (this.queuedCount + this.running.size)) / Math.max(1, this.slots));
  }

  /** True when the id was queued or running here. */
  cancel(id: string, cause: StopCause = "cancelled"): boolean {
    const running = this.running.get(id);
    if (running) {
      running.controller.abort(cause);
      return true;
    }
    const queued = this.removeQueued(id);
    if (!queued) return false;
    this.deps.reject(
      queued,
      cause === "cancelled"
        ? new EdgeError("cancelled", "cancelled before it started")
        : new EdgeError("shutting_down", "the daemon is shutting down"),
    );
    return true;
  }

  private expire(id: string): void {
    const job = this.removeQueued(id);
    if (job) this.deps.reject(job, new EdgeError("timeout", "the request expired while queued"));
  }

  private findQueued(id: string): Queued<J> | undefined {
    for (const queue of this.queues.values()) {
      const found = queue.find((entry) => entry.job.id === id);
      if (found) return found;
    }
    return undefined;
  }

  private removeQueued(id: string): J | undefined {
    for (const [sender, queue] of this.queues) {
      const index = queue.findIndex((entry) => entry.job.id === id);
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
      this.running.delete(job.id);
      this.fill();
    });
    this.running.set(job.id, { job, controller, done });
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
      for (const entry of [...queue]) this.cancel(entry.job.id, "shutting_down");
    }
    for (const { controller } of this.running.values()) controller.abort("shutting_down" satisfies StopCause);
    await Promise.all([...this.running.values()].map((entry) => entry.done));
  }
}
