import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startDaemonProcess } from "../helpers/daemon-process.js";
import { tinyModelPath } from "../helpers/models.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

describe("threads measured inside the daemon on first start, cached after", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  let stateDir: string;
  let daemon: DaemonProcess | undefined;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url);
    await probe.subscribe("tinyllama/tune/info");
    stateDir = mkdtempSync(join(tmpdir(), "tle-state-"));
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const run = async () => {
    const before = probe.on("tinyllama/tune/info").length;
    daemon = startDaemonProcess([
      "--mqtt.url",
      broker.url,
      "--node.id",
      "tune",
      "--model.path",
      await tinyModelPath(),
      "--state.dir",
      stateDir,
      "--runtime.parallelSequences",
      "1",
    ]);
    const info = await probe.waitFor(
      (m) => m.filter((x) => x.topic === "tinyllama/tune/info")[before],
      60_000,
      "info",
    );
    expect(await daemon.stop("SIGTERM")).toBe(0);
    // biome-ignore lint/suspicious/noExplicitAny: checked field by field
    return info.json as Record<string, any>;
  };

  it("publishes the trials and the chosen count, then reuses the cache", async () => {
    const first = await run();
    const tuning = first.thread_tuning;
    expect(tuning.source).toBe("measured");
    expect(tuning.trials.length).toBeGreaterThanOrEqual(2);
    for (const trial of tuning.trials) expect(trial.tokensPerSecond).toBeGreaterThan(0);
    const fastest = Math.max(...tuning.trials.map((t: { tokensPerSecond: number }) => t.tokensPerSecond));
    const chosen = tuning.trials.find((t: { threads: number }) => t.threads === tuning.threads);
    expect(chosen.tokensPerSecond).toBeGreaterThanOrEqual(fastest * 0.97);
    expect(first.plan.threads).toBe(tuning.threads);
    expect(first.plan.reasons.threads).toContain("measured");
    expect(JSON.parse(readFileSync(join(stateDir, "thread-tuning.json"), "utf8"))).toBeTypeOf("object");

    const second = await run();
    expect(second.thread_tuning.source).toBe("cached");
    expect(second.plan.threads).toBe(tuning.threads);
  });

  it("starts when the state file holds null or junk: it is discarded and measured again", async () => {
    for (const junk of ["null", '{"x":{"threads":"many"}}', "{trunc"]) {
      writeFileSync(join(stateDir, "thread-tuning.json"), junk);
      const info = await run();
      expect(info.thread_tuning.source).toBe("measured");
    }
  });
});
