/*
 * sys.c: small syscall helpers shared by listen.c, count.c, relay.c, peer.c and accept.c (see sys.h).
 */
#define _GNU_SOURCE
#include "sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "glibc.h"

int socket_cloexec(int family, bool nonblocking) {
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
  return socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
#else
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || (nonblocking && fcntl(fd, F_SETFL, O_NONBLOCK) < 0)) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
#endif
}

int close_keep_errno(int fd) {
  int saved = errno;
  int r = close(fd);
  errno = saved;
  return r;
}

/* What poll(2) says of a socket that was shut down: POLLRDHUP (Linux) for the read side. */
#ifdef POLLRDHUP
#define SOAD_POLL_GONE (POLLHUP | POLLERR | POLLRDHUP)
#else
#define SOAD_POLL_GONE (POLLHUP | POLLERR)
#endif

int listener_alive(int fd, bool *alive, const char **failed) {
  int accepting = 1;
#ifdef SO_ACCEPTCONN
  socklen_t len = sizeof accepting;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0) {
    *failed = "getsockopt(SO_ACCEPTCONN)";
    return -1;
  }
#endif
  struct pollfd p = {.fd = fd, .events = POLLIN | SOAD_POLL_GONE, .revents = 0};
  int r;
  do r = poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0 || (p.revents & POLLNVAL)) {
    if (r >= 0) errno = EBADF;
    *failed = "poll";
    return -1;
  }
  *alive = accepting != 0 && (p.revents & SOAD_POLL_GONE) == 0;
  return 0;
}

int listener_pending(int fd, bool *waiting) {
  struct pollfd p = {.fd = fd, .events = POLLIN | SOAD_POLL_GONE, .revents = 0};
  int r;
  do r = poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -1;
  if (r > 0 && (p.revents & POLLNVAL)) {
    errno = EBADF;
    return -1;
  }
  *waiting = r > 0 && (p.revents & POLLIN) && !(p.revents & SOAD_POLL_GONE);
  return 0;
}

long long monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int unix_address(const char *path, size_t len, bool abstract, struct sockaddr_un *addr, socklen_t *addrlen) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  size_t offset = abstract ? 1 : 0;
  if (len == 0 || len + offset + (abstract ? 0 : 1) > sizeof addr->sun_path) return ENAMETOOLONG;
  memcpy(addr->sun_path + offset, path, len);
  *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + offset + len + (abstract ? 0 : 1));
  return 0;
}

int unix_address_named(const char *path, size_t len, struct sockaddr_un *addr, socklen_t *addrlen) {
  bool abstract = len > 0 && path[0] == '@';
  return abstract ? unix_address(path + 1, len - 1, true, addr, addrlen) : unix_address(path, len, false, addr, addrlen);
}

/* A pipe with both ends close-on-exec; 0, or -1 with errno. */
int pipe_cloexec(int fds[2]) {
#ifdef __linux__
  return pipe2(fds, O_CLOEXEC);
#else
  if (pipe(fds) < 0) return -1;
  if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) < 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) < 0) {
    close_keep_errno(fds[0]);
    close_keep_errno(fds[1]);
    return -1;
  }
  return 0;
#endif
}

int inet_text(const struct sockaddr_storage *ss, bool unmap, char ip[INET6_ADDRSTRLEN], int *port) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
    if (inet_ntop(AF_INET, &in4->sin_addr, ip, INET6_ADDRSTRLEN) == NULL) return -1;
    *port = ntohs(in4->sin_port);
    return AF_INET;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    bool mapped = unmap && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
    const void *addr = mapped ? (const void *)&in6->sin6_addr.s6_addr[12] : (const void *)&in6->sin6_addr;
    if (inet_ntop(mapped ? AF_INET : AF_INET6, addr, ip, INET6_ADDRSTRLEN) == NULL) return -1;
    *port = ntohs(in6->sin6_port);
    return mapped ? AF_INET : AF_INET6;
  }
  errno = EAFNOSUPPORT;
  return -1;
}

/* The credentials of fd's peer (see sys.h). */
int peer_get(int fd, peer_creds *out, const char **failed) {
  out->pid = -1;
#if defined(SO_PEERCRED) && defined(__linux__)
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    *failed = "getsockopt(SO_PEERCRED)";
    return -1;
  }
  out->pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
#else
  uid_t u;
  gid_t g;
  if (getpeereid(fd, &u, &g) < 0) {
    *failed = "getpeereid";
    return -1;
  }
  out->uid = u;
  out->gid = g;
#endif
  return 0;
}
