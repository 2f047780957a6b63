/*
 * listen.c: listening sockets. listenUnix / listenTcp create, bind and listen a socket that libuv never accepts on;
 * a UNIX socket file is made safely (bound with mode 0, checked through an O_PATH fd, then given its mode and
 * owner; chmodSocket does the same on reload). Also the small fd calls on listeners: probeUnix, socketInfo,
 * localAddress, dup, setCloexec, close, pending; and listening, relisten, replaceFd, releaseFd for a listener an app
 * shut down.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

static int listen_fd(int fd, int backlog) {
  return listen(fd, backlog > 0 ? backlog : SOMAXCONN);
}

/* ---------------------------------------------------------------- UNIX socket files
 *
 * A socket file never exists with a wider mode or another owner than asked, and soad never changes a file it did
 * not create. bind() creates it with mode 0 (umask 0777 for the duration of the call), so nobody can connect
 * before it is ready; then it is opened without following a symlink (O_PATH|O_NOFOLLOW), checked to be the socket
 * soad just created (a socket owned by soad's user with mode 0, or on a reload the device and inode soad recorded)
 * and given its mode and owner through that fd; only then does it listen(). A user who may write to the directory
 * and swaps the file for a symlink between bind() and the change makes the start fail, never a chmod or chown of
 * the link's target. The socket keeps its path as its address (getsockname, /proc/net/unix, puma's -b unix:PATH).
 *
 * The umask is the process's: a file another thread of soad's created during those microseconds would get mode 0
 * too (narrower, never wider). soad creates no files from other threads.
 */

/* An abstract socket: no file, nothing to own. */
static int listen_abstract(int fd, struct sockaddr_un *addr, socklen_t addrlen, int backlog, const char **failed) {
  if (bind(fd, (struct sockaddr *)addr, addrlen) < 0) *failed = "bind";
  else if (listen_fd(fd, backlog) < 0) *failed = "listen";
  else return 0;
  return -1;
}

/* Which file soad may change: the one it recorded (dev, ino), or the one it has just bound (fresh: a socket of
 * soad's user with mode 0, as bind() under umask 0777 made it). */
typedef struct {
  bool fresh;
  double dev, ino;
} expected_file;

static bool is_expected(const struct stat *st, const expected_file *expect) {
  if (!S_ISSOCK(st->st_mode)) return false;
  if (expect->fresh) return st->st_uid == geteuid() && (st->st_mode & 07777) == 0;
  return (double)st->st_dev == expect->dev && (double)st->st_ino == expect->ino;
}

#if defined(__linux__) && defined(O_PATH)
/* Linux: the file is opened once without following a symlink, checked, and changed through that fd. */
static int socket_file_update(const char *path, const expected_file *expect, opt_u32 mode, opt_u32 uid, opt_u32 gid,
                              struct stat *st, const char **failed) {
  int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    *failed = "open";
    return -1;
  }
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  int r = -1;
  if (fstat(fd, st) < 0) *failed = "fstat";
  else if (!is_expected(st, expect)) {
    errno = ESTALE;
    *failed = "fstat (not the socket soad created)";
  } else if (mode.set && chmod(proc, (mode_t)mode.value) < 0) *failed = "chmod";
  else if ((uid.set || gid.set) && fchownat(fd, "", uid.set ? (uid_t)uid.value : (uid_t)-1,
                                            gid.set ? (gid_t)gid.value : (gid_t)-1, AT_EMPTY_PATH) < 0)
    *failed = "fchownat";
  else if (fstat(fd, st) < 0) *failed = "fstat";
  else r = 0;
  close_keep_errno(fd);
  return r;
}
#else
/*
 * Elsewhere: lstat, check, then change by name without following a symlink. Weaker than Linux: between the check
 * and the change, someone who may write to the directory can put another file (not a symlink) there, which is
 * then changed; on Linux the file checked is the file changed.
 */
