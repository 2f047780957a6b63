/*
 * soad's native binding: only what Node cannot do itself.
 *
 *   listenUnix / listenTcp   create, bind and listen a socket that libuv never accepts on (a UNIX socket file
 *                            admits nobody, mode 0, until its mode and owner are set through an O_PATH fd)
 *   chmodSocket              the mode and owner of soad's socket file on reload, only if it is still that file
 *   probeUnix                is somebody listening on this UNIX socket path?
 *   localAddress             what a socket is bound to (getsockname)
 *   close                    close(2)
 *   pending                  is a connection waiting in the backlog right now? (poll, no wait)
 *   watch / unwatch          one-shot readability watch on Node's own loop (uv_poll_t)
 *   countStart / countRead / countStop / countOwner
 *                            count every connection the kernel queues on a listener, with the time of the
 *                            latest (Linux: O_ASYNC with F_SETSIG, one real-time signal per connection)
 *   sentinelMemory / sentinelRead / sentinelFree
 *                            the same, counted by helper/sentinel.c run as the app's user (a shared page)
 *   spawn                    fork/exec with the listeners at fds 3.. (blocking), LISTEN_PID = the child's pid,
 *                            a new session, a cgroup, uid/gid, then the parent-death signal; reports the exit
 *   lookupUser / lookupGroup names to ids (getpwnam, getgrnam, getgrouplist)
 *   notify                   a datagram to systemd's NOTIFY_SOCKET (READY=1, STOPPING=1)
 *   peerCredentials          who is at the other end of a UNIX socket (SO_PEERCRED)
 *   relay*                   proxy mode: accept, connect to the app, splice both ways (Linux)
 *
 * Every syscall is checked; a failure throws an Error carrying `errno` and `syscall`.
 * Node's own loop runs everything; no thread is created.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

extern char **environ;

/* ---------------------------------------------------------------- errors */

/* Throws Error(message) with .errno and .syscall; returns NULL for the caller to return. */
static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_value msg, error, num, sys;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_error(env, NULL, msg, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, err, &num) == napi_ok) napi_set_named_property(env, error, "errno", num);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys) == napi_ok)
    napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

#define NAPI_CALL(env, call)                                                          \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      bool pending_;                                                                  \
      napi_is_exception_pending((env), &pending_);                                    \
      if (!pending_) napi_throw_error((env), NULL, "soad native: N-API call failed"); \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

#define ARGS(n)                                                         \
  size_t argc = (n);                                                    \
  napi_value argv[(n) > 0 ? (n) : 1];                                   \
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  if (argc < (n)) return throw_type(env, "soad native: missing arguments")

static bool get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* A user or group id: a whole number 0..4294967294 (4294967295 is (uid_t)-1, "no change", for the kernel). */
static bool get_id(napi_env env, napi_value v, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 4294967294.0) || d != (double)(uint32_t)d) return false;
  *out = (uint32_t)d;
  return true;
}

static bool get_bool(napi_env env, napi_value v, bool *out) {
  return napi_get_value_bool(env, v, out) == napi_ok;
}

/* Copies a JS string into a fresh malloc'd buffer; NULL if it is not a string or on OOM. */
static char *get_string(napi_env env, napi_value v, size_t *length) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *buf = malloc(len + 1);
  if (buf == NULL) return NULL;
  if (napi_get_value_string_utf8(env, v, buf, len + 1, &len) != napi_ok) {
    free(buf);
    return NULL;
  }
  if (length != NULL) *length = len;
  return buf;
}

static napi_value make_int(napi_env env, int64_t n) {
  napi_value v;
  if (napi_create_int64(env, n, &v) != napi_ok) return NULL;
  return v;
}

static napi_value make_undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* socket(2) with close-on-exec (and non-blocking if asked), also where SOCK_CLOEXEC does not exist (macOS). */
static int socket_cloexec(int family, bool nonblocking) {
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

static int close_keep_errno(int fd) {
  int saved = errno;
  int r = close(fd);
  errno = saved;
  return r;
}

/* Runs a JS callback from a libuv callback, with the microtask queue drained afterwards. */
static void call_js(napi_env env, napi_ref fn_ref, napi_async_context ctx, size_t argc, napi_value *argv) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv;
  if (napi_get_reference_value(env, fn_ref, &fn) == napi_ok && fn != NULL &&
      napi_get_global(env, &recv) == napi_ok) {
    napi_value result;
    if (napi_make_callback(env, ctx, recv, fn, argc, argv, &result) != napi_ok) {
      /* An exception thrown by the callback: hand it to Node as uncaught. */
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

typedef struct {
  napi_ref fn;
  napi_async_context ctx;
} js_callback;

static bool callback_init(napi_env env, napi_value fn, const char *name, js_callback *cb) {
  napi_valuetype type;
  if (napi_typeof(env, fn, &type) != napi_ok || type != napi_function) return false;
  napi_value resource, resource_name;
  if (napi_create_object(env, &resource) != napi_ok) return false;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok) return false;
  if (napi_create_reference(env, fn, 1, &cb->fn) != napi_ok) return false;
  if (napi_async_init(env, resource, resource_name, &cb->ctx) != napi_ok) {
    napi_delete_reference(env, cb->fn);
    return false;
  }
  return true;
}

static void callback_free(napi_env env, js_callback *cb) {
  napi_async_destroy(env, cb->ctx);
  napi_delete_reference(env, cb->fn);
}

/* ---------------------------------------------------------------- listeners */

static int listen_fd(int fd, int backlog) {
  return listen(fd, backlog > 0 ? backlog : SOMAXCONN);
}

/* Fills a sockaddr_un for a path (with its NUL) or an abstract name (without); ENAMETOOLONG if it does not fit. */
static int unix_address(const char *path, size_t len, bool abstract, struct sockaddr_un *addr, socklen_t *addrlen) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  size_t offset = abstract ? 1 : 0;
  if (len == 0 || len + offset + (abstract ? 0 : 1) > sizeof addr->sun_path) return ENAMETOOLONG;
  memcpy(addr->sun_path + offset, path, len);
  *addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + offset + len + (abstract ? 0 : 1));
  return 0;
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

/* An optional id or mode: null/undefined is "leave as is". */
typedef struct {
  bool set;
  uint32_t value;
} opt_u32;

/* Reads null/undefined (unset) or a whole number 0..max; false for anything else. */
static bool get_opt_u32(napi_env env, napi_value v, uint32_t max, opt_u32 *out) {
  napi_valuetype type;
  double d;
  out->set = false;
  out->value = 0;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) return true;
  if (type != napi_number || napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= (double)max) || d != (double)(uint32_t)d) return false;
  out->set = true;
  out->value = (uint32_t)d;
  return true;
}

#define ID_MAX 4294967294u /* (uid_t)-1 means "unchanged" to chown(2): never a real id */
#define MODE_MAX 07777u

/* An abstract socket: no file, nothing to own. */
static int listen_abstract(int fd, struct sockaddr_un *addr, socklen_t addrlen, int backlog, const char **failed) {
  if (bind(fd, (struct sockaddr *)addr, addrlen) < 0) *failed = "bind";
  else if (listen_fd(fd, backlog) < 0) *failed = "listen";
  else return 0;
  return -1;
}

/* { fd, dev, ino } (dev and ino as doubles, 0 for an abstract socket). */
static napi_value listen_result(napi_env env, int fd, const struct stat *st) {
  napi_value result, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_int32(env, fd, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "fd", v));
  NAPI_CALL(env, napi_create_double(env, st == NULL ? 0 : (double)st->st_dev, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "dev", v));
  NAPI_CALL(env, napi_create_double(env, st == NULL ? 0 : (double)st->st_ino, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "ino", v));
  return result;
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

/*
 * listenUnix(path, abstract, backlog, mode, uid, gid) -> { fd, dev, ino }. mode (0..07777), uid and gid
 * (0..4294967294): null leaves them as bound (mode: 0666 less the umask). An abstract socket ignores them.
 */
static napi_value listen_unix(napi_env env, napi_callback_info info) {
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
  struct sockaddr_un addr;
  socklen_t addrlen;
  int bad = !abstract && strlen(path) != len ? EINVAL : unix_address(path, len, abstract, &addr, &addrlen);
  if (bad != 0) {
    free(path);
    return throw_errno(env, "bind", bad);
  }
  if (!abstract && !mode.set) {
    mode_t old = umask(0);
    umask(old);
    mode.set = true;
    mode.value = 0666 & ~old;
  }
  int fd = socket_cloexec(AF_UNIX, false);
  if (fd < 0) {
    free(path);
    return throw_errno(env, "socket", errno);
  }
  struct stat st;
  memset(&st, 0, sizeof st);
  const char *failed = NULL;
  int r = abstract ? listen_abstract(fd, &addr, addrlen, backlog, &failed)
                   : listen_unix_file(fd, path, &addr, addrlen, backlog, mode, uid, gid, &st, &failed);
  int err = errno;
  free(path);
  if (r < 0) {
    close_keep_errno(fd);
    return throw_errno(env, failed, err);
  }
  return listen_result(env, fd, abstract ? NULL : &st);
}

/* chmodSocket(path, dev, ino, mode, uid, gid): the mode and owner of soad's socket file, if path is still it. */
static napi_value chmod_socket(napi_env env, napi_callback_info info) {
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

/* listenTcp(ip, port, backlog, v6only) -> fd, with SO_REUSEADDR. */
static napi_value listen_tcp(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t port, backlog;
  bool v6only;
  if (!get_int(env, argv[1], &port) || !get_int(env, argv[2], &backlog) || !get_bool(env, argv[3], &v6only) ||
      port < 0 || port > 65535)
    return throw_type(env, "listenTcp(ip, port, backlog, v6only)");
  char *ip = get_string(env, argv[0], NULL);
  if (ip == NULL) return throw_type(env, "listenTcp: ip must be a string");

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
    free(ip);
    return throw_errno(env, "inet_pton", EINVAL);
  }
  free(ip);

  int fd = socket_cloexec(family, false);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1, v6 = v6only ? 1 : 0;
  const char *failed = NULL;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) failed = "setsockopt(SO_REUSEADDR)";
  else if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6) < 0)
    failed = "setsockopt(IPV6_V6ONLY)";
  else if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) failed = "bind";
  else if (listen_fd(fd, backlog) < 0) failed = "listen";
  if (failed != NULL) {
    int err = errno;
    close_keep_errno(fd);
    return throw_errno(env, failed, err);
  }
  return make_int(env, fd);
}

