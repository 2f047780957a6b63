/*
 * napi.h: the small N-API layer the other files share. It throws errors that carry errno and the syscall's name,
 * reads arguments (numbers, booleans, strings, string arrays, ids, optional fields), builds results, and runs JS
 * callbacks from libuv callbacks. Nothing here makes a syscall: each exported function reads its arguments with
 * these helpers, calls a plain C function that returns 0, or -1 with errno (and the failing call's name), and
 * turns the outcome into a value or a thrown Error.
 */
#ifndef SOAD_NAPI_H
#define SOAD_NAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAPI_VERSION 8
#include <node_api.h>

/* ---------------------------------------------------------------- errors */

/* Throws Error(message) with .errno and .syscall; returns NULL for the caller to return. */
napi_value throw_errno(napi_env env, const char *syscall, int err);

/* The Error throw_errno throws, made but not thrown (for a callback); NULL on failure. */
napi_value make_errno_error(napi_env env, const char *syscall, int err);

/* Throws TypeError(message); returns NULL for the caller to return. */
napi_value throw_type(napi_env env, const char *message);

#define NAPI_CALL(env, call)                                                          \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      bool pending_;                                                                  \
      napi_is_exception_pending((env), &pending_);                                    \
      if (!pending_) napi_throw_error((env), NULL, "soad native: N-API call failed"); \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

#define ARGS(n)                                                         \
  size_t argc = (n);                                                    \
  napi_value argv[(n) > 0 ? (n) : 1];                                   \
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  if (argc < (n)) return throw_type(env, "soad native: missing arguments")

/* ---------------------------------------------------------------- arguments */

#define ID_MAX 4294967294u /* (uid_t)-1 means "unchanged" to chown(2): never a real id */
#define MODE_MAX 07777u

/* An optional id or mode: null/undefined is "leave as is". */
typedef struct {
  bool set;
  uint32_t value;
} opt_u32;

bool get_int(napi_env env, napi_value v, int32_t *out);
bool get_bool(napi_env env, napi_value v, bool *out);

/* A user or group id: a whole number 0..4294967294 (4294967295 is (uid_t)-1, "no change", for the kernel). */
bool get_id(napi_env env, napi_value v, uint32_t *out);

/* Reads null/undefined (unset) or a whole number 0..max; false for anything else. */
bool get_opt_u32(napi_env env, napi_value v, uint32_t max, opt_u32 *out);

/* Copies a JS string into a fresh malloc'd buffer; NULL if it is not a string or on OOM. */
char *get_string(napi_env env, napi_value v, size_t *length);

/* Reads a JS array of strings into a NULL-terminated array with `extra` free slots before the NULL. */
char **get_string_array(napi_env env, napi_value array, size_t extra, size_t *count);

/* obj[key] if it is there and neither undefined nor null. */
bool get_optional(napi_env env, napi_value obj, const char *key, napi_value *out);

/* ---------------------------------------------------------------- results */

napi_value make_int(napi_env env, int64_t n);
napi_value make_bool(napi_env env, bool b);
napi_value make_null(napi_env env);
napi_value make_undefined(napi_env env);

/* obj[key] = a number, a boolean, a string; napi_ok or the failing status (for NAPI_CALL). */
napi_status set_int(napi_env env, napi_value obj, const char *key, int64_t n);
napi_status set_double(napi_env env, napi_value obj, const char *key, double d);
napi_status set_bool(napi_env env, napi_value obj, const char *key, bool b);
napi_status set_string(napi_env env, napi_value obj, const char *key, const char *s);

/* ---------------------------------------------------------------- callbacks */

/* A JS function kept alive for a later call from a libuv callback. */
typedef struct {
  napi_ref fn;
  napi_async_context ctx;
} js_callback;

/* Keeps fn (false if it is not a function); name is the async resource's name (soad:watch, ...). */
bool callback_init(napi_env env, napi_value fn, const char *name, js_callback *cb);
void callback_free(napi_env env, js_callback *cb);

/* Runs a JS callback from a libuv callback, with the microtask queue drained afterwards. */
void call_js(napi_env env, napi_ref fn_ref, napi_async_context ctx, size_t argc, napi_value *argv);

/* The same for a callback whose answer counts: its result as a boolean; false if it threw (handed to Node). */
bool call_js_bool(napi_env env, napi_ref fn_ref, napi_async_context ctx, size_t argc, napi_value *argv);

#endif
