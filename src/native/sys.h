/*
 * sys.h: small syscall helpers more than one concern uses (sockets that do not leak into apps, a close that keeps
 * errno, the monotonic clock). Plain C: no N-API.
 */
#ifndef SOAD_SYS_H
#define SOAD_SYS_H

#include <stdbool.h>

/* socket(2) with close-on-exec (and non-blocking if asked), also where SOCK_CLOEXEC does not exist (macOS). */
int socket_cloexec(int family, bool nonblocking);

/* close(2) that leaves errno as it was (for cleanup on an error path). */
int close_keep_errno(int fd);

/* CLOCK_MONOTONIC in nanoseconds. */
long long monotonic_ns(void);

#endif
