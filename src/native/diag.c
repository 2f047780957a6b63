/*
 * diag.c: diagInet / diagUnix, the kernel's own list of sockets, asked for only what soad needs (Linux
 * NETLINK_SOCK_DIAG, as `ss` does). /proc/net/tcp lists every socket of the host, and reading it means formatting
 * and parsing all of them: with 19,500 TCP sockets on the host, parsing it four times a second cost soad half a
 * core. Here the kernel filters: by state (a bit mask) and, for TCP, by local port (a bytecode program), so
 * nothing is formatted, copied or decoded for the sockets soad does not ask about. (The kernel still walks its
 * table of established connections for each TCP question, sized by the host's memory: 10 ms with no sockets in
 * it, 12 to 17 ms with 19,000, on a 24 GB machine; os/connections.ts asks seldom for that reason.)
 *
 * This file only builds the request, sends it and collects the reply: it returns the reply's bytes as the kernel
 * sent them (every datagram, up to and including NLMSG_DONE), and src/os/sockDiag.ts decodes them, so the
 * decoder is tested on recorded replies. What C checks here is only what it must to know where the reply ends:
 * each datagram comes from the kernel (nl_pid 0) and is not truncated; a message of our sequence number that is
 * NLMSG_DONE ends it, NLMSG_ERROR (or a DONE carrying an error) becomes an Error with that errno. Every length is
 * checked before it is read (NLMSG_OK), and the whole reply is bounded (DIAG_REPLY_MAX).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#endif

#include "soad.h"
#include "sys.h"
#include "glibc.h"

#ifdef __linux__

/* The largest datagram a dump sends: the kernel caps a dump's skb at 32 KiB (netlink_dump, max_recvmsg_len). */
#define DIAG_DATAGRAM 32768

/* The most soad keeps of one reply: about 300,000 UNIX sockets with names, or 180,000 TCP ones. A bigger reply
 * fails with ENOBUFS (and soad reads /proc instead) rather than growing without bound. */
#define DIAG_REPLY_MAX (16u << 20)

/* How long a reply may take: the kernel answers at once (the dump runs in sendmsg and recvmsg themselves), so
 * this only keeps a kernel that never answers from stopping Node's loop for good. */
#define DIAG_TIMEOUT_MS 1000

typedef struct {
  unsigned char *data;
  size_t len, cap;
} diag_reply;

/* Makes room for one more datagram; 0, or -1 with errno (ENOBUFS past DIAG_REPLY_MAX, ENOMEM). */
static int reply_reserve(diag_reply *reply) {
  if (reply->cap - reply->len >= DIAG_DATAGRAM) return 0;
  if (reply->len + DIAG_DATAGRAM > DIAG_REPLY_MAX) {
    errno = ENOBUFS;
    return -1;
  }
  size_t cap = reply->cap == 0 ? 2 * DIAG_DATAGRAM : reply->cap * 2;
  if (cap > DIAG_REPLY_MAX) cap = DIAG_REPLY_MAX;
  unsigned char *data = realloc(reply->data, cap);
  if (data == NULL) {
    errno = ENOMEM;
    return -1;
  }
  reply->data = data;
  reply->cap = cap;
  return 0;
}

/*
 * Looks through one datagram's messages: 1 if one of them ends the reply (NLMSG_DONE), 0 if more follow, -1 with
 * errno if the kernel answered with an error. Messages of another sequence number are not ours (none should come:
 * the socket is new and ours alone) and are passed over.
 */
static int datagram_end(const unsigned char *data, size_t size, uint32_t seq) {
  int len = (int)size;
  for (const struct nlmsghdr *h = (const struct nlmsghdr *)data; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_seq != seq) continue;
    if (h->nlmsg_type == NLMSG_DONE) {
      /* A dump that failed midway says so in DONE's payload: a negative errno. */
      int status = 0;
      if (h->nlmsg_len >= NLMSG_LENGTH(sizeof status)) memcpy(&status, NLMSG_DATA(h), sizeof status);
      if (status < 0) {
        errno = -status;
        return -1;
      }
      return 1;
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
      struct nlmsgerr err;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof err)) {
        errno = EBADMSG;
        return -1;
      }
      memcpy(&err, NLMSG_DATA(h), sizeof err);
      if (err.error == 0) continue; /* an acknowledgement, not an error */
      errno = err.error < 0 ? -err.error : err.error;
      return -1;
    }
  }
  return 0;
}

