/*
 * soad-guard: kills what soad's apps leave behind when soad itself dies, even by SIGKILL.
 *
 * soad starts it once, in its own session, with stdin a pipe whose write end only soad holds. soad writes one
 * line per change: "+/path/of/a/cgroup" or "+PGID" when an app starts, the same with '-' when it has stopped.
 * On EOF (soad exited, however it exited) the guard kills every cgroup still listed (cgroup.kill, else SIGKILL
 * to each pid of cgroup.procs until it is empty) and removes it, sends SIGKILL to every process group still
 * listed, and exits. SIGINT, SIGTERM and SIGHUP (a Ctrl-C or a hang-up meant for soad) do not stop it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../glibc.h"

static char **entries;
static size_t count, capacity;

static void report(const char *syscall, const char *what) {
  fprintf(stderr, "soad-guard: %s(%s): %s\n", syscall, what, strerror(errno));
}

static void add(const char *entry) {
  if (count == capacity) {
    size_t grown = capacity == 0 ? 16 : capacity * 2;
    char **more = realloc(entries, grown * sizeof *more);
    if (more == NULL) { report("realloc", entry); return; }
    entries = more;
    capacity = grown;
  }
  if ((entries[count] = strdup(entry)) == NULL) { report("strdup", entry); return; }
  count++;
}

static void drop(const char *entry) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(entries[i], entry) == 0) {
      free(entries[i]);
      entries[i] = entries[--count];
      return;
    }
}

/* A cgroup is an absolute path to a soad.* cgroup; a process group is a number above 1 (never 0 or -1: all). */
static int valid(const char *entry) {
  if (entry[0] == '/') return strstr(entry, "/..") == NULL && strncmp(strrchr(entry, '/'), "/soad.", 6) == 0;
  char *end;
  long pgid = strtol(entry, &end, 10);
  return *entry != '\0' && *end == '\0' && pgid > 1 && pgid < INT_MAX;
}

static void handle(const char *line) {
  if ((line[0] != '+' && line[0] != '-') || !valid(line + 1)) {
    fprintf(stderr, "soad-guard: ignoring a bad line: %s\n", line);
    return;
  }
  if (line[0] == '+') add(line + 1);
  else drop(line + 1);
}

static void pause_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) < 0 && errno == EINTR) {
  }
}

/* SIGKILL to every pid listed in dir/cgroup.procs; how many were listed, or -1. */
static int kill_listed(const char *dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    if (errno != ENOENT) report("open", path);
    return -1;
  }
  int n = 0;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1) {
    if (kill((pid_t)pid, SIGKILL) < 0 && errno != ESRCH) report("kill", path);
    n++;
  }
  if (fclose(f) != 0) report("close", path);
  return n;
}

/* Kills every process of a cgroup (cgroup.kill, kernel >= 5.14, else one by one) and removes it. */
static void kill_cgroup(const char *dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/cgroup.kill", dir);
  FILE *f = fopen(path, "we");
  if (f == NULL) {
    if (errno != ENOENT) report("open", path);
  } else {
    if (fputs("1", f) == EOF) report("write", path);
    if (fclose(f) != 0) report("write", path);
  }
  for (int tries = 0; tries < 500; tries++) { /* 5 s at most */
    int left = kill_listed(dir);
    if (left < 0) return; /* gone already */
    if (left == 0) {
      if (rmdir(dir) == 0 || errno == ENOENT) return;
      if (errno != EBUSY) { report("rmdir", dir); return; }
    }
    pause_ms(10);
  }
  fprintf(stderr, "soad-guard: %s still has processes after 5 s of SIGKILL\n", dir);
}

static void kill_all(void) {
  for (size_t i = 0; i < count; i++) {
    if (entries[i][0] == '/') kill_cgroup(entries[i]);
    else if (kill(-(pid_t)atol(entries[i]), SIGKILL) < 0 && errno != ESRCH) report("kill", entries[i]);
  }
}

int main(void) {
  struct sigaction ignore;
  memset(&ignore, 0, sizeof ignore);
  ignore.sa_handler = SIG_IGN;
  int ignored[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
    if (sigaction(ignored[i], &ignore, NULL) < 0) report("sigaction", strsignal(ignored[i]));
  if (chdir("/") < 0) report("chdir", "/");
  char buf[8192];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) report("read", "stdin");
    if (r <= 0) break;
    len += (size_t)r;
    char *start = buf, *newline;
    while ((newline = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
      *newline = '\0';
      handle(start);
      start = newline + 1;
    }
    len -= (size_t)(start - buf);
    memmove(buf, start, len);
    if (len == sizeof buf - 1) len = 0; /* a line longer than any path: drop it */
  }
  kill_all();
  return 0;
}
