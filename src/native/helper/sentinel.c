/*
 * soad-sentinel: sees the connections queued on an app's listeners, as the app's own user.
 *
 *   soad-sentinel N     listeners at fds 3 .. 3+N-1, a shared memory file (from soad) at fd 3+N
 *
 * Why a process of its own: exact counting asks the kernel for a signal per queued connection (O_ASYNC, F_SETOWN,
 * F_SETSIG). Those settings live on the file description the app shares, so the app can change the signal to
 * SIGKILL and connect to itself. The kernel checks that signal against the credentials of whoever called F_SETOWN:
 * when soad (root) owned it, the app could kill soad and every service with it. The sentinel runs as the app's user
 * and takes ownership itself, so the worst the app can do is kill the sentinel; soad then counts by readability.
 *
 * Why it does not wake for every connection: a signal per connection cost the sentinel CPU on every request of a
 * busy app (52 to 132 ms per second under `wrk -c32 -H "Connection: close"`). soad needs only the latest arrival,
 * a little late at worst: after a connection's signal the sentinel switches that listener to a quiet signal
 * (SIGURG, blocked and not waited for: one pending bit however many connections set it) for REARM_MS, then
 * switches it back and takes the bit: set, connections came meanwhile and now is the latest arrival; clear, the
 * first one's time stands. So it wakes at most twice per REARM_MS per busy listener, whatever the rate of
 * connections (src/native/count.c does the same in soad, with the measured figures).
 *
 * Memory layout (64-bit slots, written here, read by soad): slot i < N: CLOCK_MONOTONIC ns of the latest connection
 * on listener i (0: none); slot N: the latest moment any listener may have had one (a signal-queue overflow, or
 * signals about to be taken); slot N+1: how many times the sentinel has armed the listeners (0: not yet);
 * slot N+2+i: listener i's window counter, odd while it is on the quiet signal. SIGHUP asks it to arm them all
 * again.
 *
 * The order of the writes is what lets soad miss nothing without waiting for the sentinel: a connection's signal
 * waits in the kernel's queue (soad sees it in /proc/PID/status) until the sentinel has written slot N, and only
 * then is taken (poll on a signalfd, then read); a window counter turns odd before the switch to the quiet signal
 * and even only after the switch back and the new latest arrival, so soad also tells the sentinel's quiet signal
 * from an app's F_SETSIG.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../glibc.h"

#define MAX_LISTENERS 64

/* How long a listener stays on the quiet signal after a connection: soad's latest arrival is at most this late (an
 * idle stop may be 250 ms late); the same as soad's own (count.c). */
#define REARM_MS 100

static int count_signal(void) { return SIGRTMIN + 1; }

/* Blocked here and never waited for (not in the signalfd's set): connections set it, nobody wakes. */
#define QUIET SIGURG

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "soad-sentinel: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int n;                  /* listeners, at fds 3 .. 3+n-1 */
static _Atomic int64_t *slots; /* the shared page */
static int64_t rearm_at = 0;   /* when the quiet listeners are switched back; 0: none is quiet */

static _Atomic int64_t *latest(int i) { return &slots[i]; }
static _Atomic int64_t *window(int i) { return &slots[n + 2 + i]; }
static bool quiet(int i) { return atomic_load(window(i)) % 2 == 1; }

/* Makes the kernel signal this process, with the fd, for each connection queued on listener i; whether it was set
 * so already, with the signal `left` (the app changed nothing). F_SETFL only where O_ASYNC is missing: it writes
 * every flag the app shares. */
static bool arm(int i, int left) {
  int fd = 3 + i;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) die("fcntl(F_GETFL)");
  int owner = fcntl(fd, F_GETOWN);
  int sig = fcntl(fd, F_GETSIG);
  if (sig < 0) die("fcntl(F_GETSIG)");
  /* The signal before the owner: F_SETOWN takes the lock a sender holds while it signals, so once it returns, every
   * connection that was being signalled with the quiet signal has set it. */
  if (fcntl(fd, F_SETSIG, count_signal()) < 0) die("fcntl(F_SETSIG)");
  if (fcntl(fd, F_SETOWN, getpid()) < 0) die("fcntl(F_SETOWN)");
  if (!(flags & O_ASYNC) && fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) die("fcntl(F_SETFL)");
  return (flags & O_ASYNC) && owner == getpid() && sig == left;
}

