import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { it } from "vitest";
import { resolveModelFile } from "../../src/model/model-store.js";
import { writeMinimalGguf } from "../helpers/minimal-gguf.js";
import { startTestFileServer } from "../helpers/model-store-server.js";

it("debug cut", async () => {
  const dir = await mkdtemp(join(tmpdir(), "msd-"));
  const large = await writeMinimalGguf({
    path: join(dir, "large.gguf"),
    dataBytes: 12 * 1024 * 1024,
    seed: 2,
  });
  const server = await startTestFileServer(new Map([["/large.gguf", large.bytes]]));
  server.setMode("cut");
  const t0 = Date.now();
  const logger = pino({ level: "debug" });
  try {
    await resolveModelFile({
      model: {
        path: "",
        uri: `${server.origin}/large.gguf`,
        dir: join(dir, "m"),
        downloadTimeoutMs: 1500,
        sha256: "",
      },
      defaultUri: "",
      logger: logger as never,
      progress: {
        start: (l, t) => console.log("start", l, t, Date.now() - t0),
        update: (d) => {
          if (d % 7 === 0) process.stderr.write(`upd ${d} ${Date.now() - t0}\n`);
        },
        stop: () => console.log("stop", Date.now() - t0),
      },
      signal: new AbortController().signal,
      env: {},
    });
  } catch (e) {
    console.log("ERR", Date.now() - t0, (e as Error).message);
  }
  console.log(existsSync(join(dir, "m", "large.gguf.ipull")));
  await server.close();
  console.log("closed", Date.now() - t0);
  const healthy = await startTestFileServer(new Map([["/large.gguf", large.bytes]]));
  setTimeout(() => console.log("REQS", healthy.requests), 5000);
  try {
    const r = await resolveModelFile({
      model: {
        path: "",
        uri: `${healthy.origin}/large.gguf`,
        dir: join(dir, "m"),
        downloadTimeoutMs: 1500,
        sha256: "",
      },
      defaultUri: "",
      logger: logger as never,
      progress: {
        start: (l, t) => console.log("start", l, t, Date.now() - t0),
        update: (d) => {
          process.stderr.write(`upd2 ${d} ${Date.now() - t0}\n`);
        },
        stop: () => console.log("stop", Date.now() - t0),
      },
      signal: new AbortController().signal,
      env: {},
    });
    console.log("OK", r);
  } catch (e) {
    console.log("ERR2", Date.now() - t0, (e as Error).message);
  }
  console.log(healthy.requests);
  await healthy.close();
}, 30000);
