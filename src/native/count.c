/*
 * count.c: countStart / countRead / countStop / countOwner see every connection the kernel queues on a listener,
 * with the time of the latest, at most COUNT_REARM_MS late (Linux: O_ASYNC with F_SETSIG; a real-time signal for
 * the first connection of each COUNT_REARM_MS, a pending bit for the others); sentinelMemory / sentinelRead /
 * sentinelFree do the same through helper/sentinel.c, run as the app's user, over a shared page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uv.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

/*
 * The kernel queues one real-time signal per connection on a listener with O_ASYNC and F_SETSIG; si_fd says
 * which. Taking one per connection is what made soad cost something once an app ran: each signal woke soad, and
 * with `wrk -c32 -H "Connection: close"` against a tiny C app soad spent 77 to 259 ms of CPU per second and the
 * app served 0.75 to 0.94x of what it served under systemd-socket-activate, which adds nothing. The idle decision
 * needs only the latest arrival, a little late at worst, never early. So after a connection's signal the listener
 * is switched to a quiet signal for COUNT_REARM_MS: SIGURG, which soad's loop thread blocks and no one waits for,
 * and which, not being real-time, is one pending bit however many connections set it (no wake, no queued siginfo,
 * no RLIMIT_SIGPENDING). Then the loop switches it back and takes the bit: set, connections came meanwhile and now
 * is the latest arrival (at most COUNT_REARM_MS late); clear, the first connection's time stands (exact). While a
 * listener is busy that is one signal and two wakes of the loop per COUNT_REARM_MS, whatever the rate of
 * connections. A read (at the idle deadline) switches them back at once. Measured with it: 0 to 2 ms of CPU per
 * second under the same load (the sentinel's included), and as many connections served as under
 * systemd-socket-activate within the noise of a shared 2-core machine (1.08 to 1.16x, single rounds 0.72 to 1.49).
 *
 * Why this and not the others (`BENCH_ONLY=warm npm run bench`): reading a blocked real-time signal's queue in a
 * batch (signalfd) at the deadline costs no wake, but a queued signal has no time, so the latest arrival would be
 * "some time before the deadline" and the stop up to -t late; draining it every 100 ms gives that error for more
 * work (a siginfo per connection, bounded by RLIMIT_SIGPENDING, which soad's user shares with its other
 * processes). Disarming by F_SETOWN 0 works too, but then nothing says whether a connection came while disarmed:
 * every busy spell would end COUNT_REARM_MS late. Clearing O_ASYNC would race with an app setting its own flags
 * (F_GETFL then F_SETFL) on the file description it shares.
 */
#define COUNT_MAX_FD 4096

/* How long a listener stays on the quiet signal after a connection: its latest arrival is at most this late (plus
 * the loop's delay), well inside the 250 ms an idle stop may be late; 10 switches a second per busy listener cost
 * nothing measurable. */
#define COUNT_REARM_MS 100

static atomic_llong last_arrival[COUNT_MAX_FD]; /* CLOCK_MONOTONIC ns of the latest arrival, 0: none */
static atomic_llong last_overflow = 0;          /* the queue overflowed (SIGIO): every fd had activity then */

#ifdef F_SETSIG
static atomic_bool signalled[COUNT_MAX_FD]; /* the handler saw a signal for fd that the loop has not seen yet */
/* The loop's own (never touched by the handler): */
static bool counting[COUNT_MAX_FD];    /* countStart .. countStop */
static bool quiet[COUNT_MAX_FD];       /* on the quiet signal since a connection */
static bool unknown[COUNT_MAX_FD];     /* quiet when the bit was taken for others: its connections are unknown */
static int count_high = 0;             /* 1 + the highest fd ever counted: the loops below stop there */
static bool count_ready = false;   /* the handler is installed */
static bool count_handles = false; /* the loop's handles are made (never closed: they live as long as soad) */
static uv_async_t count_wake;  /* the handler's way to the loop (uv_async_send is async-signal-safe) */
static uv_timer_t count_rearm; /* switches the quiet listeners back */

