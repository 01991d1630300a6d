// Prompt state across restarts: the built daemon saves the KV state of a system prompt used twice,
// the next daemon on the same state.dir loads it before going online, and a damaged file is
// refused with a log line while the daemon serves.
import { mkdtemp, open, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type DaemonProcess, startTinyDaemon } from "../helpers/daemon-process.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

const NODE = "promptstate";
const REQ = `tinyllama/${NODE}/request`;
const SYSTEM = `You are the house assistant. ${"Rooms: kitchen, hall, attic, garden, garage. ".repeat(20)}`;

// biome-ignore lint/suspicious/noExplicitAny: replies are checked field by field
type Reply = Record<string, any>;
type LogLine = Record<string, unknown>;

describe("prompt state kept across restarts", () => {
  let broker: TestBroker;
  let probe: MqttProbe;
  let stateDir: string;
  let daemon: DaemonProcess | undefined;
  let requestCount = 0;

  beforeAll(async () => {
    broker = await startTestBroker();
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    await probe.subscribe(`tinyllama/${NODE}/response/#`);
    stateDir = await mkdtemp(join(tmpdir(), "prompt-state-"));
  });

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  afterAll(async () => {
    await probe?.close();
    await broker?.stop();
    await rm(stateDir, { recursive: true, force: true });
  });

  async function waitForLog(d: DaemonProcess, select: (line: LogLine) => boolean): Promise<LogLine> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const line = d.logs().find(select);
      if (line) return line;
      if (d.child.exitCode !== null) throw new Error(`daemon exited:\n${d.lines.slice(-10).join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`log line not seen:\n${d.lines.slice(-10).join("\n")}`);
  }

  async function startOnline(extra: string[] = []): Promise<DaemonProcess> {
    const started = startTinyDaemon(broker.url, NODE, [
      "--state.dir",
      stateDir,
      "--promptState.warmSystemPrompt",
      "false",
      ...extra,
    ]);
    daemon = started;
    await waitForLog(started, (l) => l.msg === "online");
    return started;
  }

  async function ask(prompt: string, system = SYSTEM): Promise<Reply> {
    const id = `ps-${++requestCount}`;
    await probe.publish(REQ, { id, system, prompt, max_tokens: 4, stream: false });
    const reply = await probe.waitForJson(`tinyllama/${NODE}/response/${id}`, () => true, 60_000);
    return reply.json as Reply;
  }

  const stateFiles = async () =>
    (await readdir(join(stateDir, "prompt-state"))).filter((f) => f.endsWith(".state"));

  it("loads the saved system prompt after a restart: the first request evaluates only its own turn", async () => {
    const first = await startOnline();
    const cold = await ask("lights on");
    expect(cold.status).toBe("ok");
    expect(cold.usage.prompt_tokens).toBeGreaterThan(200);
    expect(cold.usage.prompt_tokens_evaluated).toBeGreaterThan(200);
    // Used a second time: kept on disk.
    await ask("lights off");
    await waitForLog(first, (l) => l.msg === "prompt state saved");
    expect(await stateFiles()).toHaveLength(1);
    await first.stop();

    const second = await startOnline();
    const loaded = await waitForLog(second, (l) => l.msg === "prompt state loaded");
    expect(loaded.tokens).toBeGreaterThan(200);
    const afterRestart = await ask("open the garage");
    expect(afterRestart.status).toBe("ok");
    expect(afterRestart.usage.prompt_tokens).toBeGreaterThan(200);
    expect(afterRestart.usage.prompt_tokens_evaluated).toBeLessThan(20);
    // The chat template's user-turn header after the system prompt is kept too: the restart costs
    // what an in-memory hit costs (same user text length, a different first word).
    const inMemory = await ask("shut the garage");
    expect(afterRestart.usage.prompt_tokens_evaluated).toBeLessThanOrEqual(
      inMemory.usage.prompt_tokens_evaluated,
    );
  });

  it("refuses a corrupted state file with a log line, and serves the request in full", async () => {
    const [file] = await stateFiles();
    expect(file).toBeDefined();
    const handle = await open(join(stateDir, "prompt-state", file!), "r+");
    const { size } = await handle.stat();
    await handle.write(Buffer.from("corrupted"), 0, 9, Math.floor(size / 2));
    await handle.close();

    const started = await startOnline();
    const refused = await waitForLog(started, (l) => String(l.msg).startsWith("saved prompt state refused"));
    expect(refused.reason).toBe("its state file is corrupted");
    expect(started.logs().some((l) => l.msg === "prompt state loaded")).toBe(false);
    const reply = await ask("close the garage");
    expect(reply.status).toBe("ok");
    expect(reply.usage.prompt_tokens_evaluated).toBeGreaterThan(200);
    expect(await stateFiles()).toHaveLength(0);
  });

  it("refuses a state saved with other context settings", async () => {
    const first = await startOnline();
    await ask("one");
    await ask("two");
    await waitForLog(first, (l) => l.msg === "prompt state saved");
    await first.stop();

    const other = await startOnline(["--runtime.contextSize", "768"]);
    const refused = await waitForLog(other, (l) => String(l.msg).startsWith("saved prompt state refused"));
    expect(refused.reason).toBe("saved with other context settings");
    expect((await ask("three")).usage.prompt_tokens_evaluated).toBeGreaterThan(200);
  });

  it("warms the configured system prompt before going online", async () => {
    const started = await startOnline([
      "--promptState.warmSystemPrompt",
      "true",
      "--requests.systemPrompt",
      `${SYSTEM} Be brief.`,
    ]);
    await waitForLog(started, (l) => l.msg === "prompt states ready");
    const id = `ps-${++requestCount}`;
    await probe.publish(REQ, { id, prompt: "lights on", max_tokens: 4, stream: false });
    const reply = (await probe.waitForJson(`tinyllama/${NODE}/response/${id}`, () => true, 60_000))
      .json as Reply;
    expect(reply.usage.prompt_tokens).toBeGreaterThan(200);
    expect(reply.usage.prompt_tokens_evaluated).toBeLessThan(20);
  });
});
