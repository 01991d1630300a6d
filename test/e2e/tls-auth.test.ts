import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPortListening } from "../../src/mqtt/embedded-broker.js";
import { freePort } from "../../src/util/free-port.js";
import { type DaemonProcess, startDaemonProcess } from "../helpers/daemon-process.js";
import { tinyModelPath } from "../helpers/models.js";
import { MqttProbe } from "../helpers/mqtt-probe.js";
import { isRunning } from "../helpers/process-stats.js";
import { mosquittoPath, startTestBroker, type TestBroker } from "../helpers/test-broker.js";
import { makeTlsFixtures, type TlsFixtures, toolPath } from "../helpers/tls-fixtures.js";

const USER = "edge";
/** Distinctive, so a leak into any log line is found by a plain search. */
const PASSWORD = `pw-${randomBytes(8).toString("hex")}`;
const WRONG_PASSWORD = `wrong-${randomBytes(8).toString("hex")}`;
const status = (node: string) => `tinyllama/${node}/status`;
const missing = ["openssl", "mosquitto_passwd"].filter((tool) => toolPath(tool) === null);
if (mosquittoPath() === null) missing.push("mosquitto");

interface LogLine {
  msg?: string;
  delayMs?: number;
  hint?: string;
  err?: { message?: string; code?: unknown };
}

