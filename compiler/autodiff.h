/* autodiff.h — reverse-mode differentiation of Graph IR, producing Graph IR.
 *
 * The backward graph is appended to the same graph: the gradient of a param is an ordinary
 * node that back ends lower like any other, and that the passes (simplify, fusion) see
 * together with the forward nodes it reuses.
 *
 * Only nodes on a path from a differentiated node to an output get backward nodes, so an
 * unused branch costs nothing. Integer and bool values carry no gradient; a comparison,
 * an integer cast or a gather index stops the flow. See docs/graph-ir.md for every rule. */
#ifndef TL_AUTODIFF_H
#define TL_AUTODIFF_H
#include "graph.h"

/* grads[i] = d(loss)/d(params[i]). loss is a float node, normally a scalar; a non-scalar
 * loss is treated as sum(loss). A param that the loss does not depend on gets a zero
 * constant. Returns 0, or -1 with the message in tl_graph_error(g). */
int tl_grad(TlGraph *g, int loss, int nparams, const int *params, int *grads);

/* The general form, a vector-Jacobian product: given outputs outs[k] and their adjoints
 * seeds[k] (a node of the same dtype and shape, or -1 for none), grads[i] = the sum over k
 * of seeds[k]^T * d(outs[k])/d(wrt[i]). Used by tl_grad and by the scan rule. */
int tl_vjp(TlGraph *g, int nout, const int *outs, const int *seeds, int nwrt, const int *wrt,
           int *grads);

#endif
