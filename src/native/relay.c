/*
 * relay.c: proxy mode (Linux: splice). relayListen / relayUnlisten / relayHold accept on a listener, relayConnect
 * connects a held connection to the app and relays it, relayPeek / relayAnswer look at a held connection's request
 * and answer it from soad (the waiting page), relayClose / relayOnClose end connections, relayStats /
 * relayFdLimit / relaySupported report.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

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
  bool answering;        /* soad answers it itself (relayAnswer): never relayed */
  char *answer;          /* the response, malloc'd; answer_sent bytes of answer_len written */
  size_t answer_len, answer_sent;
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
  free(c->answer);
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
napi_value relay_supported(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef RELAY_SPLICE
  return make_bool(env, true);
#else
  return make_bool(env, false);
#endif
}

/* relayOnClose(callback(connId)): called whenever a connection is closed. */
napi_value relay_set_on_close(napi_env env, napi_callback_info info) {
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

/* Makes fd non-blocking; 0, or -1 with errno (of fcntl). */
static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return -1;
  return 0;
}

/* Starts a listener whose fd, group and callbacks are set: its handles, a new id, the poll. 0, or -1 with errno
 * and *failed; l is then closed (freed at once, or in its handles' close callbacks). */
static int relay_listener_start(relay_listener *l, uv_loop_t *loop, const char **failed) {
  *failed = relay_listener_handles(l, loop);
  if (*failed != NULL) {
    int err = errno;
    l->closing = true;
    if (l->handles_open > 0) uv_close((uv_handle_t *)&l->poll, relay_listener_closed);
    else relay_listener_free(l);
    errno = err;
    return -1;
  }
  l->id = relay_next_id++;
  l->next = relay_listeners;
  relay_listeners = l;
  relay_listener_update(l);
  if (!l->polling) {
    relay_unlisten_one(l);
    errno = EINVAL;
    *failed = "uv_poll_start";
    return -1;
  }
  return 0;
}

/*
 * relayListen(fd, group, onAccept(connId), onPressure(event, code, syscall, limit)) -> id: accept on a listener
 * (made non-blocking). onPressure("exhausted", "EMFILE", "accept4", 1024) when it runs out of fds (it pauses),
 * onPressure("recovered", null, null, 1024) when it accepts again.
 */
napi_value relay_listen(napi_env env, napi_callback_info info) {
  ARGS(4);
  int32_t fd, group;
  if (!get_int(env, argv[0], &fd) || !get_int(env, argv[1], &group))
    return throw_type(env, "relayListen(fd, group, onAccept, onPressure)");
  if (set_nonblocking(fd) < 0) return throw_errno(env, "fcntl", errno);
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
  const char *failed = NULL;
  if (relay_listener_start(l, loop, &failed) < 0) return throw_errno(env, failed, errno);
  return make_int(env, l->id);
}

