/* fuse.h — partition a Graph IR into kernels (groups of nodes that become one loop nest).
 *
 *   TlFusion *f = tl_fuse(g, NULL);          // NULL options: the defaults
 *   for (int k = 0; k < f->ngroups; k++) ... f->groups[k] ...
 *   tl_fuse_print(stdout, f);                // --emit=fused
 *   tl_fuse_free(f);
 *
 * A group has one *root*: the node it materializes (stores to a buffer). Every other member
 * is computed inside the root's loop nest, at the element where it is needed, and never
 * stored. A group is one of:
 *   op:        a node that is not fused (contract, gather, scatter_add, pad, concat, proj,
 *              const data...): lowered as its own kernel(s), as without fusion;
 *   pointwise: elementwise ops and index remappings (broadcast, permute, slice, reshape)
 *              over the root's shape (the *domain*);
 *   reduce:    the root is a sum/rmax; its elementwise producers are computed in its
 *              reduction loop;
 *   row:       loops over the kept axes of the domain (parallel), then, per kept index,
 *              one inner loop per reduction of the group over the reduced axes `axes`
 *              (each a local accumulator: softmax's max and sum, layer_norm's mean and
 *              variance), then the root: stored once per kept index when it has the kept
 *              shape, or in a last inner loop over the reduced axes;
 *   gemm:      a pointwise group whose domain is the result of one f32 contraction (member
 *              `contract`), read at the domain index only: the contraction's elementwise
 *              consumers (bias, activation, residual, scale) are its epilogue, applied
 *              to each C element once it is summed (TlLGemm.epi, docs/fusion.md).
 * A node joins the group of its users when it is fusible, is not a graph output, all its
 * users are in one group, it would be evaluated at no more than TL_FUSE_MAX_SITES distinct
 * (loop, index) places there, and (for a reduction) its kept index is the group's outer
 * index. Otherwise it is materialized: a value used by several groups or by a contraction
 * gets a buffer. Constant fills and iota are recomputed in every group that uses them.
 * See docs/fusion.md. */
#ifndef TL_FUSE_H
#define TL_FUSE_H
#include <stdint.h>
#include <stdio.h>

#include "graph.h"

#define TL_FUSE_MAX_SITES 8

typedef enum TlFuseKind { TL_FUSE_OP, TL_FUSE_POINTWISE, TL_FUSE_REDUCE, TL_FUSE_ROW, TL_FUSE_GEMM } TlFuseKind;

typedef struct TlFuseGroup {
    TlFuseKind kind;
    int root;         /* the node stored by this group */
    int *nodes;       /* members in id order (the root last); duplicated constants excluded */
    int nnodes;
    int *inputs;      /* materialized nodes (buffers) the members read, in id order */
    int ninputs;
    TlGShape domain;  /* the iteration space: the root's shape (pointwise), the reduced
                         input's shape (reduce, row) */
    uint32_t axes;    /* reduce, row: the reduced axes of the domain */
    int kept_root;    /* row, reduce: the root has the kept shape (stored after the reductions) */
    int contract;     /* gemm: the contraction member; -1 otherwise */
} TlFuseGroup;

/* Per node: the group it belongs to, or one of these. */
enum {
    TL_FUSE_NONE = -1,   /* a buffer with no kernel: input, param, const data, scan (host) */
    TL_FUSE_INLINED = -2 /* recomputed inside each group using it: a constant fill, an iota,
                            an index remapping, or cheap arithmetic used by several groups */
};

typedef struct TlFusion {
    const TlGraph *g;
    int *group_of;        /* node -> group index, or TL_FUSE_NONE / TL_FUSE_INLINED */
    TlFuseGroup *groups;  /* in execution order (by root id) */
    int ngroups;
} TlFusion;

typedef struct TlFuseOptions {
    int enabled;          /* 0: every node its own group (the unfused partition) */
    int max_sites;        /* 0: TL_FUSE_MAX_SITES */
    int no_epilogue;      /* 1: contractions are never fused with their consumers */
    int no_recompute;     /* 1: cheap arithmetic used by several groups is stored, not
                             recomputed in each (TL_FUSE_RECOMPUTE=0) */
} TlFuseOptions;

/* How far a chain of recomputed arithmetic may reach back from the group that uses it
 * (each link one add, sub, mul, neg, div, min, max, select or comparison). */
#define TL_FUSE_RECOMPUTE_DEPTH 4

/* Partition g (not its scan bodies: the lowering partitions each body it lowers). Never
 * fails on a valid graph. */
TlFusion *tl_fuse(const TlGraph *g, const TlFuseOptions *o);
void tl_fuse_free(TlFusion *f);

/* 1 when node n is computed inside a group without a buffer of its own. */
int tl_fuse_is_inlined(const TlFusion *f, int n);
/* Number of primitive nodes that compute something (every node but input, param, const
 * data): what the group count is compared with. */
int tl_fuse_primitive_count(const TlGraph *g);

/* --emit=fused: one line per group (kind, root, domain, members, inputs), then a summary
 * line "N kernels for M primitives". */
void tl_fuse_print(FILE *f, const TlFusion *fz);

/* The reshape from x's shape to `to` that fusion treats as an index remapping: 1 when
 * they differ only by axes of size 1 (*squeeze = 1), or when every dim of both is
 * constant (*squeeze = 0: the index is unravelled). 0: not remapped (materialized). */
int tl_fuse_reshape_remap(const TlGraph *g, const TlGShape *x, const TlGShape *to, int *squeeze);

#endif
