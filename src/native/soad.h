/*
 * soad.h: the functions soad.c's module table exports to JS, by the file that holds them. Each reads its arguments
 * (napi.h), calls plain C that makes the syscalls, and returns a value or throws.
 */
#ifndef SOAD_H
#define SOAD_H

#include "napi.h"

/* listen.c */
napi_value listen_unix(napi_env env, napi_callback_info info);
napi_value chmod_socket(napi_env env, napi_callback_info info);
napi_value listen_tcp(napi_env env, napi_callback_info info);
napi_value probe_unix(napi_env env, napi_callback_info info);
napi_value socket_info(napi_env env, napi_callback_info info);
napi_value local_address(napi_env env, napi_callback_info info);
napi_value dup_fd(napi_env env, napi_callback_info info);
napi_value set_cloexec(napi_env env, napi_callback_info info);
napi_value close_fd(napi_env env, napi_callback_info info);
napi_value pending(napi_env env, napi_callback_info info);
napi_value listening(napi_env env, napi_callback_info info);
napi_value lstat_paths(napi_env env, napi_callback_info info);
napi_value relisten(napi_env env, napi_callback_info info);
napi_value replace_fd(napi_env env, napi_callback_info info);
napi_value release_fd(napi_env env, napi_callback_info info);

/* poll.c */
napi_value watch(napi_env env, napi_callback_info info);
napi_value unwatch(napi_env env, napi_callback_info info);
napi_value watch_writable(napi_env env, napi_callback_info info);
napi_value non_blocking(napi_env env, napi_callback_info info);
napi_value await_drained(napi_env env, napi_callback_info info);
napi_value cancel_drained(napi_env env, napi_callback_info info);

/* count.c */
napi_value count_start(napi_env env, napi_callback_info info);
napi_value count_read(napi_env env, napi_callback_info info);
napi_value count_stop(napi_env env, napi_callback_info info);
napi_value count_owner(napi_env env, napi_callback_info info);
napi_value sentinel_memory_new(napi_env env, napi_callback_info info);
napi_value sentinel_read(napi_env env, napi_callback_info info);
napi_value sentinel_free(napi_env env, napi_callback_info info);

/* spawn.c */
napi_value spawn(napi_env env, napi_callback_info info);
napi_value arm_spawn(napi_env env, napi_callback_info info);
napi_value disarm_spawn(napi_env env, napi_callback_info info);

/* pipe.c */
napi_value output_pipe(napi_env env, napi_callback_info info);
napi_value count_lines(napi_env env, napi_callback_info info);
napi_value low_memory(napi_env env, napi_callback_info info);

/* users.c */
napi_value lookup_user(napi_env env, napi_callback_info info);
napi_value lookup_group(napi_env env, napi_callback_info info);

/* notify.c */
napi_value notify(napi_env env, napi_callback_info info);
napi_value journal_connect(napi_env env, napi_callback_info info);
napi_value journal_send(napi_env env, napi_callback_info info);
napi_value notify_listen(napi_env env, napi_callback_info info);
napi_value notify_read(napi_env env, napi_callback_info info);

/* peer.c */
napi_value peer_credentials(napi_env env, napi_callback_info info);

/* accept.c */
napi_value accept_connection(napi_env env, napi_callback_info info);

/* lane.c */
napi_value accept_arm(napi_env env, napi_callback_info info);
napi_value accept_open(napi_env env, napi_callback_info info);
napi_value accept_close(napi_env env, napi_callback_info info);
napi_value accept_disarm(napi_env env, napi_callback_info info);

/* relay.c */
napi_value relay_supported(napi_env env, napi_callback_info info);
napi_value relay_set_on_close(napi_env env, napi_callback_info info);
napi_value relay_listen(napi_env env, napi_callback_info info);
napi_value relay_unlisten(napi_env env, napi_callback_info info);
napi_value relay_connect(napi_env env, napi_callback_info info);
napi_value relay_close_js(napi_env env, napi_callback_info info);
napi_value relay_stats(napi_env env, napi_callback_info info);
napi_value relay_hold(napi_env env, napi_callback_info info);
napi_value relay_fd_limit_js(napi_env env, napi_callback_info info);
napi_value relay_peek(napi_env env, napi_callback_info info);
napi_value relay_answer(napi_env env, napi_callback_info info);

/* diag.c */
napi_value diag_inet(napi_env env, napi_callback_info info);
napi_value diag_unix(napi_env env, napi_callback_info info);

#endif
