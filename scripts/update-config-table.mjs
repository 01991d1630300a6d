// Rewrites the README's configuration reference from the schema (run after `npm run build`).
import { readFileSync, writeFileSync } from "node:fs";
import { withConfigTable } from "../dist/config/config-table.js";

const path = new URL("../README.md", import.meta.url);
writeFileSync(path, withConfigTable(readFileSync(path, "utf8")));
console.log("README.md configuration table updated");