/* probeUnix(path, abstract) -> true if a process listens there, false if the socket is stale. */
static napi_value probe_unix(napi_env env, napi_callback_info info) {
  ARGS(2);
  bool abstract;
  if (!get_bool(env, argv[1], &abstract)) return throw_type(env, "probeUnix(path, abstract)");
  size_t len;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "probeUnix: path must be a string");
  struct sockaddr_un addr;
  socklen_t addrlen;
  int too_long = unix_address(path, len, abstract, &addr, &addrlen);
  free(path);
  if (too_long != 0) return throw_errno(env, "connect", ENAMETOOLONG);
  int fd = socket_cloexec(AF_UNIX, true);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int r = connect(fd, (struct sockaddr *)&addr, addrlen);
  int err = r < 0 ? errno : 0;
  if (close(fd) < 0 && err == 0) err = errno;
  napi_value result;
  if (r == 0 || err == EAGAIN || err == EINPROGRESS) {
    NAPI_CALL(env, napi_get_boolean(env, true, &result));
  } else if (err == ECONNREFUSED) {
    NAPI_CALL(env, napi_get_boolean(env, false, &result));
  } else {
    return throw_errno(env, "connect", err);
  }
  return result;
}

/* socketInfo(fd) -> { listening, family, type } for a socket soad inherited; throws ENOTSOCK. */
static napi_value socket_info(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "socketInfo(fd)");
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return throw_errno(env, "getsockopt(SO_TYPE)", errno);
#ifdef SO_ACCEPTCONN
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
    return throw_errno(env, "getsockopt(SO_ACCEPTCONN)", errno);
#else
  listening = 1;
#endif
  struct sockaddr_storage ss;
  len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return throw_errno(env, "getsockname", errno);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  napi_value v;
  NAPI_CALL(env, napi_get_boolean(env, listening != 0, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "listening", v));
  NAPI_CALL(env, napi_get_boolean(env, type == SOCK_STREAM, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "stream", v));
  const char *family = ss.ss_family == AF_UNIX ? "unix" : ss.ss_family == AF_INET ? "ipv4"
                     : ss.ss_family == AF_INET6 ? "ipv6" : "other";
  NAPI_CALL(env, napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "family", v));
  return result;
}

/* localAddress(fd) -> { family: "unix", path } (abstract: "@name"; unnamed: "") | { family: "ipv4"|"ipv6", ip, port } */
static napi_value local_address(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "localAddress(fd)");
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return throw_errno(env, "getsockname", errno);
  napi_value result, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  if (ss.ss_family == AF_UNIX) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    char path[sizeof un->sun_path + 2];
    if (n > 0 && un->sun_path[0] == '\0') { /* abstract: the name is the rest, its own length */
      path[0] = '@';
      memcpy(path + 1, un->sun_path + 1, n - 1);
      path[n] = '\0';
    } else {
      size_t k = strnlen(un->sun_path, n);
      memcpy(path, un->sun_path, k);
      path[k] = '\0';
    }
    NAPI_CALL(env, napi_create_string_utf8(env, "unix", NAPI_AUTO_LENGTH, &v));
    NAPI_CALL(env, napi_set_named_property(env, result, "family", v));
    NAPI_CALL(env, napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v));
    NAPI_CALL(env, napi_set_named_property(env, result, "path", v));
    return result;
  }
  char ip[INET6_ADDRSTRLEN];
  int port;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    if (inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof ip) == NULL) return throw_errno(env, "inet_ntop", errno);
    port = ntohs(in4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip) == NULL) return throw_errno(env, "inet_ntop", errno);
    port = ntohs(in6->sin6_port);
  } else {
    return throw_errno(env, "getsockname", EAFNOSUPPORT);
  }
  NAPI_CALL(env, napi_create_string_utf8(env, ss.ss_family == AF_INET ? "ipv4" : "ipv6", NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "family", v));
  NAPI_CALL(env, napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "ip", v));
  NAPI_CALL(env, napi_create_int32(env, port, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "port", v));
  return result;
}

/* dup(fd) -> a close-on-exec copy, for Node to own (and close) while soad keeps the original. */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "dup(fd)");
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
  return make_int(env, copy);
}

/* setCloexec(fd): an inherited fd must not leak into the app under its old number. */
static napi_value set_cloexec(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "setCloexec(fd)");
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, "fcntl(F_GETFD)", errno);
  if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return throw_errno(env, "fcntl(F_SETFD)", errno);
  return make_undefined(env);
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "close(fd)");
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return make_undefined(env);
}

/* pending(fd) -> true if a connection waits to be accepted (poll with no timeout). */
static napi_value pending(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "pending(fd)");
  struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  int r;
  do r = poll(&p, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, "poll", errno);
  if (r > 0 && (p.revents & POLLNVAL)) return throw_errno(env, "poll", EBADF);
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, r > 0 && (p.revents & POLLIN), &result));
  return result;
}

/* notify(path, message): one datagram to systemd's NOTIFY_SOCKET ("@name": abstract). */
static napi_value notify(napi_env env, napi_callback_info info) {
  ARGS(2);
  size_t len, mlen;
  char *path = get_string(env, argv[0], &len);
  if (path == NULL) return throw_type(env, "notify(path, message)");
  char *message = get_string(env, argv[1], &mlen);
  if (message == NULL) {
    free(path);
    return throw_type(env, "notify(path, message)");
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (len == 0 || len >= sizeof addr.sun_path) {
    free(path);
    free(message);
    return throw_errno(env, "connect", ENAMETOOLONG);
  }
  memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
  free(path);
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (fd < 0) {
    free(message);
    return throw_errno(env, "socket", errno);
  }
  ssize_t sent;
  do sent = sendto(fd, message, mlen, 0, (struct sockaddr *)&addr, addrlen);
  while (sent < 0 && errno == EINTR);
  int err = sent < 0 ? errno : 0;
  close(fd);
  free(message);
  if (err != 0) return throw_errno(env, "sendto", err);
  return make_undefined(env);
}

/* peerCredentials(fd) -> { pid, uid, gid } of the process at the other end of a UNIX socket. */
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "peerCredentials(fd)");
  int64_t pid = -1, uid, gid;
#if defined(SO_PEERCRED) && defined(__linux__)
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  pid = cred.pid;
  uid = cred.uid;
  gid = cred.gid;
#else
  uid_t u;
  gid_t g;
  if (getpeereid(fd, &u, &g) < 0) return throw_errno(env, "getpeereid", errno);
  uid = u;
  gid = g;
#endif
  napi_value result, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_int64(env, pid, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "pid", v));
  NAPI_CALL(env, napi_create_int64(env, uid, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "uid", v));
  NAPI_CALL(env, napi_create_int64(env, gid, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "gid", v));
  return result;
}

/* ---------------------------------------------------------------- one-shot readability watch */

typedef struct watcher {
  uv_poll_t poll;
  napi_env env;
  js_callback cb;
  uint32_t id;
  bool closing;
  struct watcher *next;
} watcher;

static watcher *watchers = NULL;
static uint32_t next_watch_id = 1;

static void watcher_unlink(watcher *w) {
  for (watcher **p = &watchers; *p != NULL; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      return;
    }
}

static void watcher_closed(uv_handle_t *handle) {
  watcher *w = (watcher *)handle->data;
  callback_free(w->env, &w->cb);
  free(w);
}

static void watcher_close(watcher *w) {
  if (w->closing) return;
  w->closing = true;
  watcher_unlink(w);
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
}

static void watcher_fired(uv_poll_t *handle, int status, int events) {
  (void)events;
  watcher *w = (watcher *)handle->data;
  if (w->closing) return;
  /* One-shot: level-triggered polls would fire on every loop turn while a connection waits. */
  uv_poll_stop(handle);
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value arg;
    if (status < 0) napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &arg);
    else napi_get_null(env, &arg);
    watcher_close(w); /* unlinked now; memory freed in the close callback, after this call */
    call_js(env, w->cb.fn, w->cb.ctx, 1, &arg);
    napi_close_handle_scope(env, scope);
  } else {
    watcher_close(w);
  }
}

/* watch(fd, callback(error | null)) -> id. The callback runs once, when the fd is readable. */
static napi_value watch(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "watch(fd, callback)");
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  watcher *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "calloc", ENOMEM);
  if (!callback_init(env, argv[1], "soad:watch", &w->cb)) {
    free(w);
    return throw_type(env, "watch: callback must be a function");
  }
  w->env = env;
  w->poll.data = w;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    callback_free(env, &w->cb);
    free(w);
    return throw_errno(env, "uv_poll_init", -r);
  }
  r = uv_poll_start(&w->poll, UV_READABLE, watcher_fired);
  if (r < 0) {
    w->closing = true;
    uv_close((uv_handle_t *)&w->poll, watcher_closed);
    return throw_errno(env, "uv_poll_start", -r);
  }
  w->id = next_watch_id++;
  if (next_watch_id == 0) next_watch_id = 1;
  w->next = watchers;
  watchers = w;
  return make_int(env, w->id);
}

/* unwatch(id): stops a watch that has not fired; does nothing for one that has. */
static napi_value unwatch(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "unwatch(id)");
  for (watcher *w = watchers; w != NULL; w = w->next)
    if (w->id == id) {
      watcher_close(w);
      break;
    }
  return make_undefined(env);
}

/* ---------------------------------------------------------------- exact connection counting */

