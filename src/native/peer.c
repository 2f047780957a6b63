/*
 * peer.c: peerCredentials, who is at the other end of a UNIX socket (SO_PEERCRED on Linux, getpeereid elsewhere;
 * the call itself is sys.c's peer_get, which accept.c shares).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

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
