import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { envNameOf, loadConfig, redactConfig } from "../../src/config/load-config.js";
import { EdgeError } from "../../src/errors.js";

describe("loadConfig", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tle-config-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const noFile = () => join(dir, "absent.json");

  it("gives documented defaults with no file, env or flags", () => {
    const { config, configPath } = loadConfig({ argv: [], env: {}, defaultConfigPath: noFile() });
    expect(configPath).toBeNull();
    expect(config.mqtt.url).toBe("mqtt://localhost:1883");
    expect(config.mqtt.baseTopic).toBe("tinyllama");
    expect(config.runtime.threads).toBe("auto");
    expect(config.scheduler.maxQueue).toBe(16);
  });

  it("applies defaults < file < environment < flags", () => {
    const file = join(dir, "c.json");
    writeFileSync(
      file,
      JSON.stringify({ mqtt: { baseTopic: "file", url: "mqtt://file:1" }, node: { id: "filenode" } }),
    );
    const { config, configPath } = loadConfig({
      argv: ["--config", file, "--mqtt.url", "mqtt://flag:3", "--runtime.threads=2"],
      env: { TINYLLAMA_EDGE_MQTT_URL: "mqtt://env:2", TINYLLAMA_EDGE_NODE_ID: "envnode" },
      defaultConfigPath: noFile(),
    });
    expect(configPath).toBe(file);
    expect(config.mqtt.baseTopic).toBe("file");
    expect(config.node.id).toBe("envnode");
    expect(config.mqtt.url).toBe("mqtt://flag:3");
    expect(config.runtime.threads).toBe(2);
  });

  it("coerces numbers, booleans and auto from the environment", () => {
    const { config } = loadConfig({
      argv: [],
      env: {
        TINYLLAMA_EDGE_SCHEDULER_MAX_QUEUE: "4",
        TINYLLAMA_EDGE_HOMEASSISTANT_ENABLED: "false",
        TINYLLAMA_EDGE_RUNTIME_GPU_LAYERS: "max",
        TINYLLAMA_EDGE_RUNTIME_USE_MMAP: "true",
        TINYLLAMA_EDGE_MQTT_PROTOCOL_VERSION: "4",
      },
      defaultConfigPath: noFile(),
    });
    expect(config.scheduler.maxQueue).toBe(4);
    expect(config.homeassistant.enabled).toBe(false);
    expect(config.runtime.gpuLayers).toBe("max");
    expect(config.runtime.useMmap).toBe(true);
    expect(config.mqtt.protocolVersion).toBe(4);
  });

  it("lists every problem at once", () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ mqtt: { url: "http://x", nope: 1 }, scheduler: { maxQueue: -1 } }));
    let error: unknown;
    try {
      loadConfig({
        argv: ["--config", file, "--runtime.threads", "many", "--no.such.key", "1"],
        env: { TINYLLAMA_EDGE_HEALTH_INTERVAL_SECONDS: "0" },
        defaultConfigPath: noFile(),
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(EdgeError);
    const problems = (error as EdgeError).details?.problems as string[];
    const text = problems.join("\n");
    expect(text).toContain("--no.such.key");
    expect(text).toContain("mqtt.url");
    expect(text).toContain("mqtt.nope");
    expect(text).toContain("scheduler.maxQueue");
    expect(text).toContain("runtime.threads");
    expect(text).toContain("health.intervalSeconds");
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  it("reports a named config file that does not exist, and one that is not JSON", () => {
    const broken = join(dir, "broken.json");
    writeFileSync(broken, "{ nope");
    expect(() =>
      loadConfig({ argv: ["--config", join(dir, "x.json")], env: {}, defaultConfigPath: noFile() }),
    ).toThrow(/config file not found/);
    expect(() => loadConfig({ argv: ["--config", broken], env: {}, defaultConfigPath: noFile() })).toThrow(
      /broken\.json/,
    );
  });

  it("never shows a password, in problems or in the redacted copy", () => {
    const { config } = loadConfig({
      argv: ["--mqtt.password", "hunter2"],
      env: {},
      defaultConfigPath: noFile(),
    });
    expect(config.mqtt.password).toBe("hunter2");
    expect(JSON.stringify(redactConfig(config))).not.toContain("hunter2");
    const file = join(dir, "c.json");
    writeFileSync(file, JSON.stringify({ mqtt: { password: 12345678 } }));
    let message = "";
    try {
      loadConfig({ argv: ["--config", file], env: {}, defaultConfigPath: noFile() });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain("mqtt.password");
    expect(message).not.toContain("12345678");
  });

  it("derives environment names from the key path", () => {
    expect(envNameOf("mqtt.baseTopic")).toBe("TINYLLAMA_EDGE_MQTT_BASE_TOPIC");
    expect(envNameOf("mqtt.url")).toBe("TINYLLAMA_EDGE_MQTT_URL");
  });
});

describe("flags given twice", () => {
  it("take the last value", () => {
    const { config } = loadConfig({
      argv: ["--runtime.threads", "1", "--runtime.threads", "3"],
      env: {},
      defaultConfigPath: "/nonexistent/default.json",
    });
    expect(config.runtime.threads).toBe(3);
  });
});
