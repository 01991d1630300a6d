import { createRequire } from "node:module";

interface PackageFacts {
  version: string;
  homepage?: string;
}

/** package.json, one level above both src/ and dist/. */
function packageFacts(): PackageFacts {
  const require = createRequire(import.meta.url);
  return require("../package.json") as PackageFacts;
}

/** The package version, read from package.json. */
export function packageVersion(): string {
  return packageFacts().version;
}

/** Where users find help (package.json's homepage), when the package names one. */
export function packageHomepage(): string | undefined {
  return packageFacts().homepage || undefined;
}
