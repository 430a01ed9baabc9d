/* memplan.h — buffer liveness and reuse: one arena for a Loop IR program's temporaries.
 *
 * A plan is made when the sizes are known (the dim symbols' values): at a program's first
 * run, or when `tlc build` compiles a program whose dims are all constant. It gives every
 * TEMP and STATE buffer an offset in one arena so that two buffers share bytes only when
 * their live ranges are disjoint:
 *
 *   - program points: the host program's ops in order (pre-order through host loops),
 *     numbered from 1; point 0 is the start of a run, where STATE buffers are zeroed, and
 *     point npoints + 1 is after the run;
 *   - a buffer is live from its first use (a kernel that loads or stores it, a copy, an
 *     alias into it) to its last; a use inside a host loop (a scan) counts as a use over
 *     the whole outermost loop, so values carried between iterations are safe; a use of an
 *     ALIAS buffer is a use of every buffer the host program points it into;
 *   - STATE buffers are live from point 0 (they are zeroed before the run); the `keep`
 *     buffers (the graph's outputs) are live to the end of the run, so their values stay
 *     valid after it;
 *   - offsets are assigned greedily, largest buffer first, each into the smallest gap
 *     between the buffers already placed whose live ranges overlap its own (best fit), or
 *     above them all; every size and offset is a multiple of 64 bytes.
 *
 * INPUT, PARAM, CONST and ALIAS buffers are not planned (offset -1). See docs/memory.md. */
#ifndef TL_MEMPLAN_H
#define TL_MEMPLAN_H
#include <stdint.h>
#include <stdio.h>

#include "loops.h"

enum { TL_MEMPLAN_ALIGN = 64 };

typedef struct TlMemPlan {
    int nbuf;
    int64_t *offset;  /* per buffer: byte offset in the arena; -1 when not planned */
    int64_t *bytes;   /* per buffer: bytes reserved (numel * element size, >= 1 element,
                         rounded up to 64); 0 when not planned */
    int *first, *last;/* per buffer: live range [first, last] in program points; -1 when
                         the buffer is never used (it still gets its own bytes) */
    int npoints;      /* host ops; points run 0 .. npoints + 1 */
    int64_t arena;    /* arena bytes (a multiple of 64) */
    int64_t total;    /* the sum of `bytes`: the arena with no reuse */
    int64_t peak;     /* the most bytes live at one point: no arena for these live ranges
                         can be smaller */
    int peak_point;
    int reuse;        /* 0: every buffer has bytes of its own (offsets are a prefix sum) */
} TlMemPlan;

/* Plans p's TEMP and STATE buffers for dim symbol values syms (p->nsyms of them), keeping
 * buffers keep[0..nkeep) (and whatever they alias) alive to the end. NULL when a buffer's
 * size is negative. */
TlMemPlan *tl_memplan(const TlLProgram *p, const int64_t *syms, const int *keep, int nkeep);
/* The same; reuse = 0 gives each buffer its own bytes (for debugging: TL_MEMPLAN=0). */
TlMemPlan *tl_memplan_ex(const TlLProgram *p, const int64_t *syms, const int *keep, int nkeep, int reuse);
void tl_memplan_free(TlMemPlan *m);

/* The buffers of p's graph outputs (p->node_buf of p->g->outputs), for `keep`: writes at
 * most max ids to keep and returns how many there are. */
int tl_memplan_outputs(const TlLProgram *p, int *keep, int max);

/* A table: per planned buffer its kind, bytes, offset and live range, then the totals. */
void tl_memplan_print(FILE *f, const TlLProgram *p, const TlMemPlan *m);

/* Buffers that a kernel of p loads or stores (sorted, each once): writes at most max ids
 * to out and returns how many there are. */
int tl_memplan_kernel_bufs(const TlLProgram *p, int k, int *out, int max);

#endif
