import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

/** Reads system files by their absolute path; tests root it at a recorded `/proc` + `/sys` tree. */
export interface SystemFileReader {
  /** The file's text, or null when it is missing or unreadable. */
  readText(absolutePath: string): Promise<string | null>;
  /** Entry names of a directory, or [] when it is missing or unreadable. */
  listDir(absolutePath: string): Promise<string[]>;
}

export function createRootedFileReader(rootDir = "/"): SystemFileReader {
  const resolve = (absolutePath: string) => path.join(rootDir, absolutePath);
  return {
    async readText(absolutePath) {
      try {
        return await readFile(resolve(absolutePath), "utf8");
      } catch {
        return null;
      }
    },
    async listDir(absolutePath) {
      try {
        return await readdir(resolve(absolutePath));
      } catch {
        return [];
      }
    },
  };
}
