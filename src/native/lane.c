/*
 * lane.c: acceptArm, acceptOpen, acceptClose, acceptDisarm: accept mode's connections taken and their instances
 * started in native code. JS arms a service's listeners once with a prepared start (the spawn spec, read and checked
 * once, its command found on PATH, with slots for REMOTE_ADDR and REMOTE_PORT). Whenever JS has a start to give
 * (acceptOpen: it holds a permit and a token of the rate for it, and made the instance's cgroup), the listeners are
 * polled; the poll callback takes a connection, asks JS whether its source may have one more instance (one plain JS
 * call: JS keeps the counts per source), starts the instance at once (spawn_start: clone3, exec) and only then tells
 * JS the pid, or the error. A start given is used up by the instance it starts (or by a failure), and the polls stop
 * until JS gives the next: beyond --max-connections or the rate, connections wait in the backlog.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "accept.h"
#include "soad.h"
#include "spawn.h"
#include "sys.h"
#include "glibc.h"

struct lane;

/* One listener's poll; freed with its lane once every poll is closed. */
typedef struct {
  uv_poll_t handle;
  struct lane *owner;
  uint32_t index;
  int fd;
} lane_poll;

/* The entries of the peer's variables: their names, the longest IPv6 text or a port, the NUL. */
#define REMOTE_ADDR_SIZE (sizeof "REMOTE_ADDR=" + INET6_ADDRSTRLEN)
#define REMOTE_PORT_SIZE (sizeof "REMOTE_PORT=" + 6)

typedef struct lane {
  napi_env env;
  uint32_t id;
  spawn_spec spec;
  size_t remote_at;  /* envp[remote_at] is REMOTE_ADDR=, envp[remote_at + 1] REMOTE_PORT= */
  bool stderr_pipe;  /* each instance's stderr is a pipe soad reads */
  napi_ref on_exit;  /* the function every instance's exit goes to (each child holds a js_callback of its own) */
  js_callback admit, on_started, on_failed;
  bool has_callbacks;
  lane_poll *polls;
  uint32_t npolls, open_polls;
  bool given;   /* JS gave a start: the polls run */
  char *cgroup; /* that start's cgroup directory (made by JS), or NULL */
  bool done;    /* disarmed: its polls are closing */
  struct lane *next;
} lane;

static lane *lanes = NULL;
static uint32_t next_lane_id = 1;

static lane *lane_find(uint32_t id) {
  for (lane *l = lanes; l != NULL; l = l->next)
    if (l->id == id) return l;
  return NULL;
}

static void lane_unlink(lane *l) {
  for (lane **p = &lanes; *p != NULL; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      return;
    }
}

static void lane_poll_closed(uv_handle_t *handle) {
  lane *l = ((lane_poll *)handle->data)->owner;
  if (--l->open_polls > 0) return;
  free(l->polls);
  free(l);
}

/* Ends a lane: no longer listed, its polls closed (the memory goes with the last), its spec and callbacks freed.
 * Instances it started live on: each holds its own exit callback. */
static void lane_end(lane *l) {
  l->done = true;
  l->given = false;
  lane_unlink(l);
  spawn_spec_free(&l->spec);
  free(l->cgroup);
  l->cgroup = NULL;
  if (l->has_callbacks) {
    napi_delete_reference(l->env, l->on_exit);
    callback_free(l->env, &l->admit);
    callback_free(l->env, &l->on_started);
    callback_free(l->env, &l->on_failed);
    l->has_callbacks = false;
  }
  if (l->open_polls == 0) {
    free(l->polls);
    free(l);
    return;
  }
  for (uint32_t i = 0; i < l->open_polls; i++) uv_close((uv_handle_t *)&l->polls[i].handle, lane_poll_closed);
}

