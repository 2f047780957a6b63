/*
 * The floor for cold activation: the least an activator must do. It binds a UNIX socket, waits with poll() until a
 * connection is pending, forks, and execs the app with the socket at fd 3, LISTEN_FDS=1 and LISTEN_PID set by the
 * child itself; then it waits for the app to exit and polls again. No idle stop, no logging, no checks beyond
 * what it needs: soad's cold activation is compared against this.
 *
 *   min-activator PATH CMD [ARGS...]   prints "started PID" on stderr for each start
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: min-activator PATH CMD [ARGS...]\n");
    return 2;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  unlink(argv[1]);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 1024) < 0) {
    perror("min-activator: listen");
    return 1;
  }
  fprintf(stderr, "listening on %s\n", argv[1]);
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) {
      perror("min-activator: poll");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      perror("min-activator: fork");
      return 1;
    }
    if (pid == 0) {
      char value[24];
      snprintf(value, sizeof value, "%ld", (long)getpid());
      /* dup2 onto itself would keep close-on-exec */
      if ((fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(fd, 3)) < 0 || setenv("LISTEN_FDS", "1", 1) < 0 || setenv("LISTEN_PID", value, 1) < 0) _exit(126);
      execvp(argv[2], argv + 2);
      _exit(127);
    }
    fprintf(stderr, "started %ld\n", (long)pid);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
    }
  }
}