/*
 * The kernel queues one real-time signal per connection on a listener with O_ASYNC and F_SETSIG; si_fd says
 * which. The handler only stamps the time of the latest one (async-signal-safe); nothing runs in JS per
 * connection. soad reads it when it needs it (at the idle deadline).
 */
#define COUNT_MAX_FD 4096

static atomic_llong last_arrival[COUNT_MAX_FD]; /* CLOCK_MONOTONIC ns of the latest arrival, 0: none */
static atomic_llong last_overflow = 0;          /* the queue overflowed (SIGIO): every fd had activity then */
static bool count_ready = false;

static long long monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#ifdef F_SETSIG
static int count_signal(void) { return SIGRTMIN + 6; }

static void on_count_signal(int sig, siginfo_t *si, void *context) {
  (void)context;
  int saved = errno;
  if (sig == SIGIO) {
    atomic_store(&last_overflow, monotonic_ns());
  } else if (si->si_code > 0 && si->si_fd >= 0 && si->si_fd < COUNT_MAX_FD) {
    atomic_store(&last_arrival[si->si_fd], monotonic_ns());
  }
  errno = saved;
}

static int count_setup(void) {
  if (count_ready) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_count_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(count_signal(), &sa, NULL) < 0 || sigaction(SIGIO, &sa, NULL) < 0) return errno;
  count_ready = true;
  return 0;
}

/* Makes the kernel signal soad for each connection queued on fd; *was_armed: it already did. */
static int count_arm_fd(int fd, bool *was_armed) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return errno;
  int sig = fcntl(fd, F_GETSIG);
  if (sig < 0) return errno;
  pid_t owner = fcntl(fd, F_GETOWN);
  *was_armed = (flags & O_ASYNC) && sig == count_signal() && owner == getpid();
  if (*was_armed) return 0;
  if (fcntl(fd, F_SETOWN, getpid()) < 0) return errno;
  if (fcntl(fd, F_SETSIG, count_signal()) < 0) return errno;
  if (fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) return errno;
  return 0;
}
#endif

/* countStart(fd) -> true if every connection on fd is counted from now on; false where this cannot be done. */
static napi_value count_start(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "countStart(fd)");
  napi_value result;
#ifdef F_SETSIG
  if (fd < 0 || fd >= COUNT_MAX_FD) {
    NAPI_CALL(env, napi_get_boolean(env, false, &result));
    return result;
  }
  int err = count_setup();
  if (err != 0) return throw_errno(env, "sigaction", err);
  atomic_store(&last_arrival[fd], 0);
  bool was;
  err = count_arm_fd(fd, &was);
  if (err != 0) return throw_errno(env, "fcntl", err);
  NAPI_CALL(env, napi_get_boolean(env, true, &result));
#else
  (void)fd;
  NAPI_CALL(env, napi_get_boolean(env, false, &result));
#endif
  return result;
}

/*
 * countRead(fd) -> { ago, rearmed }: milliseconds since the latest arrival (-1: none yet), and whether counting
 * had stopped (the app cleared O_ASYNC) and was set again.
 */
static napi_value count_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd) || fd < 0 || fd >= COUNT_MAX_FD) return throw_type(env, "countRead(fd)");
  bool was = true;
#ifdef F_SETSIG
  int err = count_arm_fd(fd, &was);
  if (err != 0) return throw_errno(env, "fcntl", err);
#endif
  long long last = atomic_load(&last_arrival[fd]);
  long long overflow = atomic_load(&last_overflow);
  if (overflow > last) last = overflow;
  double ago = last == 0 ? -1 : (double)(monotonic_ns() - last) / 1e6;
  napi_value result, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_double(env, ago, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "ago", v));
  NAPI_CALL(env, napi_get_boolean(env, !was, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "rearmed", v));
  return result;
}

/* countStop(fd): clears O_ASYNC so no signal comes for fd any more. */
static napi_value count_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "countStop(fd)");
#ifdef F_SETSIG
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return throw_errno(env, "fcntl(F_GETFL)", errno);
  if ((flags & O_ASYNC) && fcntl(fd, F_SETFL, flags & ~O_ASYNC) < 0) return throw_errno(env, "fcntl(F_SETFL)", errno);
#else
  (void)fd;
#endif
  return make_undefined(env);
}

/*
 * Counting through a sentinel (helper/sentinel.c) when the app runs as another user: the sentinel owns the signal,
 * so the app can turn it against nobody but the sentinel. It writes the latest arrival per listener into a page
 * shared with soad (a memfd), which soad reads at its deadlines as it reads its own counters.
 */
typedef struct sentinel_memory {
  uint32_t id;
  int n;
  _Atomic long long *slots; /* n arrivals, the latest overflow, how many times it armed */
  size_t size;
  struct sentinel_memory *next;
} sentinel_memory;

static sentinel_memory *sentinel_memories = NULL;
static uint32_t next_sentinel_id = 1;

static sentinel_memory *sentinel_find(uint32_t id) {
  for (sentinel_memory *m = sentinel_memories; m != NULL; m = m->next)
    if (m->id == id) return m;
  return NULL;
}

/* sentinelMemory(n) -> { id, fd } | null (no memfd here): a shared page for n listeners; soad closes fd after the
 * sentinel has it. */
static napi_value sentinel_memory_new(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t n;
  if (!get_int(env, argv[0], &n) || n < 1 || n > 64) return throw_type(env, "sentinelMemory(n): 1..64 listeners");
  napi_value result;
#if defined(__linux__) && defined(SYS_memfd_create)
  int fd = (int)syscall(SYS_memfd_create, "soad-sentinel", 1U /* MFD_CLOEXEC */);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  size_t size = (size_t)(n + 2) * sizeof(long long);
  if (ftruncate(fd, (off_t)size) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "ftruncate", err);
  }
  void *slots = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (slots == MAP_FAILED) {
    int err = errno;
    close(fd);
    return throw_errno(env, "mmap", err);
  }
  sentinel_memory *m = calloc(1, sizeof *m);
  if (m == NULL) {
    munmap(slots, size);
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  m->id = next_sentinel_id++;
  m->n = n;
  m->slots = slots;
  m->size = size;
  m->next = sentinel_memories;
  sentinel_memories = m;
  napi_value v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_uint32(env, m->id, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "id", v));
  NAPI_CALL(env, napi_create_int32(env, fd, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "fd", v));
#else
  NAPI_CALL(env, napi_get_null(env, &result));
#endif
  return result;
}

/* sentinelRead(id) -> { ago: [ms | -1 per listener], armed, signal }: what the sentinel wrote. A value from the future (a
 * sentinel is the app's user's process, and could be made to write anything) reads as now. */
static napi_value sentinel_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "sentinelRead(id)");
  sentinel_memory *m = sentinel_find(id);
  if (m == NULL) return throw_type(env, "sentinelRead: unknown id");
  long long now = monotonic_ns();
  long long overflow = atomic_load(&m->slots[m->n]);
  napi_value result, ago, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_array_with_length(env, (size_t)m->n, &ago));
  for (int i = 0; i < m->n; i++) {
    long long last = atomic_load(&m->slots[i]);
    if (overflow > last) last = overflow;
    if (last > now) last = now;
    NAPI_CALL(env, napi_create_double(env, last <= 0 ? -1 : (double)(now - last) / 1e6, &v));
    NAPI_CALL(env, napi_set_element(env, ago, (uint32_t)i, v));
  }
  NAPI_CALL(env, napi_set_named_property(env, result, "ago", ago));
  NAPI_CALL(env, napi_create_double(env, (double)atomic_load(&m->slots[m->n + 1]), &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "armed", v));
  NAPI_CALL(env, napi_create_int32(env, SIGRTMIN + 1, &v)); /* the signal helper/sentinel.c asks for */
  NAPI_CALL(env, napi_set_named_property(env, result, "signal", v));
  return result;
}

/* sentinelFree(id): unmaps the page. */
static napi_value sentinel_free(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "sentinelFree(id)");
  for (sentinel_memory **p = &sentinel_memories; *p != NULL; p = &(*p)->next)
    if ((*p)->id == id) {
      sentinel_memory *m = *p;
      *p = m->next;
      munmap((void *)m->slots, m->size);
      free(m);
      break;
    }
  return make_undefined(env);
}

/* countOwner(fd) -> { owner, signal, async }: who the kernel signals for fd's connections, with which signal. */
static napi_value count_owner(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "countOwner(fd)");
  int owner = 0, sig = 0;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return throw_errno(env, "fcntl(F_GETFL)", errno);
#ifdef F_SETSIG
  if ((owner = fcntl(fd, F_GETOWN)) == -1 && errno != 0) return throw_errno(env, "fcntl(F_GETOWN)", errno);
  if ((sig = fcntl(fd, F_GETSIG)) < 0) return throw_errno(env, "fcntl(F_GETSIG)", errno);
#endif
  napi_value result, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_int32(env, owner, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "owner", v));
  NAPI_CALL(env, napi_create_int32(env, sig, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "signal", v));
  NAPI_CALL(env, napi_get_boolean(env, (flags & O_ASYNC) != 0, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "async", v));
  return result;
}

/* ---------------------------------------------------------------- processes */

typedef struct child {
  pid_t pid;
  napi_env env;
  js_callback cb;
  struct child *next;
} child;

static child *children = NULL;
static uv_signal_t sigchld;
static bool sigchld_ready = false;

static void sigchld_update_ref(void) {
  if (children != NULL) uv_ref((uv_handle_t *)&sigchld);
  else uv_unref((uv_handle_t *)&sigchld);
}

