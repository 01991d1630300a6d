import { fileURLToPath } from "node:url";
import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // The bench package imports the daemon as tinyllama-edge/...: tests run it on the sources.
    alias: [
      {
        find: /^tinyllama-edge\/(.*)\.js$/,
        replacement: fileURLToPath(new URL("./src/$1.ts", import.meta.url)),
      },
    ],
  },
  test: {
    include: ["test/**/*.test.ts", "packages/*/test/**/*.test.ts"],
    // The emulated-ARM checks run apart, through .ci/arm (test/arm/vitest.config.ts).
    exclude: [...configDefaults.exclude, "test/arm/**"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Native inference saturates both cores: files run one at a time so timings and
    // keep-alives stay honest on a 2-core machine.
    fileParallelism: false,
    pool: "forks",
  },
});