/* relayUnlisten(id): stops accepting (the listener fd stays soad's). */
napi_value relay_unlisten(napi_env env, napi_callback_info info) {
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
napi_value relay_hold(napi_env env, napi_callback_info info) {
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
napi_value relay_fd_limit_js(napi_env env, napi_callback_info info) {
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

/* A relay could not be set up (`syscall` failed with errno): out of fds, its group stops accepting for a while.
 * -1, with errno kept and *failed = syscall. */
static int relay_setup_failed(relay_conn *c, const char *syscall, const char **failed) {
  int err = errno;
  if (relay_out_of_fds(err)) relay_group_exhausted(c->group, syscall, err);
  errno = err;
  *failed = syscall;
  return -1;
}

/* The app's address: a UNIX socket path (port < 0), else an IPv4 or IPv6 address and port. 0, or -1 with errno
 * and *failed. */
static int relay_target(const char *target, int port, struct sockaddr_storage *ss, socklen_t *sslen, int *family,
                        const char **failed) {
  memset(ss, 0, sizeof *ss);
  if (port < 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t len = strlen(target);
    if (len >= sizeof un->sun_path) {
      errno = ENAMETOOLONG;
      *failed = "connect";
      return -1;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, target, len);
    *sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    *family = AF_UNIX;
  } else if (inet_pton(AF_INET, target, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
    ((struct sockaddr_in *)ss)->sin_family = AF_INET;
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    *sslen = sizeof(struct sockaddr_in);
    *family = AF_INET;
  } else if (inet_pton(AF_INET6, target, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
    ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    *sslen = sizeof(struct sockaddr_in6);
    *family = AF_INET6;
  } else {
    errno = EINVAL;
    *failed = "inet_pton";
    return -1;
  }
  return 0;
}

/* Opens c's upstream socket, starts connecting it to the app (see relay_target), and makes c's pipes: *fd.
 * 0, or -1 with errno and *failed (nothing left open); a want of fds also pauses c's group. */
static int relay_dial(relay_conn *c, const char *target, int port, int *fd, const char **failed) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int family;
  if (relay_target(target, port, &ss, &sslen, &family, failed) < 0) return -1;
  *fd = socket_cloexec(family, true);
  if (*fd < 0) return relay_setup_failed(c, "socket", failed);
  if (family != AF_UNIX) {
    int one = 1;
    setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int r;
  do r = connect(*fd, (struct sockaddr *)&ss, sslen);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS && errno != EAGAIN) {
    close_keep_errno(*fd);
    *failed = "connect";
    return -1;
  }
#ifdef RELAY_SPLICE
  if (c->c2u.pipe_r < 0) {
    int err = relay_pipes(c);
    if (err != 0) {
      close(*fd);
      errno = err;
      return relay_setup_failed(c, "pipe2", failed);
    }
  }
#endif
  return 0;
}

/* Waits for c's upstream fd to connect (then relay_connected relays). 0, or -1 with errno (of uv_poll_*); c is
 * then closed. */
static int relay_upstream_start(relay_conn *c, uv_loop_t *loop, int fd) {
  c->upstream = fd;
  c->c2u = (relay_half){c->client, fd, c->c2u.pipe_r, c->c2u.pipe_w, 0, false, false};
  c->u2c = (relay_half){fd, c->client, c->u2c.pipe_r, c->u2c.pipe_w, 0, false, false};
  int r = uv_poll_init(loop, &c->poll_upstream, fd);
  if (r == 0) {
    c->poll_upstream.data = c;
    c->upstream_polled = true;
    r = uv_poll_start(&c->poll_upstream, UV_WRITABLE, relay_connected);
  }
  if (r < 0) {
    relay_close(c);
    errno = -r;
    return -1;
  }
  c->connecting = true;
  return 0;
}

/*
 * relayConnect(connId, host | path, port, onDone(error | null)): connects the held connection to the app (port -1:
 * a UNIX socket path) and, once connected, relays; on a failure the connection is closed.
 */
napi_value relay_connect(napi_env env, napi_callback_info info) {
  ARGS(4);
  uint32_t id;
  int32_t port;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok || !get_int(env, argv[2], &port))
    return throw_type(env, "relayConnect(connId, host | path, port, onDone)");
  relay_conn *c = relay_find(id);
  if (c == NULL || c->connecting || c->relaying || c->answering) return throw_errno(env, "relayConnect", ENOENT);
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  char *target = get_string(env, argv[1], NULL);
  if (target == NULL) return throw_type(env, "relayConnect: target must be a string");
  int fd = -1;
  const char *failed = NULL;
  int r = relay_dial(c, target, port, &fd, &failed);
  int err = errno;
  free(target);
  if (r < 0) return throw_errno(env, failed, err);
  if (!callback_init(env, argv[3], "soad:relay-connect", &c->on_connect)) {
    close(fd);
    return throw_type(env, "relayConnect: onDone must be a function");
  }
  c->has_on_connect = true;
  if (relay_upstream_start(c, loop, fd) < 0) return throw_errno(env, "uv_poll", errno);
  return make_undefined(env);
}

/* relayClose(connId): closes a connection (held or relaying). */
napi_value relay_close_js(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "relayClose(connId)");
  relay_conn *c = relay_find(id);
  if (c != NULL) relay_close(c);
  return make_undefined(env);
}

/* relayStats(group) -> { open, bytesIn, bytesOut, ago }: ago = ms since the last byte or connection (-1: none). */
napi_value relay_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t id;
  if (!get_int(env, argv[0], &id)) return throw_type(env, "relayStats(group)");
  relay_group *g = relay_group_get(id);
  if (g == NULL) return throw_errno(env, "calloc", ENOMEM);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_int(env, result, "open", g->open));
  NAPI_CALL(env, set_int(env, result, "bytesIn", g->bytes_in));
  NAPI_CALL(env, set_int(env, result, "bytesOut", g->bytes_out));
  NAPI_CALL(env, set_double(env, result, "ago", g->last_ns == 0 ? -1 : (double)(monotonic_ns() - g->last_ns) / 1e6));
  return result;
}


/*
 * The waiting page: soad answers a held connection itself. What the client sent is read and dropped first, so that
 * closing the socket does not reset the connection (a close with unread bytes sends RST, and the client may lose
 * the answer); the response is written as the socket takes it; then the write side is shut and what the client
 * still sends is dropped until it closes (JS bounds that wait with relayClose).
 */

