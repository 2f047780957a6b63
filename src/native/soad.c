/*
 * soad's native binding: only what Node cannot do itself. This file is the module's table; each function lives in
 * the file named beside it.
 *
 *   listen.c   listenUnix / listenTcp   create, bind and listen a socket that libuv never accepts on (a UNIX socket
 *                                       file admits nobody, mode 0, until its mode and owner are set through an
 *                                       O_PATH fd)
 *              chmodSocket              the mode and owner of soad's socket file on reload, only if it is still that
 *                                       file
 *              probeUnix                is somebody listening on this UNIX socket path?
 *              socketInfo               what kind of socket an inherited fd is
 *              localAddress             what a socket is bound to (getsockname)
 *              dup / setCloexec / close fd plumbing for listeners
 *              pending                  is a connection waiting in the backlog right now? (poll, no wait)
 *              listening / relisten     does a listener still listen (an app may shut it down), listen() again
 *              replaceFd / releaseFd    a new socket put at a listener's fd number (a UNIX listener re-created)
 *   poll.c     watch / unwatch          one-shot readability watch on Node's own loop (uv_poll_t)
 *              awaitDrained / cancel…   until no connection is pending on listeners (uv_timer_t)
 *   count.c    countStart / countRead / countStop / countOwner
 *                                       count every connection the kernel queues on a listener, with the time of
 *                                       the latest (Linux: O_ASYNC with F_SETSIG: a real-time signal for the
 *                                       first connection of each 100 ms, a blocked SIGURG's pending bit for the
 *                                       rest)
 *              sentinelMemory / sentinelRead / sentinelFree
 *                                       the same, counted by helper/sentinel.c run as the app's user (a shared page)
 *   spawn.c    spawn                    fork/exec with the listeners at fds 3.. (blocking), LISTEN_PID = the child's
 *                                       pid, a new session, a cgroup, uid/gid, then the parent-death signal; reports
 *                                       the exit
 *   arm.c      armSpawn / disarmSpawn   the cold path: listeners armed with a prepared start, which the poll callback
 *                                       runs at once on the first pending connection (no JS before the fork)
 *   pipe.c     outputPipe               a close-on-exec pipe for an app's stdout or stderr (read by soad, per service)
 *              countLines               the newlines in a buffer (output soad drops unread)
 *   users.c    lookupUser / lookupGroup names to ids (getpwnam, getgrnam, getgrouplist)
 *   notify.c   notify                   a datagram to systemd's NOTIFY_SOCKET (READY=1, STOPPING=1)
 *              notifyListen, notifyRead an app's per-run NOTIFY_SOCKET, read with the senders' credentials
 *              journalConnect/Send      journald's native protocol, for each app's lines
 *   peer.c     peerCredentials          who is at the other end of a UNIX socket (SO_PEERCRED)
 *   relay.c    relay*                   proxy mode: accept, connect to the app, splice both ways (Linux);
 *              relayPeek / relayAnswer  a held connection's request, answered by soad (the waiting page)
 *   accept.c   acceptConnection         --accept mode: one connection and its peer's IP and port, for an instance
 *   lane.c     acceptArm / acceptOpen / acceptClose / acceptDisarm
 *                                       --accept mode's hot path: listeners armed with a prepared start; while JS
 *                                       gives a start, the poll callback accepts, asks JS about the source, and
 *                                       starts the instance (no other JS before the fork)
 *   diag.c     diagInet / diagUnix      the kernel's list of TCP and UNIX sockets, filtered by state and port
 *                                       (NETLINK_SOCK_DIAG): open connections and an app's listeners without /proc
 *   memory.c   lowMemory                V8's memory-reducing GC and malloc_trim, once soad sleeps
 *
 *   napi.c     the N-API layer: errors, argument readers, result builders, JS callbacks (no syscalls)
 *   sys.c      syscall helpers more than one file uses (socket_cloexec, close_keep_errno, monotonic_ns)
 *
 * Each exported function reads its arguments (napi.h), calls plain C that makes the syscalls and returns 0, or -1
 * with errno, and marshals the result. Every syscall is checked; a failure throws an Error carrying `errno` and
 * `syscall`. Node's own loop runs everything; no thread is created. src/os/native.ts is the contract.
 */
#include "soad.h"
#include "glibc.h"

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listenUnix", NULL, listen_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"chmodSocket", NULL, chmod_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenTcp", NULL, listen_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"probeUnix", NULL, probe_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketInfo", NULL, socket_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"localAddress", NULL, local_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setCloexec", NULL, set_cloexec, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dup", NULL, dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pending", NULL, pending, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listening", NULL, listening, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lstatPaths", NULL, lstat_paths, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relisten", NULL, relisten, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replaceFd", NULL, replace_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"releaseFd", NULL, release_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchWritable", NULL, watch_writable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nonBlocking", NULL, non_blocking, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"awaitDrained", NULL, await_drained, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cancelDrained", NULL, cancel_drained, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countStart", NULL, count_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countRead", NULL, count_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countStop", NULL, count_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countOwner", NULL, count_owner, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sentinelMemory", NULL, sentinel_memory_new, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sentinelRead", NULL, sentinel_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sentinelFree", NULL, sentinel_free, NULL, NULL, NULL, napi_enumerable, NULL},
      {"spawn", NULL, spawn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"armSpawn", NULL, arm_spawn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"disarmSpawn", NULL, disarm_spawn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"outputPipe", NULL, output_pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countLines", NULL, count_lines, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lowMemory", NULL, low_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupUser", NULL, lookup_user, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupGroup", NULL, lookup_group, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notify", NULL, notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"journalConnect", NULL, journal_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"journalSend", NULL, journal_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notifyListen", NULL, notify_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notifyRead", NULL, notify_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerCredentials", NULL, peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptConnection", NULL, accept_connection, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptArm", NULL, accept_arm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptOpen", NULL, accept_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptClose", NULL, accept_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptDisarm", NULL, accept_disarm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relaySupported", NULL, relay_supported, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayOnClose", NULL, relay_set_on_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayListen", NULL, relay_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayUnlisten", NULL, relay_unlisten, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayConnect", NULL, relay_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayClose", NULL, relay_close_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayStats", NULL, relay_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayHold", NULL, relay_hold, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayFdLimit", NULL, relay_fd_limit_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayPeek", NULL, relay_peek, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayAnswer", NULL, relay_answer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"diagInet", NULL, diag_inet, NULL, NULL, NULL, napi_enumerable, NULL},
      {"diagUnix", NULL, diag_unix, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