/*
 * The thread the signals go to: the loop's (F_OWNER_TID), where countRead runs too. A signal queued for it is
 * handled before any of its syscalls returns, so once countRead's fcntl calls return, every connection queued
 * before them has been stamped. (Sent to the process, a signal could wait for another thread to be scheduled
 * while the loop read a stale time: a connection right before an idle deadline would be missed.)
 */
static pid_t count_thread = 0;

static int count_signal(void) { return SIGRTMIN + 6; }

/* Blocked in the loop's thread (its children get an empty mask: spawn.c): connections set it, nobody wakes. */
#define COUNT_QUIET SIGURG

static void on_count_signal(int sig, siginfo_t *si, void *context) {
  (void)context;
  int saved = errno;
  if (sig == SIGIO) {
    atomic_store(&last_overflow, monotonic_ns());
  } else if (si->si_code > 0 && si->si_fd >= 0 && si->si_fd < COUNT_MAX_FD) {
    atomic_store(&last_arrival[si->si_fd], monotonic_ns());
    atomic_store(&signalled[si->si_fd], true);
    uv_async_send(&count_wake);
  }
  errno = saved;
}

/* Makes the kernel signal soad's loop thread for each connection queued on fd; *as_left: it was set so, with the
 * signal `left` (the counting or the quiet one: the app did not change anything since). F_SETFL only where O_ASYNC
 * is missing (it writes every flag the app shares). 0, or -1 with errno (of fcntl). */
static int count_arm_fd(int fd, int left, bool *as_left) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return -1;
  int sig = fcntl(fd, F_GETSIG);
  if (sig < 0) return -1;
  struct f_owner_ex owner;
  if (fcntl(fd, F_GETOWN_EX, &owner) < 0) return -1;
  *as_left = (flags & O_ASYNC) && sig == left && owner.type == F_OWNER_TID && owner.pid == count_thread;
  if (*as_left && sig == count_signal()) return 0;
  /* The signal before the owner: F_SETOWN_EX takes the lock a sender holds while it signals, so once it returns,
   * every connection that was being signalled with the quiet signal has set it. */
  if (sig != count_signal() && fcntl(fd, F_SETSIG, count_signal()) < 0) return -1;
  owner.type = F_OWNER_TID;
  owner.pid = count_thread;
  if (fcntl(fd, F_SETOWN_EX, &owner) < 0) return -1;
  if (!(flags & O_ASYNC) && fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) return -1;
  return 0;
}

/* Moves fd's latest arrival to `at` unless the handler has just written a later one. */
static void count_stamp(int fd, long long at) {
  long long seen = atomic_load(&last_arrival[fd]);
  while (seen < at && !atomic_compare_exchange_weak(&last_arrival[fd], &seen, at)) {
  }
}

/* Takes the quiet signal if it is pending: whether a connection came to a quiet listener (true also if
 * sigtimedwait fails, which it does not with a zero timeout and a valid set: never early). */
static bool count_take_quiet(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, COUNT_QUIET);
  struct timespec none = {0, 0};
  return sigtimedwait(&set, NULL, &none) == COUNT_QUIET || errno != EAGAIN;
}

/*
 * Switches every quiet listener back to the counting signal, then takes the quiet signal: if it was set, now is
 * their latest arrival (a connection came to one of them meanwhile; which one, the bit does not say). In this
 * order a connection is either before the switch (in the bit) or after it (signalled). One whose settings the app
 * changed meanwhile (it cleared O_ASYNC, say) may have had connections that set nothing: its settings are all set
 * again, and now is its latest arrival. A listener that fails stays quiet (and its connections meanwhile are
 * unknown: now is its latest arrival once it is switched back), and the next read tries again: 0, or -1 with
 * errno (of fcntl) if `fd_read` is one.
 */
