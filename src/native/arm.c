/*
 * arm.c: armSpawn / disarmSpawn, the cold path in native code. JS arms a service's listeners with a prepared start
 * (the spawn spec, read and checked once, its command already found on PATH); the first connection pending on any
 * of them wakes the poll callback, which starts the app at once (spawn_start: clone3, exec) with no JS between the
 * wake and the fork, then tells JS which listener woke and the pid, or the error. Whether a service is armed at all
 * (its backoff, the RAM budget) is JS's decision; a start that has not fired is disarmed and leaves nothing behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <uv.h>

#include "soad.h"
#include "spawn.h"
#include "sys.h"
#include "glibc.h"

struct armed;

/* One listener's poll; freed with its armed start once every poll is closed. */
typedef struct {
  uv_poll_t handle;
  struct armed *owner;
  uint32_t index;
} arm_poll;

typedef struct armed {
  napi_env env;
  uint32_t id;
  spawn_spec spec;
  char *cgroup;     /* the app's cgroup directory (made by JS), opened only at the start; NULL: none */
  uint32_t outputs; /* output pipes made at the start: 0, 1 (stderr) or 2 (stdout and stderr) */
  js_callback on_exit, on_started;
  bool has_callbacks; /* on_exit and on_started are still this arm's to free */
  arm_poll *polls;
  uint32_t npolls, open_polls;
  bool done; /* fired or disarmed: its polls are closing */
  struct armed *next;
} armed;

static armed *arms = NULL;
static uint32_t next_arm_id = 1;

static void arm_unlink(armed *a) {
  for (armed **p = &arms; *p != NULL; p = &(*p)->next)
    if (*p == a) {
      *p = a->next;
      return;
    }
}

static void arm_poll_closed(uv_handle_t *handle) {
  armed *a = ((arm_poll *)handle->data)->owner;
  if (--a->open_polls > 0) return;
  free(a->polls);
  free(a);
}

/* Ends an armed start: no longer listed, its polls closed (the memory goes with the last), its spec freed. */
static void arm_end(armed *a) {
  a->done = true;
  arm_unlink(a);
  spawn_spec_free(&a->spec);
  free(a->cgroup);
  a->cgroup = NULL;
  if (a->has_callbacks) {
    callback_free(a->env, &a->on_exit);
    callback_free(a->env, &a->on_started);
    a->has_callbacks = false;
  }
  if (a->open_polls == 0) {
    free(a->polls);
    free(a);
    return;
  }
  /* polls[0 .. open_polls) were initialised, in order; none is closing yet (an arm ends once). */
  for (uint32_t i = 0; i < a->open_polls; i++) uv_close((uv_handle_t *)&a->polls[i].handle, arm_poll_closed);
}

/* What a start made for the app: the read ends of its output pipes (-1: none). */
typedef struct {
  int stdout_read, stderr_read;
} arm_outputs;

/*
 * onStarted(index, pid | null, error | null, spawnMs, wokeAtNs, stdoutRead, stderrRead): error as throw_errno
 * makes it (errno, syscall); both null: the listener no longer listens, nothing was started. The read ends are -1
 * where there is no pipe.
 */
static void arm_report(napi_env env, js_callback *cb, uint32_t index, pid_t pid, int err, const char *step,
                       double spawn_ms, long long woke_ns, arm_outputs out) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[7];
  napi_create_uint32(env, index, &args[0]);
  if (err == 0 && pid < 0) {
    napi_get_null(env, &args[1]);
    napi_get_null(env, &args[2]);
  } else if (err == 0) {
    napi_create_int32(env, pid, &args[1]);
    napi_get_null(env, &args[2]);
  } else {
    napi_get_null(env, &args[1]);
    if ((args[2] = make_errno_error(env, step, err)) == NULL) napi_get_null(env, &args[2]);
  }
  napi_create_double(env, spawn_ms, &args[3]);
  napi_create_bigint_int64(env, woke_ns, &args[4]);
  napi_create_int32(env, out.stdout_read, &args[5]);
  napi_create_int32(env, out.stderr_read, &args[6]);
  call_js(env, cb->fn, cb->ctx, 7, args);
  napi_close_handle_scope(env, scope);
}

/*
 * What the start needs that would hold fds while armed, made now: the cgroup directory opened, the output pipes.
 * 0, or -1 with errno and the call in step (nothing left open).
 */
