/**
 * The lifecycle's suites run on both of its ways to start an app: with a driver that arms starts (the cold path),
 * and again with one that cannot (the fakes' SOAD_FAKE_ARM=0, read by each World when it is made): the path that
 * waits for the connection and then spawns, which platforms without the cold path take. Both in the same process,
 * one after the other: a vitest project of their own would cost a phase of its own, with its processes to start.
 */
import { afterAll, beforeAll, describe, vi } from "vitest"

/** `describe(name, body)`, then the same tests again on the slow path, named `name (slow path)`. */
export const onBothPaths = (name: string, body: () => void): void => {
  describe(name, body)
  describe(`${name} (slow path)`, () => {
    beforeAll(() => {
      vi.stubEnv("SOAD_FAKE_ARM", "0")
    })
    afterAll(() => {
      vi.unstubAllEnvs()
    })
    body()
  })
}
