/* build.h — `tlc build`: a train block as a standalone executable (see build.c). */
#ifndef TL_BUILD_H
#define TL_BUILD_H
#include "sema.h"

/* argv: build-time flag values (argv[0] is ignored); file: the .tl path, for messages.
 * Returns the process exit status. */
int tl_build_main(TlProgram *prog, const char *train_name, const char *out, const char *cpu, int argc, char **argv,
                  const char *file);

#endif
