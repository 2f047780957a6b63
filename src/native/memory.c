/*
 * memory.c: asks V8 to give back what it can, as it does for a system low on memory (a full GC that also shrinks
 * the heap's committed pages and drops compiled-code caches), then has the C library return its free pages
 * (malloc_trim). Node's own `gc()` is a plain full GC, which keeps the pages; V8 shrinks them only from its memory
 * reducer, some 10 s later. soad calls this once it sleeps (os/gc.ts).
 *
 * The entry point is Node's public `node::LowMemoryNotification()` (node.h), found at run time: N-API offers nothing
 * of the kind, and a missing symbol (another runtime) only means there is nothing to do.
 *
 * With `flushCode` (the settle after start-up), that GC also drops the bytecode of every function not running: V8
 * drops a function's bytecode only after it has gone unused through 5 GCs of its own accord (--bytecode-old-age),
 * and an idle soad has none, so what only start-up ran (the command line, the config, opening listeners: about
 * 0.7 MB) would be kept for good. A function needed again is compiled again from the source, as on its first call.
 * V8's own --stress-flush-code does this: set through V8's public `v8::V8::SetFlagsFromString` for this one GC,
 * and unset after it, so V8's flags are again what they were (the code cache names them: cli/codeCache.ts).
 */
#include "soad.h"

#include <dlfcn.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include "glibc.h"

/* lowMemory(flushCode?) -> whether Node's LowMemoryNotification was found. */
napi_value low_memory(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool flush = false;
  if (argc >= 1 && !get_bool(env, argv[0], &flush)) return throw_type(env, "lowMemory(flushCode?: boolean)");
  void (*notify)(void) = NULL;
  /* C++ name of `void node::LowMemoryNotification()`. */
  void *symbol = dlsym(RTLD_DEFAULT, "_ZN4node21LowMemoryNotificationEv");
  void (*set_flags)(const char *) = NULL;
  /* C++ name of `static void v8::V8::SetFlagsFromString(const char *)`. */
  void *flags = flush ? dlsym(RTLD_DEFAULT, "_ZN2v82V818SetFlagsFromStringEPKc") : NULL;
  if (flags != NULL) *(void **)&set_flags = flags;
  if (symbol != NULL) {
    *(void **)&notify = symbol;
    if (set_flags != NULL) set_flags("--stress-flush-code");
    notify();
    if (set_flags != NULL) set_flags("--no-stress-flush-code");
  }
#ifdef __GLIBC__
  malloc_trim(0); /* returns 1 if memory was released, 0 if not: nothing to check */
#endif
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, symbol != NULL, &result));
  return result;
}
