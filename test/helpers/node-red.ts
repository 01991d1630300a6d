import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../src/util/free-port.js";

export interface NodeRedRuntime {
  /** Presses an inject node, as its button in the editor does. */
  inject(nodeId: string): Promise<void>;
  lines: string[];
  stop(): Promise<void>;
}

/**
 * A real Node-RED runtime (the `node-red` package) as a child process on a free port, local only,
 * running `flow`. Resolves once its flows have started.
 */
export async function startNodeRed(flow: unknown[], timeoutMs = 60_000): Promise<NodeRedRuntime> {
  const userDir = mkdtempSync(join(tmpdir(), "tle-node-red-"));
  const port = await freePort();
  writeFileSync(join(userDir, "flows.json"), JSON.stringify(flow));
  writeFileSync(
    join(userDir, "settings.js"),
    `module.exports = ${JSON.stringify({
      uiHost: "127.0.0.1",
      uiPort: port,
      flowFile: "flows.json",
      credentialSecret: false,
      logging: { console: { level: "info", metrics: false, audit: false } },
      editorTheme: { projects: { enabled: false }, tours: false },
      externalModules: { autoInstall: false, palette: { allowInstall: false } },
    })};\n`,
  );
  const redJs = createRequire(import.meta.url).resolve("node-red/red.js");
  const child: ChildProcess = spawn(
    process.execPath,
    [redJs, "--userDir", userDir, "--settings", join(userDir, "settings.js")],
    { env: { PATH: process.env.PATH, HOME: userDir }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Node-RED did not start flows in ${timeoutMs} ms:\n${lines.join("\n")}`)),
      timeoutMs,
    );
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line.trim()) continue;
        lines.push(line);
        if (line.includes("Started flows")) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`Node-RED exited:\n${lines.join("\n")}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(userDir, { recursive: true, force: true });
  };
  try {
    await started;
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    lines,
    stop,
    async inject(nodeId) {
      const response = await fetch(`http://127.0.0.1:${port}/inject/${nodeId}`, { method: "POST" });
      if (!response.ok) throw new Error(`inject ${nodeId}: HTTP ${response.status} ${await response.text()}`);
    },
  };
}
