/*
 * spawn.c: spawn, fork/exec of an app with the listeners at fds 3.. (blocking), LISTEN_PID = the child's own pid,
 * a new session, a cgroup (created in it with clone3 where the kernel can), uid/gid, the parent-death signal, and
 * last the app's RLIMIT_NOFILE; the exit is reported from SIGCHLD. Between fork and exec the child makes only
 * async-signal-safe calls (the child_* steps). On Linux x86_64 the child shares soad's memory until it execs
 * (clone_vm): it allocates nothing, writes nothing soad reads but the error pipe, and soad's thread waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <uv.h>

#include "soad.h"
#include "spawn.h"
#include "glibc.h"

/* ---------------------------------------------------------------- exits (SIGCHLD) */

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

/* onExit(code | null, signal | null, pid) for a child waitpid returned r (with status) for. The pid lets one JS
 * function serve many children (accept mode's instances). */
static void child_report(child *c, pid_t r, int status) {
  napi_env env = c->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[3];
  napi_create_int32(env, c->pid, &args[2]);
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
  call_js(env, c->cb.fn, c->cb.ctx, 3, args);
  napi_close_handle_scope(env, scope);
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
    child_report(c, r, status);
    callback_free(c->env, &c->cb);
    free(c);
  }
  sigchld_update_ref();
}

/* Watches SIGCHLD on loop (once; the handle keeps the loop alive only while children run). 0, or -1. */
static int sigchld_start(uv_loop_t *loop) {
  if (uv_signal_init(loop, &sigchld) < 0 || uv_signal_start(&sigchld, on_sigchld, SIGCHLD) < 0) return -1;
  uv_unref((uv_handle_t *)&sigchld);
  sigchld_ready = true;
  return 0;
}

/* Lists a running child for on_sigchld; 0, or -1 with errno ENOMEM. */
static int child_track(napi_env env, pid_t pid, js_callback cb) {
  child *c = calloc(1, sizeof *c);
  if (c == NULL) {
    errno = ENOMEM;
    return -1;
  }
  c->pid = pid;
  c->env = env;
  c->cb = cb;
  c->next = children;
  children = c;
  sigchld_update_ref();
  return 0;
}

/* ---------------------------------------------------------------- the command */

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


