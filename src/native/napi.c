/*
 * napi.c: the N-API helper layer (see napi.h): errors, argument readers, result builders, JS callbacks.
 * No syscalls here.
 */
#include "napi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glibc.h"

/* ---------------------------------------------------------------- errors */

napi_value make_errno_error(napi_env env, const char *syscall, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_value msg, error, num, sys;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_error(env, NULL, msg, &error) != napi_ok) return NULL;
  if (napi_create_int32(env, err, &num) == napi_ok) napi_set_named_property(env, error, "errno", num);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys) == napi_ok)
    napi_set_named_property(env, error, "syscall", sys);
  return error;
}

napi_value throw_errno(napi_env env, const char *syscall, int err) {
  napi_value error = make_errno_error(env, syscall, err);
  if (error != NULL) napi_throw(env, error);
  return NULL;
}

napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* ---------------------------------------------------------------- arguments */

bool get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

bool get_id(napi_env env, napi_value v, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 4294967294.0) || d != (double)(uint32_t)d) return false;
  *out = (uint32_t)d;
  return true;
}

bool get_bool(napi_env env, napi_value v, bool *out) {
  return napi_get_value_bool(env, v, out) == napi_ok;
}

bool get_opt_u32(napi_env env, napi_value v, uint32_t max, opt_u32 *out) {
  napi_valuetype type;
  double d;
  out->set = false;
  out->value = 0;
  if (napi_typeof(env, v, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) return true;
  if (type != napi_number || napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= (double)max) || d != (double)(uint32_t)d) return false;
  out->set = true;
  out->value = (uint32_t)d;
  return true;
}

char *get_string(napi_env env, napi_value v, size_t *length) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *buf = malloc(len + 1);
  if (buf == NULL) return NULL;
  if (napi_get_value_string_utf8(env, v, buf, len + 1, &len) != napi_ok) {
    free(buf);
    return NULL;
  }
  if (length != NULL) *length = len;
  return buf;
}

char **get_string_array(napi_env env, napi_value array, size_t extra, size_t *count) {
  uint32_t n;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  char **out = calloc(n + extra + 1, sizeof *out);
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, array, i, &v) != napi_ok || (out[i] = get_string(env, v, NULL)) == NULL) {
      for (uint32_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  *count = n;
  return out;
}

bool get_optional(napi_env env, napi_value obj, const char *key, napi_value *out) {
  bool has;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return false;
  napi_valuetype t;
  return napi_typeof(env, *out, &t) == napi_ok && t != napi_undefined && t != napi_null;
}

/* ---------------------------------------------------------------- results */

napi_value make_int(napi_env env, int64_t n) {
  napi_value v;
  if (napi_create_int64(env, n, &v) != napi_ok) return NULL;
  return v;
}

napi_value make_bool(napi_env env, bool b) {
  napi_value v;
  if (napi_get_boolean(env, b, &v) != napi_ok) return NULL;
  return v;
}

napi_value make_null(napi_env env) {
  napi_value v;
  if (napi_get_null(env, &v) != napi_ok) return NULL;
  return v;
}

napi_value make_undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_status set_int(napi_env env, napi_value obj, const char *key, int64_t n) {
  napi_value v;
  napi_status s = napi_create_int64(env, n, &v);
  return s != napi_ok ? s : napi_set_named_property(env, obj, key, v);
}

napi_status set_double(napi_env env, napi_value obj, const char *key, double d) {
  napi_value v;
  napi_status s = napi_create_double(env, d, &v);
  return s != napi_ok ? s : napi_set_named_property(env, obj, key, v);
}

napi_status set_bool(napi_env env, napi_value obj, const char *key, bool b) {
  napi_value v;
  napi_status s = napi_get_boolean(env, b, &v);
  return s != napi_ok ? s : napi_set_named_property(env, obj, key, v);
}

napi_status set_string(napi_env env, napi_value obj, const char *key, const char *str) {
  napi_value v;
  napi_status s = napi_create_string_utf8(env, str, NAPI_AUTO_LENGTH, &v);
  return s != napi_ok ? s : napi_set_named_property(env, obj, key, v);
}

/* ---------------------------------------------------------------- callbacks */

void call_js(napi_env env, napi_ref fn_ref, napi_async_context ctx, size_t argc, napi_value *argv) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv;
  if (napi_get_reference_value(env, fn_ref, &fn) == napi_ok && fn != NULL &&
      napi_get_global(env, &recv) == napi_ok) {
    napi_value result;
    if (napi_make_callback(env, ctx, recv, fn, argc, argv, &result) != napi_ok) {
      /* An exception thrown by the callback: hand it to Node as uncaught. */
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

bool call_js_bool(napi_env env, napi_ref fn_ref, napi_async_context ctx, size_t argc, napi_value *argv) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  bool answer = false;
  napi_value fn, recv, result, truth;
  if (napi_get_reference_value(env, fn_ref, &fn) == napi_ok && fn != NULL && napi_get_global(env, &recv) == napi_ok) {
    if (napi_make_callback(env, ctx, recv, fn, argc, argv, &result) != napi_ok) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    } else if (napi_coerce_to_bool(env, result, &truth) != napi_ok || napi_get_value_bool(env, truth, &answer) != napi_ok) {
      answer = false;
    }
  }
  napi_close_handle_scope(env, scope);
  return answer;
}

bool callback_init(napi_env env, napi_value fn, const char *name, js_callback *cb) {
  napi_valuetype type;
  if (napi_typeof(env, fn, &type) != napi_ok || type != napi_function) return false;
  napi_value resource, resource_name;
  if (napi_create_object(env, &resource) != napi_ok) return false;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok) return false;
  if (napi_create_reference(env, fn, 1, &cb->fn) != napi_ok) return false;
  if (napi_async_init(env, resource, resource_name, &cb->ctx) != napi_ok) {
    napi_delete_reference(env, cb->fn);
    return false;
  }
  return true;
}

void callback_free(napi_env env, js_callback *cb) {
  napi_async_destroy(env, cb->ctx);
  napi_delete_reference(env, cb->fn);
}
