/*
 * notify.c: datagrams to systemd without libsystemd: notify (sd_notify: READY=1, STOPPING=1 to NOTIFY_SOCKET), and
 * journalConnect / journalSend (journald's native protocol, so each app's lines get their own SYSLOG_IDENTIFIER),
 * and notifyListen / notifyRead: a per-run NOTIFY_SOCKET soad gives an app (`--ready notify`), read with credentials.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

/* Sends message (mlen bytes) to the socket at path (len bytes; "@name": abstract). 0, or -1 with errno and
 * *failed. */
static int notify_send(const char *path, size_t len, const char *message, size_t mlen, const char **failed) {
  struct sockaddr_un addr;
  socklen_t addrlen;
  int bad = unix_address_named(path, len, &addr, &addrlen);
  if (bad != 0) {
    errno = bad;
    *failed = "connect";
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (fd < 0) {
    *failed = "socket";
    return -1;
  }
  ssize_t sent;
  do sent = sendto(fd, message, mlen, 0, (struct sockaddr *)&addr, addrlen);
  while (sent < 0 && errno == EINTR);
  int err = sent < 0 ? errno : 0;
  close(fd);
  if (err == 0) return 0;
  errno = err;
  *failed = "sendto";
  return -1;
}

/* notify(path, message): one datagram to systemd's NOTIFY_SOCKET ("@name": abstract). */
napi_value notify(napi_env env, napi_callback_info info) {
  ARGS(2);
  size_t len, mlen;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "notify(path, message)");
  char *message = get_string(env, argv[1], &mlen);
  if (message == NULL) {
    free(path);
    return throw_type(env, "notify(path, message)");
  }
  const char *failed = NULL;
  int r = notify_send(path, len, message, mlen, &failed);
  int err = errno;
  free(path);
  free(message);
  if (r < 0) return throw_errno(env, failed, err);
  return make_undefined(env);
}

/* journalConnect(path) -> fd: a datagram socket connected to journald's socket (non-blocking, close-on-exec). */
napi_value journal_connect(napi_env env, napi_callback_info info) {
  ARGS(1);
  size_t len;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "journalConnect(path)");
  struct sockaddr_un addr;
  socklen_t addrlen;
  int bad = unix_address(path, len, false, &addr, &addrlen);
  free(path);
  if (bad != 0) return throw_errno(env, "connect", bad);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr *)&addr, addrlen) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "connect", err);
  }
  return make_int(env, fd);
}

/* journalSend(fd, entry) -> true if sent, false if journald cannot take it now (EAGAIN, ENOBUFS: the caller falls
 * back to stderr). Any other failure throws. */
napi_value journal_send(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "journalSend(fd, entry)");
  size_t len;
  char *entry = get_string(env, argv[1], &len);
  if (entry == NULL) return throw_type(env, "journalSend(fd, entry)");
  ssize_t sent;
  do sent = send(fd, entry, len, MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  int err = sent < 0 ? errno : 0;
  free(entry);
  napi_value result;
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
    NAPI_CALL(env, napi_get_boolean(env, false, &result));
    return result;
  }
  if (err != 0) return throw_errno(env, "send", err);
  NAPI_CALL(env, napi_get_boolean(env, true, &result));
  return result;
}

/* A bound datagram socket at path that receives its senders' credentials. The fd, or -1 with errno and *failed. */
static int notify_bind(const char *path, size_t len, const char **failed) {
  struct sockaddr_un addr;
  socklen_t addrlen;
  int bad = unix_address_named(path, len, &addr, &addrlen);
  if (bad != 0) {
    errno = bad;
    *failed = "bind";
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *failed = "socket";
    return -1;
  }
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) *failed = "setsockopt";
  else if (bind(fd, (struct sockaddr *)&addr, addrlen) < 0) *failed = "bind";
  else return fd;
  int err = errno;
  close(fd);
  errno = err;
  return -1;
}

/* notifyListen(path) -> fd: a datagram socket bound at path ("@name": abstract), non-blocking, close-on-exec,
 * with SO_PASSCRED so each datagram carries its sender's pid and uid (checked by the kernel). */
napi_value notify_listen(napi_env env, napi_callback_info info) {
  ARGS(1);
  size_t len;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "notifyListen(path)");
  const char *failed = NULL;
  int fd = notify_bind(path, len, &failed);
  int err = errno;
  free(path);
  if (fd < 0) return throw_errno(env, failed, err);
  return make_int(env, fd);
}

#define NOTIFY_MAX 4096 /* systemd's NOTIFY_BUFFER_MAX: longer datagrams are cut */

/* One datagram from fd with its sender's credentials: its length, 0 if none is waiting (EAGAIN), -1 with errno. A
 * datagram without credentials gets pid 0. */
static ssize_t notify_receive(int fd, char *buffer, struct ucred *cred) {
  union {
    struct cmsghdr align;
    char data[CMSG_SPACE(sizeof(struct ucred))];
  } control;
  struct iovec iov = {.iov_base = buffer, .iov_len = NOTIFY_MAX};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.data, .msg_controllen = sizeof control.data};
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  memset(cred, 0, sizeof *cred);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
      memcpy(cred, CMSG_DATA(c), sizeof *cred);
  if (n == 0) n = 1, buffer[0] = '\n'; /* an empty datagram: an empty message, not "none waiting" */
  return n > NOTIFY_MAX ? NOTIFY_MAX : n;
}

/* How many datagrams one notifyRead takes at most: every one waiting (the queue holds net.unix.max_dgram_qlen + 1,
 * 11 by default; a larger SO_RCVBUF does not change that: measured), but a flood that refills the queue as fast
 * as soad reads still lets the loop turn. */
#define NOTIFY_BATCH 1024

/* notifyRead(fd) -> [{ message, pid, uid }]: the datagrams waiting on a notifyListen socket, up to NOTIFY_BATCH a
 * call (none: []); the rest wait for the next readability. */
napi_value notify_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "notifyRead(fd)");
  napi_value list;
  NAPI_CALL(env, napi_create_array(env, &list));
  static char buffer[NOTIFY_MAX];
  for (uint32_t i = 0; i < NOTIFY_BATCH; i++) {
    struct ucred cred;
    ssize_t n = notify_receive(fd, buffer, &cred);
    if (n < 0) return throw_errno(env, "recvmsg", errno);
    if (n == 0) break;
    napi_value item, message;
    NAPI_CALL(env, napi_create_object(env, &item));
    NAPI_CALL(env, napi_create_string_utf8(env, buffer, (size_t)n, &message));
    NAPI_CALL(env, napi_set_named_property(env, item, "message", message));
    NAPI_CALL(env, set_int(env, item, "pid", cred.pid));
    NAPI_CALL(env, set_int(env, item, "uid", cred.uid));
    NAPI_CALL(env, napi_set_element(env, list, i, item));
  }
  return list;
}
