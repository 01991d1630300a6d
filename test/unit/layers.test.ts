import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = join(import.meta.dirname, "../../src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  );
}

/** Each file's imports of other src/ folders, as "folder/file" paths relative to src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/from "(\.{1,2}\/[^"]+)"/g)].map((m) =>
    relative(SRC, join(file, "..", m[1]!)).replaceAll("\\", "/"),
  );
}

/** Folders and the folders they must never import from. */
const RULES: Array<{ layer: string; never: string[] }> = [
  {
    layer: "core",
    never: ["cli", "mqtt", "http", "serving", "inference", "health", "runtime", "components"],
  },
  ...["runtime", "model", "hardware", "inference", "serving", "health", "util"].map((layer) => ({
    layer,
    never: ["cli", "components", "bench"],
  })),
  ...["inference", "health"].map((layer) => ({ layer, never: ["mqtt/messages.ts"] })),
];

describe("layers", () => {
  it.each(RULES)("$layer imports nothing from $never", ({ layer, never }) => {
    const offending = sourceFiles(join(SRC, layer)).flatMap((file) =>
      importsOf(file)
        .filter((target) =>
          never.some((n) => target === n.replace(/\.ts$/, ".js") || target.startsWith(`${n}/`)),
        )
        .map((target) => `${relative(SRC, file)} -> ${target}`),
    );
    expect(offending).toEqual([]);
  });
});