/* Takes the quiet signal if it is pending: whether a connection came to a quiet listener. */
static bool take_quiet(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, QUIET);
  struct timespec none = {0, 0};
  if (sigtimedwait(&set, NULL, &none) == QUIET) return true;
  if (errno != EAGAIN) die("sigtimedwait");
  return false;
}

/* Switches the quiet listeners back, then takes the quiet signal: if it was set (or the app changed a listener's
 * settings meanwhile), now is their latest arrival. In this order a connection is either before the switch (in
 * the bit) or after it (signalled). */
static void rearm(void) {
  bool disturbed[MAX_LISTENERS] = {false}, any = false;
  for (int i = 0; i < n; i++)
    if (quiet(i)) {
      disturbed[i] = !arm(i, QUIET);
      any = true;
    }
  bool came = any && take_quiet();
  int64_t now = now_ns();
  for (int i = 0; i < n; i++)
    if (quiet(i)) {
      if (came || disturbed[i]) atomic_store(latest(i), now);
      atomic_fetch_add(window(i), 1);
    }
  rearm_at = 0;
}

/* Arms every listener (at the start, and when soad asks with SIGHUP). */
static void arm_all(void) {
  rearm();
  for (int i = 0; i < n; i++) (void)arm(i, count_signal());
  atomic_fetch_add(&slots[n + 1], 1);
}

/* A connection's signal for listener i: its latest arrival is now; the quiet signal until rearm_at. */
static void arrived(int i) {
  int64_t now = now_ns();
  atomic_store(latest(i), now);
  if (quiet(i)) return; /* queued before the switch */
  atomic_fetch_add(window(i), 1);
  if (fcntl(3 + i, F_SETSIG, QUIET) < 0) die("fcntl(F_SETSIG)");
  if (rearm_at == 0) rearm_at = now + REARM_MS * 1000000LL;
}

/* Waits until signals are queued (true: they are not taken yet), or rearm_at has come (false). */
static bool wait_for_signals(int signals) {
  for (;;) {
    int timeout = -1;
    if (rearm_at != 0) {
      int64_t left = rearm_at - now_ns();
      if (left <= 0) return false;
      timeout = (int)((left + 999999) / 1000000);
    }
    struct pollfd p = {.fd = signals, .events = POLLIN};
    int ready = poll(&p, 1, timeout);
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) die("poll");
  }
}

/* One signal taken from the queue. */
static void take(const struct signalfd_siginfo *si) {
  int sig = (int)si->ssi_signo;
  if (sig == SIGHUP) {
    arm_all();
  } else if (sig == SIGIO) {
    atomic_store(&slots[n], now_ns());
  } else if (si->ssi_code > 0 && si->ssi_fd >= 3 && si->ssi_fd < 3 + n) {
    arrived((int)si->ssi_fd - 3);
  }
}

int main(int argc, char **argv) {
  n = argc == 2 ? atoi(argv[1]) : 0;
  if (n < 1 || n > MAX_LISTENERS) {
    fprintf(stderr, "usage: soad-sentinel N (1..%d listeners at fds 3.., shared memory after them); run by soad\n",
            MAX_LISTENERS);
    return 2;
  }
  slots = mmap(NULL, (size_t)(2 * n + 2) * sizeof *slots, PROT_READ | PROT_WRITE, MAP_SHARED, 3 + n, 0);
  if (slots == MAP_FAILED) die("mmap");
  if (close(3 + n) < 0) die("close");

  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, count_signal());
  sigaddset(&wanted, SIGIO); /* the kernel's queue of real-time signals overflowed */
  sigaddset(&wanted, SIGHUP);
  int signals = signalfd(-1, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signals < 0) die("signalfd");
  sigaddset(&wanted, QUIET);
  if (sigprocmask(SIG_BLOCK, &wanted, NULL) < 0) die("sigprocmask");

  arm_all();
  for (;;) {
    if (!wait_for_signals(signals)) {
      rearm();
      continue;
    }
    sigset_t queued;
    if (sigpending(&queued) < 0) die("sigpending");
    if (sigismember(&queued, count_signal()) || sigismember(&queued, SIGIO))
      atomic_store(&slots[n], now_ns()); /* before they leave the queue, where soad sees them */
    struct signalfd_siginfo batch[32];
    ssize_t got = read(signals, batch, sizeof batch);
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      die("read(signalfd)");
    }
    for (size_t i = 0; i < (size_t)got / sizeof batch[0]; i++) take(&batch[i]);
  }
}
