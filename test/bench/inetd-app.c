/*
 * The benchmark's app for a process per connection (soad --accept, systemd-socket-activate --accept --inetd): the
 * connection is its stdin and stdout; it reads the request and answers "ok" over HTTP/1.0, then exits.
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  static const char answer[] = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
  char request[4096];
  if (read(0, request, sizeof request) < 0) {
    perror("inetd-app: read");
    return 1;
  }
  if (write(1, answer, sizeof answer - 1) < 0) {
    perror("inetd-app: write");
    return 1;
  }
  return 0;
}
