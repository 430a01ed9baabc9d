/* kernels.h — the table of kernels of a graph (`tlc kernels FILE`): for each kernel the
 * fusion partition makes (compiler/fuse.h), its name, the .tl lines its ops came from, the
 * ops it fuses, its output shape, FLOPs, bytes moved and arithmetic intensity.
 *
 *   TlGDimBinding b[] = {{"B", 16}, {"T", 128}};     // values for the dim symbols, if any
 *   TlKernelTable *t = tl_kernels_build(g, NULL, b, 2); // NULL options: fusion on
 *   tl_kernels_print(stdout, t);
 *   tl_kernels_free(t);
 *
 * Counting: FLOPs are one per element per elementwise op, one per input element of a
 * reduction, 2*M*N*K for a contraction (2 * the product of every letter's size), one per
 * source element of scatter_add, none for movement and generators. Bytes are what the
 * kernel must move at least: every buffer it reads, once, plus the buffer it writes, in
 * their storage types (f32 for f32/bf16/f16). A symbol without a value makes the
 * numbers unknown (printed "?", stored as -1). */
#ifndef TL_KERNELS_H
#define TL_KERNELS_H
#include <stdio.h>

#include "fuse.h"
#include "graph.h"

typedef struct TlKernelInfo {
    char name[64];      /* the Loop IR kernel's name: tl_k<n>_<op>, tl_k<n>_fused_<op> */
    int group;          /* index into the fusion's groups */
    int root;           /* the node it stores */
    int nkern;          /* Loop IR kernels it lowers to (concat: one per operand, scatter_add 2) */
    const char *kind;   /* "op", "pointwise", "reduce", "row" */
    int nops;           /* ops computed (members, plus constants recomputed in it) */
    char ops[160];      /* their names, "rmax sub exp sum div (+2 broadcast)" */
    char source[160];   /* "nn.tl:25-26 gpt.tl:17": the lines of its ops */
    char shape[96];     /* the output: "f32[16, 128, 64]" */
    double flops, bytes, intensity; /* -1 when a dim is unknown */
} TlKernelInfo;

typedef struct TlKernelTable {
    const TlGraph *g;
    TlFusion *fusion;
    TlKernelInfo *k;
    int n;              /* rows (groups with a kernel) */
    int nkernels;       /* Loop IR kernels (sum of nkern) */
    int nprims;         /* primitives of the graph (tl_fuse_primitive_count) */
    int fused;          /* built with fusion on */
    double flops, bytes;/* totals (-1 when unknown) */
} TlKernelTable;

/* o: NULL = fusion on; {.enabled = 0} gives the unfused table (one kernel per op). */
TlKernelTable *tl_kernels_build(const TlGraph *g, const TlFuseOptions *o, const TlGDimBinding *b, int nb);
void tl_kernels_print(FILE *f, const TlKernelTable *t);
void tl_kernels_free(TlKernelTable *t);

#endif
