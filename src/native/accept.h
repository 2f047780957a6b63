/*
 * accept.h: one connection taken from a listener for `--accept` (accept.c), shared with the lane (lane.c), which
 * takes connections in its poll callback.
 */
#ifndef SOAD_ACCEPT_H
#define SOAD_ACCEPT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* A connection taken, and who is at its other end. */
typedef struct {
  int fd;
  bool inet; /* the peer has an IP address and a port */
  char ip[INET6_ADDRSTRLEN];
  int port;
  bool has_uid; /* a UNIX peer whose credentials could be read */
  int64_t uid;
} accepted;

/*
 * Takes one connection from the listener, close-on-exec and blocking (the app gets it as fds 0, 1 and 3): 1, 0 when
 * none waits (or the one that waited was aborted), or -1 with errno and *failed.
 */
int accept_one(int listener, accepted *out, const char **failed);

#endif