static int arm_open(armed *a, int pipes[2][2], char step[40]) {
  spawn_spec *s = &a->spec;
  if (a->cgroup != NULL && (s->cgroup_fd = open(a->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    strcpy(step, "open");
    return -1;
  }
  for (uint32_t i = 0; i < a->outputs; i++)
    if (pipe_cloexec(pipes[i]) < 0) {
      for (uint32_t j = 0; j < i; j++) close_keep_errno(pipes[j][0]), close_keep_errno(pipes[j][1]);
      if (s->cgroup_fd >= 0) close_keep_errno(s->cgroup_fd);
      s->cgroup_fd = -1;
      strcpy(step, "pipe2");
      return -1;
    }
  /* pipes[0] is stderr's; pipes[1], if made, stdout's */
  if (a->outputs > 0) s->stderr_fd = pipes[0][1];
  if (a->outputs > 1) s->stdout_fd = pipes[1][1];
  return 0;
}

/* After the start: soad keeps only the read ends, and only if the app runs. */
static arm_outputs arm_close(armed *a, int pipes[2][2], bool started) {
  arm_outputs out = {-1, -1};
  if (a->spec.cgroup_fd >= 0) close(a->spec.cgroup_fd);
  a->spec.cgroup_fd = -1;
  for (uint32_t i = 0; i < a->outputs; i++) {
    close(pipes[i][1]);
    if (!started) close(pipes[i][0]);
  }
  if (started && a->outputs > 0) out.stderr_read = pipes[0][0];
  if (started && a->outputs > 1) out.stdout_read = pipes[1][0];
  return out;
}

/* Does the listener polled by handle still listen? An app may have shut it down: then it polls readable forever
 * (POLLHUP), and that is no connection. 0, or -1 with errno and the call in step. */
static int arm_listening(uv_poll_t *handle, bool *alive, char step[40]) {
  uv_os_fd_t fd;
  const char *failed = NULL;
  int r = uv_fileno((uv_handle_t *)handle, &fd);
  if (r < 0) {
    errno = -r;
    failed = "uv_fileno";
  } else if (listener_alive(fd, alive, &failed) == 0) {
    return 0;
  }
  strncpy(step, failed, 39);
  step[39] = '\0';
  return -1;
}

/* A connection is pending on one of the listeners: start the app now, then tell JS (the listener no longer listens:
 * nothing is started, and JS is told so). */
static void arm_fired(uv_poll_t *handle, int status, int events) {
  (void)events;
  arm_poll *p = (arm_poll *)handle->data;
  armed *a = p->owner;
  if (a->done) return;
  long long woke = monotonic_ns();
  napi_env env = a->env;
  uint32_t index = p->index;
  pid_t pid = -1;
  char step[40] = "uv_poll";
  int err = status < 0 ? -status : 0;
  bool alive = true;
  if (err == 0 && arm_listening(handle, &alive, step) < 0) err = errno;
  js_callback on_exit = a->on_exit, on_started = a->on_started;
  a->has_callbacks = false; /* this call owns them now: spawn_start takes on_exit */
  int pipes[2][2];
  bool opened = err == 0 && alive && arm_open(a, pipes, step) == 0;
  if (err == 0 && alive && !opened) err = errno;
  if (opened && spawn_start(env, &a->spec, &on_exit, &pid, step) < 0) err = errno;
  else if (!opened) callback_free(env, &on_exit);
  arm_outputs out = opened ? arm_close(a, pipes, err == 0) : (arm_outputs){-1, -1};
  double spawn_ms = (double)(monotonic_ns() - woke) / 1e6;
  arm_end(a); /* before the report: JS may arm again from it */
  arm_report(env, &on_started, index, pid, err, step, spawn_ms, woke, out);
  callback_free(env, &on_started);
}

/* Polls each listener for a; 0, or -1 with errno and *failed (the polls started are closed by arm_end). */
static int arm_start(armed *a, uv_loop_t *loop, const int32_t *fds, const char **failed) {
  for (uint32_t i = 0; i < a->npolls; i++) {
    arm_poll *p = &a->polls[i];
    p->owner = a;
    p->index = i;
    p->handle.data = p;
    int r = uv_poll_init(loop, &p->handle, fds[i]);
    if (r < 0) {
      errno = -r;
      *failed = "uv_poll_init";
      return -1;
    }
    a->open_polls++;
    r = uv_poll_start(&p->handle, UV_READABLE, arm_fired);
    if (r < 0) {
      errno = -r;
      *failed = "uv_poll_start";
      return -1;
    }
  }
  return 0;
}

/* Reads the listener fds (at most 64) into a fresh array; NULL if they are not whole numbers. */
static int32_t *read_fds(napi_env env, napi_value array, uint32_t *count) {
  if (napi_get_array_length(env, array, count) != napi_ok || *count == 0 || *count > 64) return NULL;
  int32_t *fds = calloc(*count, sizeof *fds);
  for (uint32_t i = 0; fds != NULL && i < *count; i++) {
    napi_value v;
    if (napi_get_element(env, array, i, &v) != napi_ok || !get_int(env, v, &fds[i]) || fds[i] < 0) {
      free(fds);
      return NULL;
    }
  }
  return fds;
}

/* Reads armSpawn's own options: { cgroup?: path, outputs: 0 | 1 | 2 }; false if wrong. */
static bool arm_options_read(napi_env env, napi_value opts, armed *a) {
  napi_value v;
  if (get_optional(env, opts, "cgroup", &v) && (a->cgroup = get_string(env, v, NULL)) == NULL) return false;
  if (get_optional(env, opts, "outputs", &v) && (napi_get_value_uint32(env, v, &a->outputs) != napi_ok || a->outputs > 2))
    return false;
  return true;
}

/*
 * armSpawn(listenerFds, file, argv, env, fds, options, onExit, onStarted, armOptions) -> id
 * file .. options as for spawn, without cgroupFd, stdoutFd and stderrFd: armOptions.cgroup (a cgroup directory)
 * is opened, and armOptions.outputs pipes made (1: stderr, 2: stdout and stderr), only at the start, so that an
 * armed service holds no fd. onStarted(index, pid | null, error | null, spawnMs, wokeAtNs, stdoutRead, stderrRead)
 * runs once, after the app was started (or failed to) for a connection pending on listenerFds[index], or with pid
 * and error null if that listener woke because it no longer listens (nothing started); wokeAtNs is
 * CLOCK_MONOTONIC at the wake; the read ends are soad's (-1: none). onExit as for spawn. Throws (nothing armed) if
 * the spec is wrong or the command cannot be found.
 */
napi_value arm_spawn(napi_env env, napi_callback_info info) {
  ARGS(9);
  uint32_t nfds;
  int32_t *fds = read_fds(env, argv[0], &nfds);
  if (fds == NULL) return throw_type(env, "armSpawn: listenerFds must be 1 to 64 fds");
  armed *a = calloc(1, sizeof *a);
  arm_poll *polls = calloc(nfds, sizeof *polls);
  if (a == NULL || polls == NULL) {
    free(fds), free(a), free(polls);
    return throw_errno(env, "calloc", ENOMEM);
  }
  a->env = env;
  a->polls = polls;
  a->npolls = nfds;
  const char *failed = NULL;
  if (!spawn_spec_read(env, &argv[1], &a->spec) || a->spec.cgroup_fd >= 0 || a->spec.stdout_fd >= 0 ||
      a->spec.stderr_fd >= 0 || !arm_options_read(env, argv[8], a)) {
    spawn_spec_free(&a->spec);
    free(a->cgroup);
    free(fds), free(a), free(polls);
    return throw_type(env, "armSpawn(listenerFds, file, argv, env, fds, options, onExit, onStarted, armOptions): bad arguments");
  }
  if (spawn_prepare(&a->spec, &failed) < 0) {
    int err = errno;
    spawn_spec_free(&a->spec);
    free(a->cgroup);
    free(fds), free(a), free(polls);
    return throw_errno(env, failed, err);
  }
  if (!callback_init(env, argv[6], "soad:child", &a->on_exit)) {
    spawn_spec_free(&a->spec);
    free(a->cgroup);
    free(fds), free(a), free(polls);
    return throw_type(env, "armSpawn: onExit must be a function");
  }
  if (!callback_init(env, argv[7], "soad:armed", &a->on_started)) {
    callback_free(env, &a->on_exit);
    spawn_spec_free(&a->spec);
    free(a->cgroup);
    free(fds), free(a), free(polls);
    return throw_type(env, "armSpawn: onStarted must be a function");
  }
  a->has_callbacks = true;
  uv_loop_t *loop;
  int r = napi_get_uv_event_loop(env, &loop) == napi_ok ? arm_start(a, loop, fds, &failed) : (errno = EINVAL, failed = "napi_get_uv_event_loop", -1);
  int err = errno;
  free(fds);
  if (r < 0) {
    arm_end(a);
    return throw_errno(env, failed, err);
  }
  a->id = next_arm_id++;
  if (next_arm_id == 0) next_arm_id = 1;
  a->next = arms;
  arms = a;
  return make_int(env, a->id);
}

/* disarmSpawn(id) -> boolean: true if the armed start was ended before it fired, false if it had fired (or never was). */
napi_value disarm_spawn(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "disarmSpawn(id)");
  for (armed *a = arms; a != NULL; a = a->next)
    if (a->id == id) {
      arm_end(a);
      return make_bool(env, true);
    }
  return make_bool(env, false);
}