describe.skipIf(missing.length > 0)(
  `MQTT over TLS with user name and password, on a real Mosquitto${missing.length > 0 ? ` (missing: ${missing.join(", ")})` : ""}`,
  () => {
    let dir: string;
    let tls: TlsFixtures;
    let tlsPort: number;
    let broker: TestBroker;
    let probe: MqttProbe;
    let modelPath: string;
    const daemons: DaemonProcess[] = [];

    const startNode = (node: string, flags: string[]) => {
      const daemon = startDaemonProcess([
        "--mqtt.url",
        `mqtts://127.0.0.1:${tlsPort}`,
        "--node.id",
        node,
        "--model.path",
        modelPath,
        "--runtime.threads",
        "1",
        "--homeassistant.enabled",
        "false",
        "--mqtt.reconnectMinMs",
        "300",
        "--mqtt.reconnectMaxMs",
        "5000",
        ...flags,
      ]);
      daemons.push(daemon);
      return daemon;
    };
    const logsOf = (daemon: DaemonProcess) => daemon.logs() as LogLine[];
    const waitForLogs = async (daemon: DaemonProcess, select: (l: LogLine) => boolean, count: number) => {
      const until = Date.now() + 20_000;
      // A daemon that has exited will log nothing more.
      while (Date.now() < until && isRunning(daemon.child) && logsOf(daemon).filter(select).length < count) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return logsOf(daemon).filter(select);
    };
    const wentOnline = (node: string) =>
      probe.on(status(node)).some((m) => (m.json as { state?: string }).state === "online");

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "tle-tls-"));
      tls = makeTlsFixtures(dir, { [USER]: PASSWORD });
      tlsPort = await freePort();
      broker = await startTestBroker({
        extraConfig: [
          // Global: no anonymous client on either listener.
          "allow_anonymous false",
          `password_file ${tls.passwordFile}`,
          `listener ${tlsPort} 127.0.0.1`,
          `cafile ${tls.caCert}`,
          `certfile ${tls.serverCert}`,
          `keyfile ${tls.serverKey}`,
        ],
      });
      const until = Date.now() + 5000;
      while (!(await isPortListening("127.0.0.1", tlsPort, 200))) {
        if (Date.now() > until) throw new Error(`Mosquitto did not open its TLS listener on ${tlsPort}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      modelPath = await tinyModelPath();
      // The probe watches from the plain listener, with the same credentials.
      probe = await MqttProbe.connect(broker.url, { protocolVersion: 5, username: USER, password: PASSWORD });
      await probe.subscribe("tinyllama/+/status", "tinyllama/tls-ok/response/+");
    });

    afterAll(async () => {
      for (const daemon of daemons) await daemon.stop("SIGKILL");
      await probe?.close();
      await broker?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("connects over mqtts:// with the CA, user name and password, comes online and answers", async () => {
      const daemon = startNode("tls-ok", [
        "--mqtt.tls.ca",
        tls.caCert,
        "--mqtt.username",
        USER,
        "--mqtt.password",
        PASSWORD,
      ]);
      await probe.waitForJson(status("tls-ok"), (s) => s.state === "online", 60_000);
      const connected = daemon.logs().find((l) => l.msg === "MQTT connected");
      expect(connected?.url).toBe(`mqtts://127.0.0.1:${tlsPort}`);
      await probe.publish("tinyllama/tls-ok/request", { id: "over-tls", prompt: "hello", max_tokens: 4 });
      const answer = await probe.waitForJson("tinyllama/tls-ok/response/over-tls", () => true, 30_000);
      expect(answer.json).toMatchObject({ id: "over-tls", status: "ok", node: "tls-ok" });
    }, 90_000);

    it("refuses a broker whose certificate the configured CA did not sign: a clear TLS error, never online", async () => {
      const daemon = startNode("tls-badca", [
        "--mqtt.tls.ca",
        tls.otherCaCert,
        "--mqtt.username",
        USER,
        "--mqtt.password",
        PASSWORD,
      ]);
      const failures = await waitForLogs(
        daemon,
        (l) => l.msg?.startsWith("MQTT TLS handshake failed") ?? false,
        2,
      );
      expect(failures.length, daemon.lines.slice(-5).join("\n")).toBeGreaterThanOrEqual(2);
      const [first] = failures;
      expect(first!.msg).toMatch(/certificate/i);
      expect(first!.hint).toContain("mqtt.tls.ca");
      expect(isRunning(daemon.child)).toBe(true);
      expect(wentOnline("tls-badca")).toBe(false);
      expect(daemon.logs().some((l) => l.msg === "MQTT connected" || l.msg === "online")).toBe(false);
    }, 60_000);

    it("logs the broker's not-authorized refusal for a wrong password and retries with a growing delay", async () => {
      const daemon = startNode("tls-badpw", [
        "--mqtt.tls.ca",
        tls.caCert,
        "--mqtt.username",
        USER,
        "--mqtt.password",
        WRONG_PASSWORD,
      ]);
      const refusals = await waitForLogs(
        daemon,
        (l) => l.msg?.startsWith("MQTT broker refused the connection") ?? false,
        2,
      );
      expect(refusals.length, "at least one refusal is logged").toBeGreaterThan(0);
      expect(refusals[0]!.msg).toMatch(/not authori[sz]ed|bad user ?name or password/i);
      expect(refusals[0]!.hint).toContain("mqtt.password");
      expect(wentOnline("tls-badpw")).toBe(false);
      // It keeps trying: a second attempt, refused again, after a longer wait than the first.
      const retries = logsOf(daemon).filter((l) => l.msg === "MQTT reconnecting");
      expect(
        refusals.length,
        `attempts refused: ${refusals.length}, daemon exit code ${daemon.child.exitCode}; last lines:\n${daemon.lines.slice(-3).join("\n")}`,
      ).toBeGreaterThanOrEqual(2);
      expect(retries.length).toBeGreaterThanOrEqual(2);
      expect(retries[1]!.delayMs!).toBeGreaterThan(retries[0]!.delayMs!);
      expect(isRunning(daemon.child)).toBe(true);
    }, 60_000);

    it("never writes a password to its output", () => {
      expect(daemons.length).toBeGreaterThan(0);
      for (const daemon of daemons) {
        expect(daemon.lines.length).toBeGreaterThan(0);
        const leaks = daemon.lines.filter((line) => line.includes(PASSWORD) || line.includes(WRONG_PASSWORD));
        expect(leaks).toEqual([]);
      }
    });
  },
);
