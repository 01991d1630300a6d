import { execFile } from "node:child_process";

/** Runs a program and resolves with its stdout; rejects when it is missing, fails or overruns. */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<string>;

export function createCommandRunner(timeoutMs = 2_000): CommandRunner {
  return (file, args) =>
    new Promise((resolve, reject) => {
      execFile(file, [...args], { timeout: timeoutMs, windowsHide: true }, (error, stdout) => {
        if (error) reject(error);
        else resolve(stdout);
      });
    });
}