static int socket_file_update(const char *path, const expected_file *expect, opt_u32 mode, opt_u32 uid, opt_u32 gid,
                              struct stat *st, const char **failed) {
  if (lstat(path, st) < 0) *failed = "lstat";
  else if (!is_expected(st, expect)) {
    errno = ESTALE;
    *failed = "lstat (not the socket soad created)";
  } else if (mode.set && fchmodat(AT_FDCWD, path, (mode_t)mode.value, AT_SYMLINK_NOFOLLOW) < 0) *failed = "fchmodat";
  else if ((uid.set || gid.set) && fchownat(AT_FDCWD, path, uid.set ? (uid_t)uid.value : (uid_t)-1,
                                            gid.set ? (gid_t)gid.value : (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0)
    *failed = "fchownat";
  else if (lstat(path, st) < 0) *failed = "lstat";
  else return 0;
  return -1;
}
#endif

/* bind() with mode 0: umask 0777 around the call. */
static int bind_closed(int fd, const struct sockaddr_un *addr, socklen_t addrlen) {
  mode_t old = umask(0777);
  int r = bind(fd, (const struct sockaddr *)addr, addrlen);
  int err = errno;
  umask(old);
  errno = err;
  return r;
}

/* Removes path if it is still the file st describes (after a failure: only what soad created goes). */
static void socket_file_undo(const char *path, const struct stat *st) {
  int saved = errno;
  struct stat now;
  if (lstat(path, &now) == 0 && S_ISSOCK(now.st_mode) && now.st_dev == st->st_dev && now.st_ino == st->st_ino)
    unlink(path);
  errno = saved;
}

/* Creates the socket file for fd at path, with its mode and owner, listening; 0, or -1 with errno and *failed. */
static int listen_unix_file(int fd, const char *path, const struct sockaddr_un *addr, socklen_t addrlen, int backlog,
                            opt_u32 mode, opt_u32 uid, opt_u32 gid, struct stat *st, const char **failed) {
  if (bind_closed(fd, addr, addrlen) < 0) {
    *failed = "bind";
    return -1;
  }
  expected_file fresh = {.fresh = true, .dev = 0, .ino = 0};
  if (socket_file_update(path, &fresh, mode, uid, gid, st, failed) < 0) {
    if (errno != ESTALE) socket_file_undo(path, st); /* ESTALE: what is there is not ours */
    return -1;
  }
  if (listen_fd(fd, backlog) < 0) {
    *failed = "listen";
    socket_file_undo(path, st);
    return -1;
  }
  return 0;
}

/* A listening UNIX socket at path (len bytes; abstract: no file); *fd, and *st of the file (zeroed if abstract).
 * Mode unset: 0666 less the umask. 0, or -1 with errno and *failed. */
static int unix_listen(const char *path, size_t len, bool abstract, int backlog, opt_u32 mode, opt_u32 uid,
                       opt_u32 gid, int *fd, struct stat *st, const char **failed) {
  struct sockaddr_un addr;
  socklen_t addrlen;
  int bad = !abstract && strlen(path) != len ? EINVAL : unix_address(path, len, abstract, &addr, &addrlen);
  if (bad != 0) {
    errno = bad;
    *failed = "bind";
    return -1;
  }
  if (!abstract && !mode.set) {
    mode_t old = umask(0);
    umask(old);
    mode.set = true;
    mode.value = 0666 & ~old;
  }
  *fd = socket_cloexec(AF_UNIX, false);
  if (*fd < 0) {
    *failed = "socket";
    return -1;
  }
  memset(st, 0, sizeof *st);
  int r = abstract ? listen_abstract(*fd, &addr, addrlen, backlog, failed)
                   : listen_unix_file(*fd, path, &addr, addrlen, backlog, mode, uid, gid, st, failed);
  if (r < 0) close_keep_errno(*fd);
  return r;
}

/* { fd, dev, ino } (dev and ino as doubles, 0 for an abstract socket). */
static napi_value listen_result(napi_env env, int fd, const struct stat *st) {
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_int(env, result, "fd", fd));
  NAPI_CALL(env, set_double(env, result, "dev", st == NULL ? 0 : (double)st->st_dev));
  NAPI_CALL(env, set_double(env, result, "ino", st == NULL ? 0 : (double)st->st_ino));
  return result;
}

/*
 * listenUnix(path, abstract, backlog, mode, uid, gid) -> { fd, dev, ino }. mode (0..07777), uid and gid
 * (0..4294967294): null leaves them as bound (mode: 0666 less the umask). An abstract socket ignores them.
 */
napi_value listen_unix(napi_env env, napi_callback_info info) {
  ARGS(6);
  bool abstract;
  int32_t backlog;
  opt_u32 mode, uid, gid;
  if (!get_bool(env, argv[1], &abstract) || !get_int(env, argv[2], &backlog) ||
      !get_opt_u32(env, argv[3], MODE_MAX, &mode) || !get_opt_u32(env, argv[4], ID_MAX, &uid) ||
      !get_opt_u32(env, argv[5], ID_MAX, &gid))
    return throw_type(env, "listenUnix(path, abstract, backlog, mode: 0..0o7777 | null, uid: 0..4294967294 | null, "
                           "gid: 0..4294967294 | null)");
  size_t len;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "listenUnix: path must be a string");
  int fd = -1;
  struct stat st;
  const char *failed = NULL;
  int r = unix_listen(path, len, abstract, backlog, mode, uid, gid, &fd, &st, &failed);
  int err = errno;
  free(path);
  if (r < 0) return throw_errno(env, failed, err);
  return listen_result(env, fd, abstract ? NULL : &st);
}

