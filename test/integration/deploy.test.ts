// The deployment kit: the systemd unit, install/update/uninstall scripts run into a temporary
// prefix, and the example Mosquitto configuration run as a real broker.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { connectAsync, type IClientOptions, type MqttClient, connect as mqttConnect } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const installScript = path.join(repoRoot, "deploy/install.sh");
const updateScript = path.join(repoRoot, "deploy/update.sh");
const uninstallScript = path.join(repoRoot, "deploy/uninstall.sh");
const unitPath = path.join(repoRoot, "systemd/tinyllama-edge.service");
const realDistMain = path.join(repoRoot, "dist/main.js");
const hasRealDist = existsSync(realDistMain);

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const systemdAnalyze = findOnPath("systemd-analyze");
const mosquittoBin = findOnPath("mosquitto") ?? ["/usr/sbin/mosquitto"].find((p) => existsSync(p));
const mosquittoPasswd = findOnPath("mosquitto_passwd");
const openssl = findOnPath("openssl");

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a non-zero exit is a result, not an exception. */
function runCommand(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: options.env ?? process.env,
        cwd: options.cwd ?? repoRoot,
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") {
          reject(new Error(`${file} ${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`));
          return;
        }
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

function describeResult(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** Every path under dir (relative), sorted; [] when dir does not exist. */
async function listTree(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

/** `Key=Value` lines of a unit file, comments left out; a key may repeat. */
function unitDirectives(text: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const rawLine of text.split("\n")) {
    const line = rawLine.trim();
    if (!line || line.startsWith("#") || line.startsWith(";") || line.startsWith("[")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    directives.set(key, [...(directives.get(key) ?? []), line.slice(eq + 1)]);
  }
  return directives;
}

/** The unit with ExecStart's node replaced by the node running this test, as install.sh does. */
function unitForThisNode(text: string): string {
  return text.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `);
}

describe("systemd unit", () => {
  it("declares the service, its supervision and its sandbox", async () => {
    const directives = unitDirectives(await readFile(unitPath, "utf8"));
    const one = (key: string) => {
      const values = directives.get(key);
      expect(values, `${key}= is set once`).toHaveLength(1);
      return values![0];
    };
    expect(one("ExecStart")).toBe(
      "/usr/bin/node /opt/tinyllama-edge/dist/main.js start --config /etc/tinyllama-edge/config.json",
    );
    expect(one("User")).toBe("tinyllama-edge");
    expect(one("Group")).toBe("tinyllama-edge");
    expect(one("StateDirectory")).toBe("tinyllama-edge");
    expect(one("ConfigurationDirectory")).toBe("tinyllama-edge");
    expect(one("Type")).toBe("notify");
    expect(one("NotifyAccess")).toBe("all");
    expect(one("WatchdogSec")).toBe("60");
    expect(one("Restart")).toBe("on-failure");
    expect(directives.has("RestartSec")).toBe(true);
    expect(directives.has("StartLimitBurst")).toBe(true);
    expect(directives.has("StartLimitIntervalSec")).toBe(true);
    // Longer than the daemon's own 20 s shutdown deadline.
    expect(Number(one("TimeoutStopSec"))).toBeGreaterThan(20);
    expect(one("Environment")).toBe(
      "NODE_ENV=production UV_THREADPOOL_SIZE=1 NODE_OPTIONS=--max-semi-space-size=2 MALLOC_MMAP_THRESHOLD_=131072",
    );
    for (const [key, value] of [
      ["ProtectSystem", "strict"],
      ["ProtectHome", "true"],
      ["PrivateTmp", "true"],
      ["NoNewPrivileges", "true"],
      ["ProtectKernelTunables", "true"],
      ["ProtectControlGroups", "true"],
      ["LockPersonality", "true"],
      ["RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"],
    ] as const) {
      expect(one(key), key).toBe(value);
    }
    // V8's JIT needs writable-then-executable memory; the GPU and /dev/vchiq must stay reachable.
    for (const forbidden of ["MemoryDenyWriteExecute", "PrivateDevices", "DevicePolicy", "ProtectClock"]) {
      expect(directives.has(forbidden), `${forbidden}= must not be set`).toBe(false);
    }
  });

  it("passes systemd-analyze verify", async (ctx) => {
    if (!systemdAnalyze) return ctx.skip("systemd-analyze is not installed");
    // verify checks that ExecStart's program exists, so the copy names the node running this test
    // (install.sh writes the unit the same way when node is not /usr/bin/node). The script it
    // runs (/opt/tinyllama-edge/dist/main.js) is an argument and is not checked.
    const dir = await mkdtemp(path.join(tmpdir(), "tle-unit-"));
    try {
      const copy = path.join(dir, "tinyllama-edge.service");
      await writeFile(copy, unitForThisNode(await readFile(unitPath, "utf8")));
      const result = await runCommand(systemdAnalyze, ["verify", "--man=no", copy]);
      expect(result.code, describeResult(result)).toBe(0);
      // Unknown or misspelt keys are only warnings (exit 0): none may mention the unit.
      const warnings = `${result.stdout}\n${result.stderr}`
        .split("\n")
        .filter((line) => line.includes("tinyllama-edge.service"));
      expect(warnings).toEqual([]);

      // The check itself works: a missing program is an error.
      const broken = path.join(dir, "broken", "tinyllama-edge.service");
      await mkdir(path.dirname(broken));
      await writeFile(
        broken,
        (await readFile(copy, "utf8")).replace(/^ExecStart=\S+/m, "ExecStart=/nonexistent/node"),
      );
      const brokenResult = await runCommand(systemdAnalyze, ["verify", "--man=no", broken]);
      expect(brokenResult.code).not.toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const installSteps = [
  "Checking Node.js and the architecture",
  "Checking the source",
  "Building dist/ in the source",
  "Creating the system user tinyllama-edge",
  "Creating the directories",
  "Copying the application",
  "Installing the production dependencies",
  "Compiling llama.cpp for this CPU",
  "Writing the configuration",
  "Installing the systemd unit",
  "Reloading systemd",
  "Installing the command",
  "Detecting the hardware",
  "Downloading the model",
  "Enabling and starting tinyllama-edge.service",
  "Done",
];

/** A project checkout as install.sh expects it: the real dist/ when built, else a stand-in. */
async function prepareSource(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const item of ["package.json", "package-lock.json", "config", "systemd", "deploy"]) {
    await cp(path.join(repoRoot, item), path.join(dir, item), { recursive: true });
  }
  if (hasRealDist) {
    await cp(path.join(repoRoot, "dist"), path.join(dir, "dist"), { recursive: true });
  } else {
    await mkdir(path.join(dir, "dist"));
    await writeFile(
      path.join(dir, "dist/main.js"),
      "console.log(JSON.stringify({ standIn: true, argv: process.argv.slice(2) }));\n",
    );
  }
}

describe("install.sh --dry-run", () => {
  let work: string;
  let source: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "tle-dry-"));
    source = path.join(work, "source");
    await prepareSource(source);
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("with --prefix shows every step and writes nothing", async () => {
    const prefix = path.join(work, "root");
    const sourceBefore = await listTree(source);
    const result = await runCommand("bash", [
      installScript,
      "--dry-run",
      "--prefix",
      prefix,
      "--source",
      source,
    ]);
    expect(result.code, describeResult(result)).toBe(0);
    for (const title of installSteps) {
      expect(result.stdout, title).toContain(`==> ${title}`);
    }
    const out = result.stdout;
    expect(out).toMatch(/\[dry-run\] install -d .*\/opt\/tinyllama-edge/);
    expect(out).toMatch(/\[dry-run\] cp -R .*\/dist .*\/opt\/tinyllama-edge\/dist/);
    expect(out).toMatch(/\[dry-run\] \(cd .*\/opt\/tinyllama-edge && npm ci --omit=dev/);
    expect(out).toMatch(
      /\[dry-run\] install -m 0640 .*production\.json .*\/etc\/tinyllama-edge\/config\.json/,
    );
    expect(out).toMatch(/\[dry-run\] write .*\/etc\/systemd\/system\/tinyllama-edge\.service/);
    expect(out).toMatch(/\[dry-run\] write .*\/usr\/local\/bin\/tinyllama-edge/);
    expect(out).toMatch(/\[dry-run\] .*dist\/main\.js detect --config/);
    expect(out).toMatch(/\[dry-run\] .*dist\/main\.js pull --config/);
    // With a prefix there is no user and no systemctl, and it says so.
    expect(out).toMatch(/skipped: --prefix: no system user/);
    expect(out.match(/skipped: --prefix installs into/g)).toHaveLength(2);
    expect(existsSync(prefix)).toBe(false);
    expect(await listTree(source)).toEqual(sourceBefore);
  });

  it("with --native compiles llama.cpp in the application after its dependencies, and not without", async () => {
    const prefix = path.join(work, "root-native");
    const args = [installScript, "--dry-run", "--prefix", prefix, "--source", source];
    const native = await runCommand("bash", [...args, "--native"]);
    expect(native.code, describeResult(native)).toBe(0);
    const build =
      /\[dry-run\] \(cd .*\/opt\/tinyllama-edge && \S*node \S*\/opt\/tinyllama-edge\/dist\/main\.js build\)/;
    expect(native.stdout).toMatch(build);
    expect(native.stdout.indexOf("npm ci --omit=dev")).toBeLessThan(native.stdout.search(build));
    const plain = await runCommand("bash", args);
    expect(plain.stdout).not.toMatch(build);
    expect(plain.stdout).toContain("skipped: the prebuilt llama.cpp binary is used");
  });

  it("without --prefix shows the system changes it would make", async () => {
    const existedBefore = ["/opt/tinyllama-edge", "/etc/tinyllama-edge"].map((p) => existsSync(p));
    const result = await runCommand("bash", [installScript, "--dry-run", "--source", source]);
    expect(result.code, describeResult(result)).toBe(0);
    expect(result.stdout).toMatch(/\[dry-run\] useradd --system .*tinyllama-edge|user tinyllama-edge exists/);
    expect(result.stdout).toMatch(
      /\[dry-run\] install -d -m 0750 -o root -g tinyllama-edge \/etc\/tinyllama-edge/,
    );
    expect(result.stdout).toMatch(
      /\[dry-run\] systemctl enable tinyllama-edge\.service|skipped: (systemd is not running|systemctl is not available)/,
    );
    expect(["/opt/tinyllama-edge", "/etc/tinyllama-edge"].map((p) => existsSync(p))).toEqual(existedBefore);
  });

  // A stand-in `node` answers install.sh's single probe: "<version> <arch> <arm version> <glibc>".
  it.each([
    {
      report: "18.19.1 x64 - 2.36",
      ok: false,
      message: /Node\.js 18\.19\.1 .* too old: .*Node\.js 20 or newer/,
    },
    { report: "20.11.0 riscv64 - 2.36", ok: false, message: /architecture 'riscv64' .*not supported/ },
    { report: "20.11.0 ia32 - 2.36", ok: false, message: /architecture 'ia32' .*not supported/ },
    { report: "20.11.0 arm 6 2.31", ok: false, message: /32-bit ARM v6 .*not supported/ },
    { report: "20.11.0 arm64 - -", ok: false, message: /not built on glibc/ },
    {
      report: "20.11.0 arm 7 2.31",
      ok: false,
      message: /32-bit ARM \(armv7l.*not supported: .*install the 64-bit Raspberry Pi OS/,
    },
    { report: "22.3.0 arm64 - 2.36", ok: true, message: /architecture arm64/ },
    { report: "20.0.0 x64 - 2.28", ok: true, message: /architecture x64/ },
  ])("node reporting '$report' is accepted: $ok", async ({ report, ok, message }) => {
    const bin = path.join(work, "fake-node-bin");
    await mkdir(bin, { recursive: true });
    await writeFile(path.join(bin, "node"), '#!/bin/sh\necho "$FAKE_NODE_REPORT"\n');
    await chmod(path.join(bin, "node"), 0o755);
    const prefix = path.join(work, "root-arch");
    const result = await runCommand(
      "bash",
      [installScript, "--dry-run", "--prefix", prefix, "--source", source],
      {
        env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}`, FAKE_NODE_REPORT: report },
      },
    );
    expect(result.code === 0, describeResult(result)).toBe(ok);
    expect(ok ? result.stdout : result.stderr).toMatch(message);
    expect(existsSync(prefix)).toBe(false);
  });
});

