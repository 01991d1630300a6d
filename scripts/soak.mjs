// Soak test: runs the built daemon against its own broker under a steady stream of requests and
// reports, at every interval, the daemon's RSS, its open file descriptors and the latency
// percentiles. Exits non-zero when RSS or descriptors grow beyond their bounds, when a request goes
// unanswered or is answered twice, when an answer is an error, or when the daemon dies.
//
//   npm run soak -- --minutes 10
//   node scripts/soak.mjs --seconds 20 --report-seconds 5      (what the test runs)
//   node scripts/soak.mjs --minutes 60 --model.path models/tinyllama-1.1b-chat-v1.0.Q4_0.gguf --threads 4
//
// Run `npm run build` first (`npm run soak` does).
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const MAIN = join(ROOT, "dist", "main.js");
const NODE_ID = "soak";
const BASE = "tinyllama";
const PROMPTS = [
  "Turn the kitchen lights to 30 percent.",
  "Is the front door locked?",
  "Summarise today's energy use in one sentence.",
  "What should the thermostat be at night?",
  "Remind me to water the plants.",
];

const USAGE = `usage: node scripts/soak.mjs [--minutes N | --seconds S] [options]

  --minutes N            run for N minutes (default 2)
  --seconds S            run for S seconds instead (short runs in tests)
  --report-seconds R     print the figures every R seconds (default 60)
  --rate R               requests per second (default 4)
  --max-tokens N         max_tokens of each request (default 16)
  --model.path PATH      GGUF to serve (default: the tiny synthetic test model, generated if missing)
  --threads N            runtime.threads of the daemon (default 1)
  --broker KIND          mosquitto | embedded | auto (default auto: mosquitto when installed)
  --max-rss-growth-mb M  fail when RSS ends more than M MiB above the first report's (default 64)
  --max-fd-growth N      fail when open descriptors end more than N above the first report's (default 16)
  --answer-timeout-ms T  how long to wait for the last answers after the run (default 30000)`;

class UsageError extends Error {}

