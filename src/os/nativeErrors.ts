/**
 * The native binding's errors, apart from the binding itself (so that code which only reads an error need not
 * import the loader): the errno and syscall an addon call throws with, and the binding that cannot be loaded.
 *
 * @internal
 */
import * as Os from "node:os"
import * as Util from "node:util"

/** An Error thrown by the binding: the failing syscall and its errno. */
export interface NativeError extends Error {
  readonly errno?: number
  readonly syscall?: string
}

/** The errno name (ENOENT, ESTALE, …) of an error the binding threw; "UNKNOWN" if it carries none. */
export const errnoName = (error: unknown): string => {
  const errno = (error as NativeError).errno
  if (typeof errno !== "number") return (error as NodeJS.ErrnoException).code ?? "UNKNOWN"
  const name = Util.getSystemErrorName(-errno)
  // libuv does not name every errno (ENOEXEC, ESTALE): the OS's own table does
  return name.startsWith("Unknown") ? Object.entries(Os.constants.errno).find(([, n]) => n === errno)?.[0] ?? name : name
}

/** The binding cannot be loaded here (no prebuild for this platform and no local build, or one that fails to load); the message says why, on one line. */
export class NativeBindingError extends Error {
  override readonly name = "NativeBindingError"
}
