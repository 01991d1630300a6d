// Rewrites the configuration reference in docs/configuration.md from the schema (run after `npm run build`).
import { readFileSync, writeFileSync } from "node:fs";
import { withConfigTable } from "../dist/config/config-table.js";

const path = new URL("../docs/configuration.md", import.meta.url);
writeFileSync(path, withConfigTable(readFileSync(path, "utf8")));
console.log("docs/configuration.md configuration table updated");
