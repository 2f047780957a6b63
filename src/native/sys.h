/*
 * sys.h: small syscall helpers more than one concern uses (sockets that do not leak into apps, UNIX socket
 * addresses, a close that keeps errno, the monotonic clock). Plain C: no N-API.
 */
#ifndef SOAD_SYS_H
#define SOAD_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

/* socket(2) with close-on-exec (and non-blocking if asked), also where SOCK_CLOEXEC does not exist (macOS). */
int socket_cloexec(int family, bool nonblocking);

/* A pipe with both ends close-on-exec; 0, or -1 with errno. */
int pipe_cloexec(int fds[2]);

/* close(2) that leaves errno as it was (for cleanup on an error path). */
int close_keep_errno(int fd);

/* Fills a sockaddr_un for a path (with its NUL) or an abstract name (without); 0, or ENAMETOOLONG if it does not
 * fit. */
int unix_address(const char *path, size_t len, bool abstract, struct sockaddr_un *addr, socklen_t *addrlen);

/* The same for an address written as systemd writes NOTIFY_SOCKET: "/path", or "@name" for an abstract one. */
int unix_address_named(const char *path, size_t len, struct sockaddr_un *addr, socklen_t *addrlen);

/* An IPv4 or IPv6 socket address as text (ip) and its port; with unmap, an IPv4-mapped IPv6 address as IPv4 (as
 * systemd's sockaddr_pretty). The family written (AF_INET, AF_INET6), or -1 with errno (EAFNOSUPPORT: not IP). */
int inet_text(const struct sockaddr_storage *ss, bool unmap, char ip[INET6_ADDRSTRLEN], int *port);

/* Does the listening socket fd still listen? An app may shut it down (shutdown(2) on its fd 3, which is the same
 * socket): a TCP listener then stops listening (SO_ACCEPTCONN 0, POLLHUP); a UNIX one still says SO_ACCEPTCONN but
 * refuses every connection, and polls POLLHUP (SHUT_RDWR) or POLLRDHUP (SHUT_RD) with POLLIN, which is not a
 * pending connection. *alive; 0, or -1 with errno and *failed. */
int listener_alive(int fd, bool *alive, const char **failed);

/* Is a connection waiting in the listening socket fd's backlog (poll with no timeout)? A listener an app shut down
 * polls POLLIN for ever with POLLHUP or POLLRDHUP: nothing waits there (soad would never see it idle). *waiting; 0,
 * or -1 with errno (of poll; EBADF for an fd that is not open). */
int listener_pending(int fd, bool *waiting);

/* Who is at the other end of a UNIX socket: SO_PEERCRED on Linux, getpeereid elsewhere (pid -1: not known). */
typedef struct {
  int64_t pid, uid, gid;
} peer_creds;

/* The credentials of fd's peer; 0, or -1 with errno and *failed naming the call. */
int peer_get(int fd, peer_creds *out, const char **failed);

/* CLOCK_MONOTONIC in nanoseconds. */
long long monotonic_ns(void);

#endif
