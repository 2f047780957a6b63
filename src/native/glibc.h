/*
 * glibc.h: keeps the addon and the helpers loadable on glibc 2.28 (RHEL 8, Debian 10, Ubuntu 20.04) when they are
 * built on a newer glibc. Every C file includes it after its system headers. A build links each function to the
 * newest version of its symbol; where that version is newer than 2.28, this header names an older one or goes to
 * the kernel directly:
 *   - pthread_sigmask@GLIBC_2.32 is the function moved from libpthread into libc: pin the base version, which
 *     every glibc has (libpthread's before 2.32, libc's compat symbol since);
 *   - dlsym@GLIBC_2.34 is the function moved from libdl into libc: pin the base version (libdl's before 2.34, which
 *     Node itself links; libc's compat symbol since);
 *   - stat, lstat and fstat became symbols in 2.33 (before, inline wrappers of __xstat): call fstatat(2) and
 *     fstat(2) through syscall(); on x86-64 and arm64 the kernel's struct stat is glibc's;
 *   - __libc_start_main@GLIBC_2.34 is pinned by helper/start.c (the executables only).
 * test/e2e/prebuild.test.ts checks with objdump that no symbol of a prebuild needs more than GLIBC_2.28.
 * Elsewhere (macOS, the BSDs, musl, other architectures) it changes nothing.
 */
#ifndef SOAD_GLIBC_H
#define SOAD_GLIBC_H

#include <unistd.h> /* defines __GLIBC__ on glibc */

#if defined(__linux__) && defined(__GLIBC__)
#if defined(__x86_64__)
#define SOAD_GLIBC_BASE "GLIBC_2.2.5"
#define SOAD_KERNEL_STAT_SIZE 144
#elif defined(__aarch64__)
#define SOAD_GLIBC_BASE "GLIBC_2.17"
#define SOAD_KERNEL_STAT_SIZE 128
#endif
#endif

#ifdef SOAD_GLIBC_BASE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

__asm__(".symver pthread_sigmask,pthread_sigmask@" SOAD_GLIBC_BASE);
__asm__(".symver dlsym,dlsym@" SOAD_GLIBC_BASE);

_Static_assert(sizeof(struct stat) == SOAD_KERNEL_STAT_SIZE, "struct stat is not the kernel's");

static inline int soad_fstatat(int dirfd, const char *path, struct stat *st, int flags) {
  return (int)syscall(SYS_newfstatat, dirfd, path, st, flags);
}
static inline int soad_fstat(int fd, struct stat *st) { return (int)syscall(SYS_fstat, fd, st); }

#define stat(path, st) soad_fstatat(AT_FDCWD, (path), (st), 0)
#define lstat(path, st) soad_fstatat(AT_FDCWD, (path), (st), AT_SYMLINK_NOFOLLOW)
#define fstat(fd, st) soad_fstat((fd), (st))
#endif

#endif
