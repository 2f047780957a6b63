/*
 * start.c: lets soad's helper programs start on glibc 2.28 when built on glibc 2.34 or later.
 *
 * An executable's startup code (crt1.o, from the build machine's glibc) calls __libc_start_main. Since 2.34 it
 * passes no constructor function and links to __libc_start_main@GLIBC_2.34, which an older glibc lacks. The
 * helpers link with -Wl,--wrap=__libc_start_main, so crt1.o calls the function below instead: it calls the base
 * version of __libc_start_main (every glibc has it) with a constructor function that does what glibc's
 * __libc_csu_init did before 2.34 (_init, then the executable's init_array; the dynamic linker runs its
 * preinit_array). Both old and new glibc call that function when it is given; the executable's destructors run
 * from the dynamic linker's rtld_fini, as before. Elsewhere (no glibc base version known, musl) the wrapper passes
 * every argument through unchanged.
 */
#include <stddef.h>

#include "../glibc.h"

typedef int main_function(int argc, char **argv, char **envp);

int __real___libc_start_main(main_function *main, int argc, char **argv, main_function *init, void (*fini)(void),
                             void (*rtld_fini)(void), void *stack_end);
int __wrap___libc_start_main(main_function *main, int argc, char **argv, main_function *init, void (*fini)(void),
                             void (*rtld_fini)(void), void *stack_end);

#ifdef SOAD_GLIBC_BASE
extern void (*__init_array_start[])(int, char **, char **) __attribute__((visibility("hidden")));
extern void (*__init_array_end[])(int, char **, char **) __attribute__((visibility("hidden")));
void _init(void);

int libc_start_main_base(main_function *main, int argc, char **argv, main_function *init, void (*fini)(void),
                         void (*rtld_fini)(void), void *stack_end);
__asm__(".symver libc_start_main_base,__libc_start_main@" SOAD_GLIBC_BASE);

/* Runs the executable's constructors, as __libc_csu_init did. */
static int run_constructors(int argc, char **argv, char **envp) {
  _init();
  size_t n = (size_t)(__init_array_end - __init_array_start);
  for (size_t i = 0; i < n; i++) __init_array_start[i](argc, argv, envp);
  return 0;
}

int __wrap___libc_start_main(main_function *main, int argc, char **argv, main_function *init, void (*fini)(void),
                             void (*rtld_fini)(void), void *stack_end) {
  (void)init;
  (void)fini;
  return libc_start_main_base(main, argc, argv, run_constructors, NULL, rtld_fini, stack_end);
}
#else
int __wrap___libc_start_main(main_function *main, int argc, char **argv, main_function *init, void (*fini)(void),
                             void (*rtld_fini)(void), void *stack_end) {
  return __real___libc_start_main(main, argc, argv, init, fini, rtld_fini, stack_end);
}
#endif
