import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** curl as a user types it: the status code and the body, whatever the status. */
export async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", ["-s", "-w", "\n%{http_code}", ...args]);
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}
