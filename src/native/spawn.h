/*
 * spawn.h: what spawn.c shares with arm.c, which starts a prepared app from a poll callback: the spawn spec, read
 * from JS once and checked (spawn_spec_read, spawn_prepare), and one start of it (spawn_start).
 */
#ifndef SOAD_SPAWN_H
#define SOAD_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "napi.h"

typedef struct {
  char *file;
  char **argv;
  size_t argc;
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
  char *listen_pid_slot;   /* the digits of LISTEN_PID= in envp, filled in by the child */
  const char *search_path; /* points into envp */
  int32_t cgroup_fd; /* an fd open on the app's cgroup directory, or -1 */
  bool in_cgroup;    /* the child was created in it (clone3), else it joins it itself */
  int32_t stdout_fd, stderr_fd; /* the write ends of soad's output pipes, for the app's fds 1 and 2; -1: soad's own */
  int32_t stdin_fd;             /* --accept: the connection, for the app's fd 0; -1: soad's own */
} spawn_spec;

/* Reads spawn's arguments (file, argv, env, fds, options at args[0..4]) into s; false if any is wrong. */
bool spawn_spec_read(napi_env env, napi_value *args, spawn_spec *s);

/* Before fork: the LISTEN_PID= entry and the command found on PATH. 0, or -1 with errno and *failed. */
int spawn_prepare(spawn_spec *s, const char **failed);

void spawn_spec_free(spawn_spec *s);

/*
 * Starts s and waits until it has exec'd; on success *pid is tracked and on_exit (owned from now on, freed here on
 * failure too) runs with its exit. 0, or -1 with errno and the failing step in step[40].
 */
int spawn_start(napi_env env, spawn_spec *s, js_callback *on_exit, pid_t *pid, char step[40]);

#endif
