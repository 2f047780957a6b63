import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: [
      "test/unit/**/*.test.ts",
      "test/integration/**/*.test.ts",
      "test/security/**/*.test.ts",
      "test/faults/**/*.test.ts",
      "test/e2e/**/*.test.ts"
    ],
    // The native binding installs signal handlers and forks: every test file gets its own process.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