/* The start given is used up (or taken back): the polls stop, its cgroup directory is JS's again. */
static void lane_pause(lane *l) {
  for (uint32_t i = 0; i < l->open_polls; i++) uv_poll_stop(&l->polls[i].handle);
  l->given = false;
  free(l->cgroup);
  l->cgroup = NULL;
}

/* The peer's variables for this connection: REMOTE_ADDR and REMOTE_PORT for an IP peer; none for a UNIX one (the
 * environment ends before them until lane_unset_remote). */
static void lane_set_remote(lane *l, const accepted *c) {
  char **envp = l->spec.envp;
  if (!c->inet) {
    envp[l->remote_at] = NULL;
    return;
  }
  snprintf(envp[l->remote_at], REMOTE_ADDR_SIZE, "REMOTE_ADDR=%s", c->ip);
  snprintf(envp[l->remote_at + 1], REMOTE_PORT_SIZE, "REMOTE_PORT=%d", c->port);
}

static void lane_unset_remote(lane *l, char *addr_entry) {
  l->spec.envp[l->remote_at] = addr_entry;
}

/* admit(index, ip | null, port, uid): may this peer's source have one more instance? -1: not known. */
static bool lane_admit(lane *l, uint32_t index, const accepted *c) {
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  napi_value args[4];
  napi_create_uint32(env, index, &args[0]);
  if (c->inet) napi_create_string_utf8(env, c->ip, NAPI_AUTO_LENGTH, &args[1]);
  else napi_get_null(env, &args[1]);
  napi_create_int32(env, c->inet ? c->port : -1, &args[2]);
  napi_create_double(env, c->has_uid ? (double)c->uid : -1, &args[3]);
  bool yes = call_js_bool(env, l->admit.fn, l->admit.ctx, 4, args);
  napi_close_handle_scope(env, scope);
  return yes;
}

/* onStarted(index, pid | null, error | null, connection, stderrRead): on an error, connection is soad's fd of the
 * connection, JS's now (to start it again, or close it); else -1 (the instance has it). stderrRead: -1 if none. */
static void lane_report_started(lane *l, uint32_t index, pid_t pid, int err, const char *step, int connection,
                                int stderr_read) {
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[5];
  napi_create_uint32(env, index, &args[0]);
  if (err == 0) {
    napi_create_int32(env, pid, &args[1]);
    napi_get_null(env, &args[2]);
  } else {
    napi_get_null(env, &args[1]);
    if ((args[2] = make_errno_error(env, step, err)) == NULL) napi_get_null(env, &args[2]);
  }
  napi_create_int32(env, connection, &args[3]);
  napi_create_int32(env, stderr_read, &args[4]);
  call_js(env, l->on_started.fn, l->on_started.ctx, 5, args);
  napi_close_handle_scope(env, scope);
}

/* onFailed(index, error): accepting failed; the lane is paused and its start is JS's again. */
static void lane_report_failed(lane *l, uint32_t index, const char *step, int err) {
  napi_env env = l->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[2];
  napi_create_uint32(env, index, &args[0]);
  if ((args[1] = make_errno_error(env, step, err)) == NULL) napi_get_null(env, &args[1]);
  call_js(env, l->on_failed.fn, l->on_failed.ctx, 2, args);
  napi_close_handle_scope(env, scope);
}

/* A js_callback of its own for one instance's exit, on the lane's function; false on failure. */
static bool lane_exit_callback(lane *l, js_callback *cb) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(l->env, &scope) != napi_ok) return false;
  napi_value fn;
  bool ok = napi_get_reference_value(l->env, l->on_exit, &fn) == napi_ok && fn != NULL &&
            callback_init(l->env, fn, "soad:child", cb);
  napi_close_handle_scope(l->env, scope);
  return ok;
}

/*
 * What the instance needs that holds fds, made now: its cgroup directory opened, its stderr pipe. 0, or -1 with
 * errno and the call in step (nothing left open).
 */
