/*
 * count.c: countStart / countRead / countStop / countOwner count every connection the kernel queues on a listener,
 * with the time of the latest (Linux: O_ASYNC with F_SETSIG, one real-time signal per connection); sentinelMemory /
 * sentinelRead / sentinelFree do the same through helper/sentinel.c, run as the app's user, over a shared page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

/*
 * The kernel queues one real-time signal per connection on a listener with O_ASYNC and F_SETSIG; si_fd says
 * which. The handler only stamps the time of the latest one (async-signal-safe); nothing runs in JS per
 * connection. soad reads it when it needs it (at the idle deadline).
 */
#define COUNT_MAX_FD 4096

static atomic_llong last_arrival[COUNT_MAX_FD]; /* CLOCK_MONOTONIC ns of the latest arrival, 0: none */
static atomic_llong last_overflow = 0;          /* the queue overflowed (SIGIO): every fd had activity then */
static bool count_ready = false;

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

/* Installs the handler once; 0, or -1 with errno (of sigaction). */
static int count_setup(void) {
  if (count_ready) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_count_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(count_signal(), &sa, NULL) < 0 || sigaction(SIGIO, &sa, NULL) < 0) return -1;
  count_ready = true;
  return 0;
}

/* Makes the kernel signal soad for each connection queued on fd; *was_armed: it already did. 0, or -1 with errno
 * (of fcntl). */
static int count_arm_fd(int fd, bool *was_armed) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return -1;
  int sig = fcntl(fd, F_GETSIG);
  if (sig < 0) return -1;
  pid_t owner = fcntl(fd, F_GETOWN);
  *was_armed = (flags & O_ASYNC) && sig == count_signal() && owner == getpid();
  if (*was_armed) return 0;
  if (fcntl(fd, F_SETOWN, getpid()) < 0) return -1;
  if (fcntl(fd, F_SETSIG, count_signal()) < 0) return -1;
  if (fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) return -1;
  return 0;
}
#endif

/* Counts every connection on fd from now on; *counted: false where this cannot be done. 0, or -1 with errno and
 * *failed. */
static int count_begin(int fd, bool *counted, const char **failed) {
  *counted = false;
#ifdef F_SETSIG
  if (fd < 0 || fd >= COUNT_MAX_FD) return 0;
  if (count_setup() < 0) {
    *failed = "sigaction";
    return -1;
  }
  atomic_store(&last_arrival[fd], 0);
  bool was;
  if (count_arm_fd(fd, &was) < 0) {
    *failed = "fcntl";
    return -1;
  }
  *counted = true;
#else
  (void)fd;
  (void)failed;
#endif
  return 0;
}

/* countStart(fd) -> true if every connection on fd is counted from now on; false where this cannot be done. */
napi_value count_start(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "countStart(fd)");
  bool counted;
  const char *failed = NULL;
  if (count_begin(fd, &counted, &failed) < 0) return throw_errno(env, failed, errno);
  return make_bool(env, counted);
}

/* Milliseconds since the latest arrival on fd (0..COUNT_MAX_FD-1), -1 if none yet, into *ago; *rearmed: counting
 * had stopped (the app cleared O_ASYNC) and was set again. 0, or -1 with errno (of fcntl). */
static int count_latest(int fd, double *ago, bool *rearmed) {
  bool was = true;
#ifdef F_SETSIG
  if (count_arm_fd(fd, &was) < 0) return -1;
#endif
  long long last = atomic_load(&last_arrival[fd]);
  long long overflow = atomic_load(&last_overflow);
  if (overflow > last) last = overflow;
  *ago = last == 0 ? -1 : (double)(monotonic_ns() - last) / 1e6;
  *rearmed = !was;
  return 0;
}

/*
 * countRead(fd) -> { ago, rearmed }: milliseconds since the latest arrival (-1: none yet), and whether counting
 * had stopped (the app cleared O_ASYNC) and was set again.
 */
napi_value count_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd) || fd < 0 || fd >= COUNT_MAX_FD) return throw_type(env, "countRead(fd)");
  double ago;
  bool rearmed;
  if (count_latest(fd, &ago, &rearmed) < 0) return throw_errno(env, "fcntl", errno);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_double(env, result, "ago", ago));
  NAPI_CALL(env, set_bool(env, result, "rearmed", rearmed));
  return result;
}

/* Clears O_ASYNC on fd; 0, or -1 with errno and *failed. */
static int count_end(int fd, const char **failed) {
#ifdef F_SETSIG
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) {
    *failed = "fcntl(F_GETFL)";
    return -1;
  }
  if ((flags & O_ASYNC) && fcntl(fd, F_SETFL, flags & ~O_ASYNC) < 0) {
    *failed = "fcntl(F_SETFL)";
    return -1;
  }
#else
  (void)fd;
  (void)failed;
#endif
  return 0;
}

/* countStop(fd): clears O_ASYNC so no signal comes for fd any more. */
napi_value count_stop(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "countStop(fd)");
  const char *failed = NULL;
  if (count_end(fd, &failed) < 0) return throw_errno(env, failed, errno);
  return make_undefined(env);
}

typedef struct {
  int owner, signal;
  bool async;
} count_owner_info;

/* Who the kernel signals for fd's connections, with which signal; 0, or -1 with errno and *failed. */
static int count_describe(int fd, count_owner_info *out, const char **failed) {
  out->owner = 0;
  out->signal = 0;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) {
    *failed = "fcntl(F_GETFL)";
    return -1;
  }