static void on_sigchld(uv_signal_t *handle, int signum) {
  (void)handle;
  (void)signum;
  for (child **p = &children; *p != NULL;) {
    child *c = *p;
    int status = 0;
    pid_t r;
    do r = waitpid(c->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
      p = &c->next;
      continue;
    }
    *p = c->next;
    napi_env env = c->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) == napi_ok) {
      napi_value args[2];
      if (r > 0 && WIFEXITED(status)) {
        napi_create_int32(env, WEXITSTATUS(status), &args[0]);
        napi_get_null(env, &args[1]);
      } else if (r > 0 && WIFSIGNALED(status)) {
        napi_get_null(env, &args[0]);
        napi_create_int32(env, WTERMSIG(status), &args[1]);
      } else { /* reaped by somebody else: the exit status is lost */
        napi_get_null(env, &args[0]);
        napi_get_null(env, &args[1]);
      }
      call_js(env, c->cb.fn, c->cb.ctx, 2, args);
      napi_close_handle_scope(env, scope);
    }
    callback_free(env, &c->cb);
    free(c);
  }
  sigchld_update_ref();
}

/* Formats n into buf (async-signal-safe); returns the end. */
static char *format_uint(char *buf, unsigned long n) {
  char tmp[24];
  int i = 0;
  do tmp[i++] = (char)('0' + n % 10);
  while ((n /= 10) > 0);
  while (i > 0) *buf++ = tmp[--i];
  *buf = '\0';
  return buf;
}

/* The PATH an app's command is looked up in: the app's own, else the default of execvp. */
static const char *search_path(char *const *envp) {
  for (char *const *e = envp; *e != NULL; e++)
    if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  return "/usr/local/bin:/usr/bin:/bin";
}

/* Finds file on PATH as execvp would, before fork, so a missing command fails without one. The child searches
 * again after its credential switch: what root may run is not what the app's user may. */
static int resolve_executable(const char *file, char *const *envp, char *out, size_t outlen) {
  if (strchr(file, '/') != NULL) {
    if (strlen(file) >= outlen) return ENAMETOOLONG;
    strcpy(out, file);
    return 0;
  }
  const char *path = search_path(envp);
  int found_err = ENOENT;
  for (const char *p = path;;) {
    const char *end = strchr(p, ':');
    size_t dirlen = end != NULL ? (size_t)(end - p) : strlen(p);
    int n = dirlen == 0 ? snprintf(out, outlen, "%s", file) : snprintf(out, outlen, "%.*s/%s", (int)dirlen, p, file);
    if (n > 0 && (size_t)n < outlen) {
      struct stat st;
      if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
        if (access(out, X_OK) == 0) return 0;
        found_err = EACCES;
      }
    }
    if (end == NULL) break;
    p = end + 1;
  }
  return found_err;
}

typedef struct {
  char *file;
  char **argv;
  char **envp;
  size_t envc;
  int32_t *fds;
  uint32_t nfds;
  char *cwd;
  uint32_t uid, gid;
  bool set_uid, set_gid; /* run as uid/gid: explicit, never inferred from a sentinel value */
  gid_t *groups;
  int ngroups;
  bool listen_pid, pdeathsig;
  const char *search_path; /* points into envp */
  int32_t cgroup_fd; /* an fd open on the app's cgroup directory, or -1 */
  bool in_cgroup;    /* the child was created in it (clone3), else it joins it itself */
} spawn_spec;

static void spawn_spec_free(spawn_spec *s) {
  free(s->file);
  if (s->argv != NULL)
    for (char **a = s->argv; *a != NULL; a++) free(*a);
  free(s->argv);
  if (s->envp != NULL)
    for (size_t i = 0; i < s->envc; i++) free(s->envp[i]);
  free(s->envp);
  free(s->fds);
  free(s->cwd);
  free(s->groups);
}

/* Reads a JS array of strings into a NULL-terminated array with `extra` free slots before the NULL. */
static char **get_string_array(napi_env env, napi_value array, size_t extra, size_t *count) {
  uint32_t n;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  char **out = calloc(n + extra + 1, sizeof *out);
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, array, i, &v) != napi_ok || (out[i] = get_string(env, v, NULL)) == NULL) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  *count = n;
  return out;
}

static bool get_optional(napi_env env, napi_value obj, const char *key, napi_value *out) {
  bool has;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return false;
  napi_valuetype t;
  return napi_typeof(env, *out, &t) == napi_ok && t != napi_undefined && t != napi_null;
}

/* Closes every fd >= from except keep (async-signal-safe). */
static void close_from(int from, int keep) {
#if defined(__linux__) && defined(SYS_close_range)
  bool ok = true;
  if (keep > from) ok = syscall(SYS_close_range, (unsigned)from, (unsigned)keep - 1, 0) == 0;
  if (ok && syscall(SYS_close_range, (unsigned)(keep >= from ? keep + 1 : from), ~0U, 0) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = from; fd < max; fd++)
    if (fd != keep) close(fd);
}

/* Makes the child the user and groups of the spec; afterwards it can neither get root back nor keep root's groups. */
static const char *child_switch_user(const spawn_spec *s) {
  if (s->set_gid) {
    if (setgroups((size_t)s->ngroups, s->groups) < 0) return "setgroups";
    if (setgid((gid_t)s->gid) < 0) return "setgid";
    if (getgid() != (gid_t)s->gid || getegid() != (gid_t)s->gid) {
      errno = EPERM;
      return "setgid";
    }
  }
  if (s->set_uid) {
    if (setuid((uid_t)s->uid) < 0) return "setuid";
    if (getuid() != (uid_t)s->uid || geteuid() != (uid_t)s->uid) {
      errno = EPERM;
      return "setuid";
    }
  }
  return NULL;
}

/* The app must die with soad. The kernel clears the parent-death signal when credentials change, so this comes
 * after the switch; soad may have died before it, hence the check of the parent. */
static const char *child_die_with_parent(pid_t parent) {
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return "prctl(PR_SET_PDEATHSIG)";
  if (getppid() != parent) _exit(127); /* soad is gone: do not run orphaned */
#else
  (void)parent;
#endif
  return NULL;
}

/* The app inherits soad's stdio. Node marks fds 0-2 close-on-exec and its pipes non-blocking; undo both
 * (libuv does the same for `stdio: "inherit"`). A closed fd is left closed. */
static void child_fix_stdio(void) {
  for (int fd = 0; fd <= 2; fd++) {
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags >= 0 && (fdflags & FD_CLOEXEC)) fcntl(fd, F_SETFD, fdflags & ~FD_CLOEXEC);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
}

/* Listeners to fds 3..: first above the target range, so no dup2 overwrites a source. They reach the app blocking,
 * as sd_listen_fds promises: O_NONBLOCK lives on the file description soad shares with the app (libuv's poll sets
 * it), and a plain blocking accept() loop would die with EAGAIN. */
static const char *child_place_listeners(const spawn_spec *s) {
  int high[64];
  for (uint32_t i = 0; i < s->nfds; i++)
    if ((high[i] = fcntl(s->fds[i], F_DUPFD_CLOEXEC, 3 + (int)s->nfds)) < 0) return "fcntl(F_DUPFD)";
  for (uint32_t i = 0; i < s->nfds; i++) {
    int fd = 3 + (int)i;
    if (dup2(high[i], fd) < 0) return "dup2"; /* dup2 clears CLOEXEC on the target */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return "fcntl(F_GETFL)";
    if ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) return "fcntl(F_SETFL)";
  }
  return NULL;
}

/* execvp as the app's user, with no allocation: each PATH entry in turn; EACCES if some candidate could not be run
 * and none could, ENOENT if none exists. Returns only on failure, with errno set. */
static void child_execvp(const spawn_spec *s) {
  if (strchr(s->file, '/') != NULL) {
    execve(s->file, s->argv, s->envp);
    return;
  }
  size_t filelen = strlen(s->file);
  bool denied = false;
  for (const char *p = s->search_path;;) {
    const char *end = strchr(p, ':');
    size_t dirlen = end != NULL ? (size_t)(end - p) : strlen(p);
    char candidate[PATH_MAX];
    if (dirlen + 1 + filelen < sizeof candidate) {
      size_t at = 0;
      if (dirlen > 0) {
        memcpy(candidate, p, dirlen);
        candidate[dirlen] = '/';
        at = dirlen + 1;
      }
      memcpy(candidate + at, s->file, filelen + 1);
      execve(candidate, s->argv, s->envp);
      if (errno == EACCES) denied = true;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV && errno != ETIMEDOUT) return;
    }
    if (end == NULL) break;
    p = end + 1;
  }
  errno = denied ? EACCES : ENOENT;
}

/* Moves the calling process into the cgroup whose directory is open at dirfd; async-signal-safe. */
static int join_cgroup(int dirfd) {
  int fd = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t w;
  do w = write(fd, "0", 1);
  while (w < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  errno = err;
  return w == 1 ? 0 : -1;
}

/* Node raises its soft RLIMIT_NOFILE to the hard limit at start; an app must not inherit that: a soft limit above
 * FD_SETSIZE breaks apps that use select(). As systemd does (FORK_RLIMIT_NOFILE_SAFE), 1024 if it was higher; an
 * app that wants more raises it itself, up to the hard limit it keeps. */
static const char *child_limit_nofile(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0) return "getrlimit(RLIMIT_NOFILE)";
  if (limit.rlim_cur <= 1024) return NULL;
  limit.rlim_cur = 1024;
  return setrlimit(RLIMIT_NOFILE, &limit) < 0 ? "setrlimit(RLIMIT_NOFILE)" : NULL;
}

