/*
 * poll.c: waits on Node's own loop. watch / unwatch, a one-shot readability watch (uv_poll_t), so soad learns of the
 * first connection on a listener without accepting it (watchWritable: until an fd can be written to, for soad's
 * own stderr, os/stderr.ts); awaitDrained / cancelDrained, until no connection is pending
 * on a set of listeners (uv_timer_t), so soad learns that a started app has accepted. A watcher or a drain is freed
 * only in its uv_close callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

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

/* Polls fd for w and lists it under a new id; 0, or -1 with errno and *failed (w->closing: it is being closed and
 * freed by libuv; else it was never initialised and is the caller's to free). */
static int watcher_start(watcher *w, uv_loop_t *loop, int fd, int events, const char **failed) {
  w->poll.data = w;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    errno = -r;
    *failed = "uv_poll_init";
    return -1;
  }
  r = uv_poll_start(&w->poll, events, watcher_fired);
  if (r < 0) {
    w->closing = true;
    uv_close((uv_handle_t *)&w->poll, watcher_closed);
    errno = -r;
    *failed = "uv_poll_start";
    return -1;
  }
  w->id = next_watch_id++;
  if (next_watch_id == 0) next_watch_id = 1;
  w->next = watchers;
  watchers = w;
  return 0;
}

/* A one-shot watch of fd for `events` (UV_READABLE or UV_WRITABLE): argv[0] fd, argv[1] callback. */
static napi_value watch_for(napi_env env, napi_callback_info info, int events, const char *usage) {
  ARGS(2);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, usage);
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  watcher *w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "calloc", ENOMEM);
  if (!callback_init(env, argv[1], "soad:watch", &w->cb)) {
    free(w);
    return throw_type(env, usage);
  }
  w->env = env;
  const char *failed = NULL;
  if (watcher_start(w, loop, fd, events, &failed) < 0) {
    int err = errno;
    if (!w->closing) {
      callback_free(env, &w->cb);
      free(w);
    }
    return throw_errno(env, failed, err);
  }
  return make_int(env, w->id);
}

/* watch(fd, callback(error | null)) -> id. The callback runs once, when the fd is readable. */
napi_value watch(napi_env env, napi_callback_info info) {
  return watch_for(env, info, UV_READABLE, "watch(fd, callback)");
}

/* watchWritable(fd, callback(error | null)) -> id. The callback runs once, when the fd can be written to. */
napi_value watch_writable(napi_env env, napi_callback_info info) {
  return watch_for(env, info, UV_WRITABLE, "watchWritable(fd, callback)");
}

/* nonBlocking(fd): sets O_NONBLOCK on fd's file description (as libuv does to a pipe or socket it writes to). */
napi_value non_blocking(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "nonBlocking(fd)");
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return throw_errno(env, "fcntl(F_GETFL)", errno);
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return throw_errno(env, "fcntl(F_SETFL)", errno);
  return make_undefined(env);
}