#define RELAY_PEEK_MAX (16 * 1024) /* a request head longer than this is not looked at */

/* Reads and drops what the client sent; false once it has closed (or failed). */
static bool relay_discard(relay_conn *c) {
  char scratch[4096];
  for (;;) {
    ssize_t n = recv(c->client, scratch, sizeof scratch, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
}

/* Writes what it can of the answer; false on an error that ends the connection. */
static bool relay_answer_write(relay_conn *c) {
  while (c->answer_sent < c->answer_len) {
    ssize_t n = send(c->client, c->answer + c->answer_sent, c->answer_len - c->answer_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      c->answer_sent += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

static void relay_answer_event(uv_poll_t *handle, int status, int events);

/* One step of an answer: drop input, write output, shut the write side once written; polls for what is left. */
static void relay_answer_step(relay_conn *c) {
  bool open = relay_discard(c);
  bool sent_before = c->answer_sent == c->answer_len;
  if (!relay_answer_write(c)) {
    relay_close(c);
    return;
  }
  bool sent = c->answer_sent == c->answer_len;
  if (sent && !sent_before && shutdown(c->client, SHUT_WR) < 0) {
    relay_close(c);
    return;
  }
  if (!open) {
    relay_close(c); /* the client closed: nothing more to wait for */
    return;
  }
  if (uv_poll_start(&c->poll_client, UV_READABLE | (sent ? 0 : UV_WRITABLE), relay_answer_event) < 0) relay_close(c);
}

static void relay_answer_event(uv_poll_t *handle, int status, int events) {
  (void)events;
  relay_conn *c = (relay_conn *)handle->data;
  if (c->closing) return;
  if (status < 0) {
    relay_close(c);
    return;
  }
  relay_answer_step(c);
}

/* Starts answering c with len bytes at data (copied). 0, or -1 with errno and *failed; c is then closed. */
static int relay_answer_start(relay_conn *c, uv_loop_t *loop, const void *data, size_t len, const char **failed) {
  c->answer = malloc(len > 0 ? len : 1);
  if (c->answer == NULL) {
    relay_close(c);
    errno = ENOMEM;
    *failed = "malloc";
    return -1;
  }
  memcpy(c->answer, data, len);
  c->answer_len = len;
  c->answering = true;
  int r = uv_poll_init(loop, &c->poll_client, c->client);
  if (r < 0) {
    relay_close(c);
    errno = -r;
    *failed = "uv_poll_init";
    return -1;
  }
  c->poll_client.data = c;
  c->client_polled = true;
  relay_answer_step(c);
  return 0;
}

/* The held connection `id` (neither connecting, relayed nor answered), or NULL. */
static relay_conn *relay_find_held(uint32_t id) {
  relay_conn *c = relay_find(id);
  return c == NULL || c->connecting || c->relaying || c->answering || c->closing ? NULL : c;
}

/* Peeks at what the client of c sent, into bytes (RELAY_PEEK_MAX): the count, 0 if it has closed or failed, -1 if
 * nothing is there yet. */
static ssize_t relay_peek_bytes(relay_conn *c, char *bytes) {
  ssize_t n;
  do n = recv(c->client, bytes, RELAY_PEEK_MAX, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
}

/*
 * relayPeek(connId) -> Buffer | null: the bytes the client of a held connection has sent so far (at most 16 KiB),
 * left unread for the app; empty if none yet; null if the client has closed or failed, or the id is not held.
 */
napi_value relay_peek(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "relayPeek(connId)");
  relay_conn *c = relay_find_held(id);
  if (c == NULL) return make_null(env);
  char bytes[RELAY_PEEK_MAX];
  ssize_t n = relay_peek_bytes(c, bytes);
  if (n == 0) return make_null(env);
  napi_value result;
  void *data;
  NAPI_CALL(env, napi_create_buffer_copy(env, n < 0 ? 0 : (size_t)n, bytes, &data, &result));
  return result;
}

/*
 * relayAnswer(connId, response: Buffer): soad answers the held connection itself: drops what its client sent,
 * writes the response, shuts the write side and closes once the client closes (or on relayClose). Throws with
 * ENOENT if the connection is not held.
 */
napi_value relay_answer(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t id;
  void *data;
  size_t len;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok)
    return throw_type(env, "relayAnswer(connId, response: Buffer)");
  relay_conn *c = relay_find_held(id);
  if (c == NULL) return throw_errno(env, "relayAnswer", ENOENT);
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  const char *failed = NULL;
  if (relay_answer_start(c, loop, data, len, &failed) < 0) return throw_errno(env, failed, errno);
  return make_undefined(env);
}