/* Runs in the child between fork and exec: async-signal-safe calls only. Never returns. */
static void child_exec(const spawn_spec *s, int errfd, pid_t parent, char *listen_pid_slot) {
  int err;
  const char *step = NULL;
  /* The error pipe must not sit on a number the app receives (3..): dup2 would overwrite it or hand it over. */
  if (errfd < 3 + (int)s->nfds) {
    int high = fcntl(errfd, F_DUPFD_CLOEXEC, 3 + (int)s->nfds);
    if (high < 0) _exit(127);
    errfd = high;
  }
  /* Signals: Node ignores SIGPIPE and blocks others; an ignored signal survives exec. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) { step = "sigprocmask"; goto fail; }
  if (setsid() < 0) { step = "setsid"; goto fail; }
  if (s->cgroup_fd >= 0 && !s->in_cgroup && join_cgroup(s->cgroup_fd) < 0) { step = "write(cgroup.procs)"; goto fail; }
  child_fix_stdio();
  if ((step = child_limit_nofile()) != NULL) goto fail;
  if ((step = child_switch_user(s)) != NULL) goto fail;
  if (s->pdeathsig && (step = child_die_with_parent(parent)) != NULL) goto fail;
  /* After the switch: the app's user must be able to enter its working directory. */
  if (s->cwd != NULL && chdir(s->cwd) < 0) { step = "chdir"; goto fail; }
  if ((step = child_place_listeners(s)) != NULL) goto fail;
  /* Nothing else of soad's reaches the app, not even fds soad inherited without close-on-exec. */
  close_from(3 + (int)s->nfds, errfd);
  if (listen_pid_slot != NULL) format_uint(listen_pid_slot, (unsigned long)getpid());
  child_execvp(s);
  step = "execve";
fail:
  err = errno;
  /* The parent reads the failing step and errno; CLOEXEC closes this pipe on a successful exec. */
  char msg[40];
  memset(msg, 0, sizeof msg);
  memcpy(msg, &err, sizeof err);
  strncpy(msg + sizeof err, step, sizeof msg - sizeof err - 1);
  ssize_t w;
  do w = write(errfd, msg, sizeof msg);
  while (w < 0 && errno == EINTR);
  _exit(127);
}

#if defined(__linux__)
#ifndef SYS_clone3
#define SYS_clone3 435 /* the same number on every architecture */
#endif
#define SOAD_CLONE_INTO_CGROUP 0x200000000ULL
/* struct clone_args of linux/sched.h (5.7), spelt out so older headers build */
struct soad_clone_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#endif

/*
 * fork(), into a cgroup from the start where the kernel can (clone3 with CLONE_INTO_CGROUP, Linux 5.7): moving a
 * process later (a write to cgroup.procs) waits for an RCU grace period, measured here at 22 ms for the first move
 * after a quiet spell, against 0.16 ms this way. *created_in: the child is in the cgroup already. The child runs
 * only async-signal-safe code until exec, as after fork().
 */
static pid_t fork_into(int cgroup_fd, bool *created_in) {
  *created_in = false;
#if defined(__linux__)
  if (cgroup_fd >= 0) {
    struct soad_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = SOAD_CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup_fd;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) {
      *created_in = true;
      return (pid_t)pid;
    }
    if (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EPERM) return -1;
    /* an older kernel (or a seccomp filter): fork, and the child joins by itself */
  }
#else
  (void)cgroup_fd;
#endif
  return fork();
}

/*
 * spawn(file, argv, env, fds, options, onExit(code | null, signal | null)) -> pid
 * options: { cwd?, uid?, gid?, groups?, listenPid: boolean, pdeathsig: boolean }
 * options.cgroupFd?: an fd open on a cgroup v2 directory: the child is created in it (or joins it after setsid)
 */
static napi_value spawn(napi_env env, napi_callback_info info) {
  ARGS(6);
  spawn_spec s;
  memset(&s, 0, sizeof s);
  s.cgroup_fd = -1;
  size_t count = 0;
  napi_value v;
  bool ok = (s.file = get_string(env, argv[0], NULL)) != NULL &&
            (s.argv = get_string_array(env, argv[1], 0, &count)) != NULL &&
            (s.envp = get_string_array(env, argv[2], 1, &s.envc)) != NULL;
  uint32_t nfds = 0;
  ok = ok && napi_get_array_length(env, argv[3], &nfds) == napi_ok && nfds <= 64;
  if (ok) {
    s.nfds = nfds;
    s.fds = calloc(nfds + 1, sizeof *s.fds);
    ok = s.fds != NULL;
    for (uint32_t i = 0; ok && i < nfds; i++)
      ok = napi_get_element(env, argv[3], i, &v) == napi_ok && get_int(env, v, &s.fds[i]);
  }
  napi_value opts = argv[4];
  if (ok && get_optional(env, opts, "cwd", &v)) ok = (s.cwd = get_string(env, v, NULL)) != NULL;
  if (ok && get_optional(env, opts, "uid", &v)) ok = s.set_uid = get_id(env, v, &s.uid);
  if (ok && get_optional(env, opts, "gid", &v)) ok = s.set_gid = get_id(env, v, &s.gid);
  if (ok && get_optional(env, opts, "groups", &v)) {
    uint32_t n;
    ok = napi_get_array_length(env, v, &n) == napi_ok && (s.groups = calloc(n + 1, sizeof *s.groups)) != NULL;
    for (uint32_t i = 0; ok && i < n; i++) {
      napi_value g;
      uint32_t gid = 0;
      ok = napi_get_element(env, v, i, &g) == napi_ok && get_id(env, g, &gid);
      s.groups[i] = (gid_t)gid;
    }
    s.ngroups = ok ? (int)n : 0;
  }
  if (ok && get_optional(env, opts, "listenPid", &v)) ok = get_bool(env, v, &s.listen_pid);
  if (ok && get_optional(env, opts, "pdeathsig", &v)) ok = get_bool(env, v, &s.pdeathsig);
  if (ok && get_optional(env, opts, "cgroupFd", &v)) ok = get_int(env, v, &s.cgroup_fd);
  if (!ok || count == 0) {
    spawn_spec_free(&s);
    return throw_type(env, "spawn(file, argv, env, fds, options, onExit): bad arguments");
  }

  /* LISTEN_PID=<the child's own pid>, filled in by the child after fork. */
  char *listen_pid_slot = NULL;
  if (s.listen_pid) {
    char *entry = malloc(sizeof "LISTEN_PID=" + 24);
    if (entry == NULL) {
      spawn_spec_free(&s);
      return throw_errno(env, "malloc", ENOMEM);
    }
    strcpy(entry, "LISTEN_PID=");
    listen_pid_slot = entry + strlen("LISTEN_PID=");
    format_uint(listen_pid_slot, 0);
    s.envp[s.envc++] = entry;
  }

  char path[PATH_MAX];
  int err = resolve_executable(s.file, s.envp, path, sizeof path);
  s.search_path = search_path(s.envp);
  if (err != 0) {
    spawn_spec_free(&s);
    return throw_errno(env, "execve", err);
  }

  js_callback cb;
  if (!callback_init(env, argv[5], "soad:child", &cb)) {
    spawn_spec_free(&s);
    return throw_type(env, "spawn: onExit must be a function");
  }
  if (!sigchld_ready) {
    uv_loop_t *loop;
    int r;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || (r = uv_signal_init(loop, &sigchld)) < 0 ||
        (r = uv_signal_start(&sigchld, on_sigchld, SIGCHLD)) < 0) {
      callback_free(env, &cb);
      spawn_spec_free(&s);
      return throw_errno(env, "uv_signal_start", EINVAL);
    }
    uv_unref((uv_handle_t *)&sigchld);
    sigchld_ready = true;
  }

  int pipefd[2];
#ifdef __linux__
  if (pipe2(pipefd, O_CLOEXEC) < 0) err = errno;
#else
  if (pipe(pipefd) < 0 || fcntl(pipefd[0], F_SETFD, FD_CLOEXEC) < 0 || fcntl(pipefd[1], F_SETFD, FD_CLOEXEC) < 0)
    err = errno;
#endif
  if (err != 0) {
    callback_free(env, &cb);
    spawn_spec_free(&s);
    return throw_errno(env, "pipe", err);
  }

  /* No handler of ours may run in the child before it resets them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork_into(s.cgroup_fd, &s.in_cgroup);
  if (pid == 0) {
    close(pipefd[0]);
    child_exec(&s, pipefd[1], parent, listen_pid_slot);
  }
  int fork_err = pid < 0 ? errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(pipefd[1]);
  if (fork_err != 0) {
    close(pipefd[0]);
    callback_free(env, &cb);
    spawn_spec_free(&s);
    return throw_errno(env, "fork", fork_err);
  }

  /* Wait for exec: EOF means it succeeded; a message means the child failed before it. */
  char msg[40];
  ssize_t n;
  do n = read(pipefd[0], msg, sizeof msg);
  while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  if (n > 0) {
    int child_err;
    memcpy(&child_err, msg, sizeof child_err);
    char step[40];
    memcpy(step, msg + sizeof child_err, sizeof msg - sizeof child_err);
    step[sizeof msg - sizeof child_err - 1] = '\0';
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    callback_free(env, &cb);
    spawn_spec_free(&s);
    return throw_errno(env, step, child_err);
  }
  spawn_spec_free(&s);

  child *c = calloc(1, sizeof *c);
  if (c == NULL) { /* the app runs; we cannot track it, so do not leave it running */
    kill(-pid, SIGKILL);
    callback_free(env, &cb);
    return throw_errno(env, "calloc", ENOMEM);
  }
  c->pid = pid;
  c->env = env;
  c->cb = cb;
  c->next = children;
  children = c;
  sigchld_update_ref();
  /* An exit that happened before the handler saw the child is caught on the next SIGCHLD; the kernel
   * sends one for it anyway, so nothing is lost. */
  return make_int(env, pid);
}

/* ---------------------------------------------------------------- relay (proxy mode, Linux: splice) */

/*
 * Proxy mode moves bytes without copying them through JavaScript: soad accepts on the listener itself,
 * connects to the app, and splices each direction through a pipe (socket → pipe → socket), driven by one uv_poll
 * per socket. A half-close is passed on (shutdown(SHUT_WR) once a direction ends and its pipe is drained), a slow
 * reader stops the reading on the other side (the pipe is the only buffer), an error on either side closes both.
 * Figures per group (a service): open connections, bytes each way, the time of the last byte or connection.
 *
 * Running out of fds never spins: the listener's poll is level-triggered, so an accept4 (or a relay's socket or
 * pipe2) failing with EMFILE/ENFILE stops the poll and a timer re-arms it after 100 ms, doubling to 1 s, once a
 * whole relay's worth of fds (RELAY_FDS) can be opened again. The first failure of an episode and the recovery
 * are reported to JS (onPressure). JS also stops accepting while it holds as many connections as it may
 * (relayHold): they wait in the kernel's backlog instead.
 */

