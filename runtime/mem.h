/* mem.h — 64-byte-aligned memory and a per-step workspace.
 *
 * Every tensor buffer of the runtime is 64-byte aligned (a cache line, and the widest
 * vector load: AVX-512) so generated kernels may use aligned loads.
 *
 * A TlWorkspace is one aligned block reserved once, before training starts, and handed
 * out by bumping an offset. A training step takes its temporaries from it and calls
 * tl_mem_ws_reset at the end, so the step itself never calls malloc. The high-water mark
 * tells the memory planner (or a test) how much a step really used.
 *
 *   TlWorkspace ws;
 *   if (tl_mem_ws_init(&ws, bytes, err, sizeof err)) return -1;
 *   for (step...) { float *tmp = tl_mem_ws_alloc(&ws, n * sizeof(float)); ...
 *                   tl_mem_ws_reset(&ws); }
 *   tl_mem_ws_release(&ws);
 *
 * Nothing here exits; failures return NULL or -1 with a message. */
#ifndef TL_MEM_H
#define TL_MEM_H
#include <stddef.h>

enum { TL_MEM_ALIGN = 64 };

/* n bytes aligned to TL_MEM_ALIGN, uninitialized (n == 0 gives a valid unique pointer);
 * NULL when out of memory or n overflows. Free with tl_mem_free. */
void *tl_mem_alloc(size_t n);
/* The same, zero-filled. */
void *tl_mem_calloc(size_t n);
void tl_mem_free(void *p); /* NULL is allowed */

typedef struct TlWorkspace {
    unsigned char *base; /* TL_MEM_ALIGN-aligned, cap bytes */
    size_t cap;
    size_t used;         /* bytes handed out since the last reset */
    size_t high;         /* the largest `used` ever seen */
} TlWorkspace;

/* Reserve cap bytes. 0 on success; -1 with a one-line message in err. */
int tl_mem_ws_init(TlWorkspace *ws, size_t cap, char *err, size_t errlen);
/* n bytes aligned to TL_MEM_ALIGN from the workspace; NULL when it would overflow cap
 * (the workspace is unchanged then). Never calls malloc. */
void *tl_mem_ws_alloc(TlWorkspace *ws, size_t n);
/* Hand everything back (the memory is reused by the next allocations). */
void tl_mem_ws_reset(TlWorkspace *ws);
/* The current offset, to return to a mark later: a nested scope frees its own buffers. */
size_t tl_mem_ws_mark(const TlWorkspace *ws);
void tl_mem_ws_rewind(TlWorkspace *ws, size_t mark);
void tl_mem_ws_release(TlWorkspace *ws);

#endif
