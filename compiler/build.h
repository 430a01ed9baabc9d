/* build.h — `tlc build`: a train block as a standalone executable (see build.c). */
#ifndef TL_BUILD_H
#define TL_BUILD_H
#include "sema.h"

typedef struct TlBuildOptions {
    const char *cpu;      /* --cpu: the host CPU to generate code for (NULL: this one) */
    const char *target;   /* "cpu" (NULL) or "cuda": the step and eval run on an NVIDIA GPU */
    const char *gpu_arch; /* cuda: the PTX's architecture (NULL: sm_80, which every newer GPU loads) */
} TlBuildOptions;

/* argv: build-time flag values (argv[0] is ignored); file: the .tl path, for messages.
 * Returns the process exit status. */
int tl_build_main(TlProgram *prog, const char *train_name, const char *out, const TlBuildOptions *bo, int argc,
                  char **argv, const char *file);

#endif