static int count_rearm_all(int fd_read) {
  static int back[COUNT_MAX_FD]; /* the listeners switched back in this call */
  int n = 0, failed = 0, err = 0;
  for (int fd = 0; fd < count_high; fd++) {
    if (!counting[fd] || !quiet[fd]) continue;
    atomic_store(&signalled[fd], false); /* a signal from before the switch must not make it quiet again */
    bool undisturbed;
    if (count_arm_fd(fd, COUNT_QUIET, &undisturbed) < 0) {
      if (fd == fd_read) {
        failed = -1;
        err = errno;
      }
      continue;
    }
    quiet[fd] = false;
    if (!undisturbed || unknown[fd]) count_stamp(fd, monotonic_ns());
    unknown[fd] = false;
    back[n++] = fd;
  }
  if (n > 0 && count_take_quiet()) {
    long long now = monotonic_ns();
    for (int i = 0; i < n; i++) count_stamp(back[i], now);
    for (int fd = 0; fd < count_high; fd++) unknown[fd] = counting[fd] && quiet[fd]; /* the bit is taken */
  }
  errno = err;
  return failed;
}

/* The timer: switches the quiet listeners back (count_rearm_all). */
static void count_rearm_due(uv_timer_t *timer) {
  (void)timer;
  (void)count_rearm_all(-1);
}

/* The loop, after signals: switches each listener that had one to the quiet signal, and has the timer switch them
 * back. One whose F_SETSIG fails keeps the counting signal: it costs a signal per connection, nothing else. */
static void count_woken(uv_async_t *async) {
  (void)async;
  bool any = false;
  for (int fd = 0; fd < count_high; fd++) {
    if (!atomic_exchange(&signalled[fd], false) || !counting[fd] || quiet[fd]) continue;
    if (fcntl(fd, F_SETSIG, COUNT_QUIET) < 0) continue;
    quiet[fd] = true;
    any = true;
  }
  if (any && !uv_is_active((uv_handle_t *)&count_rearm))
    (void)uv_timer_start(&count_rearm, count_rearm_due, COUNT_REARM_MS, 0); /* fails only on a closing handle */
}

/* Installs the handler, blocks the quiet signal in this (the loop's) thread, and makes the loop's handles (neither
 * keeps Node running), once; 0, or -1 with errno and *failed. */
static int count_setup(napi_env env, const char **failed) {
  if (count_ready) return 0;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    errno = EINVAL;
    *failed = "napi_get_uv_event_loop";
    return -1;
  }
  sigset_t quiet_set;
  sigemptyset(&quiet_set);
  sigaddset(&quiet_set, COUNT_QUIET);
  int r = pthread_sigmask(SIG_BLOCK, &quiet_set, NULL);
  if (r != 0) {
    errno = r;
    *failed = "pthread_sigmask";
    return -1;
  }
  if (!count_handles) {
    r = uv_async_init(loop, &count_wake, count_woken);
    if (r < 0) {
      errno = -r;
      *failed = "uv_async_init";
      return -1;
    }
    uv_unref((uv_handle_t *)&count_wake);
    uv_timer_init(loop, &count_rearm); /* always 0 */
    uv_unref((uv_handle_t *)&count_rearm);
    count_handles = true;
  }
  count_thread = (pid_t)syscall(SYS_gettid); /* N-API calls run on the loop's thread */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_count_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(count_signal(), &sa, NULL) < 0 || sigaction(SIGIO, &sa, NULL) < 0) {
    *failed = "sigaction";
    return -1;
  }
  count_ready = true;
  return 0;
}
#endif

/* Counts every connection on fd from now on; *counted: false where this cannot be done. 0, or -1 with errno and
 * *failed. */
static int count_begin(napi_env env, int fd, bool *counted, const char **failed) {
  *counted = false;
#ifdef F_SETSIG
  if (fd < 0 || fd >= COUNT_MAX_FD) return 0;
  if (count_setup(env, failed) < 0) return -1;
  atomic_store(&last_arrival[fd], 0);
  atomic_store(&signalled[fd], false);
  quiet[fd] = false;
  unknown[fd] = false;
  bool was;
  if (count_arm_fd(fd, count_signal(), &was) < 0) {
    *failed = "fcntl";
    return -1;
  }
  counting[fd] = true;
  if (fd >= count_high) count_high = fd + 1;
  *counted = true;
#else
  (void)env;
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
  if (count_begin(env, fd, &counted, &failed) < 0) return throw_errno(env, failed, errno);
  return make_bool(env, counted);
}