/* chmodSocket(path, dev, ino, mode, uid, gid): the mode and owner of soad's socket file, if path is still it. */
napi_value chmod_socket(napi_env env, napi_callback_info info) {
  ARGS(6);
  double dev, ino;
  opt_u32 mode, uid, gid;
  if (napi_get_value_double(env, argv[1], &dev) != napi_ok || napi_get_value_double(env, argv[2], &ino) != napi_ok ||
      !get_opt_u32(env, argv[3], MODE_MAX, &mode) || !get_opt_u32(env, argv[4], ID_MAX, &uid) ||
      !get_opt_u32(env, argv[5], ID_MAX, &gid))
    return throw_type(env, "chmodSocket(path, dev, ino, mode: 0..0o7777 | null, uid: 0..4294967294 | null, "
                           "gid: 0..4294967294 | null)");
  char *path = get_string(env, argv[0], NULL);
  if (path == NULL) return throw_type(env, "chmodSocket: path must be a string");
  const char *failed = NULL;
  expected_file recorded = {.fresh = false, .dev = dev, .ino = ino};
  struct stat st;
  int r = socket_file_update(path, &recorded, mode, uid, gid, &st, &failed);
  int err = errno;
  free(path);
  if (r < 0) return throw_errno(env, failed, err);
  return make_undefined(env);
}

/* ---------------------------------------------------------------- TCP */

/* A listening TCP socket on ip:port with SO_REUSEADDR; *fd. 0, or -1 with errno and *failed. */
static int tcp_listen(const char *ip, int port, int backlog, bool v6only, int *fd, const char **failed) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sslen;
  int family;
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
    family = AF_INET;
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    sslen = sizeof *in4;
  } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
    family = AF_INET6;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    sslen = sizeof *in6;
  } else {
    errno = EINVAL;
    *failed = "inet_pton";
    return -1;
  }
  *fd = socket_cloexec(family, false);
  if (*fd < 0) {
    *failed = "socket";
    return -1;
  }
  int one = 1, v6 = v6only ? 1 : 0;
  *failed = NULL;
  if (setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) *failed = "setsockopt(SO_REUSEADDR)";
  else if (family == AF_INET6 && setsockopt(*fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) < 0)
    *failed = "setsockopt(IPV6_V6ONLY)";
  else if (bind(*fd, (struct sockaddr *)&ss, sslen) < 0) *failed = "bind";
  else if (listen_fd(*fd, backlog) < 0) *failed = "listen";
  if (*failed == NULL) return 0;
  close_keep_errno(*fd);
  return -1;
}

