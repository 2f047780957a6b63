import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // The native binding installs signal handlers and forks: every test file gets its own process.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: "soad",
          include: [
            "test/unit/**/*.test.ts",
            "test/integration/**/*.test.ts",
            "test/security/**/*.test.ts",
            "test/faults/**/*.test.ts",
            "test/e2e/**/*.test.ts"
          ]
        }
      },
      {
        // The lifecycle's unit tests again with a driver that cannot arm starts (the fakes' SOAD_FAKE_ARM=0): the
        // path that waits for the connection and then spawns, which platforms without the cold path take.
        extends: true,
        test: {
          name: "slow path",
          include: ["test/unit/Activator.test.ts", "test/unit/run.test.ts", "test/unit/Budget.test.ts", "test/unit/listenerHealth.test.ts"],
          env: { SOAD_FAKE_ARM: "0" }
        }
      }
    ]
  }
})
