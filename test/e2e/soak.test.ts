import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BUILT_MAIN, PROJECT_ROOT } from "../helpers/daemon-process.js";
import { isRunning } from "../helpers/process-stats.js";

/**
 * A short run of scripts/soak.mjs (the script `npm run soak -- --minutes N` runs). SOAK_SECONDS
 * lengthens it, e.g. SOAK_SECONDS=120 for the two-minute run of a CI job.
 */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 20);
const REPORT_SECONDS = Math.max(5, Math.round(SECONDS / 4));

describe("soak script", () => {
  const children: ReturnType<typeof spawn>[] = [];

  afterAll(async () => {
    // SIGINT first: the script then stops its daemon and broker; SIGKILL if it does not end.
    for (const child of children) {
      if (!isRunning(child)) continue;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 25_000);
      await exited;
      clearTimeout(timer);
    }
  });

  it(
    `runs the daemon under steady requests for ${SECONDS} s, prints RSS, descriptors and latency percentiles, and passes`,
    async () => {
      expect(existsSync(BUILT_MAIN), `${BUILT_MAIN} is missing: run npm run build`).toBe(true);
      const child = spawn(
        process.execPath,
        [
          join(PROJECT_ROOT, "scripts", "soak.mjs"),
          "--seconds",
          String(SECONDS),
          "--report-seconds",
          String(REPORT_SECONDS),
        ],
        { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"] },
      );
      children.push(child);
      let output = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
      });
      child.stderr?.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
      });
      const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));

      expect(code, output).toBe(0);
      const reports = output
        .split("\n")
        .filter((line) => /^\[soak\] (interval|final) /.test(line))
        .map((line) => {
          const figure = (name: string) => {
            const match = new RegExp(`\\b${name}=([0-9.]+)`).exec(line);
            return match ? Number(match[1]) : Number.NaN;
          };
          return {
            rss: figure("rss"),
            fds: figure("fds"),
            p50: figure("p50"),
            p95: figure("p95"),
            p99: figure("p99"),
            answered: figure("answered"),
          };
        });
      // One report per interval, plus the final one, each with every figure.
      expect(reports.length, output).toBeGreaterThanOrEqual(3);
      for (const report of reports) {
        expect(report.rss).toBeGreaterThan(10);
        expect(report.fds).toBeGreaterThan(0);
        expect(report.p50).toBeGreaterThan(0);
        expect(report.p95).toBeGreaterThanOrEqual(report.p50);
        expect(report.p99).toBeGreaterThanOrEqual(report.p95);
      }
      expect(reports.at(-1)!.answered).toBeGreaterThan(SECONDS);
      expect(output).toMatch(/\[soak\] summary .*unanswered=0 duplicates=0/);
      expect(output).toContain("[soak] PASS");
    },
    (SECONDS + 90) * 1000,
  );
});