/* listenTcp(ip, port, backlog, v6only) -> fd, with SO_REUSEADDR. */
napi_value listen_tcp(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t port, backlog;
  bool v6only;
  if (!get_int(env, argv[1], &port) || !get_int(env, argv[2], &backlog) || !get_bool(env, argv[3], &v6only) ||
      port < 0 || port > 65535)
    return throw_type(env, "listenTcp(ip, port, backlog, v6only)");
  char *ip = get_string(env, argv[0], NULL);
  if (ip == NULL) return throw_type(env, "listenTcp: ip must be a string");
  int fd = -1;
  const char *failed = NULL;
  int r = tcp_listen(ip, port, backlog, v6only, &fd, &failed);
  int err = errno;
  free(ip);
  if (r < 0) return throw_errno(env, failed, err);
  return make_int(env, fd);
}

/* ---------------------------------------------------------------- questions about a socket */

/* Does a process listen on this UNIX socket? *listening (false: the socket is stale). 0, or -1 with errno and
 * *failed. */
static int unix_probe(const char *path, size_t len, bool abstract, bool *listening, const char **failed) {
  struct sockaddr_un addr;
  socklen_t addrlen;
  if (unix_address(path, len, abstract, &addr, &addrlen) != 0) {
    errno = ENAMETOOLONG;
    *failed = "connect";
    return -1;
  }
  int fd = socket_cloexec(AF_UNIX, true);
  if (fd < 0) {
    *failed = "socket";
    return -1;
  }
  int r = connect(fd, (struct sockaddr *)&addr, addrlen);
  int err = r < 0 ? errno : 0;
  if (close(fd) < 0 && err == 0) err = errno;
  if (r == 0 || err == EAGAIN || err == EINPROGRESS) *listening = true;
  else if (err == ECONNREFUSED) *listening = false;
  else {
    errno = err;
    *failed = "connect";
    return -1;
  }
  return 0;
}

/* probeUnix(path, abstract) -> true if a process listens there, false if the socket is stale. */
napi_value probe_unix(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool abstract;
  if (!get_bool(env, argv[1], &abstract)) return throw_type(env, "probeUnix(path, abstract)");
  size_t len;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "probeUnix: path must be a string");
  bool listening = false;
  const char *failed = NULL;
  int r = unix_probe(path, len, abstract, &listening, &failed);
  int err = errno;
  free(path);
  if (r < 0) return throw_errno(env, failed, err);
  return make_bool(env, listening);
}

typedef struct {
  bool listening, stream;
  const char *family; /* unix, ipv4, ipv6, other */
} socket_desc;

/* What kind of socket fd is; 0, or -1 with errno and *failed. */
static int socket_describe(int fd, socket_desc *out, const char **failed) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
    *failed = "getsockopt(SO_TYPE)";
    return -1;
  }
#ifdef SO_ACCEPTCONN
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) {
    *failed = "getsockopt(SO_ACCEPTCONN)";
    return -1;
  }
#else
  listening = 1;
#endif
  struct sockaddr_storage ss;
  len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    *failed = "getsockname";
    return -1;
  }
  out->listening = listening != 0;
  out->stream = type == SOCK_STREAM;
  out->family = ss.ss_family == AF_UNIX ? "unix" : ss.ss_family == AF_INET ? "ipv4"
              : ss.ss_family == AF_INET6 ? "ipv6" : "other";
  return 0;
}

/* socketInfo(fd) -> { listening, family, type } for a socket soad inherited; throws ENOTSOCK. */
napi_value socket_info(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "socketInfo(fd)");
  socket_desc desc;
  const char *failed = NULL;
  if (socket_describe(fd, &desc, &failed) < 0) return throw_errno(env, failed, errno);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_bool(env, result, "listening", desc.listening));
  NAPI_CALL(env, set_bool(env, result, "stream", desc.stream));
  NAPI_CALL(env, set_string(env, result, "family", desc.family));
  return result;
}

