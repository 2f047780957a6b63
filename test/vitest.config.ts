import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // The native binding installs signal handlers and forks: the integration tests get a process per file.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        // The unit tests run against fakes (one loads the binding for real pipes): two processes for all of them,
        // the modules loaded once per process rather than once per file (most of their time was loading Effect).
        // Vitest reuses its forks only when the run's own isolate is off: `npm run test:unit` says --isolate=false
        // (the soad project, run apart, keeps a process per file); with it, test/unit took 10 s, not 38 s (2 cores).
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/unit/Proxy.test.ts"],
          poolOptions: { forks: { isolate: false } }
        }
      },
      {
        // Proxy mode's tests check that they never loaded the native binding: a process of their own.
        extends: true,
        test: {
          name: "unit, own process",
          include: ["test/unit/Proxy.test.ts"],
          poolOptions: { forks: { singleFork: true } }
        }
      },
      {
        extends: true,
        test: {
          name: "soad",
          include: [
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
          include: [
            "test/unit/Activator.test.ts",
            "test/unit/run.test.ts",
            "test/unit/Budget.test.ts",
            "test/unit/listenerHealth.test.ts",
            // accept mode without the lane: each connection accepted and its instance started by the serve loop
            "test/unit/Accept.test.ts"
          ],
          env: { SOAD_FAKE_ARM: "0" },
          poolOptions: { forks: { isolate: false } }
        }
      }
    ]
  }
})