static int lane_open(lane *l, const char *cgroup, int pipefd[2], char step[40]) {
  spawn_spec *s = &l->spec;
  if (cgroup != NULL && (s->cgroup_fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    strcpy(step, "open");
    return -1;
  }
  if (l->stderr_pipe && pipe_cloexec(pipefd) < 0) {
    if (s->cgroup_fd >= 0) close_keep_errno(s->cgroup_fd);
    s->cgroup_fd = -1;
    strcpy(step, "pipe2");
    return -1;
  }
  s->stderr_fd = pipefd[1];
  return 0;
}

/* Starts the connection's instance with the start given, then tells JS. */
static void lane_start(lane *l, uint32_t index, const accepted *c) {
  spawn_spec *s = &l->spec;
  char *cgroup = l->cgroup;
  l->cgroup = NULL;
  lane_pause(l); /* the start given is used up */
  char step[40] = "";
  pid_t pid = -1;
  int err = 0;
  int pipefd[2] = {-1, -1};
  char *addr_entry = s->envp[l->remote_at];
  s->fds[0] = s->stdin_fd = s->stdout_fd = c->fd;
  lane_set_remote(l, c);
  js_callback on_exit;
  if (lane_open(l, cgroup, pipefd, step) < 0) err = errno;
  else if (!lane_exit_callback(l, &on_exit)) err = ENOMEM, strcpy(step, "napi_create_reference");
  else if (spawn_start(l->env, s, &on_exit, &pid, step) < 0) err = errno;
  /* soad keeps the read end of the stderr pipe only if the instance runs, and the connection only if it does not */
  if (s->cgroup_fd >= 0) close(s->cgroup_fd);
  if (pipefd[1] >= 0) close(pipefd[1]);
  if (err != 0 && pipefd[0] >= 0) close(pipefd[0]), pipefd[0] = -1;
  if (err == 0) close(c->fd);
  s->cgroup_fd = s->stderr_fd = s->stdin_fd = s->stdout_fd = s->fds[0] = -1;
  lane_unset_remote(l, addr_entry);
  free(cgroup);
  lane_report_started(l, index, pid, err, step, err == 0 ? -1 : c->fd, pipefd[0]);
}

/* A connection is pending on one of the listeners, and JS gave a start: take it, ask, start its instance. */
static void lane_fired(uv_poll_t *handle, int status, int events) {
  (void)events;
  lane_poll *p = (lane_poll *)handle->data;
  lane *l = p->owner;
  if (l->done || !l->given) return;
  accepted c;
  const char *failed = "uv_poll";
  int r = status < 0 ? (errno = -status, -1) : accept_one(p->fd, &c, &failed);
  if (r == 0) return; /* the client left before it was taken: poll on */
  if (r < 0) {
    int err = errno;
    lane_pause(l);
    lane_report_failed(l, p->index, failed, err);
    return;
  }
  /* Refused (its source has its share): closed at once; the start given stays for the next connection. */
  bool admitted = lane_admit(l, p->index, &c);
  if (!admitted || l->done || !l->given) { /* (admit must not end or close the lane: nothing would start) */
    close(c.fd);
    return;
  }
  lane_start(l, p->index, &c);
}

/* Reads the listener fds (1 to 64); false if they are not whole numbers >= 0. */
static bool lane_fds_read(napi_env env, napi_value array, lane *l) {
  if (napi_get_array_length(env, array, &l->npolls) != napi_ok || l->npolls == 0 || l->npolls > 64) return false;
  if ((l->polls = calloc(l->npolls, sizeof *l->polls)) == NULL) return false;
  for (uint32_t i = 0; i < l->npolls; i++) {
    napi_value v;
    if (napi_get_element(env, array, i, &v) != napi_ok || !get_int(env, v, &l->polls[i].fd) || l->polls[i].fd < 0)
      return false;
  }
  return true;
}

/* The spec as the lane uses it: the connection at fds 0, 1 and 3 (set per instance), REMOTE_* slots after
 * LISTEN_PID=. 0, or -1 with errno and *failed. */
static int lane_prepare(lane *l, const char **failed) {
  spawn_spec *s = &l->spec;
  if (spawn_prepare(s, failed) < 0) return -1;
  char **envp = realloc(s->envp, (s->envc + 3) * sizeof *envp);
  if (envp == NULL) {
    errno = ENOMEM;
    *failed = "realloc";
    return -1;
  }
  s->envp = envp;
  l->remote_at = s->envc;
  envp[s->envc] = malloc(REMOTE_ADDR_SIZE);
  envp[s->envc + 1] = malloc(REMOTE_PORT_SIZE);
  envp[s->envc + 2] = NULL;
  s->envc += 2; /* freed with the spec */
  if (envp[l->remote_at] == NULL || envp[l->remote_at + 1] == NULL) {
    errno = ENOMEM;
    *failed = "malloc";
    return -1;
  }
  strcpy(envp[l->remote_at], "REMOTE_ADDR=");
  strcpy(envp[l->remote_at + 1], "REMOTE_PORT=");
  s->nfds = 1; /* fds has a slot more than JS gave (none) */
  s->fds[0] = -1;
  return 0;
}

/* Reads the callbacks; false if one is not a function. */
static bool lane_callbacks_read(napi_env env, napi_value *args, lane *l) {
  napi_valuetype type;
  if (napi_typeof(env, args[0], &type) != napi_ok || type != napi_function) return false;
  if (napi_create_reference(env, args[0], 1, &l->on_exit) != napi_ok) return false;
  if (!callback_init(env, args[1], "soad:admit", &l->admit)) {
    napi_delete_reference(env, l->on_exit);
    return false;
  }
  if (!callback_init(env, args[2], "soad:started", &l->on_started)) {
    napi_delete_reference(env, l->on_exit);
    callback_free(env, &l->admit);
    return false;
  }
  if (!callback_init(env, args[3], "soad:accept", &l->on_failed)) {
    napi_delete_reference(env, l->on_exit);
    callback_free(env, &l->admit);
    callback_free(env, &l->on_started);
    return false;
  }
  l->has_callbacks = true;
  return true;
}

/* Frees what acceptArm made before the lane was listed. */
static void lane_discard(napi_env env, lane *l) {
  if (l->has_callbacks) {
    napi_delete_reference(env, l->on_exit);
    callback_free(env, &l->admit);
    callback_free(env, &l->on_started);
    callback_free(env, &l->on_failed);
  }
  spawn_spec_free(&l->spec);
  free(l->polls);
  free(l);
}

/* Initialises a poll per listener (not started: acceptOpen starts them); 0, or -1 with errno and *failed. */
static int lane_polls_init(lane *l, uv_loop_t *loop, const char **failed) {
  for (uint32_t i = 0; i < l->npolls; i++) {
    lane_poll *p = &l->polls[i];
    p->owner = l;
    p->index = i;
    p->handle.data = p;
    int r = uv_poll_init(loop, &p->handle, p->fd);
    if (r < 0) {
      errno = -r;
      *failed = "uv_poll_init";
      return -1;
    }
    l->open_polls++;
  }
  return 0;
}

/*
 * acceptArm(listenerFds, file, argv, env, options, onExit, admit, onStarted, onFailed, armOptions) -> id
 * file .. options as for spawn (fds: the instance's are its connection), without cgroupFd and the stdio fds: each
 * instance gets its connection as fds 0, 1 and 3, REMOTE_ADDR and REMOTE_PORT for an IP peer, and with
 * armOptions.stderr a stderr pipe. onExit(code, signal, pid) as spawn's, for every instance. While a start is given
 * (acceptOpen), a connection on listenerFds[index] is taken and admit(index, ip | null, port, uid) asked (-1: not
 * known); false closes it (the start stays given), true starts its instance with the start given, and
 * onStarted(index, pid | null, error | null, connection, stderrRead) follows (on an error, connection is the
 * connection's fd, JS's to close or start again). onFailed(index, error): accepting failed, the start is JS's again.
 * admit must not end or close the lane. Throws (nothing armed) if the spec is wrong or the command cannot be found.
 */
napi_value accept_arm(napi_env env, napi_callback_info info) {
  ARGS(10);
  lane *l = calloc(1, sizeof *l);
  if (l == NULL) return throw_errno(env, "calloc", ENOMEM);
  l->env = env;
  napi_value v;
  bool ok = lane_fds_read(env, argv[0], l);
  napi_value spec_args[5] = {argv[1], argv[2], argv[3], NULL, argv[4]};
  if (ok) ok = napi_create_array(env, &spec_args[3]) == napi_ok && spawn_spec_read(env, spec_args, &l->spec);
  ok = ok && l->spec.cgroup_fd < 0 && l->spec.stdin_fd < 0 && l->spec.stdout_fd < 0 && l->spec.stderr_fd < 0;
  if (ok && get_optional(env, argv[9], "stderr", &v)) ok = get_bool(env, v, &l->stderr_pipe);
  if (!ok || !lane_callbacks_read(env, &argv[5], l)) {
    lane_discard(env, l);
    return throw_type(env, "acceptArm(listenerFds, file, argv, env, options, onExit, admit, onStarted, onFailed, armOptions): bad arguments");
  }
  const char *failed = NULL;
  if (lane_prepare(l, &failed) < 0) {
    int err = errno;
    lane_discard(env, l);
    return throw_errno(env, failed, err);
  }
  uv_loop_t *loop;
  int r = napi_get_uv_event_loop(env, &loop) == napi_ok ? lane_polls_init(l, loop, &failed)
                                                         : (errno = EINVAL, failed = "napi_get_uv_event_loop", -1);
  int err = errno;
  l->id = next_lane_id++;
  if (next_lane_id == 0) next_lane_id = 1;
  l->next = lanes;
  lanes = l;
  if (r < 0) {
    lane_end(l);
    return throw_errno(env, failed, err);
  }
  return make_int(env, l->id);
}

/* acceptOpen(id, cgroup | null): JS gives a start (a permit, a token, this cgroup directory): the listeners are
 * polled until a connection uses it. Throws if one is given already, or with errno if a poll cannot start. */
napi_value accept_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t id;
  lane *l;
  napi_valuetype type;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok || (l = lane_find(id)) == NULL || l->given ||
      napi_typeof(env, argv[1], &type) != napi_ok || (type != napi_null && type != napi_string))
    return throw_type(env, "acceptOpen(id, cgroup | null): no such lane, or a start is given already");
  char *cgroup = NULL;
  if (type == napi_string && (cgroup = get_string(env, argv[1], NULL)) == NULL) return throw_errno(env, "malloc", ENOMEM);
  for (uint32_t i = 0; i < l->open_polls; i++) {
    int r = uv_poll_start(&l->polls[i].handle, UV_READABLE, lane_fired);
    if (r < 0) {
      for (uint32_t j = 0; j < i; j++) uv_poll_stop(&l->polls[j].handle);
      free(cgroup);
      return throw_errno(env, "uv_poll_start", -r);
    }
  }
  l->cgroup = cgroup;
  l->given = true;
  return make_undefined(env);
}

/* acceptClose(id) -> boolean: takes back a start given and not used (true; its cgroup directory is JS's again),
 * false if none was given. */
napi_value accept_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "acceptClose(id)");
  lane *l = lane_find(id);
  if (l == NULL || !l->given) return make_bool(env, false);
  lane_pause(l);
  return make_bool(env, true);
}

/* acceptDisarm(id): the lane ends (a start given is taken back); instances it started live on. */
napi_value accept_disarm(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "acceptDisarm(id)");
  lane *l = lane_find(id);
  if (l != NULL) lane_end(l);
  return make_undefined(env);
}
