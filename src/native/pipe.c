/*
 * pipe.c: outputPipe, the pipe an app writes its stdout or stderr to and soad reads (its lines, per service).
 * Both ends are close-on-exec: the child dup2s the write end onto 1 or 2 (spawn's stdoutFd/stderrFd), which
 * clears it there only; soad closes its copy of the write end once the child has exec'd. countLines counts what
 * soad drops of a flooding app's output without looking at each line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "soad.h"
#include "sys.h"
#include "glibc.h"

/* outputPipe() -> { read, write }: a close-on-exec pipe, both ends blocking. */
napi_value output_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe_cloexec(fds) < 0) return throw_errno(env, "pipe2", errno);
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok || set_int(env, result, "read", fds[0]) != napi_ok ||
      set_int(env, result, "write", fds[1]) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    return NULL;
  }
  return result;
}

/* countLines(buffer) -> the newlines in it: how many lines of a flooding app's output soad drops unread. */
napi_value count_lines(napi_env env, napi_callback_info info) {
  ARGS(1);
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) return throw_type(env, "countLines(buffer)");
  int64_t n = 0;
  for (const char *p = data, *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) n++;
  return make_int(env, n);
}
