import { execFile } from "node:child_process";
import type { Logger } from "../logging/logger.js";

export interface SdNotifyDeps {
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

/**
 * systemd readiness and watchdog through the `systemd-notify` tool (the unit sets NotifyAccess=all).
 * Node has no unix datagram sockets and the npm bindings compile native code, which a Pi service
 * must not need. Without NOTIFY_SOCKET (not under systemd) every call does nothing.
 */
export class SdNotify {
  private readonly deps: SdNotifyDeps;
  private watchdogTimer: NodeJS.Timeout | undefined;

  constructor(deps: SdNotifyDeps) {
    this.deps = deps;
  }

  get enabled(): boolean {
    return Boolean(this.deps.env.NOTIFY_SOCKET);
  }

  /** Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) recommends; null when no watchdog is set. */
  get watchdogIntervalMs(): number | null {
    const usec = Number(this.deps.env.WATCHDOG_USEC);
    if (!this.enabled || !Number.isFinite(usec) || usec <= 0) return null;
    const pid = this.deps.env.WATCHDOG_PID;
    if (pid && Number(pid) !== process.pid) return null;
    return Math.max(1000, Math.floor(usec / 2000));
  }

  notify(...assignments: string[]): void {
    if (!this.enabled) return;
    execFile(
      "systemd-notify",
      [`--pid=${process.pid}`, ...assignments],
      { env: this.deps.env, timeout: 5000 },
      (err) => {
        if (err) this.deps.logger.warn({ err: { message: err.message } }, "systemd-notify failed");
      },
    );
  }

  ready(status: string): void {
    this.notify("READY=1", `STATUS=${status}`);
    const interval = this.watchdogIntervalMs;
    if (interval !== null && !this.watchdogTimer) {
      this.watchdogTimer = setInterval(() => this.notify("WATCHDOG=1"), interval);
      this.watchdogTimer.unref();
    }
  }

  stopping(): void {
    this.stopWatchdog();
    this.notify("STOPPING=1");
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }
}
