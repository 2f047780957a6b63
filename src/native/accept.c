/*
 * accept.c: acceptConnection, one connection taken from a listener for `--accept` mode (a process per connection),
 * with the peer's address as systemd gives it to an Accept=yes instance (REMOTE_ADDR, REMOTE_PORT), or a UNIX
 * peer's uid: the source `--max-connections-per-source` counts by.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "accept.h"
#include "soad.h"
#include "sys.h"
#include "glibc.h"

/* The listener must never block soad's loop: a client that left between poll and accept leaves nothing to take. */
static int listener_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  return (fl & O_NONBLOCK) ? 0 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Who the peer is: an IP address as text (IPv4, IPv6, or an IPv4-mapped IPv6 address as IPv4, as systemd's
 * sockaddr_pretty) and its port; or, for a UNIX peer, its uid (SO_PEERCRED). A uid that cannot be read (never seen
 * on Linux for a connection just accepted) is left out rather than the connection lost: soad then counts every such
 * peer as one source.
 */
static void peer_of(int fd, const struct sockaddr_storage *ss, accepted *out) {
  out->inet = inet_text(ss, true, out->ip, &out->port) >= 0;
  out->has_uid = false;
  if (ss->ss_family != AF_UNIX) return;
  peer_creds creds;
  const char *failed = NULL;
  if (peer_get(fd, &creds, &failed) < 0) return;
  out->has_uid = true;
  out->uid = creds.uid;
}

/* accept4(SOCK_CLOEXEC), or accept and FD_CLOEXEC where there is no accept4 (macOS): fd, or -1 with errno. */
static int accept_cloexec(int listener, struct sockaddr *sa, socklen_t *len) {
#if defined(SOCK_CLOEXEC) && !defined(__APPLE__)
  return accept4(listener, sa, len, SOCK_CLOEXEC);
#else
  int fd = accept(listener, sa, len);
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    close_keep_errno(fd);
    return -1;
  }
  return fd;
#endif
}

int accept_one(int listener, accepted *out, const char **failed) {
  if (listener_nonblocking(listener) < 0) {
    *failed = "fcntl(O_NONBLOCK)";
    return -1;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len = sizeof ss;
  int fd;
  do fd = accept_cloexec(listener, (struct sockaddr *)&ss, &len);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EPROTO) return 0;
    *failed = "accept4";
    return -1;
  }
  out->fd = fd;
  peer_of(fd, &ss, out);
  return 1;
}

/*
 * acceptConnection(fd) -> { fd, ip?, port?, uid? } (ip and port for a TCP peer, uid for a UNIX one), or null when
 * no connection waits.
 * Throws with errno (EMFILE, ENFILE, ENOBUFS, ...) and syscall "accept4".
 */
napi_value accept_connection(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t listener;
  if (!get_int(env, argv[0], &listener)) return throw_type(env, "acceptConnection(fd)");
  accepted conn;
  const char *failed = NULL;
  int r = accept_one(listener, &conn, &failed);
  if (r < 0) return throw_errno(env, failed, errno);
  if (r == 0) return make_null(env);
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok || set_int(env, result, "fd", conn.fd) != napi_ok ||
      (conn.inet && (set_string(env, result, "ip", conn.ip) != napi_ok || set_int(env, result, "port", conn.port) != napi_ok)) ||
      (conn.has_uid && set_int(env, result, "uid", conn.uid) != napi_ok)) {
    close_keep_errno(conn.fd);
    return NULL; /* a pending JS exception */
  }
  return result;
}