#if defined(__linux__) && defined(SPLICE_F_NONBLOCK)
#define RELAY_SPLICE 1
#endif

#define RELAY_PIPE_SIZE (256 * 1024)
#define RELAY_FDS 6 /* a relayed connection: client, upstream, two pipes */
#define RELAY_PAUSE_FIRST_MS 100
#define RELAY_PAUSE_MAX_MS 1000

typedef struct relay_group {
  int id;
  long long open;
  long long bytes_in, bytes_out;
  long long last_ns;
  struct relay_group *next;
} relay_group;

typedef struct relay_half {
  int src, dst;
  int pipe_r, pipe_w;
  size_t in_pipe;
  bool eof, shut;
} relay_half;

typedef struct relay_conn {
  uint32_t id;
  napi_env env;
  relay_group *group;
  int client, upstream;
  uv_poll_t poll_client, poll_upstream;
  bool client_polled, upstream_polled;
  int handles_open;
  relay_half c2u, u2c;
  bool connecting, relaying, closing;
  js_callback on_connect; /* set while connecting */
  bool has_on_connect;
  struct relay_conn *next;
} relay_conn;

typedef struct relay_listener {
  uint32_t id;
  napi_env env;
  int fd;
  relay_group *group;
  uv_poll_t poll;
  uv_timer_t pause;     /* re-arms the poll after running out of fds */
  int handles_open;     /* poll and pause, until their close callbacks */
  js_callback on_accept, on_pressure;
  bool closing;
  bool polling;         /* the poll is started */
  bool full;            /* JS holds as many connections as it may (relayHold) */
  bool pausing;         /* the pause timer runs */
  uint64_t pause_ms;    /* 0: fds are fine; else the current delay of an exhaustion episode */
  struct relay_listener *next;
} relay_listener;

static relay_group *relay_groups = NULL;
static relay_conn *relay_conns = NULL;
static relay_listener *relay_listeners = NULL;
static uint32_t relay_next_id = 1;
static js_callback relay_on_close;
static bool relay_on_close_set = false;

static relay_group *relay_group_get(int id) {
  for (relay_group *g = relay_groups; g != NULL; g = g->next)
    if (g->id == id) return g;
  relay_group *g = calloc(1, sizeof *g);
  if (g == NULL) return NULL;
  g->id = id;
  g->next = relay_groups;
  relay_groups = g;
  return g;
}

static relay_conn *relay_find(uint32_t id) {
  for (relay_conn *c = relay_conns; c != NULL; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

/* The fds are closed only once no watcher uses them any more. */
static void relay_conn_free(relay_conn *c) {
  int fds[] = {c->client, c->upstream, c->c2u.pipe_r, c->c2u.pipe_w, c->u2c.pipe_r, c->u2c.pipe_w};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0) close(fds[i]);
  free(c);
}

static void relay_conn_freed(uv_handle_t *handle) {
  relay_conn *c = (relay_conn *)handle->data;
  if (--c->handles_open == 0) relay_conn_free(c);
}

/* Closes a connection: both sockets, its pipes; tells JS (onClose(id)). */
static void relay_close(relay_conn *c) {
  if (c->closing) return;
  c->closing = true;
  for (relay_conn **p = &relay_conns; *p != NULL; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  if (c->relaying) c->group->open--;
  napi_env env = c->env;
  if (c->has_on_connect) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) == napi_ok) {
      napi_value arg;
      napi_create_string_utf8(env, "ECONNABORTED", NAPI_AUTO_LENGTH, &arg);
      call_js(env, c->on_connect.fn, c->on_connect.ctx, 1, &arg);
      napi_close_handle_scope(env, scope);
    }
    callback_free(env, &c->on_connect);
    c->has_on_connect = false;
  }
  if (relay_on_close_set) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) == napi_ok) {
      napi_value arg;
      if (napi_create_uint32(env, c->id, &arg) == napi_ok) call_js(env, relay_on_close.fn, relay_on_close.ctx, 1, &arg);
      napi_close_handle_scope(env, scope);
    }
  }
  c->handles_open = (c->client_polled ? 1 : 0) + (c->upstream_polled ? 1 : 0);
  if (c->handles_open == 0) {
    relay_conn_free(c);
    return;
  }
  if (c->client_polled) uv_close((uv_handle_t *)&c->poll_client, relay_conn_freed);
  if (c->upstream_polled) uv_close((uv_handle_t *)&c->poll_upstream, relay_conn_freed);
}

