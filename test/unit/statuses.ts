/** A service's status as the Registry gives it, stopped and with nothing counted, with `fields` over it. */
import type * as Registry from "../../src/Registry.js"

export const stoppedStatus = (name: string, fields: Partial<Registry.Status> = {}): Registry.Status => ({
  name,
  state: "stopped",
  pid: undefined,
  startedAt: undefined,
  lastActivity: undefined,
  activations: 0,
  idleStops: 0,
  crashes: 0,
  failedStarts: 0,
  listeners: [],
  ...fields
})
