import { join } from "node:path";

/** The package root: one level above src/ (tests) and dist/ (built). */
export const PACKAGE_ROOT = join(import.meta.dirname, "..", "..");

/** `/etc/tinyllama-edge/config.json` for an installed service (NODE_ENV=production), else config/default.json. */
export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  return env.NODE_ENV === "production"
    ? "/etc/tinyllama-edge/config.json"
    : join(PACKAGE_ROOT, "config", "default.json");
}