#ifdef F_SETSIG
  if ((out->owner = fcntl(fd, F_GETOWN)) == -1 && errno != 0) {
    *failed = "fcntl(F_GETOWN)";
    return -1;
  }
  if ((out->signal = fcntl(fd, F_GETSIG)) < 0) {
    *failed = "fcntl(F_GETSIG)";
    return -1;
  }
#endif
  out->async = (flags & O_ASYNC) != 0;
  return 0;
}

/* countOwner(fd) -> { owner, signal, async }: who the kernel signals for fd's connections, with which signal. */
napi_value count_owner(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t fd;
  if (!get_int(env, argv[0], &fd)) return throw_type(env, "countOwner(fd)");
  count_owner_info owner;
  const char *failed = NULL;
  if (count_describe(fd, &owner, &failed) < 0) return throw_errno(env, failed, errno);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_int(env, result, "owner", owner.owner));
  NAPI_CALL(env, set_int(env, result, "signal", owner.signal));
  NAPI_CALL(env, set_bool(env, result, "async", owner.async));
  return result;
}

/* ---------------------------------------------------------------- the sentinel's shared page */

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

/* A shared page for n listeners, listed under a new id, and its memfd in *fd; *out NULL where there is no memfd.
 * 0, or -1 with errno and *failed. */
static int sentinel_create(int n, sentinel_memory **out, int *fd, const char **failed) {
  *out = NULL;
#if defined(__linux__) && defined(SYS_memfd_create)
  *fd = (int)syscall(SYS_memfd_create, "soad-sentinel", 1U /* MFD_CLOEXEC */);
  if (*fd < 0) {
    *failed = "memfd_create";
    return -1;
  }
  size_t size = (size_t)(n + 2) * sizeof(long long);
  if (ftruncate(*fd, (off_t)size) < 0) {
    *failed = "ftruncate";
    close_keep_errno(*fd);
    return -1;
  }
  void *slots = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (slots == MAP_FAILED) {
    *failed = "mmap";
    close_keep_errno(*fd);
    return -1;
  }
  sentinel_memory *m = calloc(1, sizeof *m);
  if (m == NULL) {
    munmap(slots, size);
    close(*fd);
    errno = ENOMEM;
    *failed = "calloc";
    return -1;
  }
  m->id = next_sentinel_id++;
  m->n = n;
  m->slots = slots;
  m->size = size;
  m->next = sentinel_memories;
  sentinel_memories = m;
  *out = m;
#else
  (void)n;
  (void)fd;
  (void)failed;
#endif
  return 0;
}

/* sentinelMemory(n) -> { id, fd } | null (no memfd here): a shared page for n listeners; soad closes fd after the
 * sentinel has it. */
napi_value sentinel_memory_new(napi_env env, napi_callback_info info) {
  ARGS(1);
  int32_t n;
  if (!get_int(env, argv[0], &n) || n < 1 || n > 64) return throw_type(env, "sentinelMemory(n): 1..64 listeners");
  sentinel_memory *m;
  int fd = -1;
  const char *failed = NULL;
  if (sentinel_create(n, &m, &fd, &failed) < 0) return throw_errno(env, failed, errno);
  if (m == NULL) return make_null(env);
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, set_int(env, result, "id", m->id));
  NAPI_CALL(env, set_int(env, result, "fd", fd));
  return result;
}

/* Milliseconds since listener i's latest arrival (or the overflow) as the sentinel wrote it, -1 if none; a value
 * from the future (a sentinel is the app's user's process, and could be made to write anything) reads as now. */
static double sentinel_ago(const sentinel_memory *m, int i, long long overflow, long long now) {
  long long last = atomic_load(&m->slots[i]);
  if (overflow > last) last = overflow;
  if (last > now) last = now;
  return last <= 0 ? -1 : (double)(now - last) / 1e6;
}

/* sentinelRead(id) -> { ago: [ms | -1 per listener], armed, signal }: what the sentinel wrote. A value from the future (a
 * sentinel is the app's user's process, and could be made to write anything) reads as now. */
napi_value sentinel_read(napi_env env, napi_callback_info info) {
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
    NAPI_CALL(env, napi_create_double(env, sentinel_ago(m, i, overflow, now), &v));
    NAPI_CALL(env, napi_set_element(env, ago, (uint32_t)i, v));
  }
  NAPI_CALL(env, napi_set_named_property(env, result, "ago", ago));
  NAPI_CALL(env, set_double(env, result, "armed", (double)atomic_load(&m->slots[m->n + 1])));
  NAPI_CALL(env, set_int(env, result, "signal", SIGRTMIN + 1)); /* the signal helper/sentinel.c asks for */
  return result;
}

/* Unmaps and forgets the page with this id, if there is one. */
static void sentinel_release(uint32_t id) {
  for (sentinel_memory **p = &sentinel_memories; *p != NULL; p = &(*p)->next)
    if ((*p)->id == id) {
      sentinel_memory *m = *p;
      *p = m->next;
      munmap((void *)m->slots, m->size);
      free(m);
      break;
    }
}

/* sentinelFree(id): unmaps the page. */
napi_value sentinel_free(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "sentinelFree(id)");
  sentinel_release(id);
  return make_undefined(env);
}