describe("install.sh into a prefix, then update.sh and uninstall.sh", () => {
  let work: string;
  let source: string;
  let prefix: string;
  let app: string;
  let configFile: string;
  const installArgs = () => [
    installScript,
    "--prefix",
    prefix,
    "--source",
    source,
    "--no-pull",
    "--no-start",
  ];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "tle-install-"));
    source = path.join(work, "source");
    prefix = path.join(work, "root");
    app = path.join(prefix, "opt/tinyllama-edge");
    configFile = path.join(prefix, "etc/tinyllama-edge/config.json");
    await prepareSource(source);
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("installs the application, production dependencies, config, unit and command", async () => {
    // Production dependencies come from npm's cache (--prefer-offline): no network needed for
    // packages already cached, which the project's own `npm ci` has done.
    const result = await runCommand("bash", installArgs(), { timeoutMs: 300_000 });
    expect(result.code, describeResult(result)).toBe(0);
    for (const title of installSteps) {
      expect(result.stdout, title).toContain(`==> ${title}`);
    }
    expect(result.stdout).toContain("skipped: --no-pull");
    expect(result.stdout).toContain("skipped: --no-start");
    expect(result.stdout).toMatch(/skipped: --prefix: no system user/);

    for (const file of ["package.json", "package-lock.json", "dist/main.js", "config/production.json"]) {
      expect(existsSync(path.join(app, file)), file).toBe(true);
    }
    expect(existsSync(path.join(app, "systemd/tinyllama-edge.service"))).toBe(true);
    expect(existsSync(path.join(app, "deploy/uninstall.sh"))).toBe(true);
    expect(await readFile(path.join(app, "dist/main.js"), "utf8")).toBe(
      await readFile(path.join(source, "dist/main.js"), "utf8"),
    );

    // Runtime dependencies only. (typescript is not checked: it is an optional peer dependency
    // of node-llama-cpp, which npm installs with the runtime packages.)
    const modules = path.join(app, "node_modules");
    for (const runtime of ["mqtt", "convict", "pino", "node-llama-cpp"]) {
      expect(existsSync(path.join(modules, runtime, "package.json")), runtime).toBe(true);
    }
    for (const dev of ["vitest", "@biomejs/biome", "fast-check", "@types/convict"]) {
      expect(existsSync(path.join(modules, dev)), dev).toBe(false);
    }

    // The config, from the template, readable by the service group only.
    expect(await readFile(configFile, "utf8")).toBe(
      await readFile(path.join(repoRoot, "config/production.json"), "utf8"),
    );
    expect((await stat(configFile)).mode & 0o777).toBe(0o640);
    for (const dir of ["var/lib/tinyllama-edge", "var/lib/tinyllama-edge/models", "etc/tinyllama-edge"]) {
      expect((await stat(path.join(prefix, dir))).isDirectory(), dir).toBe(true);
    }

    // The unit names the final paths (the prefix is a staging root) and the node found on PATH.
    const unit = await readFile(path.join(prefix, "etc/systemd/system/tinyllama-edge.service"), "utf8");
    const original = await readFile(unitPath, "utf8");
    const withoutExecStart = (text: string) => text.replace(/^ExecStart=.*$/m, "");
    expect(withoutExecStart(unit)).toBe(withoutExecStart(original));
    expect(unit).toMatch(
      /^ExecStart=\/\S+\/node \/opt\/tinyllama-edge\/dist\/main\.js start --config \/etc\/tinyllama-edge\/config\.json$/m,
    );

    const wrapper = path.join(prefix, "usr/local/bin/tinyllama-edge");
    expect((await stat(wrapper)).mode & 0o111).not.toBe(0);
    expect(await readFile(wrapper, "utf8")).toMatch(
      /^exec \S+ \/opt\/tinyllama-edge\/dist\/main\.js "\$@"$/m,
    );
  }, 320_000);

  it("runs again without overwriting the config or reinstalling unchanged dependencies", async () => {
    const template = JSON.parse(await readFile(path.join(repoRoot, "config/production.json"), "utf8"));
    const edited = `${JSON.stringify({ ...template, mqtt: { ...template.mqtt, username: "tinyllama-edge" } }, null, 2)}\n`;
    await writeFile(configFile, edited);
    const stampBefore = await stat(path.join(app, "node_modules/.tinyllama-edge-deps"));
    const result = await runCommand("bash", installArgs(), { timeoutMs: 300_000 });
    expect(result.code, describeResult(result)).toBe(0);
    expect(result.stdout).toMatch(/kept the existing .*config\.json/);
    expect(result.stdout).toContain("up to date: package-lock.json has not changed");
    expect(await readFile(configFile, "utf8")).toBe(edited);
    const stampAfter = await stat(path.join(app, "node_modules/.tinyllama-edge-deps"));
    expect(stampAfter.mtimeMs).toBe(stampBefore.mtimeMs);
  }, 320_000);

  it("runs the CLI from the installed copy", async (ctx) => {
    if (!hasRealDist)
      return ctx.skip("dist/main.js is not built (npm run build); the install used a stand-in");
    const result = await runCommand(process.execPath, [path.join(app, "dist/main.js"), "--help"], {
      cwd: work,
      timeoutMs: 60_000,
    });
    expect(result.code, describeResult(result)).toBe(0);
    expect(`${result.stdout}${result.stderr}`).toMatch(/detect/);

    // detect loads node-llama-cpp: the installed node_modules, not the checkout's, must provide it.
    const detect = await runCommand(
      process.execPath,
      [
        path.join(app, "dist/main.js"),
        "detect",
        "--json",
        "--config",
        configFile,
        "--model.dir",
        path.join(prefix, "var/lib/tinyllama-edge/models"),
        "--state.dir",
        path.join(prefix, "var/lib/tinyllama-edge"),
      ],
      { cwd: work, timeoutMs: 120_000 },
    );
    expect(detect.code, describeResult(detect)).toBe(0);
    expect(JSON.parse(detect.stdout)).toHaveProperty("hardware");
  }, 150_000);

  it("update.sh reinstalls the application and keeps the config", async () => {
    await rm(path.join(app, "dist"), { recursive: true });
    const config = await readFile(configFile, "utf8");
    const result = await runCommand("bash", [updateScript, "--prefix", prefix, "--source", source], {
      timeoutMs: 300_000,
    });
    expect(result.code, describeResult(result)).toBe(0);
    for (const title of ["Stopping tinyllama-edge.service", "Installing the new version", "Starting"]) {
      expect(result.stdout).toContain(`==> ${title}`);
    }
    expect(result.stdout).toContain("skipped: --no-pull");
    expect(existsSync(path.join(app, "dist/main.js"))).toBe(true);
    expect(await readFile(configFile, "utf8")).toBe(config);
  }, 320_000);

  it("uninstall.sh keeps config and models; --purge removes them", async () => {
    const model = path.join(prefix, "var/lib/tinyllama-edge/models/model.gguf");
    await writeFile(model, "not really a model");
    const before = await listTree(prefix);

    const dry = await runCommand("bash", [uninstallScript, "--prefix", prefix, "--dry-run", "--purge"]);
    expect(dry.code, describeResult(dry)).toBe(0);
    expect(dry.stdout).toMatch(/\[dry-run\] rm -rf .*\/opt\/tinyllama-edge/);
    expect(await listTree(prefix)).toEqual(before);

    const keep = await runCommand("bash", [uninstallScript, "--prefix", prefix]);
    expect(keep.code, describeResult(keep)).toBe(0);
    expect(existsSync(app)).toBe(false);
    expect(existsSync(path.join(prefix, "etc/systemd/system/tinyllama-edge.service"))).toBe(false);
    expect(existsSync(path.join(prefix, "usr/local/bin/tinyllama-edge"))).toBe(false);
    expect(existsSync(configFile)).toBe(true);
    expect(existsSync(model)).toBe(true);

    const purge = await runCommand("bash", [uninstallScript, "--prefix", prefix, "--purge"]);
    expect(purge.code, describeResult(purge)).toBe(0);
    expect(existsSync(path.join(prefix, "etc/tinyllama-edge"))).toBe(false);
    expect(existsSync(path.join(prefix, "var/lib/tinyllama-edge"))).toBe(false);
  });
});

