import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderConfigTable, withConfigTable } from "../../src/config/config-table.js";
import { schemaLeaves } from "../../src/config/load-config.js";

describe("configuration reference (docs/configuration.md)", () => {
  const reference = readFileSync(join(import.meta.dirname, "..", "..", "docs", "configuration.md"), "utf8");

  it("documents every key", () => {
    const table = renderConfigTable();
    for (const [key, leaf] of schemaLeaves()) {
      expect(table).toContain(`\`${key}\``);
      expect(leaf.doc.length).toBeGreaterThan(5);
    }
  });

  it("is up to date with the schema (run `npm run docs:config` when this fails)", () => {
    expect(withConfigTable(reference)).toBe(reference);
  });
});
