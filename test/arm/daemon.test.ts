import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type DaemonProcess, tinyDaemonFlags } from "../helpers/daemon-process.js";
import { TINY_MODEL_PATH } from "../helpers/models.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";
import { armRuntimeOf, emulatedBoards, stackFrame, startEmulatedDaemon } from "./emulation.js";

const BASE = "tinyllama";

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker();
});

afterAll(async () => {
  await broker?.stop();
});

describe("the daemon as an arm64 process on an emulated Pi 5", () => {
  const NODE = "arm-pi5";
  let probe: MqttProbe;
  let daemon: DaemonProcess | undefined;

  beforeAll(async () => {
    probe = await MqttProbe.connect(broker.url, { protocolVersion: broker.supportsMqtt5 ? 5 : 4 });
    await probe.subscribe(`${BASE}/${NODE}/#`);
  });

  afterAll(async () => {
    await daemon?.stop("SIGKILL");
    await probe?.close();
  });

  it("starts on the tiny model, publishes the engine's ARM features and answers one request over MQTT", async () => {
    const runtime = armRuntimeOf(inject("armEmulation"), "arm64");
    daemon = startEmulatedDaemon(runtime, emulatedBoards.pi5, tinyDaemonFlags(broker.url, NODE));
    const online = probe.waitForJson(`${BASE}/${NODE}/status`, (s) => s.state === "online", 550_000);
    await Promise.race([
      online,
      daemon.exited.then((code) => {
        throw new Error(`the daemon exited (${code}) before going online:\n${daemon?.lines.join("\n")}`);
      }),
    ]);
    const info = (await probe.waitForJson(`${BASE}/${NODE}/info`)).json as Record<string, any>;
    expect(info.hardware.arch).toBe("arm64");
    expect(info.hardware.board).toBe("Raspberry Pi 5 Model B Rev 1.0");
    expect(info.hardware.cpu.features).toMatchObject({ neon: true, dotprod: true, avx2: false });
    expect(info.generation_ceiling.bytes_per_token).toBeGreaterThan(0);
    expect(info.generation_ceiling.tokens_per_second).toBeGreaterThan(0);

    await probe.publish(`${BASE}/${NODE}/request`, { id: "arm1", prompt: "hello", max_tokens: 4, seed: 1 });
    const final = (await probe.waitForJson(`${BASE}/${NODE}/response/arm1`, undefined, 120_000))
      .json as Record<string, any>;
    expect(final.status, JSON.stringify(final)).toBe("ok");
    expect(final.usage.completion_tokens).toBeGreaterThan(0);

    expect(await daemon.stop("SIGTERM", 60_000)).toBe(0);
  });
});

describe("the daemon as an armv7l process on an emulated Pi 4 with 32-bit Raspberry Pi OS", () => {
  it("refuses to start in one line that names the fix, without a stack trace", async () => {
    const runtime = armRuntimeOf(inject("armEmulation"), "armv7l");
    const daemon = startEmulatedDaemon(runtime, emulatedBoards.pi4On32BitOs, [
      "--mqtt.url",
      broker.url,
      "--node.id",
      "arm-pi4-32bit",
      "--model.path",
      TINY_MODEL_PATH,
    ]);
    const code = await daemon.exited;
    const output = daemon.lines.join("\n");
    expect(code, output).toBe(1);
    expect(output).toMatch(
      /^tinyllama-edge start: This is a 32-bit ARM system \(armv7l\).*install the 64-bit Raspberry Pi OS.*\.$/m,
    );
    expect(output).not.toMatch(stackFrame);
  });
});