typedef struct {
  const char *family; /* unix, ipv4, ipv6 */
  char path[sizeof ((struct sockaddr_un *)0)->sun_path + 2]; /* unix: "@name" if abstract, "" if unnamed */
  char ip[INET6_ADDRSTRLEN];
  int port;
} local_addr;

/* What fd is bound to; 0, or -1 with errno and *failed. */
static int socket_local(int fd, local_addr *out, const char **failed) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    *failed = "getsockname";
    return -1;
  }
  if (ss.ss_family == AF_UNIX) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n > 0 && un->sun_path[0] == '\0') { /* abstract: the name is the rest, its own length */
      out->path[0] = '@';
      memcpy(out->path + 1, un->sun_path + 1, n - 1);
      out->path[n] = '\0';
    } else {
      size_t k = strnlen(un->sun_path, n);
      memcpy(out->path, un->sun_path, k);
      out->path[k] = '\0';
    }
    out->family = "unix";
    return 0;
  }
  int family = inet_text(&ss, false, out->ip, &out->port);
  if (family < 0) {
    *failed = errno == EAFNOSUPPORT ? "getsockname" : "inet_ntop";
    return -1;
  }
  out->family = family == AF_INET ? "ipv4" : "ipv6";
  return 0;
}

/* localAddress(fd) -> { family: "unix", path } (abstract: "@name"; unnamed: "") | { family: "ipv4"|"ipv6", ip, port } */
napi_value local_address(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "localAddress(fd)");
  local_addr addr;
  const char *failed = NULL;
  if (socket_local(fd, &addr, &failed) < 0) return throw_errno(env, failed, errno);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_string(env, result, "family", addr.family));
  if (strcmp(addr.family, "unix") == 0) {
    NAPI_CALL(env, set_string(env, result, "path", addr.path));
    return result;
  }
  NAPI_CALL(env, set_string(env, result, "ip", addr.ip));
  NAPI_CALL(env, set_int(env, result, "port", addr.port));
  return result;
}

/* ---------------------------------------------------------------- fds */

/* dup(fd) -> a close-on-exec copy, for Node to own (and close) while soad keeps the original. */
napi_value dup_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "dup(fd)");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
  return make_int(env, copy);
}

/* Sets FD_CLOEXEC on fd; 0, or -1 with errno and *failed. */
static int fd_set_cloexec(int fd, const char **failed) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) {
    *failed = "fcntl(F_GETFD)";
    return -1;
  }
  if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
    *failed = "fcntl(F_SETFD)";
    return -1;
  }
  return 0;
}

/* setCloexec(fd): an inherited fd must not leak into the app under its old number. */
napi_value set_cloexec(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "setCloexec(fd)");
  const char *failed = NULL;
  if (fd_set_cloexec(fd, &failed) < 0) return throw_errno(env, failed, errno);
  return make_undefined(env);
}

/* close(fd); EINTR counts as closed (Linux releases the fd anyway). */
napi_value close_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "close(fd)");
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return make_undefined(env);
}

/* pending(fd) -> true if a connection waits to be accepted (poll with no timeout). */
napi_value pending(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "pending(fd)");
  bool waiting = false;
  if (listener_pending(fd, &waiting) < 0) return throw_errno(env, "poll", errno);
  return make_bool(env, waiting);
}

/* ---------------------------------------------------------------- a listener an app shut down
 *
 * The app's fd 3 is soad's listening socket: an app that calls shutdown(2) on it (many do at a graceful stop, to
 * wake threads blocked in accept()) stops it listening for soad too. listen() again revives a TCP socket; a UNIX
 * socket stays shut down (the kernel keeps its shutdown flags), so soad makes a new one at the same address and puts
 * it at the same fd number (replaceFd), which the app, soad's watches and counting keep using.
 */

/* listening(fd) -> true if the listener still listens (listener_alive in sys.c). */
napi_value listening(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "listening(fd)");
  bool alive = false;
  const char *failed = NULL;
  if (listener_alive(fd, &alive, &failed) < 0) return throw_errno(env, failed, errno);
  return make_bool(env, alive);
}