/* unwatch(id): stops a watch that has not fired; does nothing for one that has. */
napi_value unwatch(napi_env env, napi_callback_info info) {
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

/* ---------------------------------------------------------------- until nothing is pending
 *
 * While a started app has not yet accepted what woke it, soad looks whether a connection is still pending on its
 * listeners. Looked at from JS every 20 ms, that cost a wake of the Effect runtime each time (a timer, a fiber's
 * turn): most of soad's CPU while an app starts. Here a timer on Node's own loop (uv_timer_t) polls the listeners
 * in C and JS hears once, when none has a connection pending (or a poll failed).
 */

#define DRAIN_MAX_FDS 64

typedef struct drain {
  uv_timer_t timer;
  napi_env env;
  js_callback cb;
  uint32_t id;
  bool closing;
  uint32_t nfds;
  int32_t fds[DRAIN_MAX_FDS];
  struct drain *next;
} drain;

static drain *drains = NULL;
static uint32_t next_drain_id = 1;

static void drain_closed(uv_handle_t *handle) {
  drain *d = (drain *)handle->data;
  callback_free(d->env, &d->cb);
  free(d);
}

static void drain_close(drain *d) {
  if (d->closing) return;
  d->closing = true;
  for (drain **p = &drains; *p != NULL; p = &(*p)->next)
    if (*p == d) {
      *p = d->next;
      break;
    }
  uv_close((uv_handle_t *)&d->timer, drain_closed);
}

/* Is a connection pending on any of d's listeners? 0 (no), 1 (yes), or -1 with errno and *fd. */
static int drain_pending(const drain *d, int32_t *fd) {
  for (uint32_t i = 0; i < d->nfds; i++) {
    bool waiting = false;
    if (listener_pending(d->fds[i], &waiting) < 0) {
      *fd = d->fds[i];
      return -1;
    }
    if (waiting) return 1;
  }
  return 0;
}

static void drain_tick(uv_timer_t *handle) {
  drain *d = (drain *)handle->data;
  if (d->closing) return;
  int32_t fd = -1;
  int r = drain_pending(d, &fd);
  if (r == 1) return;
  int err = r < 0 ? errno : 0;
  napi_env env = d->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    drain_close(d);
    return;
  }
  napi_value arg;
  if (err != 0) {
    char text[96];
    snprintf(text, sizeof text, "poll(fd %d): %s", (int)fd, strerror(err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &arg);
  } else {
    napi_get_null(env, &arg);
  }
  drain_close(d); /* unlinked now; freed in the close callback, after this call */
  call_js(env, d->cb.fn, d->cb.ctx, 1, &arg);
  napi_close_handle_scope(env, scope);
}

/*
 * awaitDrained(fds, intervalMs, callback(error | null)) -> id. Looks every intervalMs (the first look after one
 * interval) whether a connection is pending on any of fds (at most 64); the callback runs once, with null when none
 * is, or with what failed.
 */
napi_value await_drained(napi_env env, napi_callback_info info) {
  ARGS(3);
  const char *usage = "awaitDrained(fds, intervalMs, callback)";
  uint32_t nfds = 0;
  bool is_array = false;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) return throw_type(env, usage);
  if (napi_get_array_length(env, argv[0], &nfds) != napi_ok || nfds == 0 || nfds > DRAIN_MAX_FDS) return throw_type(env, usage);
  int32_t interval;
  if (!get_int(env, argv[1], &interval) || interval < 1) return throw_type(env, usage);
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  drain *d = calloc(1, sizeof *d);
  if (d == NULL) return throw_errno(env, "calloc", ENOMEM);
  d->nfds = nfds;
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || !get_int(env, v, &d->fds[i]) || d->fds[i] < 0) {
      free(d);
      return throw_type(env, usage);
    }
  }
  if (!callback_init(env, argv[2], "soad:awaitDrained", &d->cb)) {
    free(d);
    return throw_type(env, "awaitDrained: callback must be a function");
  }
  d->env = env;
  d->timer.data = d;
  int r = uv_timer_init(loop, &d->timer);
  if (r < 0) {
    callback_free(env, &d->cb);
    free(d);
    return throw_errno(env, "uv_timer_init", -r);
  }
  r = uv_timer_start(&d->timer, drain_tick, (uint64_t)interval, (uint64_t)interval);
  if (r < 0) {
    d->closing = true;
    uv_close((uv_handle_t *)&d->timer, drain_closed);
    return throw_errno(env, "uv_timer_start", -r);
  }
  d->id = next_drain_id++;
  if (next_drain_id == 0) next_drain_id = 1;
  d->next = drains;
  drains = d;
  return make_int(env, d->id);
}

/* cancelDrained(id): ends a wait that has not called back; does nothing for one that has. */
napi_value cancel_drained(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "cancelDrained(id)");
  for (drain *d = drains; d != NULL; d = d->next)
    if (d->id == id) {
      drain_close(d);
      break;
    }
  return make_undefined(env);
}