/* Milliseconds since the latest arrival on fd (0..COUNT_MAX_FD-1), -1 if none yet, into *ago; *rearmed: counting
 * had stopped (the app cleared O_ASYNC, or moved the owner or signal) and was set again. Quiet listeners are
 * switched back first (count_rearm_all). 0, or -1 with errno (of fcntl). */
static int count_latest(int fd, double *ago, bool *rearmed) {
  bool was = true;
#ifdef F_SETSIG
  if (quiet[fd]) {
    if (count_rearm_all(fd) < 0) return -1;
  } else if (count_arm_fd(fd, count_signal(), &was) < 0) {
    return -1;
  }
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

/* Stops counting fd: clears O_ASYNC; 0, or -1 with errno and *failed. */
static int count_end(int fd, const char **failed) {
#ifdef F_SETSIG
  if (fd >= 0 && fd < COUNT_MAX_FD) {
    counting[fd] = false;
    quiet[fd] = false;
  }
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
 * shared with soad (a memfd), which soad reads at its deadlines as it reads its own counters. The page holds
 * 2n + 2 slots: n latest arrivals, the latest moment any listener may have had one (an overflow, or signals the
 * sentinel is about to take), how many times the sentinel armed the listeners, and n window counters (odd while
 * the sentinel has a listener disarmed after a connection; see helper/sentinel.c).
 */
typedef struct sentinel_memory {
  uint32_t id;
  int n;
  _Atomic long long *slots; /* n arrivals, any listener's, how many times it armed, n window counters */
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
  size_t size = (size_t)(2 * n + 2) * sizeof(long long);
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

/* Milliseconds since listener i's latest arrival (or any listener's) as the sentinel wrote it, -1 if none; a value
 * from the future (a sentinel is the app's user's process, and could be made to write anything) reads as now. */
static double sentinel_ago(const sentinel_memory *m, int i, long long any, long long now) {
  long long last = atomic_load(&m->slots[i]);
  if (any > last) last = any;
  if (last > now) last = now;
  return last <= 0 ? -1 : (double)(now - last) / 1e6;
}

/* sentinelRead(id) -> { windows: [counter per listener], ago: [ms | -1 per listener], armed, signal, quiet }: what
 * the sentinel wrote, and its two signals; the window counters are read first (an odd one: that listener is on the
 * quiet signal, its latest arrival may be now; one that changed between two reads: the same). A value from the future (a sentinel is the app's
 * user's process, and could be made to write anything) reads as now. */
napi_value sentinel_read(napi_env env, napi_callback_info info) {
  ARGS(1);
  uint32_t id;
  if (napi_get_value_uint32(env, argv[0], &id) != napi_ok) return throw_type(env, "sentinelRead(id)");
  sentinel_memory *m = sentinel_find(id);
  if (m == NULL) return throw_type(env, "sentinelRead: unknown id");
  napi_value result, windows, ago, v;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_array_with_length(env, (size_t)m->n, &windows));
  for (int i = 0; i < m->n; i++) {
    NAPI_CALL(env, napi_create_double(env, (double)atomic_load(&m->slots[m->n + 2 + i]), &v));
    NAPI_CALL(env, napi_set_element(env, windows, (uint32_t)i, v));
  }
  long long now = monotonic_ns();
  long long any = atomic_load(&m->slots[m->n]);
  NAPI_CALL(env, napi_create_array_with_length(env, (size_t)m->n, &ago));
  for (int i = 0; i < m->n; i++) {
    NAPI_CALL(env, napi_create_double(env, sentinel_ago(m, i, any, now), &v));
    NAPI_CALL(env, napi_set_element(env, ago, (uint32_t)i, v));
  }
  NAPI_CALL(env, napi_set_named_property(env, result, "windows", windows));
  NAPI_CALL(env, napi_set_named_property(env, result, "ago", ago));
  NAPI_CALL(env, set_double(env, result, "armed", (double)atomic_load(&m->slots[m->n + 1])));
  NAPI_CALL(env, set_int(env, result, "signal", SIGRTMIN + 1)); /* the signals helper/sentinel.c asks for */
  NAPI_CALL(env, set_int(env, result, "quiet", SIGURG));
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