/* relisten(fd, backlog) -> true if fd listens again after listen(2) (a TCP socket that was shut down does). */
napi_value relisten(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd, backlog;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[1], &backlog)) return throw_type(env, "relisten(fd, backlog)");
  if (listen_fd(fd, backlog) < 0) return throw_errno(env, "listen", errno);
  bool alive = false;
  const char *failed = NULL;
  if (listener_alive(fd, &alive, &failed) < 0) return throw_errno(env, failed, errno);
  return make_bool(env, alive);
}

/* Puts from's socket at fd number to (close-on-exec), closing what was there and from; 0, or -1 with errno and
 * *failed (from is left open). */
static int fd_replace(int from, int to, const char **failed) {
#ifdef __linux__
  if (dup3(from, to, O_CLOEXEC) < 0) {
    *failed = "dup3";
    return -1;
  }
#else
  if (dup2(from, to) < 0) {
    *failed = "dup2";
    return -1;
  }
  if (fd_set_cloexec(to, failed) < 0) return -1;
#endif
  close(from);
  return 0;
}

/* replaceFd(from, to): from's socket at fd number to, close-on-exec; the socket that was at to is closed (by soad),
 * and so is from. */
napi_value replace_fd(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t from, to;
  if (!get_int(env, argv[0], &from) || !get_int(env, argv[1], &to) || from < 0 || to < 0 || from == to)
    return throw_type(env, "replaceFd(from, to)");
  const char *failed = NULL;
  if (fd_replace(from, to, &failed) < 0) return throw_errno(env, failed, errno);
  return make_undefined(env);
}

/* releaseFd(fd): soad's socket at fd is replaced by a new unbound one of the same family, so the address (an
 * abstract name) is free again once nobody else holds the old socket; fd keeps its number. */
napi_value release_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "releaseFd(fd)");
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return throw_errno(env, "getsockname", errno);
  int fresh = socket_cloexec(ss.ss_family, false);
  if (fresh < 0) return throw_errno(env, "socket", errno);
  const char *failed = NULL;
  if (fd_replace(fresh, fd, &failed) < 0) {
    close_keep_errno(fresh);
    return throw_errno(env, failed, errno);
  }
  return make_undefined(env);
}

/* lstatPaths(paths) -> Float64Array of 6 numbers per path: 0 or the errno of lstat(2), mode, uid, gid, dev, ino.
 * One call for every UNIX socket file a `soad status` shows (observe/socketFiles.ts): fs.lstatSync costs some
 * 6 us a path in soad's V8 (no JIT), 6 ms of a status of 1,000 services. A path with a NUL byte is EINVAL. */
napi_value lstat_paths(napi_env env, napi_callback_info info) {
  ARGS(1);
  bool is_array = false;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) return throw_type(env, "lstatPaths(paths)");
  uint32_t n;
  NAPI_CALL(env, napi_get_array_length(env, argv[0], &n));
  void *data = NULL;
  napi_value buffer, out;
  NAPI_CALL(env, napi_create_arraybuffer(env, (size_t)n * 6 * sizeof(double), &data, &buffer));
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, (size_t)n * 6, buffer, 0, &out));
  double *row = data;
  for (uint32_t i = 0; i < n; i++, row += 6) {
    napi_value v;
    NAPI_CALL(env, napi_get_element(env, argv[0], i, &v));
    size_t length;
    char *path = get_string(env, v, &length);
    if (path == NULL) return throw_type(env, "lstatPaths: each path must be a string");
    struct stat st;
    int err = strlen(path) != length ? EINVAL : lstat(path, &st) < 0 ? errno : 0;
    free(path);
    row[0] = err;
    row[1] = err == 0 ? (double)st.st_mode : 0;
    row[2] = err == 0 ? (double)st.st_uid : 0;
    row[3] = err == 0 ? (double)st.st_gid : 0;
    row[4] = err == 0 ? (double)st.st_dev : 0;
    row[5] = err == 0 ? (double)st.st_ino : 0;
  }
  return out;
}