#ifdef RELAY_SPLICE
/* Moves what it can in one direction; returns false on an error that ends the connection. */
static bool relay_pump(relay_conn *c, relay_half *h, long long *bytes) {
  for (;;) {
    bool progress = false;
    if (!h->eof && h->in_pipe < RELAY_PIPE_SIZE) {
      ssize_t n = splice(h->src, NULL, h->pipe_w, NULL, RELAY_PIPE_SIZE - h->in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (n > 0) {
        h->in_pipe += (size_t)n;
        *bytes += n;
        c->group->last_ns = monotonic_ns();
        progress = true;
      } else if (n == 0) {
        h->eof = true;
        progress = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (h->in_pipe > 0) {
      ssize_t m = splice(h->pipe_r, NULL, h->dst, NULL, h->in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
      if (m > 0) {
        h->in_pipe -= (size_t)m;
        progress = true;
      } else if (m < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (h->eof && h->in_pipe == 0 && !h->shut) {
      shutdown(h->dst, SHUT_WR); /* pass the half-close on */
      h->shut = true;
    }
    if (!progress) return true;
  }
}

static void relay_on_event(uv_poll_t *handle, int status, int events);

/* What each socket waits for: to read its own direction (room in the pipe), to write the other (bytes in it). */
static void relay_rearm(relay_conn *c) {
  int client_events = 0, upstream_events = 0;
  if (!c->c2u.eof && c->c2u.in_pipe < RELAY_PIPE_SIZE) client_events |= UV_READABLE;
  if (c->u2c.in_pipe > 0) client_events |= UV_WRITABLE;
  if (!c->u2c.eof && c->u2c.in_pipe < RELAY_PIPE_SIZE) upstream_events |= UV_READABLE;
  if (c->c2u.in_pipe > 0) upstream_events |= UV_WRITABLE;
  if (client_events != 0) uv_poll_start(&c->poll_client, client_events, relay_on_event);
  else uv_poll_stop(&c->poll_client);
  if (upstream_events != 0) uv_poll_start(&c->poll_upstream, upstream_events, relay_on_event);
  else uv_poll_stop(&c->poll_upstream);
}

static void relay_on_event(uv_poll_t *handle, int status, int events) {
  (void)events;
  relay_conn *c = (relay_conn *)handle->data;
  if (c->closing) return;
  if (status < 0 || !relay_pump(c, &c->c2u, &c->group->bytes_in) || !relay_pump(c, &c->u2c, &c->group->bytes_out)) {
    relay_close(c);
    return;
  }
  if (c->c2u.shut && c->u2c.shut) {
    relay_close(c);
    return;
  }
  relay_rearm(c);
}
#endif

/* The upstream connection completed (or failed): start relaying, or tell JS why not. */
static void relay_connected(uv_poll_t *handle, int status, int events) {
  (void)events;
  relay_conn *c = (relay_conn *)handle->data;
  if (c->closing || !c->connecting) return;
  int err = 0;
  socklen_t len = sizeof err;
  if (status < 0) err = -status == EBADF ? EBADF : ECONNREFUSED;
  else if (getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  c->connecting = false;
  uv_poll_stop(handle);
  napi_env env = c->env;
  js_callback cb = c->on_connect;
  c->has_on_connect = false;
  if (err == 0) {
    c->relaying = true;
    c->group->open++;
    c->group->last_ns = monotonic_ns();
    if (!c->client_polled) {
      uv_loop_t *loop;
      napi_get_uv_event_loop(env, &loop);
      if (uv_poll_init(loop, &c->poll_client, c->client) == 0) {
        c->poll_client.data = c;
        c->client_polled = true;
      } else {
        err = EBADF;
      }
    }
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value arg;
    if (err == 0) napi_get_null(env, &arg);
    else napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &arg);
    call_js(env, cb.fn, cb.ctx, 1, &arg);
    napi_close_handle_scope(env, scope);
  }
  callback_free(env, &cb);
  if (err != 0) {
    relay_close(c); /* the app is up but refused: the client cannot be served */
    return;
  }
#ifdef RELAY_SPLICE
  relay_rearm(c);
#endif
}

static void relay_accept(uv_poll_t *handle, int status, int events);

/* An error that says the process (or the system) has no fd or memory for one more connection. */
static bool relay_out_of_fds(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* The listener polls exactly when it may accept: not closing, not full, not pausing. */
static void relay_listener_update(relay_listener *l) {
  bool accept = !l->closing && !l->full && !l->pausing;
  if (accept == l->polling) return;
  int r = accept ? uv_poll_start(&l->poll, UV_READABLE, relay_accept) : uv_poll_stop(&l->poll);
  if (r == 0) l->polling = accept;
}

/* RLIMIT_NOFILE's soft limit; -1 if unlimited or unknown. */
static long long relay_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY) return -1;
  return (long long)rl.rlim_cur;
}

/* onPressure("exhausted", code, syscall, limit) or onPressure("recovered", null, null, limit). */
static void relay_report(relay_listener *l, const char *what, const char *syscall, int err) {
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[4];
  bool ok = napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &argv[0]) == napi_ok &&
            (err == 0 ? napi_get_null(env, &argv[1]) : napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &argv[1])) == napi_ok &&
            (syscall == NULL ? napi_get_null(env, &argv[2]) : napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &argv[2])) == napi_ok &&
            napi_create_int64(env, relay_fd_limit(), &argv[3]) == napi_ok;
  if (ok) call_js(env, l->on_pressure.fn, l->on_pressure.ctx, 4, argv);
  napi_close_handle_scope(env, scope);
}

static void relay_pause_over(uv_timer_t *timer);

/* Stops accepting for the next delay of the episode: 100 ms at first, doubling to 1 s. */
static void relay_pause(relay_listener *l) {
  l->pause_ms = l->pause_ms == 0 ? RELAY_PAUSE_FIRST_MS : l->pause_ms * 2;
  if (l->pause_ms > RELAY_PAUSE_MAX_MS) l->pause_ms = RELAY_PAUSE_MAX_MS;
  l->pausing = uv_timer_start(&l->pause, relay_pause_over, l->pause_ms, 0) == 0;
  relay_listener_update(l);
}

/* Out of fds (`syscall` failed with `err`): pause; the first failure of an episode is reported. */
static void relay_exhausted(relay_listener *l, const char *syscall, int err) {
  if (l->closing || l->pausing) return;
  bool first = l->pause_ms == 0;
  relay_pause(l);
  if (first) relay_report(l, "exhausted", syscall, err);
}

/* Every listener of the group pauses (a relay of one of its connections found no fd). */
static void relay_group_exhausted(relay_group *g, const char *syscall, int err) {
  for (relay_listener *l = relay_listeners; l != NULL; l = l->next)
    if (l->group == g) relay_exhausted(l, syscall, err);
}

/* 0 if a whole relay's fds (three pipes: six fds) can be opened now, else the errno; they are closed again. */
static int relay_headroom(void) {
  int fds[RELAY_FDS];
  int opened = 0, err = 0;
  while (opened < RELAY_FDS) {
    if (pipe2(&fds[opened], O_CLOEXEC) < 0) {
      err = errno;
      break;
    }
    opened += 2;
  }
  for (int i = 0; i < opened; i++) close(fds[i]);
  return err;
}

/* The pause is over: accept again if fds are back (reported once), else pause longer. */
static void relay_pause_over(uv_timer_t *timer) {
  relay_listener *l = (relay_listener *)timer->data;
  l->pausing = false;
  if (l->closing) return;
  if (relay_headroom() != 0) {
    relay_pause(l);
    return;
  }
  l->pause_ms = 0;
  relay_listener_update(l);
  relay_report(l, "recovered", NULL, 0);
}

/* A new held connection on the client fd `fd`; NULL if out of memory. */
static relay_conn *relay_conn_new(relay_listener *l, int fd) {
  relay_conn *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->id = relay_next_id++;
  if (relay_next_id == 0) relay_next_id = 1;
  c->env = l->env;
  c->group = l->group;
  c->client = fd;
  c->upstream = -1;
  c->c2u.pipe_r = c->c2u.pipe_w = c->u2c.pipe_r = c->u2c.pipe_w = -1;
  c->next = relay_conns;
  relay_conns = c;
  c->group->last_ns = monotonic_ns();
  return c;
}

/* onAccept(connId): JS holds or relays it. */
static void relay_announce(relay_listener *l, relay_conn *c) {
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value arg;
  if (napi_create_uint32(env, c->id, &arg) == napi_ok) call_js(env, l->on_accept.fn, l->on_accept.ctx, 1, &arg);
  napi_close_handle_scope(env, scope);
}

/*
 * Near the fd limit, is there room to relay one more connection? 0, or the errno of the probe. The kernel gives
 * the lowest free fd, so when the last accepted fd was k every fd below k was in use: far from the limit this costs
 * one getrlimit; near it, a probe spares the client an accept without the fds to relay it.
 */
static int relay_last_fd = -1;
static int relay_room(void) {
  long long limit = relay_fd_limit();
  if (limit < 0 || relay_last_fd + 2 * RELAY_FDS < limit) return 0;
  return relay_headroom();
}

/* Accepts one connection; false when there is nothing more to accept now. */
static bool relay_accept_one(relay_listener *l) {
  int room = relay_room();
  if (room != 0) {
    relay_exhausted(l, "pipe2", room); /* pipe2 fails only for want of fds (or EFAULT/EINVAL: never here) */
    return false;
  }
  int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    if (relay_out_of_fds(errno)) {
      relay_exhausted(l, "accept4", errno);
      return false;
    }
    return true; /* ECONNABORTED, EPROTO, EINTR, ...: that connection only */
  }
  relay_last_fd = fd;
  relay_conn *c = relay_conn_new(l, fd);
  if (c == NULL) {
    close(fd); /* reported just below: the client sees a closed connection */
    relay_exhausted(l, "calloc", ENOMEM);
    return false;
  }
  relay_announce(l, c);
  return true;
}

/* Readable listener: accept what waits, at most 64 per loop turn, while JS may take more. */
static void relay_accept(uv_poll_t *handle, int status, int events) {
  (void)events;
  relay_listener *l = (relay_listener *)handle->data;
  if (status < 0) {
    l->polling = false; /* libuv stopped the poll (POLLERR) */
    return;
  }
  for (int i = 0; i < 64 && !l->closing && !l->full && !l->pausing; i++)
    if (!relay_accept_one(l)) return;
}

/* relaySupported() -> true where soad relays with splice. */
static napi_value relay_supported(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef RELAY_SPLICE
  NAPI_CALL(env, napi_get_boolean(env, true, &result));
#else
  NAPI_CALL(env, napi_get_boolean(env, false, &result));
#endif
  return result;
}

/* relayOnClose(callback(connId)): called whenever a connection is closed. */
static napi_value relay_set_on_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  if (relay_on_close_set) callback_free(env, &relay_on_close);
  relay_on_close_set = callback_init(env, argv[0], "soad:relay-close", &relay_on_close);
  if (!relay_on_close_set) return throw_type(env, "relayOnClose(callback)");
  return make_undefined(env);
}

static void relay_listener_free(relay_listener *l) {
  callback_free(l->env, &l->on_accept);
  callback_free(l->env, &l->on_pressure);
  free(l);
}

/* Frees the listener once its poll and its pause timer are closed. */
static void relay_listener_closed(uv_handle_t *handle) {
  relay_listener *l = (relay_listener *)handle->data;
  if (--l->handles_open == 0) relay_listener_free(l);
}

/* Unlinks a listener and closes its handles (freed in their close callbacks). */
static void relay_unlisten_one(relay_listener *l) {
  for (relay_listener **p = &relay_listeners; *p != NULL; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      break;
    }
  l->closing = true;
  uv_close((uv_handle_t *)&l->poll, relay_listener_closed);
  uv_close((uv_handle_t *)&l->pause, relay_listener_closed);
}

/* Makes the listener's poll and pause timer: NULL, or the call that failed (errno set; handles_open: made). */
static const char *relay_listener_handles(relay_listener *l, uv_loop_t *loop) {
  int r = uv_poll_init(loop, &l->poll, l->fd);
  if (r < 0) {
    errno = -r;
    return "uv_poll_init";
  }
  l->poll.data = l;
  l->pause.data = l;
  l->handles_open = 1;
  r = uv_timer_init(loop, &l->pause); /* cannot fail in libuv; checked all the same */
  if (r < 0) {
    errno = -r;
    return "uv_timer_init";
  }
  l->handles_open = 2;
  return NULL;
}

/*
 * relayListen(fd, group, onAccept(connId), onPressure(event, code, syscall, limit)) -> id: accept on a listener
 * (made non-blocking). onPressure("exhausted", "EMFILE", "accept4", 1024) when it runs out of fds (it pauses),
 * onPressure("recovered", null, null, 1024) when it accepts again.
 */
static napi_value relay_listen(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t fd, group;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[1], &group))
    return throw_type(env, "relayListen(fd, group, onAccept, onPressure)");
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return throw_errno(env, "fcntl", errno);
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  relay_listener *l = calloc(1, sizeof *l);
  if (l == NULL) return throw_errno(env, "calloc", ENOMEM);
  l->group = relay_group_get(group);
  if (l->group == NULL || !callback_init(env, argv[2], "soad:relay-accept", &l->on_accept)) {
    free(l);
    return throw_type(env, "relayListen: onAccept must be a function");
  }
  if (!callback_init(env, argv[3], "soad:relay-pressure", &l->on_pressure)) {
    callback_free(env, &l->on_accept);
    free(l);
    return throw_type(env, "relayListen: onPressure must be a function");
  }
  l->env = env;
  l->fd = fd;
  const char *failed = relay_listener_handles(l, loop);
  if (failed != NULL) {
    int err = errno;
    l->closing = true;
    if (l->handles_open > 0) uv_close((uv_handle_t *)&l->poll, relay_listener_closed);
    else relay_listener_free(l);
    return throw_errno(env, failed, err);
  }
  l->id = relay_next_id++;
  l->next = relay_listeners;
  relay_listeners = l;
  relay_listener_update(l);
  if (!l->polling) {
    relay_unlisten_one(l);
    return throw_errno(env, "uv_poll_start", EINVAL);
  }
  return make_int(env, l->id);
}

/* relayUnlisten(id): stops accepting (the listener fd stays soad's). */
static napi_value relay_unlisten(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "relayUnlisten(id)");
  for (relay_listener *l = relay_listeners; l != NULL; l = l->next)
    if (l->id == id) {
      relay_unlisten_one(l);
      break;
    }
  return make_undefined(env);
}

/* relayHold(group, full): full = JS holds as many connections as it may: the group's listeners stop accepting. */
static napi_value relay_hold(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t group;
  bool full;
  if (!get_int(env, argv[0], &group) || !get_bool(env, argv[1], &full)) return throw_type(env, "relayHold(group, full)");
  for (relay_listener *l = relay_listeners; l != NULL; l = l->next)
    if (l->group->id == group) {
      l->full = full;
      relay_listener_update(l);
    }
  return make_undefined(env);
}

