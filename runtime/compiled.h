/* compiled.h — running a program that tlc compiled ahead of time (tlc build) inside an
 * executable: no LLVM, no compiler, just the generated functions and a table of buffers.
 *
 * The generated object exports, for a program with prefix P (e.g. tl_step_):
 *   void Pmain(void **bufs, const int64_t *syms, TlRtParFor parfor, void *pool);
 *   void Psizes(const int64_t *syms, int64_t *numel);
 * bufs has one slot per buffer of the program's Loop IR (docs/loops.md); the caller points
 * the input and param slots at its own memory, the rest (temporaries, scan state) are
 * allocated here once, 64-byte aligned, on the first run: no allocation afterwards. When
 * the description carries a memory plan (tlc build makes one when every dim is constant:
 * compiler/memplan.h, docs/memory.md), they are one arena and buffers whose live ranges
 * do not overlap share bytes; otherwise each has its own block. */
#ifndef TL_COMPILED_H
#define TL_COMPILED_H
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

typedef void (*TlRtKernelFn)(void **bufs, const int64_t *syms, int64_t begin, int64_t end);
typedef void (*TlRtParFor)(void *pool, TlRtKernelFn k, void **bufs, const int64_t *syms, int64_t n);

/* The buffer kinds of the Loop IR (compiler/loops.h, TlLBufKind), in its order. */
enum { TL_RT_TEMP, TL_RT_INPUT, TL_RT_PARAM, TL_RT_CONST, TL_RT_ALIAS, TL_RT_STATE };

typedef struct TlRtProgramDesc {
    const char *name;
    int nbuf;
    const signed char *kind;   /* per buffer: TL_RT_* */
    const unsigned char *elem; /* per buffer: bytes per element */
    int nsyms;                 /* dim symbols (must be 0 or bound by the caller) */
    void (*main)(void **bufs, const int64_t *syms, TlRtParFor parfor, void *pool);
    void (*sizes)(const int64_t *syms, int64_t *numel);
    const int64_t *offset;     /* per buffer: byte offset of a TEMP/STATE buffer in the arena;
                                  NULL: no plan, one block per buffer */
    int64_t arena;             /* the arena's bytes (with offset) */
} TlRtProgramDesc;

typedef struct TlRtProgram {
    const TlRtProgramDesc *d;
    void **slots;
    void **own;
    int64_t *numel;
    int64_t syms[16];
    TlPool *pool;
    int ready;
    void *arena;               /* the planned buffers' memory (desc->offset), else NULL */
} TlRtProgram;

/* parfor for generated code: [0, n) in static chunks over the pool (deterministic). */
void tl_rt_parfor(void *pool, TlRtKernelFn k, void **bufs, const int64_t *syms, int64_t n);

int tl_rt_program_init(TlRtProgram *p, const TlRtProgramDesc *d, TlPool *pool, char *err, size_t errlen);
void tl_rt_program_free(TlRtProgram *p);
/* Points an input or param buffer at the caller's memory (kept until changed). */
void tl_rt_set(TlRtProgram *p, int buf, void *data);
/* Runs the program (allocating its buffers the first time). */
int tl_rt_run(TlRtProgram *p, char *err, size_t errlen);
/* A buffer's memory after a run (outputs). */
void *tl_rt_buf(const TlRtProgram *p, int buf);
int64_t tl_rt_numel(const TlRtProgram *p, int buf);

#endif
