import { defineConfig } from "vitest/config";

/** The emulated-ARM checks (.ci/arm): slow under QEMU, so apart from `npm test`. */
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/arm/**/*.test.ts"],
    globalSetup: ["test/arm/global-setup.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    pool: "forks",
  },
});
