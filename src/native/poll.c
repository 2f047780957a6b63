/*
 * poll.c: watch / unwatch, a one-shot readability watch on Node's own loop (uv_poll_t), so soad learns of the first
 * connection on a listener without accepting it. A watcher is freed only in its uv_close callback.
 */
#include <errno.h>
#include <stdlib.h>

#include <uv.h>

#include "soad.h"
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
static int watcher_start(watcher *w, uv_loop_t *loop, int fd, const char **failed) {
  w->poll.data = w;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    errno = -r;
    *failed = "uv_poll_init";
    return -1;
  }
  r = uv_poll_start(&w->poll, UV_READABLE, watcher_fired);
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

/* watch(fd, callback(error | null)) -> id. The callback runs once, when the fd is readable. */
napi_value watch(napi_env env, napi_callback_info info) {
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
  const char *failed = NULL;
  if (watcher_start(w, loop, fd, &failed) < 0) {
    int err = errno;
    if (!w->closing) {
      callback_free(env, &w->cb);
      free(w);
    }
    return throw_errno(env, failed, err);
  }
  return make_int(env, w->id);
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