function parseArgs(argv) {
  const options = {
    seconds: 120,
    reportSeconds: 60,
    rate: 4,
    maxTokens: 16,
    modelPath: "",
    threads: 1,
    broker: "auto",
    maxRssGrowthMiB: 64,
    maxFdGrowth: 16,
    answerTimeoutMs: 30_000,
  };
  const number = (flag, value) => {
    const parsed = Number(value);
    if (value === undefined || !Number.isFinite(parsed) || parsed <= 0) {
      throw new UsageError(`${flag} needs a positive number, got ${JSON.stringify(value)}`);
    }
    return parsed;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    i++;
    switch (flag) {
      case "--minutes":
        options.seconds = number(flag, value) * 60;
        break;
      case "--seconds":
        options.seconds = number(flag, value);
        break;
      case "--report-seconds":
        options.reportSeconds = number(flag, value);
        break;
      case "--rate":
        options.rate = number(flag, value);
        break;
      case "--max-tokens":
        options.maxTokens = Math.round(number(flag, value));
        break;
      case "--model.path":
      case "--model":
        if (!value) throw new UsageError(`${flag} needs a path`);
        options.modelPath = resolve(value);
        break;
      case "--threads":
        options.threads = Math.round(number(flag, value));
        break;
      case "--broker":
        if (!["mosquitto", "embedded", "auto"].includes(value)) {
          throw new UsageError(`--broker must be mosquitto, embedded or auto, not ${JSON.stringify(value)}`);
        }
        options.broker = value;
        break;
      case "--max-rss-growth-mb":
        options.maxRssGrowthMiB = number(flag, value);
        break;
      case "--max-fd-growth":
        options.maxFdGrowth = number(flag, value);
        break;
      case "--answer-timeout-ms":
        options.answerTimeoutMs = number(flag, value);
        break;
      case "--help":
      case "-h":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${flag}\n\n${USAGE}`);
    }
  }
  return options;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const MiB = 1024 * 1024;

function rssBytes(pid) {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function defaultModelPath() {
  const { ensureSyntheticModel } = await import("../packages/bench/dist/model/synthetic-models.js");
  return ensureSyntheticModel(join(ROOT, ".cache", "test-models"), "tiny", "q8_0");
}

function startDaemon(options, brokerUrl, modelPath, env) {
  const child = spawn(
    process.execPath,
    [
      MAIN,
      "start",
      "--log.pretty",
      "never",
      "--log.level",
      "warn",
      "--mqtt.url",
      brokerUrl,
      "--mqtt.embeddedBroker",
      "never",
      "--node.id",
      NODE_ID,
      "--model.path",
      modelPath,
      "--runtime.threads",
      String(options.threads),
      "--homeassistant.enabled",
      "false",
      "--mqtt.protocolVersion",
      String(options.protocolVersion),
      // A steady client is not a flood: the rate limit would only blur the latency figures.
      "--scheduler.ratePerMinute",
      "0",
    ],
    {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const tail = [];
  const keep = (chunk) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 50) tail.shift();
    }
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise((done) => child.once("exit", (code, signal) => done({ code, signal })));
  return { child, tail, exited };
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (npm run soak does)`);
  const cleanups = [];
  const cleanup = async () => {
    while (cleanups.length > 0) {
      try {
        await cleanups.pop()();
      } catch (err) {
        console.error(`[soak] cleanup: ${err?.message ?? err}`);
      }
    }
  };
  process.once("SIGINT", () => {
    console.error("[soak] interrupted");
    const exit = () => process.exit(130);
    cleanup().then(exit, exit);
  });

  try {
    const { startBenchBroker } = await import("../packages/bench/dist/bench-broker.js");
    const broker = await startBenchBroker(options.broker);
    cleanups.push(() => broker.stop());
    const modelPath = options.modelPath || (await defaultModelPath());
    console.log(
      `[soak] ${options.seconds} s at ${options.rate} requests/s (max_tokens ${options.maxTokens}), ` +
        `broker ${broker.kind} ${broker.url}, model ${modelPath}, threads ${options.threads}`,
    );

    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: broker.protocolVersion,
      clientId: `soak-client-${process.pid}`,
      reconnectPeriod: 500,
    });
    cleanups.push(() => client.endAsync(true));
    const status = `${BASE}/${NODE_ID}/status`;
    const responsePrefix = `${BASE}/${NODE_ID}/response/`;
    const pending = new Map();
    const answered = new Set();
    const errors = {};
    let duplicates = 0;
    let ok = 0;
    let intervalLatencies = [];
    const allLatencies = [];
    let online = false;
    client.on("message", (topic, payload) => {
      let json;
      try {
        json = JSON.parse(payload.toString("utf8"));
      } catch {
        return;
      }
      if (topic === status) {
        online = json.state === "online";
        return;
      }
      if (!topic.startsWith(responsePrefix)) return;
      const id = json.id;
      const sentAt = pending.get(id);
      if (sentAt === undefined) {
        if (answered.has(id)) duplicates++;
        return;
      }
      pending.delete(id);
      answered.add(id);
      const latency = performance.now() - sentAt;
      intervalLatencies.push(latency);
      allLatencies.push(latency);
      if (json.status === "ok") ok++;
      else {
        const code = json.error?.code ?? "unknown";
        errors[code] = (errors[code] ?? 0) + 1;
      }
    });
    await client.subscribeAsync([status, `${responsePrefix}+`], { qos: 1 });

    // As the service runs: one libuv pool thread, a 2 MB young generation, a fixed mmap threshold.
    const { serviceEnvironment } = await import("../packages/bench/dist/daemon-child.js");
    const daemon = startDaemon(
      { ...options, protocolVersion: broker.protocolVersion },
      broker.url,
      modelPath,
      serviceEnvironment(),
    );
    cleanups.push(async () => {
      if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) return;
      daemon.child.kill("SIGTERM");
      const timer = setTimeout(() => daemon.child.kill("SIGKILL"), 20_000);
      await daemon.exited;
      clearTimeout(timer);
    });
    let died = null;
    daemon.child.once("exit", (code, signal) => {
      died = { code, signal };
    });
    const pid = daemon.child.pid;
    const onlineBy = Date.now() + 120_000;
    while (!online) {
      if (died) throw new Error(`the daemon exited before going online:\n${daemon.tail.join("\n")}`);
      if (Date.now() > onlineBy) throw new Error(`the daemon did not go online:\n${daemon.tail.join("\n")}`);
      await sleep(100);
    }

    const reports = [];
    const report = (label) => {
      const sorted = intervalLatencies.sort((a, b) => a - b);
      const figures = {
        t: Math.round((performance.now() - startedAt) / 1000),
        rssMiB: rssBytes(pid) / MiB,
        fds: fdCount(pid),
        sent,
        answered: answered.size,
        ok,
        errors: Object.values(errors).reduce((a, b) => a + b, 0),
        pending: pending.size,
        p50: percentile(sorted, 50),
        p95: percentile(sorted, 95),
        p99: percentile(sorted, 99),
      };
      reports.push(figures);
      intervalLatencies = [];
      console.log(
        `[soak] ${label} t=${figures.t}s rss=${figures.rssMiB.toFixed(1)}MiB fds=${figures.fds} ` +
          `sent=${figures.sent} answered=${figures.answered} ok=${figures.ok} errors=${figures.errors} ` +
          `pending=${figures.pending} p50=${figures.p50.toFixed(0)}ms p95=${figures.p95.toFixed(0)}ms ` +
          `p99=${figures.p99.toFixed(0)}ms`,
      );
    };

    // Steady requests: one every 1/rate seconds, on a fixed schedule (no drift, no bursts).
    const startedAt = performance.now();
    const endAt = startedAt + options.seconds * 1000;
    const intervalMs = 1000 / options.rate;
    let sent = 0;
    let nextReport = startedAt + options.reportSeconds * 1000;
    while (performance.now() < endAt && !died) {
      const id = `soak-${sent}`;
      pending.set(id, performance.now());
      client
        .publishAsync(
          `${BASE}/${NODE_ID}/request`,
          JSON.stringify({ id, prompt: PROMPTS[sent % PROMPTS.length], max_tokens: options.maxTokens }),
          { qos: 1 },
        )
        .catch((err) => console.error(`[soak] publishing ${id} failed: ${err.message}`));
      sent++;
      if (performance.now() >= nextReport) {
        report("interval");
        nextReport += options.reportSeconds * 1000;
      }
      const nextSend = startedAt + sent * intervalMs;
      await sleep(Math.max(0, nextSend - performance.now()));
    }

    // The last answers, then the final figures.
    const drainBy = performance.now() + options.answerTimeoutMs;
    while (pending.size > 0 && performance.now() < drainBy && !died) await sleep(100);
    await sleep(500); // a late duplicate would show up here
    if (died) {
      console.error(`[soak] the daemon exited (${JSON.stringify(died)}):\n${daemon.tail.join("\n")}`);
      return 1;
    }
    report("final");

    const baseline = reports[0];
    const last = reports.at(-1);
    const all = allLatencies.sort((a, b) => a - b);
    const rssGrowth = last.rssMiB - baseline.rssMiB;
    const fdGrowth = last.fds - baseline.fds;
    const maxRss = Math.max(...reports.map((r) => r.rssMiB));
    console.log(
      `[soak] summary sent=${sent} answered=${answered.size} ok=${ok} errors=${JSON.stringify(errors)} ` +
        `unanswered=${pending.size} duplicates=${duplicates} ` +
        `rss first=${baseline.rssMiB.toFixed(1)}MiB last=${last.rssMiB.toFixed(1)}MiB max=${maxRss.toFixed(1)}MiB ` +
        `growth=${rssGrowth.toFixed(1)}MiB fds first=${baseline.fds} last=${last.fds} ` +
        `latency p50=${percentile(all, 50).toFixed(0)}ms p95=${percentile(all, 95).toFixed(0)}ms ` +
        `p99=${percentile(all, 99).toFixed(0)}ms`,
    );
    const failures = [];
    if (pending.size > 0)
      failures.push(`${pending.size} requests unanswered: ${[...pending.keys()].slice(0, 10)}`);
    if (duplicates > 0) failures.push(`${duplicates} duplicate answers`);
    if (Object.keys(errors).length > 0) failures.push(`error answers: ${JSON.stringify(errors)}`);
    if (rssGrowth > options.maxRssGrowthMiB)
      failures.push(`RSS grew ${rssGrowth.toFixed(1)} MiB (bound ${options.maxRssGrowthMiB} MiB)`);
    if (fdGrowth > options.maxFdGrowth)
      failures.push(`open descriptors grew by ${fdGrowth} (bound ${options.maxFdGrowth})`);
    if (reports.length < 2) failures.push("the run was shorter than one report interval");
    if (failures.length > 0) {
      for (const failure of failures) console.error(`[soak] FAIL: ${failure}`);
      return 1;
    }
    console.log("[soak] PASS");
    return 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[soak] ${err instanceof UsageError ? err.message : (err?.stack ?? err)}`);
    process.exit(2);
  },
);
