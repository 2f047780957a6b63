/*
 * notify.c: datagrams to systemd without libsystemd: notify (sd_notify: READY=1, STOPPING=1 to NOTIFY_SOCKET), and
 * journalConnect / journalSend (journald's native protocol, so each app's lines get their own SYSLOG_IDENTIFIER).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "soad.h"
#include "glibc.h"

/* Sends message (mlen bytes) to the socket at path (len bytes; "@name": abstract). 0, or -1 with errno and
 * *failed. */
static int notify_send(const char *path, size_t len, const char *message, size_t mlen, const char **failed) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    *failed = "connect";
    return -1;
  }
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
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
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof addr.sun_path) {
    free(path);
    return throw_errno(env, "connect", ENAMETOOLONG);
  }
  memcpy(addr.sun_path, path, len);
  free(path);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0) {
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
