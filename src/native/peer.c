/*
 * peer.c: peerCredentials, who is at the other end of a UNIX socket (SO_PEERCRED on Linux, getpeereid elsewhere).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "soad.h"
#include "glibc.h"

typedef struct {
  int64_t pid, uid, gid; /* pid -1: not known here */
} peer_creds;

/* The credentials of fd's peer; 0, or -1 with errno and *failed. */
static int peer_get(int fd, peer_creds *out, const char **failed) {
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

/* peerCredentials(fd) -> { pid, uid, gid } of the process at the other end of a UNIX socket. */
napi_value peer_credentials(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "peerCredentials(fd)");
  peer_creds creds;
  const char *failed = NULL;
  if (peer_get(fd, &creds, &failed) < 0) return throw_errno(env, failed, errno);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_int(env, result, "pid", creds.pid));
  NAPI_CALL(env, set_int(env, result, "uid", creds.uid));
  NAPI_CALL(env, set_int(env, result, "gid", creds.gid));
  return result;
}