/** A port nobody listens on right now (never the real 1883). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, broker: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (broker.exitCode !== null) throw new Error(`mosquitto exited (${broker.exitCode}):\n${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`mosquitto did not listen on ${port} within 10 s:\n${log()}`);
}

describe.skipIf(!mosquittoBin || !mosquittoPasswd)(
  "example Mosquitto configuration [needs mosquitto and mosquitto_passwd]",
  () => {
    const daemonUser = { username: "tinyllama-edge", password: "daemon-secret" };
    const clientUser = { username: "homeassistant", password: "client-secret" };
    let work: string;
    let port: number;
    let tlsPort: number;
    let caPem: string;
    let broker: ChildProcess | undefined;
    let brokerLog = "";
    const clients: MqttClient[] = [];

    async function connect(options: IClientOptions): Promise<MqttClient> {
      const client = await connectAsync(`mqtt://127.0.0.1:${port}`, {
        protocolVersion: 5,
        reconnectPeriod: 0,
        connectTimeout: 5_000,
        ...options,
      });
      clients.push(client);
      return client;
    }

    beforeAll(async () => {
      work = await mkdtemp(path.join(tmpdir(), "tle-mosquitto-"));
      const shipped = await readFile(path.join(repoRoot, "deploy/mosquitto/tinyllama-edge.conf"), "utf8");
      // The lines this test rewrites must be there, as shipped.
      for (const line of [
        "per_listener_settings false",
        "listener 1883 127.0.0.1",
        "allow_anonymous false",
        "password_file /etc/mosquitto/passwd",
        "acl_file /etc/mosquitto/acl",
        "persistence true",
        // The commented TLS listener: uncommented below, as README.md tells users to.
        "#listener 8883",
        "#cafile /etc/mosquitto/certs/ca.crt",
        "#certfile /etc/mosquitto/certs/server.crt",
        "#keyfile /etc/mosquitto/certs/server.key",
        "#tls_version tlsv1.2",
      ]) {
        expect(shipped.split("\n"), line).toContain(line);
      }
      const passwd = path.join(work, "passwd");
      const acl = path.join(work, "acl");
      await cp(path.join(repoRoot, "deploy/mosquitto/acl"), acl);
      await writeFile(passwd, "");
      for (const user of [daemonUser, clientUser]) {
        const made = await runCommand(mosquittoPasswd!, ["-b", passwd, user.username, user.password]);
        expect(made.code, describeResult(made)).toBe(0);
      }
      port = await freePort();
      expect(port).not.toBe(1883);
      let withTls = shipped;
      if (openssl) {
        // A home CA and a server certificate, made the way README.md shows.
        const certs = path.join(work, "certs");
        await mkdir(certs);
        const steps = [
          ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA"].concat([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
          ]),
          ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"].concat([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
          ]),
          [
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
          ].concat(["-days", "1", "-extfile", "server.ext", "-out", "server.crt"]),
        ];
        await writeFile(path.join(certs, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
        for (const args of steps) {
          const made = await runCommand(openssl, args, { cwd: certs });
          expect(made.code, describeResult(made)).toBe(0);
        }
        caPem = await readFile(path.join(certs, "ca.crt"), "utf8");
        tlsPort = await freePort();
        withTls = shipped
          .replace("#listener 8883", `listener ${tlsPort} 127.0.0.1`)
          .replace("#cafile /etc/mosquitto/certs/ca.crt", `cafile ${certs}/ca.crt`)
          .replace("#certfile /etc/mosquitto/certs/server.crt", `certfile ${certs}/server.crt`)
          .replace("#keyfile /etc/mosquitto/certs/server.key", `keyfile ${certs}/server.key`)
          .replace("#tls_version tlsv1.2", "tls_version tlsv1.2");
      }
      const config = [
        // As root, mosquitto would switch to the mosquitto user, which cannot read this temp dir.
        ...(process.getuid?.() === 0 ? ["user root"] : []),
        withTls
          .replace("listener 1883 127.0.0.1", `listener ${port} 127.0.0.1`)
          .replace("password_file /etc/mosquitto/passwd", `password_file ${passwd}`)
          .replace("acl_file /etc/mosquitto/acl", `acl_file ${acl}`),
        `persistence_location ${work}/`,
        "",
      ].join("\n");
      const configFile = path.join(work, "mosquitto.conf");
      await writeFile(configFile, config);
      broker = spawn(mosquittoBin!, ["-c", configFile, "-v"], { stdio: ["ignore", "pipe", "pipe"] });
      broker.stdout?.on("data", (chunk: Buffer) => {
        brokerLog += chunk.toString();
      });
      broker.stderr?.on("data", (chunk: Buffer) => {
        brokerLog += chunk.toString();
      });
      await waitForPort(port, broker, () => brokerLog);
      if (openssl) await waitForPort(tlsPort, broker, () => brokerLog);
    });

    afterAll(async () => {
      await Promise.all(clients.map((client) => client.endAsync(true)));
      if (broker && broker.exitCode === null) {
        const running = broker;
        const exited = new Promise((resolve) => running.once("exit", resolve));
        running.kill("SIGTERM");
        const forced = setTimeout(() => running.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(forced);
      }
      if (work) await rm(work, { recursive: true, force: true });
    });

    it("refuses anonymous clients and wrong passwords", async () => {
      await expect(connect({})).rejects.toThrow(/not authorized/i);
      await expect(connect({ username: daemonUser.username, password: "wrong" })).rejects.toThrow(
        /bad user name or password|not authorized/i,
      );
    });

    it("lets the daemon take requests and publish status and replies, and a client use them", async () => {
      const daemon = await connect({ ...daemonUser, clientId: "tle-test-daemon" });
      const client = await connect({ ...clientUser, clientId: "tle-test-client" });

      const daemonInbox: Array<[string, string]> = [];
      daemon.on("message", (topic, payload) => daemonInbox.push([topic, payload.toString()]));
      await daemon.subscribeAsync(
        [
          "tinyllama/node1/request",
          "tinyllama/node1/cancel",
          "$share/tinyllama/tinyllama/pool/request",
          "tinyllama/pool/cancel",
          "homeassistant/status",
        ],
        { qos: 1 },
      );

      const clientInbox: Array<[string, string]> = [];
      client.on("message", (topic, payload) => clientInbox.push([topic, payload.toString()]));
      await client.subscribeAsync(
        ["tinyllama/+/status", "tinyllama/+/info", "tinyllama/+/health", "tinyllama/+/response/#"],
        { qos: 1 },
      );

      await daemon.publishAsync("tinyllama/node1/status", '{"state":"online"}', { qos: 1, retain: true });
      await daemon.publishAsync("tinyllama/node1/health", "{}", { qos: 1, retain: true });
      await daemon.publishAsync("tinyllama/node1/response/r1", '{"id":"r1"}', { qos: 1 });
      await daemon.publishAsync("tinyllama/node1/response/r1/stream", '{"id":"r1","seq":0}', { qos: 0 });
      await daemon.publishAsync("tinyllama/pool/response/r2", '{"id":"r2"}', { qos: 1 });
      await daemon.publishAsync("homeassistant/sensor/node1/tokens_per_second/config", "{}", { qos: 1 });

      await client.publishAsync("tinyllama/node1/request", '{"id":"r1"}', { qos: 1 });
      await client.publishAsync("tinyllama/node1/cancel", '{"id":"r1"}', { qos: 1 });
      await client.publishAsync("tinyllama/pool/request", '{"id":"r2"}', { qos: 1 });
      await client.publishAsync("tinyllama/pool/cancel", '{"id":"r2"}', { qos: 1 });

      await expect
        .poll(() => daemonInbox.map(([topic]) => topic).sort(), { timeout: 5_000 })
        .toEqual(
          [
            "tinyllama/node1/request",
            "tinyllama/node1/cancel",
            "tinyllama/pool/request",
            "tinyllama/pool/cancel",
          ].sort(),
        );
      await expect
        .poll(() => clientInbox.map(([topic]) => topic).sort(), { timeout: 5_000 })
        .toEqual(
          [
            "tinyllama/node1/status",
            "tinyllama/node1/health",
            "tinyllama/node1/response/r1",
            "tinyllama/node1/response/r1/stream",
            "tinyllama/pool/response/r2",
          ].sort(),
        );
    });

    it("keeps clients from posing as a node or reading requests, and the daemon from sending them", async () => {
      const client = await connect({ ...clientUser, clientId: "tle-test-client-2" });
      await expect(
        client.publishAsync("tinyllama/x/status", '{"state":"online"}', { qos: 1 }),
      ).rejects.toThrow(/not authorized/i);
      await expect(client.publishAsync("tinyllama/x/response/r9", "{}", { qos: 1 })).rejects.toThrow(
        /not authorized/i,
      );
      const daemon = await connect({ ...daemonUser, clientId: "tle-test-daemon-2" });
      await expect(daemon.publishAsync("tinyllama/node2/request", "{}", { qos: 1 })).rejects.toThrow(
        /not authorized/i,
      );

      // Mosquitto grants the subscription but delivers only what the ACL lets the user read:
      // another client's prompt never arrives, while the status published after it does.
      const inbox: string[] = [];
      client.on("message", (topic) => inbox.push(topic));
      await client.subscribeAsync(["tinyllama/+/request", "tinyllama/node2/status"], { qos: 1 });
      const other = await connect({ ...clientUser, clientId: "tle-test-client-3" });
      await other.publishAsync("tinyllama/node2/request", '{"prompt":"private"}', { qos: 1 });
      await daemon.publishAsync("tinyllama/node2/status", '{"state":"online"}', { qos: 1 });
      await expect.poll(() => inbox, { timeout: 5_000 }).toContain("tinyllama/node2/status");
      expect(inbox).not.toContain("tinyllama/node2/request");
    });

    it("keeps QoS 1 requests for a daemon that is away, in its persistent session", async () => {
      const session = { ...daemonUser, clientId: "tle-test-daemon-persistent", clean: false };
      const properties = { sessionExpiryInterval: 300 };
      const first = await connect({ ...session, properties });
      await first.subscribeAsync("tinyllama/node3/request", { qos: 1 });
      await first.endAsync();

      const client = await connect({ ...clientUser, clientId: "tle-test-client-4" });
      await client.publishAsync("tinyllama/node3/request", '{"id":"while-away"}', { qos: 1 });

      // The queued request arrives right after CONNACK: listen before connecting.
      const inbox: string[] = [];
      const back = mqttConnect(`mqtt://127.0.0.1:${port}`, {
        ...session,
        properties,
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      clients.push(back);
      back.on("message", (_topic, payload) => inbox.push(payload.toString()));
      await expect.poll(() => inbox, { timeout: 5_000 }).toEqual(['{"id":"while-away"}']);
    });

    it("serves the TLS listener from the commented block, with the same logins and ACL", async (ctx) => {
      if (!openssl) return ctx.skip("openssl is not installed");
      const tls = { protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5_000 };
      const daemon = await connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { ...tls, ...daemonUser, ca: caPem });
      clients.push(daemon);
      await daemon.publishAsync("tinyllama/node4/status", '{"state":"online"}', { qos: 1, retain: true });
      await expect(daemon.publishAsync("tinyllama/node4/request", "{}", { qos: 1 })).rejects.toThrow(
        /not authorized/i,
      );
      // Without the CA the broker's certificate is not trusted.
      await expect(connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { ...tls, ...daemonUser })).rejects.toThrow(
        /certificate/i,
      );
      await expect(connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { ...tls, ca: caPem })).rejects.toThrow(
        /not authorized/i,
      );
    });
  },
);