/* Sends a request on a fresh socket and collects the reply; 0, or -1 with errno and *failed. */
static int diag_ask(int fd, const void *request, size_t size, uint32_t seq, diag_reply *reply, const char **failed) {
  struct timeval timeout = {.tv_sec = DIAG_TIMEOUT_MS / 1000, .tv_usec = (DIAG_TIMEOUT_MS % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0) {
    *failed = "setsockopt(SO_RCVTIMEO)";
    return -1;
  }
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t sent;
  do sent = sendto(fd, request, size, 0, (const struct sockaddr *)&kernel, sizeof kernel);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    *failed = "sendto(NETLINK_SOCK_DIAG)";
    return -1;
  }
  for (;;) {
    if (reply_reserve(reply) < 0) {
      *failed = "recvmsg(NETLINK_SOCK_DIAG)";
      return -1;
    }
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = reply->data + reply->len, .iov_len = DIAG_DATAGRAM};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &msg, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *failed = "recvmsg(NETLINK_SOCK_DIAG)";
      return -1;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      errno = EMSGSIZE;
      *failed = "recvmsg(NETLINK_SOCK_DIAG)";
      return -1;
    }
    if (msg.msg_namelen < sizeof from || from.nl_pid != 0) continue; /* not from the kernel */
    int end = datagram_end(reply->data + reply->len, (size_t)n, seq);
    if (end < 0) {
      *failed = "NETLINK_SOCK_DIAG";
      return -1;
    }
    /* Kept 4-byte aligned, so the decoder walks one datagram into the next as the kernel's NLMSG_NEXT would. */
    size_t kept = NLMSG_ALIGN((size_t)n);
    memset(reply->data + reply->len + n, 0, kept - (size_t)n);
    reply->len += kept;
    if (end == 1) return 0;
  }
}

/* One request, its reply in *reply (malloc'd); 0, or -1 with errno and *failed. */
static int diag_query(const void *request, size_t size, uint32_t seq, diag_reply *reply, const char **failed) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    *failed = "socket(NETLINK_SOCK_DIAG)";
    return -1;
  }
  int r = diag_ask(fd, request, size, seq, reply, failed);
  close_keep_errno(fd);
  return r;
}

static uint32_t next_seq = 1;

/* The reply as a Buffer, or a thrown Error; frees the reply either way. */
static napi_value reply_value(napi_env env, int r, diag_reply *reply, const char *failed) {
  if (r < 0) {
    int err = errno;
    free(reply->data);
    return throw_errno(env, failed, err);
  }
  napi_value buffer;
  napi_status s = napi_create_buffer_copy(env, reply->len, reply->data, NULL, &buffer);
  free(reply->data);
  NAPI_CALL(env, s);
  return buffer;
}

/* The most port ranges one request filters by: 20 bytes of program each, well inside an attribute's 64 KiB. */
#define DIAG_RANGES_MAX 1024

/* A TCP request as the kernel reads it: the header, inet_diag_req_v2, then the filter program as an attribute. */
typedef struct {
  struct nlmsghdr header;
  struct inet_diag_req_v2 request;
  struct nlattr filter;
  struct inet_diag_bc_op ops[DIAG_RANGES_MAX * 5];
} inet_request;
_Static_assert(offsetof(inet_request, request) == NLMSG_HDRLEN, "the request follows the header");
_Static_assert(offsetof(inet_request, filter) == NLMSG_ALIGN(NLMSG_LENGTH(sizeof(struct inet_diag_req_v2))),
               "the filter attribute follows the request, aligned");
_Static_assert(offsetof(inet_request, ops) == offsetof(inet_request, filter) + NLA_HDRLEN, "the program is its data");
_Static_assert(sizeof(((inet_request *)0)->ops) + NLA_HDRLEN <= 65535, "the program fits an attribute's length");

/*
 * The program that keeps only sockets whose local port lies in one of `count` ranges (lo, hi pairs), written as
 * `ss` writes "sport in A or sport in B ...". The kernel runs it over each socket: a true test goes `yes` bytes on,
 * a false one `no` bytes on, and keeps the socket if the program ends exactly at its end. Each range is
 * "port >= lo, then port <= hi" (a test is two ops: the second holds the port); a failed test jumps to the next
 * range, or 4 bytes past the end after the last one (rejected); a range that matched reaches the JMP after it,
 * whose `no` (a JMP always takes it) goes to the very end (kept). The kernel checks that every jump lands on an op
 * that the chain of `yes` jumps reaches: here that chain is the whole program. INET_DIAG_BC_S_EQ would be one
 * test, but it came with Linux 4.17; S_GE and S_LE are in every kernel with inet_diag. Returns its length.
 */
static size_t port_program(struct inet_diag_bc_op *ops, const uint16_t *ranges, size_t count) {
  const size_t range = 2 * sizeof *ops * 2, jump = sizeof *ops; /* 16 and 4 bytes */
  size_t total = count * range + (count - 1) * jump, at = 0;
  struct inet_diag_bc_op *op = ops;
  for (size_t i = 0; i < count; i++) {
    bool last = i == count - 1;
    /* no: past this range and its JMP to the next range; after the last one, 4 bytes past the end */
    *op++ = (struct inet_diag_bc_op){.code = INET_DIAG_BC_S_GE, .yes = 8, .no = (unsigned short)(range + jump)};
    *op++ = (struct inet_diag_bc_op){.no = ranges[2 * i]};
    *op++ = (struct inet_diag_bc_op){.code = INET_DIAG_BC_S_LE, .yes = 8, .no = (unsigned short)(range / 2 + jump)};
    *op++ = (struct inet_diag_bc_op){.no = ranges[2 * i + 1]};
    at += range;
    if (!last) {
      *op++ = (struct inet_diag_bc_op){.code = INET_DIAG_BC_JMP, .yes = 4, .no = (unsigned short)(total - at)};
      at += jump;
    }
  }
  return total;
}