void spawn_spec_free(spawn_spec *s) {
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

/* ---------------------------------------------------------------- in the child, between fork and exec */

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

/*
 * setgroups, setgid and setuid of this process alone. glibc's wrappers are not: in a process it believes
 * multi-threaded (soad's, and a child cloned from it without glibc's fork) they lock glibc's thread list and mark
 * every thread listed in it, which in a child sharing soad's memory are soad's own live threads. The raw system
 * calls change the calling thread's credentials, which in the child is the whole process.
 */
#if defined(__linux__)
#if defined(SYS_setgroups32) /* 32-bit ABIs: the plain calls take 16-bit ids */
#define SOAD_SYS_SETGROUPS SYS_setgroups32
#define SOAD_SYS_SETGID SYS_setgid32
#define SOAD_SYS_SETUID SYS_setuid32
#else
#define SOAD_SYS_SETGROUPS SYS_setgroups
#define SOAD_SYS_SETGID SYS_setgid
#define SOAD_SYS_SETUID SYS_setuid
#endif
static int raw_setgroups(int n, const gid_t *groups) { return (int)syscall(SOAD_SYS_SETGROUPS, n, groups); }
static int raw_setgid(gid_t gid) { return (int)syscall(SOAD_SYS_SETGID, gid); }
static int raw_setuid(uid_t uid) { return (int)syscall(SOAD_SYS_SETUID, uid); }
#else
static int raw_setgroups(int n, const gid_t *groups) { return setgroups(n, groups); }
static int raw_setgid(gid_t gid) { return setgid(gid); }
static int raw_setuid(uid_t uid) { return setuid(uid); }
#endif

/* Makes the child the user and groups of the spec; afterwards it can neither get root back nor keep root's groups. */
static const char *child_switch_user(const spawn_spec *s) {
  if (s->set_gid) {
    if (raw_setgroups(s->ngroups, s->groups) < 0) return "setgroups";
    if (raw_setgid((gid_t)s->gid) < 0) return "setgid";
    if (getgid() != (gid_t)s->gid || getegid() != (gid_t)s->gid) {
      errno = EPERM;
      return "setgid";
    }
  }
  if (s->set_uid) {
    if (raw_setuid((uid_t)s->uid) < 0) return "setuid";
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

/* The write ends of soad's output pipes onto fds 1 and 2, and an accepted connection onto fd 0 (and 1) (dup2 clears
 * close-on-exec on the target only). They are fds soad opened after Node's start, so never 0-2 themselves. */
static const char *child_redirect_output(const spawn_spec *s) {
  if (s->stdin_fd >= 0 && dup2(s->stdin_fd, 0) < 0) return "dup2(stdin)";
  if (s->stdout_fd >= 0 && dup2(s->stdout_fd, 1) < 0) return "dup2(stdout)";
  if (s->stderr_fd >= 0 && dup2(s->stderr_fd, 2) < 0) return "dup2(stderr)";
  return NULL;
}

/* The app's stdio: fds 1 and 2 are soad's output pipes when the spec has them, else soad's own (and fd 0 is,
 * unless it is an accepted connection). Node marks fds 0-2 close-on-exec and its pipes non-blocking; undo both (libuv does the same for
 * `stdio: "inherit"`). A closed fd is left closed. */
static const char *child_fix_stdio(const spawn_spec *s) {
  const char *step = child_redirect_output(s);
  if (step != NULL) return step;
  for (int fd = 0; fd <= 2; fd++) {
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags >= 0 && (fdflags & FD_CLOEXEC)) fcntl(fd, F_SETFD, fdflags & ~FD_CLOEXEC);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  return NULL;
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
 * app that wants more raises it itself, up to the hard limit it keeps. Only once soad's own fds are closed, right
 * before exec: the limit bounds the fds a process may newly open, so with it lowered earlier, moving the listeners
 * above 3 + n (F_DUPFD_CLOEXEC) failed with EMFILE as soon as soad held fds 4-1023 (about 1,020 fds: 170 relayed
 * connections, 1,000 listeners). The error pipe may stay above the new limit: fds already open are not touched. */
static const char *child_limit_nofile(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0) return "getrlimit(RLIMIT_NOFILE)";
  if (limit.rlim_cur <= 1024) return NULL;
  limit.rlim_cur = 1024;
  return setrlimit(RLIMIT_NOFILE, &limit) < 0 ? "setrlimit(RLIMIT_NOFILE)" : NULL;
}

/* Runs in the child between fork and exec: async-signal-safe calls only. Never returns. */
static void child_exec(const spawn_spec *s, int errfd, pid_t parent) {
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
  if ((step = child_fix_stdio(s)) != NULL) goto fail;
  if ((step = child_switch_user(s)) != NULL) goto fail;
  if (s->pdeathsig && (step = child_die_with_parent(parent)) != NULL) goto fail;
  /* After the switch: the app's user must be able to enter its working directory. */
  if (s->cwd != NULL && chdir(s->cwd) < 0) { step = "chdir"; goto fail; }
  if ((step = child_place_listeners(s)) != NULL) goto fail;
  /* Nothing else of soad's reaches the app, not even fds soad inherited without close-on-exec. */
  close_from(3 + (int)s->nfds, errfd);
  /* Last: the copies above need free fds below soad's own limit (see child_limit_nofile); exec opens none. */
  if ((step = child_limit_nofile()) != NULL) goto fail;
  if (s->listen_pid_slot != NULL) format_uint(s->listen_pid_slot, (unsigned long)getpid());
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

/* ---------------------------------------------------------------- in soad */

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

/* What the child starts from: the spec, the error pipe (the child closes its read end), soad's pid. */
typedef struct {
  const spawn_spec *spec;
  int pipefd[2];
  pid_t parent;
} child_start;

/* The child's first function, on its own stack or after fork. Never returns. */
static void child_entry(void *arg) {
  const child_start *c = arg;
  close(c->pipefd[0]);
  child_exec(c->spec, c->pipefd[1], c->parent);
}

/*
 * clone3 with CLONE_VM | CLONE_VFORK, as posix_spawn does: the child borrows soad's memory until it execs, so the
 * kernel copies no page tables (with fork they cost ~0.4 ms for Node's address space, and as much again to
 * tear down at exec), and soad's thread waits until the child has exec'd or exited. No libc wrapper runs a
 * function on a new stack for clone3, hence this trampoline, as glibc's clone.S: soad_clone3_vm(args, size, fn, arg)
 * returns the pid or -errno in soad; the child, on the stack given in args, calls fn(arg) and never returns into
 * soad's frames. x86_64 only: elsewhere soad forks (fork_into). An aarch64 trampoline was deleted unrun: the only arm64 soad can
 * test here runs under qemu-user (test/e2e/arm64.test.ts), whose clone3 answers ENOSYS and whose clone turns
 * CLONE_VM | CLONE_VFORK into a plain fork (measured with qemu 7.2: the child's writes are not seen by the parent).
 */
#if defined(__linux__) && defined(__x86_64__)
#define SOAD_CLONE_VM 1
#define SOAD_CLONE_VM_FLAGS 0x4100ULL /* CLONE_VM | CLONE_VFORK */
long soad_clone3_vm(struct soad_clone_args *args, size_t size, void (*fn)(void *), void *arg)
    __attribute__((visibility("hidden")));
/* rdi args, rsi size, rdx fn, rcx arg; syscall clobbers rcx and r11 only, so the child still has rdx and r8. */
__asm__(".text\n"
        ".globl soad_clone3_vm\n"
        ".hidden soad_clone3_vm\n"
        ".type soad_clone3_vm, @function\n"
        "soad_clone3_vm:\n"
        "  endbr64\n"
        "  mov %rcx, %r8\n"
        "  mov $435, %eax\n" /* SYS_clone3 */
        "  syscall\n"
        "  test %rax, %rax\n"
        "  jnz 1f\n"
        "  xor %ebp, %ebp\n" /* the child: a new stack, 16-byte aligned at its top; no frame to return to */
        "  mov %r8, %rdi\n"
        "  call *%rdx\n"
        "  mov $127, %edi\n"
        "  mov $60, %eax\n" /* SYS_exit, should fn return */
        "  syscall\n"
        "  hlt\n"
        "1:\n"
        "  ret\n"
        ".size soad_clone3_vm, .-soad_clone3_vm\n");

/* The child's stack, in the frame of clone_vm, which soad's thread does not touch until the child has exec'd. */
#define SOAD_CHILD_STACK (32 * 1024)

/*
 * Starts the child sharing soad's memory (see above), in the cgroup from its creation if cgroup_fd >= 0: *pid.
 * 0; -1 with errno; 1 if the kernel (or a seccomp filter) refuses this clone3, and the caller forks instead.
 * errno is the one of soad's thread, which the child shares: it is set here only from the return value.
 */
static int clone_vm(int cgroup_fd, child_start *c, pid_t *pid) {
  _Alignas(16) char stack[SOAD_CHILD_STACK];
  struct soad_clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = SOAD_CLONE_VM_FLAGS | (cgroup_fd >= 0 ? SOAD_CLONE_INTO_CGROUP : 0);
  args.exit_signal = SIGCHLD;
  args.stack = (uint64_t)(uintptr_t)stack;
  args.stack_size = sizeof stack;
  args.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
  long r = soad_clone3_vm(&args, sizeof args, child_entry, c);
  if (r >= 0) {
    *pid = (pid_t)r;
    return 0;
  }
  if (r == -ENOSYS || r == -E2BIG || r == -EINVAL || r == -EPERM) return 1;
  errno = (int)-r;
  return -1;
}
#endif

/* Starts the child: sharing soad's memory where it can, else by fork_into. *pid, or -1 with errno. */
static pid_t start_child(spawn_spec *s, child_start *c) {
#if defined(SOAD_CLONE_VM)
  pid_t pid;
  s->in_cgroup = s->cgroup_fd >= 0; /* read by the child, which starts in it */
  int r = clone_vm(s->cgroup_fd, c, &pid);
  if (r <= 0) return r == 0 ? pid : -1;
#endif
  pid_t forked = fork_into(s->cgroup_fd, &s->in_cgroup);
  if (forked == 0) child_entry(c);
  return forked;
}

/* Before fork: the LISTEN_PID= entry (its digits filled in by the child), and the command found on PATH, so a
 * missing one fails without a fork. 0, or -1 with errno and *failed. */
int spawn_prepare(spawn_spec *s, const char **failed) {
  if (s->listen_pid) {
    char *entry = malloc(sizeof "LISTEN_PID=" + 24);
    if (entry == NULL) {
      errno = ENOMEM;
      *failed = "malloc";
      return -1;
    }
    strcpy(entry, "LISTEN_PID=");
    s->listen_pid_slot = entry + strlen("LISTEN_PID=");
    format_uint(s->listen_pid_slot, 0);
    s->envp[s->envc++] = entry;
  }
  char path[PATH_MAX];
  int err = resolve_executable(s->file, s->envp, path, sizeof path);
  s->search_path = search_path(s->envp);
  if (err != 0) {
    errno = err;
    *failed = "execve";
    return -1;
  }
  return 0;
}

/* The close-on-exec pipe on which the child reports a failure before exec; 0, or -1 with errno. */
static int error_pipe(int pipefd[2]) {
#ifdef __linux__
  return pipe2(pipefd, O_CLOEXEC);
#else
  if (pipe(pipefd) < 0) return -1;
  if (fcntl(pipefd[0], F_SETFD, FD_CLOEXEC) < 0 || fcntl(pipefd[1], F_SETFD, FD_CLOEXEC) < 0) return -1;
  return 0;
#endif
}

/*
 * Forks the child and waits until it has exec'd: *pid. 0, or -1 with errno and the failing step in step[40]
 * (pipe, fork, or the child's own step before exec; a child that failed has been reaped).
 */
static int spawn_exec(spawn_spec *s, pid_t *pid, char step[40]) {
  int pipefd[2];
  if (error_pipe(pipefd) < 0) {
    strcpy(step, "pipe");
    return -1;
  }
  /* No handler of ours may run in the child before it resets them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  child_start start = {.spec = s, .pipefd = {pipefd[0], pipefd[1]}, .parent = getpid()};
  *pid = start_child(s, &start);
  int fork_err = *pid < 0 ? errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(pipefd[1]);
  if (fork_err != 0) {
    close(pipefd[0]);
    errno = fork_err;
    strcpy(step, "fork");
    return -1;
  }

  /* Wait for exec: EOF means it succeeded; a message means the child failed before it. */
  char msg[40];
  ssize_t n;
  do n = read(pipefd[0], msg, sizeof msg);
  while (n < 0 && errno == EINTR);
  close(pipefd[0]);
  if (n <= 0) return 0;
  int child_err;
  memcpy(&child_err, msg, sizeof child_err);
  memcpy(step, msg + sizeof child_err, sizeof msg - sizeof child_err);
  step[sizeof msg - sizeof child_err - 1] = '\0';
  int status;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  errno = child_err;
  return -1;
}

/* Reads options.stdinFd, stdoutFd and stderrFd (absent: the app shares soad's); false if one is not an fd >= 3. */
static bool spawn_output_read(napi_env env, napi_value opts, spawn_spec *s) {
  napi_value v;
  s->stdin_fd = s->stdout_fd = s->stderr_fd = -1;
  if (get_optional(env, opts, "stdinFd", &v) && (!get_int(env, v, &s->stdin_fd) || s->stdin_fd < 3)) return false;
  if (get_optional(env, opts, "stdoutFd", &v) && (!get_int(env, v, &s->stdout_fd) || s->stdout_fd < 3)) return false;
  if (get_optional(env, opts, "stderrFd", &v) && (!get_int(env, v, &s->stderr_fd) || s->stderr_fd < 3)) return false;
  return true;
}

/* Reads spawn's arguments into s (file, argv, env, fds, options); false if any is wrong. */
bool spawn_spec_read(napi_env env, napi_value *argv, spawn_spec *s) {
  memset(s, 0, sizeof *s);
  s->cgroup_fd = -1;
  napi_value v;
  bool ok = (s->file = get_string(env, argv[0], NULL)) != NULL &&
            (s->argv = get_string_array(env, argv[1], 0, &s->argc)) != NULL &&
            (s->envp = get_string_array(env, argv[2], 1, &s->envc)) != NULL;
  uint32_t nfds = 0;
  ok = ok && napi_get_array_length(env, argv[3], &nfds) == napi_ok && nfds <= 64;
  if (ok) {
    s->nfds = nfds;
    s->fds = calloc(nfds + 1, sizeof *s->fds);
    ok = s->fds != NULL;
    for (uint32_t i = 0; ok && i < nfds; i++)
      ok = napi_get_element(env, argv[3], i, &v) == napi_ok && get_int(env, v, &s->fds[i]);
  }
  napi_value opts = argv[4];
  if (ok && get_optional(env, opts, "cwd", &v)) ok = (s->cwd = get_string(env, v, NULL)) != NULL;
  if (ok && get_optional(env, opts, "uid", &v)) ok = s->set_uid = get_id(env, v, &s->uid);
  if (ok && get_optional(env, opts, "gid", &v)) ok = s->set_gid = get_id(env, v, &s->gid);
  if (ok && get_optional(env, opts, "groups", &v)) {
    uint32_t n;
    ok = napi_get_array_length(env, v, &n) == napi_ok && (s->groups = calloc(n + 1, sizeof *s->groups)) != NULL;
    for (uint32_t i = 0; ok && i < n; i++) {
      napi_value g;
      uint32_t gid = 0;
      ok = napi_get_element(env, v, i, &g) == napi_ok && get_id(env, g, &gid);
      s->groups[i] = (gid_t)gid;
    }
    s->ngroups = ok ? (int)n : 0;
  }
  if (ok && get_optional(env, opts, "listenPid", &v)) ok = get_bool(env, v, &s->listen_pid);
  if (ok && get_optional(env, opts, "pdeathsig", &v)) ok = get_bool(env, v, &s->pdeathsig);
  if (ok && get_optional(env, opts, "cgroupFd", &v)) ok = get_int(env, v, &s->cgroup_fd);
  ok = ok && spawn_output_read(env, opts, s);
  return ok && s->argc > 0;
}

/*
 * spawn(file, argv, env, fds, options, onExit(code | null, signal | null, pid)) -> pid
 * options: { cwd?, uid?, gid?, groups?, listenPid: boolean, pdeathsig: boolean }
 * options.cgroupFd?: an fd open on a cgroup v2 directory: the child is created in it (or joins it after setsid)
 * options.stdoutFd?, stderrFd?: write ends of pipes soad reads: the child gets them as its fds 1 and 2
 * options.stdinFd?: an accepted connection (--accept): the child gets it as its fd 0
 */
napi_value spawn(napi_env env, napi_callback_info info) {
  ARGS(6);
  spawn_spec s;
  if (!spawn_spec_read(env, argv, &s)) {
    spawn_spec_free(&s);
    return throw_type(env, "spawn(file, argv, env, fds, options, onExit): bad arguments");
  }
  const char *failed = NULL;
  if (spawn_prepare(&s, &failed) < 0) {
    int err = errno;
    spawn_spec_free(&s);
    return throw_errno(env, failed, err);
  }
  js_callback cb;
  if (!callback_init(env, argv[5], "soad:child", &cb)) {
    spawn_spec_free(&s);
    return throw_type(env, "spawn: onExit must be a function");
  }
  pid_t pid;
  char step[40];
  int r = spawn_start(env, &s, &cb, &pid, step);
  int err = errno;
  spawn_spec_free(&s);
  if (r < 0) return throw_errno(env, step, err);
  return make_int(env, pid);
}

int spawn_start(napi_env env, spawn_spec *s, js_callback *on_exit, pid_t *pid, char step[40]) {
  if (!sigchld_ready) {
    uv_loop_t *loop;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || sigchld_start(loop) < 0) {
      callback_free(env, on_exit);
      strcpy(step, "uv_signal_start");
      errno = EINVAL;
      return -1;
    }
  }
  if (spawn_exec(s, pid, step) < 0) {
    int err = errno;
    callback_free(env, on_exit);
    errno = err;
    return -1;
  }
  if (child_track(env, *pid, *on_exit) < 0) { /* the app runs; we cannot track it, so do not leave it running */
    kill(-*pid, SIGKILL);
    callback_free(env, on_exit);
    strcpy(step, "calloc");
    errno = ENOMEM;
    return -1;
  }
  /* An exit that happened before the handler saw the child is caught on the next SIGCHLD; the kernel
   * sends one for it anyway, so nothing is lost. */
  return 0;
}
