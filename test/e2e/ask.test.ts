import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BUILT_MAIN,
  type DaemonProcess,
  PROJECT_ROOT,
  startDaemonProcess,
} from "../helpers/daemon-process.js";
import { tinyModelPath } from "../helpers/models.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "asknode";

interface AskRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runAsk(args: string[], options: { interruptAfterFirstOutput?: boolean } = {}): Promise<AskRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BUILT_MAIN, "ask", ...args], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let interrupted = false;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (options.interruptAfterFirstOutput && !interrupted) {
        interrupted = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("tinyllama-edge ask", () => {
  let broker: TestBroker;
  let daemon: DaemonProcess;
  let probe: MqttProbe;
  let flags: string[];

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url);
    await probe.subscribe(`tinyllama/${NODE}/#`);
    flags = ["--mqtt.url", broker.url, "--node.id", NODE];
    daemon = startDaemonProcess([...flags, "--model.path", await tinyModelPath(), "--runtime.threads", "1"]);
    await probe.waitForJson(`tinyllama/${NODE}/status`, (s) => s.state === "online", 60_000);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
    await broker?.stop();
  });

  it("prints the streamed answer and a summary, exit 0", async () => {
    const run = await runAsk([...flags, "--max-tokens", "8", "hello there"]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().length).toBeGreaterThan(0);
    expect(run.stderr).toMatch(/generated \d+/);
  });

  it("prints the final object with --json", async () => {
    const run = await runAsk([...flags, "--json", "--max-tokens", "4", "hi"]);
    expect(run.code).toBe(0);
    const final = JSON.parse(run.stdout);
    expect(final).toMatchObject({ status: "ok", node: NODE, finish_reason: "length" });
    expect(final.usage.completion_tokens).toBeGreaterThanOrEqual(4);
  });

  it("passes a JSON schema and gets parsed JSON back", async () => {
    const schemaPath = join(tmpdir(), `tle-ask-schema-${process.pid}.json`);
    writeFileSync(
      schemaPath,
      JSON.stringify({ type: "object", properties: { on: { type: "boolean" } }, required: ["on"] }),
    );
    const run = await runAsk([...flags, "--json", "--schema", schemaPath, "--max-tokens", "40", "lights?"]);
    expect(run.code).toBe(0);
    const final = JSON.parse(run.stdout);
    if (final.finish_reason === "stop") expect(typeof final.json.on).toBe("boolean");
    else expect(final.finish_reason).toBe("length");
  });

  it("exits non-zero with the error message on an error reply", async () => {
    const run = await runAsk([...flags, "--max-tokens", "999999", "hi"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("invalid_request");
  });

  it("exits 2 on bad usage and bad config", async () => {
    expect((await runAsk([...flags])).code).toBe(2);
    expect((await runAsk([...flags, "--mqtt.url", "nope", "hi"])).code).toBe(2);
  });

  it("fails in under a second for a node that is unknown or offline, naming the nodes online", async () => {
    const started = performance.now();
    const unknown = await runAsk(["--mqtt.url", broker.url, "--node.id", "no-such-node", "hi"]);
    const elapsedMs = performance.now() - started;
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/node no-such-node is not known to the broker \(online: .*asknode/);
    // The whole process, Node.js start-up included; before, it waited 150 s for an answer.
    expect(elapsedMs).toBeLessThan(3000);
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1);

    await probe.publish(
      `tinyllama/gone/status`,
      { state: "offline", ts: new Date().toISOString() },
      { qos: 1, retain: true },
    );
    try {
      const offline = await runAsk(["--mqtt.url", broker.url, "--node.id", "gone", "hi"]);
      expect(offline.code).toBe(1);
      expect(offline.stderr).toMatch(/node gone is offline \(online: .*asknode/);
    } finally {
      await probe.publish(`tinyllama/gone/status`, "", { qos: 1, retain: true });
    }
  });

  it("asks the one node online when no node.id is given", async () => {
    const run = await runAsk(["--mqtt.url", broker.url, "--json", "--max-tokens", "2", "hi"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "ok", node: NODE });
  });

  it("cancels on Ctrl-C and exits 130", async () => {
    const run = await runAsk(
      [...flags, "--max-tokens", "2000", "--temperature", "1", "tell me a long story"],
      {
        interruptAfterFirstOutput: true,
      },
    );
    expect(run.code).toBe(130);
    const cancels = probe.on(`tinyllama/${NODE}/cancel`);
    expect(cancels.length).toBeGreaterThan(0);
  });
});
