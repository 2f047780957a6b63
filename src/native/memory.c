/*
 * memory.c: asks V8 to give back what it can, as it does for a system low on memory (a full GC that also shrinks
 * the heap's committed pages and drops compiled-code caches), then has the C library return its free pages
 * (malloc_trim). Node's own `gc()` is a plain full GC, which keeps the pages; V8 shrinks them only from its memory
 * reducer, some 10 s later. soad calls this once it sleeps (os/gc.ts).
 *
 * The entry point is Node's public `node::LowMemoryNotification()` (node.h), found at run time: N-API offers nothing
 * of the kind, and a missing symbol (another runtime) only means there is nothing to do.
 */
#include "soad.h"

#include <dlfcn.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include "glibc.h"

napi_value low_memory(napi_env env, napi_callback_info info) {
  (void)info;
  void (*notify)(void) = NULL;
  /* C++ name of `void node::LowMemoryNotification()`. */
  void *symbol = dlsym(RTLD_DEFAULT, "_ZN4node21LowMemoryNotificationEv");
  if (symbol != NULL) {
    *(void **)&notify = symbol;
    notify();
  }
#ifdef __GLIBC__
  malloc_trim(0); /* returns 1 if memory was released, 0 if not: nothing to check */
#endif
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, symbol != NULL, &result));
  return result;
}
