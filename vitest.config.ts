import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Native inference saturates both cores: files run one at a time so timings and
    // keep-alives stay honest on a 2-core machine.
    fileParallelism: false,
    pool: "forks",
  },
});