/* relayFdLimit() -> RLIMIT_NOFILE's soft limit, -1 if unlimited. */
static napi_value relay_fd_limit_js(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int(env, relay_fd_limit());
}

#ifdef RELAY_SPLICE
/* The connection's two pipes (one per direction); 0 or the errno of pipe2, with nothing left open. */
static int relay_pipes(relay_conn *c) {
  int a[2], b[2];
  if (pipe2(a, O_CLOEXEC | O_NONBLOCK) < 0) return errno;
  if (pipe2(b, O_CLOEXEC | O_NONBLOCK) < 0) {
    int err = errno;
    close(a[0]);
    close(a[1]);
    return err;
  }
  fcntl(a[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE); /* best effort: the default is 64 KiB */
  fcntl(b[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE);
  c->c2u.pipe_r = a[0];
  c->c2u.pipe_w = a[1];
  c->u2c.pipe_r = b[0];
  c->u2c.pipe_w = b[1];
  return 0;
}
#endif

/* A relay could not be set up (`syscall` failed): out of fds, its group stops accepting for a while; throws. */
static napi_value relay_setup_failed(napi_env env, relay_conn *c, const char *syscall, int err) {
  if (relay_out_of_fds(err)) relay_group_exhausted(c->group, syscall, err);
  return throw_errno(env, syscall, err);
}

/*
 * relayConnect(connId, host | path, port, onDone(error | null)): connects the held connection to the app (port -1:
 * a UNIX socket path) and, once connected, relays; on a failure the connection is closed.
 */
static napi_value relay_connect(napi_env env, napi_callback_info info) {
  ARGS(4);
  uint32_t id;
  int32_t port;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok || !get_int(env, argv[2], &port))
    return throw_type(env, "relayConnect(connId, host | path, port, onDone)");
  relay_conn *c = relay_find(id);
  if (c == NULL || c->connecting || c->relaying) return throw_errno(env, "relayConnect", ENOENT);
  char *target = get_string(env, argv[1], NULL);
  if (target == NULL) return throw_type(env, "relayConnect: target must be a string");
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sslen;
  int family;
  if (port < 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    size_t len = strlen(target);
    if (len >= sizeof un->sun_path) {
      free(target);
      return throw_errno(env, "connect", ENAMETOOLONG);
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, target, len);
    sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    family = AF_UNIX;
  } else if (inet_pton(AF_INET, target, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
    ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    sslen = sizeof(struct sockaddr_in);
    family = AF_INET;
  } else if (inet_pton(AF_INET6, target, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
    ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    sslen = sizeof(struct sockaddr_in6);
    family = AF_INET6;
  } else {
    free(target);
    return throw_errno(env, "inet_pton", EINVAL);
  }
  free(target);
  int fd = socket_cloexec(family, true);
  if (fd < 0) return relay_setup_failed(env, c, "socket", errno);
  if (family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int r;
  do r = connect(fd, (struct sockaddr *)&ss, sslen);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS && errno != EAGAIN) {
    int err = errno;
    close(fd);
    return throw_errno(env, "connect", err);
  }
#ifdef RELAY_SPLICE
  if (c->c2u.pipe_r < 0) {
    int err = relay_pipes(c);
    if (err != 0) {
      close(fd);
      return relay_setup_failed(env, c, "pipe2", err);
    }
  }
#endif
  if (!callback_init(env, argv[3], "soad:relay-connect", &c->on_connect)) {
    close(fd);
    return throw_type(env, "relayConnect: onDone must be a function");
  }
  c->has_on_connect = true;
  c->upstream = fd;
  c->c2u = (relay_half){c->client, fd, c->c2u.pipe_r, c->c2u.pipe_w, 0, false, false};
  c->u2c = (relay_half){fd, c->client, c->u2c.pipe_r, c->u2c.pipe_w, 0, false, false};
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  r = uv_poll_init(loop, &c->poll_upstream, fd);
  if (r == 0) {
    c->poll_upstream.data = c;
    c->upstream_polled = true;
    r = uv_poll_start(&c->poll_upstream, UV_WRITABLE, relay_connected);
  }
  if (r < 0) {
    relay_close(c);
    return throw_errno(env, "uv_poll", -r);
  }
  c->connecting = true;
  return make_undefined(env);
}

/* relayClose(connId): closes a connection (held or relaying). */
static napi_value relay_close_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "relayClose(connId)");
  relay_conn *c = relay_find(id);
  if (c != NULL) relay_close(c);
  return make_undefined(env);
}

/* relayStats(group) -> { open, bytesIn, bytesOut, ago }: ago = ms since the last byte or connection (-1: none). */
static napi_value relay_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t id;
  if (!get_int(env, argv[0], &id)) return throw_type(env, "relayStats(group)");
  relay_group *g = relay_group_get(id);
  if (g == NULL) return throw_errno(env, "calloc", ENOMEM);
  napi_value result, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_int64(env, g->open, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "open", v));
  NAPI_CALL(env, napi_create_int64(env, g->bytes_in, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "bytesIn", v));
  NAPI_CALL(env, napi_create_int64(env, g->bytes_out, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "bytesOut", v));
  NAPI_CALL(env, napi_create_double(env, g->last_ns == 0 ? -1 : (double)(monotonic_ns() - g->last_ns) / 1e6, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "ago", v));
  return result;
}

/* ---------------------------------------------------------------- users and groups */

/* lookupUser(name | uid) -> { uid, gid, name, home, shell, groups } or null if unknown. */
static napi_value lookup_user(napi_env env, napi_callback_info info) {
  ARGS(1);
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[0], &t));
  struct passwd *pw;
  errno = 0;
  if (t == napi_number) {
    uint32_t uid;
    if (!get_id(env, argv[0], &uid)) return throw_type(env, "lookupUser: a uid is a whole number 0..4294967294");
    pw = getpwuid((uid_t)uid);
  } else {
    char *name = get_string(env, argv[0], NULL);
    if (name == NULL) return throw_type(env, "lookupUser(name | uid)");
    pw = getpwnam(name);
    free(name);
  }
  napi_value result;
  if (pw == NULL) {
    if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
      return throw_errno(env, "getpwnam", errno);
    NAPI_CALL(env, napi_get_null(env, &result));
    return result;
  }
  NAPI_CALL(env, napi_create_object(env, &result));
  napi_value v;
  NAPI_CALL(env, napi_create_uint32(env, pw->pw_uid, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "uid", v));
  NAPI_CALL(env, napi_create_uint32(env, pw->pw_gid, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "gid", v));
  NAPI_CALL(env, napi_create_string_utf8(env, pw->pw_name, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "name", v));
  NAPI_CALL(env, napi_create_string_utf8(env, pw->pw_dir, NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "home", v));
  NAPI_CALL(env, napi_create_string_utf8(env, pw->pw_shell != NULL ? pw->pw_shell : "", NAPI_AUTO_LENGTH, &v));
  NAPI_CALL(env, napi_set_named_property(env, result, "shell", v));
  int ngroups = 64;
  gid_t *groups = NULL;
  for (int tries = 0; tries < 4; tries++) {
    gid_t *grown = realloc(groups, (size_t)ngroups * sizeof *groups);
    if (grown == NULL) {
      free(groups);
      return throw_errno(env, "realloc", ENOMEM);
    }
    groups = grown;
    int n = ngroups;
#ifdef __APPLE__
    int rc = getgrouplist(pw->pw_name, (int)pw->pw_gid, (int *)groups, &n); /* macOS takes int */
#else
    int rc = getgrouplist(pw->pw_name, pw->pw_gid, groups, &n);
#endif
    if (rc >= 0) {
      ngroups = n;
      break;
    }
    ngroups = n > ngroups ? n : ngroups * 4;
    if (tries == 3) ngroups = 0;
  }
  napi_value array;
  if (napi_create_array_with_length(env, (size_t)ngroups, &array) != napi_ok) {
    free(groups);
    return NULL;
  }
  for (int i = 0; i < ngroups; i++)
    if (napi_create_uint32(env, groups[i], &v) != napi_ok || napi_set_element(env, array, (uint32_t)i, v) != napi_ok) {
      free(groups);
      return NULL;
    }
  free(groups);
  NAPI_CALL(env, napi_set_named_property(env, result, "groups", array));
  return result;
}

/* lookupGroup(name) -> gid or null if unknown. */
static napi_value lookup_group(napi_env env, napi_callback_info info) {
  ARGS(1);
  char *name = get_string(env, argv[0], NULL);
  if (name == NULL) return throw_type(env, "lookupGroup(name)");
  errno = 0;
  struct group *gr = getgrnam(name);
  free(name);
  napi_value result;
  if (gr == NULL) {
    if (errno != 0 && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM)
      return throw_errno(env, "getgrnam", errno);
    NAPI_CALL(env, napi_get_null(env, &result));
    return result;
  }
  return make_int(env, gr->gr_gid);
}

/* ---------------------------------------------------------------- module */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listenUnix", NULL, listen_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chmodSocket", NULL, chmod_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenTcp", NULL, listen_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"probeUnix", NULL, probe_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketInfo", NULL, socket_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"localAddress", NULL, local_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setCloexec", NULL, set_cloexec, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dup", NULL, dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pending", NULL, pending, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countStart", NULL, count_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countRead", NULL, count_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countStop", NULL, count_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countOwner", NULL, count_owner, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sentinelMemory", NULL, sentinel_memory_new, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sentinelRead", NULL, sentinel_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sentinelFree", NULL, sentinel_free, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spawn", NULL, spawn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupUser", NULL, lookup_user, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupGroup", NULL, lookup_group, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notify", NULL, notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerCredentials", NULL, peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relaySupported", NULL, relay_supported, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayOnClose", NULL, relay_set_on_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayListen", NULL, relay_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayUnlisten", NULL, relay_unlisten, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayConnect", NULL, relay_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayClose", NULL, relay_close_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayStats", NULL, relay_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayHold", NULL, relay_hold, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayFdLimit", NULL, relay_fd_limit_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
