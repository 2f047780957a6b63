/*
 * soad-sentinel: counts the connections queued on an app's listeners, as the app's own user.
 *
 *   soad-sentinel N     listeners at fds 3 .. 3+N-1, a shared memory file (from soad) at fd 3+N
 *
 * Why a process of its own: exact counting asks the kernel for a signal per queued connection (O_ASYNC, F_SETOWN,
 * F_SETSIG). Those settings live on the file description the app shares, so the app can change the signal to
 * SIGKILL and connect to itself. The kernel checks that signal against the credentials of whoever called F_SETOWN:
 * when soad (root) owned it, the app could kill soad and every service with it. The sentinel runs as the app's user
 * and takes ownership itself, so the worst the app can do is kill the sentinel; soad then counts by readability.
 *
 * Memory layout (64-bit slots, written here, read by soad): slot i < N: CLOCK_MONOTONIC ns of the latest connection
 * on listener i (0: none); slot N: the latest signal-queue overflow (every listener may have had one then);
 * slot N+1: how many times the sentinel has armed the listeners (0: not yet). SIGHUP asks it to arm them again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../glibc.h"

#define MAX_LISTENERS 64

static int count_signal(void) { return SIGRTMIN + 1; }

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "soad-sentinel: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Makes the kernel signal this process, with the fd, for each connection queued on fds 3 .. 3+n-1. */
static void arm(int n) {
  for (int fd = 3; fd < 3 + n; fd++) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) die("fcntl(F_GETFL)");
    if (fcntl(fd, F_SETOWN, getpid()) < 0) die("fcntl(F_SETOWN)");
    if (fcntl(fd, F_SETSIG, count_signal()) < 0) die("fcntl(F_SETSIG)");
    if (fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) die("fcntl(F_SETFL)");
  }
}

int main(int argc, char **argv) {
  int n = argc == 2 ? atoi(argv[1]) : 0;
  if (n < 1 || n > MAX_LISTENERS) {
    fprintf(stderr, "usage: soad-sentinel N (1..%d listeners at fds 3.., shared memory after them); run by soad\n",
            MAX_LISTENERS);
    return 2;
  }
  _Atomic int64_t *slots = mmap(NULL, (size_t)(n + 2) * sizeof *slots, PROT_READ | PROT_WRITE, MAP_SHARED, 3 + n, 0);
  if (slots == MAP_FAILED) die("mmap");
  if (close(3 + n) < 0) die("close");

  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, count_signal());
  sigaddset(&wanted, SIGIO); /* the kernel's queue of real-time signals overflowed */
  sigaddset(&wanted, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &wanted, NULL) < 0) die("sigprocmask");

  arm(n);
  atomic_fetch_add(&slots[n + 1], 1);
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&wanted, &si);
    if (sig < 0) {
      if (errno == EINTR) continue;
      die("sigwaitinfo");
    }
    if (sig == SIGHUP) {
      arm(n);
      atomic_fetch_add(&slots[n + 1], 1);
    } else if (sig == SIGIO) {
      atomic_store(&slots[n], now_ns());
    } else if (si.si_code > 0 && si.si_fd >= 3 && si.si_fd < 3 + n) {
      atomic_store(&slots[si.si_fd - 3], now_ns());
    }
  }
}
