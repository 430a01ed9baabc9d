/* simplify.h — graph-to-graph clean-ups on Graph IR: common subexpressions, constant
 * folding, algebraic identities and dead code. Every pass keeps the graph's meaning (the
 * interpreter computes the same outputs before and after) and counts what it did.
 *
 * The passes renumber nodes. Outputs are updated in place; a caller that holds other node
 * ids passes `remap` (g->nnodes ints, filled with the new id of each old node, -1 when the
 * node was removed). Input and param nodes are never removed (a scan body's inputs are
 * its arguments; params keep their names for the caller). Scan bodies are simplified too. */
#ifndef TL_SIMPLIFY_H
#define TL_SIMPLIFY_H
#include <stdio.h>

#include "graph.h"

typedef struct TlSimplifyStats {
    int cse;               /* a node identical to an earlier one (same op, operands, attrs) */
    int fold;              /* an op on constants evaluated at compile time */
    int dce;               /* a node no output depends on, removed */
    int mul_one;           /* x*1, 1*x -> x */
    int add_zero;          /* x+0, 0+x -> x */
    int sub_zero;          /* x-0 -> x */
    int div_one;           /* x/1 -> x */
    int neg_neg;           /* -(-x) -> x */
    int permute_permute;   /* permute(permute(x)) -> one permute, or x */
    int permute_identity;  /* permute(x, identity) -> x */
    int reshape_reshape;   /* reshape(reshape(x)) -> reshape(x) */
    int reshape_identity;  /* reshape to the same shape -> x */
    int broadcast_const;   /* broadcast of a scalar fill constant -> a fill constant */
    int broadcast_identity;/* broadcast to the same shape -> x */
} TlSimplifyStats;

enum {
    TL_SIMPLIFY_CSE = 1,
    TL_SIMPLIFY_FOLD = 2,
    TL_SIMPLIFY_ALGEBRA = 4,
    TL_SIMPLIFY_DCE = 8,
    TL_SIMPLIFY_ALL = 15,
};

/* Run the passes in `which` (to a fixed point when more than one). stats accumulates (may
 * be NULL); remap as above (may be NULL). Returns 0, or -1 with tl_graph_error(g). */
int tl_simplify(TlGraph *g, int which, TlSimplifyStats *stats, int *remap);
void tl_simplify_stats_print(FILE *f, const TlSimplifyStats *s);

#endif
