// A user's mistakes, made against the built CLI: each is a line or two with the fix, no stack
// trace, and the documented exit code (2 configuration or usage, 3 does not fit, 1 the rest).
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/util/free-port.js";
import { fixtureRoot } from "../fixtures/hardware/fixture-deps.js";
import { BUILT_MAIN, PROJECT_ROOT } from "../helpers/daemon-process.js";
import { TINY_MODEL_PATH } from "../helpers/models.js";
import { startTestBroker, type TestBroker } from "../helpers/test-broker.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BUILT_MAIN, ...args],
      {
        cwd: PROJECT_ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: "test", ...env },
        timeout: 90_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The mistake is explained in a few lines, without a stack trace, with this exit code. */
function expectExplained(run: Run, code: number, ...patterns: RegExp[]): void {
  const shown = `exit ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
  expect(run.code, shown).toBe(code);
  const lines = run.stderr.split("\n").filter((line) => line.trim() !== "");
  expect(lines.length, shown).toBeGreaterThan(0);
  expect(lines.length, shown).toBeLessThanOrEqual(3);
  expect(`${run.stdout}${run.stderr}`, shown).not.toMatch(/^\s+at .+\(?.+:\d+:\d+\)?$/m);
  expect(run.stdout, shown).not.toContain('"stack"');
  for (const pattern of patterns) expect(run.stderr, shown).toMatch(pattern);
}

let work: string;
let broker: TestBroker;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "tle-mistakes-"));
  broker = await startTestBroker();
});

afterAll(async () => {
  await broker?.stop();
  await rm(work, { recursive: true, force: true });
});

describe("help on every command", () => {
  for (const [command, flag] of [
    ["start", "--help"],
    ["start", "-h"],
    ["pull", "--help"],
    ["detect", "-h"],
    ["ask", "--help"],
  ] as const) {
    it(`${command} ${flag}`, async () => {
      const run = await cli([command, flag]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`usage: tinyllama-edge ${command}`));
    });
  }
});

describe("command-line mistakes", () => {
  it("an unknown option names the closest one", async () => {
    expectExplained(await cli(["detect", "--jsn"]), 2, /unknown option --jsn \(did you mean --json\?\)/);
  });

  it("an unknown configuration flag names the closest key", async () => {
    expectExplained(
      await cli(["pull", "--dry-run", "--mqtt.urll", "mqtt://x:1883"]),
      2,
      /unknown option --mqtt\.urll \(did you mean --mqtt\.url\?\)/,
    );
  });

  it("an unknown TINYLLAMA_EDGE_ variable is a warning with the closest key", async () => {
    const run = await cli(
      ["pull", "--dry-run", "--board", fixtureRoot("pi5-8gb"), "--model.dir", path.join(work, "models")],
      { TINYLLAMA_EDGE_MQTT_URLL: "mqtt://x:1883" },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/TINYLLAMA_EDGE_MQTT_URLL .*\(did you mean TINYLLAMA_EDGE_MQTT_URL\?\)/);
  });

  it("quantization names are taken in any case", async () => {
    const run = await cli([
      "pull",
      "--dry-run",
      "--board",
      fixtureRoot("pi5-8gb"),
      "--model.dir",
      path.join(work, "models"),
      "--runtime.quantization",
      "q4_k_m",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toMatch(/tinyllama-1\.1b-chat-v1\.0\.Q4_K_M\.gguf$/);
  });
});

describe("configuration file mistakes", () => {
  it("invalid JSON is reported with its line and column", async () => {
    const file = path.join(work, "trailing-comma.json");
    await writeFile(file, '{\n  "mqtt": { "url": "mqtt://localhost:1883" },\n}\n');
    expectExplained(await cli(["detect", "--config", file]), 2, /trailing-comma\.json:3:1: not valid JSON/);
  });

  it("an unknown key is explained in plain words, with the closest key", async () => {
    const file = path.join(work, "typo.json");
    await writeFile(file, JSON.stringify({ mqtt: { urll: "mqtt://localhost:1883" } }));
    expectExplained(
      await cli(["detect", "--config", file]),
      2,
      /mqtt\.urll in .*typo\.json is not a setting of tinyllama-edge \(did you mean mqtt\.url\?\)/,
    );
  });

  it("a config file that does not exist", async () => {
    expectExplained(
      await cli(["start", "--config", path.join(work, "nope.json")]),
      2,
      /config file not found/,
    );
  });
});

describe("model mistakes at start", () => {
  const start = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    cli(
      [
        "start",
        "--mqtt.url",
        broker.url,
        "--log.pretty",
        "never",
        "--homeassistant.enabled",
        "false",
        "--state.dir",
        path.join(work, "state"),
        ...args,
      ],
      env,
    );

  it("a model file that does not exist", async () => {
    expectExplained(
      await start(["--model.path", path.join(work, "missing.gguf")]),
      2,
      /missing\.gguf/,
      /point model\.path at a GGUF file, or leave it unset/,
    );
  });

  it("a file that is not a GGUF", async () => {
    const file = path.join(work, "notes.gguf");
    await writeFile(file, "these are not the weights you are looking for\n".repeat(100));
    expectExplained(await start(["--model.path", file]), 2, /notes\.gguf/);
  });

  it("a truncated GGUF", async () => {
    const file = path.join(work, "truncated.gguf");
    await copyFile(TINY_MODEL_PATH, file);
    const size = (await readFile(file)).length;
    await truncate(file, Math.floor(size / 2));
    expectExplained(await start(["--model.path", file]), 2, /truncated\.gguf/);
  });

  it("no model and no network: the quick start without a download is named", async () => {
    const closed = await freePort();
    expectExplained(
      await start(["--model.dir", path.join(work, "empty-models"), "--model.downloadTimeoutMs", "5000"], {
        HF_ENDPOINT: `http://127.0.0.1:${closed}/`,
      }),
      1,
      /cannot download/,
      /make-model .*--model\.path/,
    );
  });

  it("a model that does not fit this device", async () => {
    expectExplained(
      await start([
        "--model.dir",
        path.join(work, "empty-models"),
        "--runtime.memoryReserveMiB",
        "100000000",
      ]),
      3,
      /does not fit/,
    );
  });
});
