import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

/**
 * Proxy.test.ts first, so that it is the first file of a fresh fork: it checks that its tests never loaded the
 * native binding, and the unit tests' forks run many files each (another file may load it).
 */
class ProxyFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    const isProxy = (file: TestSpecification) => file.moduleId.endsWith("/test/unit/Proxy.test.ts")
    return [...sorted.filter(isProxy), ...sorted.filter((file) => !isProxy(file))]
  }
}

export default defineConfig({
  test: {
    // The native binding installs signal handlers and forks: the integration tests get a process per file.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    sequence: { sequencer: ProxyFirst },
    projects: [
      {
        // The unit tests run against fakes (one loads the binding for real pipes): two processes for all of them,
        // the modules loaded once per process rather than once per file (most of their time was loading Effect).
        // Vitest reuses its forks only when the run's own isolate is off (the project's alone is not enough; it
        // started a process per file, and Effect loaded in each): `npm run test:unit` says --isolate=false, and the
        // soad project, run apart, keeps a process per file. The lifecycle's suites run on both start paths here
        // (test/unit/startPaths.ts), not in a project of their own: each project is a phase, with its own forks.
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          poolOptions: { forks: { isolate: false } }
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
      }
    ]
  }
})
