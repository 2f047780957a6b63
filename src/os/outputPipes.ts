/**
 * The read ends of an app's output pipes as soad reads them (observe/appLogs.ts; os/processes.ts makes the
 * pipes): closing one soad cannot read, and counting the lines of output it drops.
 *
 * @internal
 */
import { native } from "./native.js"

/** Closes soad's read end of a pipe. */
export const close = (fd: number): void => native().close(fd)

/** The newlines in a buffer. */
export const countLines = (buffer: Buffer): number => native().countLines(buffer)
