import { execFileSync } from "node:child_process";
import { isPortListening } from "./embedded-broker.js";

const MOSQUITTO_CANDIDATES = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"];

/** The installed mosquitto binary, or null. */
export function findMosquitto(): string | null {
  for (const candidate of MOSQUITTO_CANDIDATES) {
    try {
      execFileSync(candidate, ["-h"], { stdio: "ignore" });
      return candidate;
    } catch (err) {
      // `mosquitto -h` prints its help and exits with 3: a status means the binary ran.
      if ((err as { status?: number | null }).status != null) return candidate;
    }
  }
  return null;
}

/** Resolves once something accepts connections on 127.0.0.1:port; rejects after the timeout. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await isPortListening("127.0.0.1", port, 200)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the broker did not listen on port ${port} within ${timeoutMs} ms`);
}