/* Reads null (no filter) or an array of lo, hi pairs (0 <= lo <= hi <= 65535, at most DIAG_RANGES_MAX); false if
 * it is anything else. */
static bool get_ranges(napi_env env, napi_value v, uint16_t *ranges, size_t *count) {
  napi_valuetype type;
  *count = 0;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) return true;
  uint32_t length;
  if (napi_get_array_length(env, v, &length) != napi_ok || length == 0 || length % 2 != 0 ||
      length > 2 * DIAG_RANGES_MAX)
    return false;
  for (uint32_t i = 0; i < length; i++) {
    napi_value element;
    uint32_t port;
    if (napi_get_element(env, v, i, &element) != napi_ok || !get_id(env, element, &port) || port > 65535) return false;
    ranges[i] = (uint16_t)port;
    if (i % 2 == 1 && ranges[i] < ranges[i - 1]) return false;
  }
  *count = length / 2;
  return true;
}

/* diagInet(family 4|6, states (a mask of 1 << TCP_*), ranges|null) -> Buffer: the TCP sockets in those states (whose
 * local port lies in one of the ranges [lo, hi, lo, hi, ...]). */
napi_value diag_inet(napi_env env, napi_callback_info info) {
  ARGS(3);
  int32_t family;
  uint32_t states;
  static uint16_t ranges[2 * DIAG_RANGES_MAX];
  size_t count;
  if (!get_int(env, argv[0], &family) || (family != 4 && family != 6) || !get_id(env, argv[1], &states) ||
      !get_ranges(env, argv[2], ranges, &count))
    return throw_type(env, "diagInet(family 4|6, states, [lo, hi, ...] (at most 1024 port ranges) | null)");
  static inet_request message; /* 20 KiB: kept off the stack; Node calls this on its one JS thread */
  memset(&message, 0, sizeof message);
  uint32_t seq = next_seq++;
  message.request.sdiag_family = family == 4 ? AF_INET : AF_INET6;
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = states;
  size_t size = NLMSG_LENGTH(sizeof message.request);
  if (count > 0) {
    size_t program = port_program(message.ops, ranges, count);
    message.filter.nla_type = INET_DIAG_REQ_BYTECODE;
    message.filter.nla_len = (uint16_t)(NLA_HDRLEN + program);
    size = NLMSG_ALIGN(size) + NLA_HDRLEN + program;
  }
  message.header.nlmsg_len = (uint32_t)size;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = seq;
  diag_reply reply = {0};
  const char *failed = NULL;
  int r = diag_query(&message, size, seq, &reply, &failed);
  return reply_value(env, r, &reply, failed);
}

/* A UNIX request: the header, then unix_diag_req. */
typedef struct {
  struct nlmsghdr header;
  struct unix_diag_req request;
} unix_request;
_Static_assert(offsetof(unix_request, request) == NLMSG_HDRLEN, "the request follows the header");

/* diagUnix(states (a mask of 1 << TCP_*), show (UDIAG_SHOW_*)) -> Buffer: the UNIX sockets in those states. */
napi_value diag_unix(napi_env env, napi_callback_info info) {
  ARGS(2);
  uint32_t states, show;
  if (!get_id(env, argv[0], &states) || !get_id(env, argv[1], &show))
    return throw_type(env, "diagUnix(states, show)");
  unix_request message;
  memset(&message, 0, sizeof message);
  uint32_t seq = next_seq++;
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_states = states;
  message.request.udiag_show = show;
  message.header.nlmsg_len = NLMSG_LENGTH(sizeof message.request);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = seq;
  diag_reply reply = {0};
  const char *failed = NULL;
  int r = diag_query(&message, message.header.nlmsg_len, seq, &reply, &failed);
  return reply_value(env, r, &reply, failed);
}

#else

/* No NETLINK_SOCK_DIAG here: soad reads what it can elsewhere (nothing, off Linux). */
napi_value diag_inet(napi_env env, napi_callback_info info) {
  (void)info;
  return throw_errno(env, "socket(NETLINK_SOCK_DIAG)", ENOSYS);
}

napi_value diag_unix(napi_env env, napi_callback_info info) {
  (void)info;
  return throw_errno(env, "socket(NETLINK_SOCK_DIAG)", ENOSYS);
}

#endif
