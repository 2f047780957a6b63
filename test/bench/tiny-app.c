/*
 * The benchmark's smallest app: takes its listening socket from fd 3 (LISTEN_FDS=1, LISTEN_PID = its pid, as
 * sd_listen_fds checks) and answers each connection "ok" over HTTP/1.0. Starting it costs about what exec costs,
 * so a cold activation measures the activator, not the app.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
  if (fds == NULL || strcmp(fds, "1") != 0 || pid == NULL || atol(pid) != (long)getpid()) {
    fprintf(stderr, "tiny-app: no socket for me (LISTEN_FDS=%s LISTEN_PID=%s)\n", fds ? fds : "", pid ? pid : "");
    return 1;
  }
  static const char answer[] = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
  for (;;) {
    int conn = accept(3, NULL, NULL);
    if (conn < 0) {
      perror("tiny-app: accept");
      return 1;
    }
    char request[4096];
    if (read(conn, request, sizeof request) > 0 && write(conn, answer, sizeof answer - 1) < 0) perror("tiny-app: write");
    close(conn);
  }
}
