/* autodiff.c — reverse mode on Graph IR: one gradient rule per primitive.
 *
 * tl_vjp walks the forward nodes from the last to the first. Each node that lies on a path
 * from a `wrt` node to an output, and has received an adjoint, hands contributions to the
 * operands that are themselves on such a path; contributions to one node are summed with
 * `add`. Rules are written with the builder, so gradients get shape-checked like any code. */
#include "autodiff.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Ctx {
    TlGraph *g;
    int n0;        /* forward node count: nodes at or past it are backward nodes */
    char *needed;  /* on a path from wrt to an output, and of float dtype */
    int *adj;      /* adjoint node per forward node, -1 = none yet */
    int **scanadj; /* per scan node: adjoint per result (from its proj nodes) */
} Ctx;

static int is_diff(const TlGNode *n) { return tl_dtype_is_float(n->dtype) || n->op == TL_GOP_SCAN; }

static int accumulate(Ctx *c, int x, int contrib, TlLoc loc) {
    if (contrib < 0) return -1;
    if (!c->needed[x]) return 0;
    c->adj[x] = c->adj[x] < 0 ? contrib : tl_g_add(c->g, c->adj[x], contrib, loc);
    return c->adj[x] < 0 ? -1 : 0;
}

static int cfill(TlGraph *g, double v, int like, TlLoc loc) {
    const TlGNode *n = &g->nodes[like];
    return tl_g_const(g, v, n->dtype, n->shape, loc);
}

/* g is the adjoint of a keepdims-less reduction of x over `axes`: reshape it so that the
 * reduced axes are there with size 1. */
static int keepdims_shape(TlGraph *g, int gy, int x, uint32_t axes, int keepdims, TlLoc loc) {
    if (keepdims) return gy;
    TlGShape s = g->nodes[x].shape;
    for (int i = 0; i < s.rank; i++)
        if (axes >> i & 1) s.dim[i] = tl_gdim_const(g, 1);
    return tl_g_reshape(g, gy, s, loc);
}

/* Sum a tensor of shape `big` down to the shape of x, undoing a numpy broadcast. */
static int unbroadcast(TlGraph *g, int gy, int x, TlLoc loc) {
    TlGShape xs = g->nodes[x].shape, ys = g->nodes[gy].shape;
    TlGDim one = tl_gdim_const(g, 1);
    int lead = ys.rank - xs.rank;
    uint32_t axes = 0;
    for (int i = 0; i < ys.rank; i++)
        if (i < lead || (xs.dim[i - lead] == one && ys.dim[i] != one)) axes |= 1u << i;
    int r = axes ? tl_g_reduce(g, TL_GOP_SUM, gy, axes, 1, loc) : gy;
    if (r >= 0 && !tl_gshape_eq(g->nodes[r].shape, xs)) r = tl_g_reshape(g, r, xs, loc);
    return r;
}

/* The gradient of an einsum is an einsum: for operand k of "A,B->O" it is "O,B->A'"
 * (A' = the letters of A that occur in O or B), then broadcast over the letters of A that
 * occurred nowhere else (they were summed away, so each of their entries gets all of g). */
static int contract_grad(TlGraph *g, const TlGNode *n, int k, int gy, TlLoc loc) {
    TlContractSpec cs;
    tl_contract_parse(n->spec, &cs, NULL, 0);
    int other = 1 - k;
    char spec[64], sub[TL_MAX_RANK + 1];
    int ns = 0;
    int x = n->in[k];
    TlGShape xs = g->nodes[x].shape, kept = {0, {0}};
    int missing = 0;
    for (int j = 0; j < cs.rank[k]; j++) {
        char l = cs.in[k][j];
        int found = memchr(cs.out, l, (size_t)cs.out_rank) != NULL;
        if (cs.nin == 2) found |= memchr(cs.in[other], l, (size_t)cs.rank[other]) != NULL;
        if (found) sub[ns++] = l, kept.dim[kept.rank++] = xs.dim[j];
        else missing = 1;
        (void)kept;
    }
    sub[ns] = 0;
    if (cs.nin == 2)
        snprintf(spec, sizeof spec, "%.*s,%.*s->%s", cs.out_rank, cs.out, cs.rank[other], cs.in[other], sub);
    else
        snprintf(spec, sizeof spec, "%.*s->%s", cs.out_rank, cs.out, sub);
    int r = tl_g_contract(g, spec, gy, cs.nin == 2 ? n->in[other] : -1, loc);
    if (!missing || r < 0) return r;
    TlGShape ones = xs;
    for (int j = 0; j < cs.rank[k]; j++)
        if (!memchr(sub, cs.in[k][j], (size_t)ns)) ones.dim[j] = tl_gdim_const(g, 1);
    r = tl_g_reshape(g, r, ones, loc);
    return tl_g_broadcast(g, r, xs, loc);
}

/* y = x[start : stop : step] per axis  =>  dx = pad(dy, lo = start, interior = step - 1,
 * hi = dim - (start + (n-1)*step + 1)), zero fill. */
static int slice_grad(TlGraph *g, const TlGNode *n, int gy, TlLoc loc) {
    const TlGNode *x = &g->nodes[n->in[0]];
    TlGDim lo[TL_MAX_RANK], hi[TL_MAX_RANK];
    int64_t interior[TL_MAX_RANK], v;
    for (int i = 0; i < x->shape.rank; i++) {
        TlGDim cnt = n->shape.dim[i];
        if (tl_gdim_is_const(g, cnt, &v) && v == 0) return tl_g_const(g, 0, x->dtype, x->shape, loc);
        TlGDim last = tl_gdim_add(g, n->lo[i], tl_gdim_mul(g, tl_gdim_sub(g, cnt, tl_gdim_const(g, 1)), tl_gdim_const(g, n->step[i])));
        lo[i] = n->lo[i];
        hi[i] = tl_gdim_sub(g, x->shape.dim[i], tl_gdim_add(g, last, tl_gdim_const(g, 1)));
        interior[i] = n->step[i] - 1;
    }
    return tl_g_pad(g, gy, lo, hi, interior, 0.0, loc);
}

/* y = pad(x, lo, hi, interior)  =>  dx = dy[lo : lo + n + (n-1)*interior : interior + 1]. */
static int pad_grad(TlGraph *g, const TlGNode *n, int gy, TlLoc loc) {
    const TlGNode *x = &g->nodes[n->in[0]];
    TlGDim start[TL_MAX_RANK], stop[TL_MAX_RANK];
    int64_t step[TL_MAX_RANK];
    for (int i = 0; i < x->shape.rank; i++) {
        TlGDim d = x->shape.dim[i];
        TlGDim span = tl_gdim_add(g, d, tl_gdim_mul(g, tl_gdim_sub(g, d, tl_gdim_const(g, 1)), tl_gdim_const(g, n->step[i])));
        int64_t v;
        if (tl_gdim_is_const(g, d, &v) && v == 0) span = tl_gdim_const(g, 0);
        start[i] = n->lo[i], stop[i] = tl_gdim_add(g, n->lo[i], span), step[i] = n->step[i] + 1;
    }
    return tl_g_slice(g, gy, start, stop, step, loc);
}

/* Gradients of a scan: a reverse scan whose body is the vjp of the forward body.
 *
 * Forward: (c_{t+1}, y_t) = f(c_t, x_t, w). The forward body is extended with one more
 * per-step output per carry, c_t itself, so the forward scan also returns the stacked
 * carries C (C[t] = the carry entering step t). The backward body takes
 *   carries:     dc (float carries), dw (needed float invariants, accumulated)
 *   sequences:   dy_t (for the ys that have adjoints), C_t (all carries), x_t (all seqs)
 *   invariants:  w
 * recomputes f from C_t, x_t, w and returns
 *   new carries: dc_t = vjp wrt c_t, dw + vjp wrt w
 *   per step:    dx_t = vjp wrt x_t (for the needed seqs)
 * and runs in the opposite direction. Its final dc is the gradient of the initial
 * carries, its final dw the gradient of the invariants, its stacked dx that of the seqs. */
static int scan_grad(Ctx *c, int id) {
    TlGraph *g = c->g;
    TlGNode *n = &g->nodes[id];
    TlGraph *fb = n->body;
    TlLoc loc = n->loc;
    int nc = n->ncarry, ns = n->nseq, nw = n->nin - nc - ns, ny = fb->noutputs - nc;
    int *radj = c->scanadj[id];
    int ok = 0;
    for (int k = 0; k < fb->noutputs; k++) ok |= radj[k] >= 0;
    if (!ok) return 0;

    /* 1. the stacked carries: reuse the outputs if an earlier grad already added them */
    int *cstack = calloc((size_t)nc + 1, sizeof(int));
    for (int j = 0; j < nc; j++) {
        int idx = -1, cin = fb->inputs[j];
        for (int k = nc; k < fb->noutputs; k++)
            if (fb->outputs[k] == cin) idx = k;
        if (idx < 0) tl_graph_add_output(fb, cin), idx = fb->noutputs - 1;
        cstack[j] = tl_g_proj(g, id, idx, loc);
        n = &g->nodes[id]; /* the node array may have moved */
    }

    /* 2. the backward body's arguments, in argument order */
    TlGraph *bb = tl_graph_new_body(g);
    int nfc = 0, nnw = 0, ndy = 0, nnx = 0;
    int *fc = calloc((size_t)nc + 1, sizeof(int));       /* float carry j's */
    int *wi = calloc((size_t)nw + 1, sizeof(int));       /* needed float invariants */
    int *yi = calloc((size_t)ny + 1, sizeof(int));       /* ys with adjoints */
    int *xi = calloc((size_t)ns + 1, sizeof(int));       /* needed seqs */
    for (int j = 0; j < nc; j++)
        if (tl_dtype_is_float(g->nodes[n->in[j]].dtype)) fc[nfc++] = j;
    for (int k = 0; k < nw; k++)
        if (c->needed[n->in[nc + ns + k]]) wi[nnw++] = k;
    for (int k = 0; k < ny; k++)
        if (radj[nc + k] >= 0) yi[ndy++] = k;
    for (int k = 0; k < ns; k++)
        if (c->needed[n->in[nc + k]]) xi[nnx++] = k;

    int *a_dc = calloc((size_t)nfc + 1, sizeof(int)), *a_dw = calloc((size_t)nnw + 1, sizeof(int));
    int *a_dy = calloc((size_t)ndy + 1, sizeof(int)), *a_c = calloc((size_t)nc + 1, sizeof(int));
    int *a_x = calloc((size_t)ns + 1, sizeof(int)), *a_w = calloc((size_t)nw + 1, sizeof(int));
    char name[32];
#define ARG(arr, i, fmt, node)                                                                   \
    do {                                                                                         \
        const TlGNode *p_ = &fb->nodes[node];                                                     \
        snprintf(name, sizeof name, fmt, i);                                                     \
        arr[i] = tl_g_input(bb, name, p_->dtype, p_->shape, loc);                                \
    } while (0)
    for (int i = 0; i < nfc; i++) ARG(a_dc, i, "dc%d", fb->outputs[fc[i]]);
    for (int i = 0; i < nnw; i++) ARG(a_dw, i, "dw%d", fb->inputs[nc + ns + wi[i]]);
    for (int i = 0; i < ndy; i++) ARG(a_dy, i, "dy%d", fb->outputs[nc + yi[i]]);
    for (int j = 0; j < nc; j++) ARG(a_c, j, "c%d", fb->inputs[j]);
    for (int k = 0; k < ns; k++) ARG(a_x, k, "x%d", fb->inputs[nc + k]);
    for (int k = 0; k < nw; k++) ARG(a_w, k, "w%d", fb->inputs[nc + ns + k]);
#undef ARG

    /* 3. recompute the forward body inside the backward body */
    int *map = malloc(sizeof(int) * (size_t)(fb->nnodes + 1));
    for (int i = 0; i < fb->nnodes; i++) {
        const TlGNode *src = &fb->nodes[i];
        if (src->op == TL_GOP_INPUT) {
            int arg = -1;
            for (int a = 0; a < fb->ninputs; a++)
                if (fb->inputs[a] == i) arg = a;
            map[i] = arg < nc ? a_c[arg] : arg < nc + ns ? a_x[arg - nc] : a_w[arg - nc - ns];
            continue;
        }
        TlGNode p = *src;
        int ins[64], *big = NULL, *in = p.nin <= 64 ? ins : (big = malloc(sizeof(int) * (size_t)p.nin));
        for (int k = 0; k < p.nin; k++) in[k] = map[src->in[k]];
        p.in = in;
        map[i] = tl_graph_add_node(bb, &p);
        free(big);
    }

    /* 4. the vjp of the body: seeds dc for the float carries, dy for the ys */
    int nseed = nfc + ndy, nwrt = nfc + nnx + nnw;
    int *outs = calloc((size_t)nseed + 1, sizeof(int)), *seeds = calloc((size_t)nseed + 1, sizeof(int));
    int *wrt = calloc((size_t)nwrt + 1, sizeof(int)), *gr = calloc((size_t)nwrt + 1, sizeof(int));
    for (int i = 0; i < nfc; i++) outs[i] = map[fb->outputs[fc[i]]], seeds[i] = a_dc[i];
    for (int i = 0; i < ndy; i++) outs[nfc + i] = map[fb->outputs[nc + yi[i]]], seeds[nfc + i] = a_dy[i];
    for (int i = 0; i < nfc; i++) wrt[i] = a_c[fc[i]];
    for (int i = 0; i < nnx; i++) wrt[nfc + i] = a_x[xi[i]];
    for (int i = 0; i < nnw; i++) wrt[nfc + nnx + i] = a_w[wi[i]];
    int rc = tl_vjp(bb, nseed, outs, seeds, nwrt, wrt, gr);
    if (rc == 0) {
        for (int i = 0; i < nfc; i++) tl_graph_add_output(bb, gr[i]);
        for (int i = 0; i < nnw; i++) tl_graph_add_output(bb, tl_g_add(bb, a_dw[i], gr[nfc + nnx + i], loc));
        for (int i = 0; i < nnx; i++) tl_graph_add_output(bb, gr[nfc + i]);
        if (tl_graph_error(bb)) rc = -1;
    }

    /* 5. the backward scan in the outer graph */
    if (rc == 0) {
        int nbc = nfc + nnw, nbs = ndy + nc + ns;
        int *bc = calloc((size_t)nbc + 1, sizeof(int)), *bs = calloc((size_t)nbs + 1, sizeof(int));
        int *res = calloc((size_t)(nbc + nnx) + 1, sizeof(int));
        n = &g->nodes[id];
        for (int i = 0; i < nfc; i++) {
            int j = fc[i];
            bc[i] = radj[j] >= 0 ? radj[j] : cfill(g, 0, n->in[j], loc);
            n = &g->nodes[id];
        }
        for (int i = 0; i < nnw; i++) {
            bc[nfc + i] = cfill(g, 0, n->in[nc + ns + wi[i]], loc);
            n = &g->nodes[id];
        }
        for (int i = 0; i < ndy; i++) bs[i] = radj[nc + yi[i]];
        for (int j = 0; j < nc; j++) bs[ndy + j] = cstack[j];
        for (int k = 0; k < ns; k++) bs[ndy + nc + k] = n->in[nc + k];
        int *inv = n->in + nc + ns;
        int rev = !n->reverse;
        int bid = tl_g_scan(g, bb, nbc, bc, nbs, bs, nw, inv, rev, res, loc);
        if (bid < 0) {
            rc = -1;
        } else {
            n = &g->nodes[id];
            int *fin = n->in;
            for (int i = 0; i < nfc && rc == 0; i++) rc = accumulate(c, fin[fc[i]], res[i], loc);
            for (int i = 0; i < nnw && rc == 0; i++) rc = accumulate(c, fin[nc + ns + wi[i]], res[nfc + i], loc);
            for (int i = 0; i < nnx && rc == 0; i++) rc = accumulate(c, fin[nc + xi[i]], res[nbc + i], loc);
        }
        free(bc), free(bs), free(res);
    }
    if (rc && !g->err[0]) snprintf(g->err, sizeof g->err, "gradient of scan: %.400s", bb->err[0] ? bb->err : "failed");
    free(cstack), free(fc), free(wi), free(yi), free(xi), free(a_dc), free(a_dw), free(a_dy);
    free(a_c), free(a_x), free(a_w), free(map), free(outs), free(seeds), free(wrt), free(gr);
    return rc;
}

/* The rule for one node: contributions of adjoint gy to each needed operand. */
static int node_grad(Ctx *c, int id) {
    TlGraph *g = c->g;
    const TlGNode n = g->nodes[id]; /* a copy: builders may move the node array */
    TlLoc loc = n.loc;
    int gy = c->adj[id];
    int x = n.nin > 0 ? n.in[0] : -1, b = n.nin > 1 ? n.in[1] : -1;
    int r;
#define GIVE(node, expr) do { if (c->needed[node] && accumulate(c, node, (expr), loc)) return -1; } while (0)
#define K(v, like) cfill(g, v, like, loc)
    switch (n.op) {
    case TL_GOP_INPUT: case TL_GOP_PARAM: case TL_GOP_CONST: case TL_GOP_RANDOM: case TL_GOP_IOTA:
        return 0;
    case TL_GOP_NEG: GIVE(x, tl_g_neg(g, gy, loc)); return 0;
    case TL_GOP_EXP: GIVE(x, tl_g_mul(g, gy, id, loc)); return 0;
    case TL_GOP_LOG: GIVE(x, tl_g_div(g, gy, x, loc)); return 0;
    case TL_GOP_SQRT: /* d sqrt(x) = 1 / (2 sqrt(x)) */
        GIVE(x, tl_g_div(g, gy, tl_g_mul(g, K(2, id), id, loc), loc));
        return 0;
    case TL_GOP_RSQRT: /* d x^-1/2 = -1/2 x^-3/2 = -1/2 y / x */
        GIVE(x, tl_g_mul(g, gy, tl_g_mul(g, K(-0.5, id), tl_g_div(g, id, x, loc), loc), loc));
        return 0;
    case TL_GOP_TANH: /* 1 - y^2 */
        GIVE(x, tl_g_mul(g, gy, tl_g_sub(g, K(1, id), tl_g_mul(g, id, id, loc), loc), loc));
        return 0;
    case TL_GOP_ERF: /* 2/sqrt(pi) exp(-x^2) */
        GIVE(x, tl_g_mul(g, gy, tl_g_mul(g, K(1.1283791670955126, id),
                                        tl_g_exp(g, tl_g_neg(g, tl_g_mul(g, x, x, loc), loc), loc), loc), loc));
        return 0;
    case TL_GOP_SIN: GIVE(x, tl_g_mul(g, gy, tl_g_unary(g, TL_GOP_COS, x, loc), loc)); return 0;
    case TL_GOP_COS: GIVE(x, tl_g_mul(g, gy, tl_g_neg(g, tl_g_unary(g, TL_GOP_SIN, x, loc), loc), loc)); return 0;
    case TL_GOP_ABS: /* sign(x); 0 at 0 */
        r = tl_g_select(g, tl_g_binary(g, TL_GOP_LT, x, K(0, x), loc), tl_g_neg(g, gy, loc), K(0, id), loc);
        GIVE(x, tl_g_select(g, tl_g_binary(g, TL_GOP_GT, x, K(0, x), loc), gy, r, loc));
        return 0;
    case TL_GOP_ADD: GIVE(x, gy); GIVE(b, gy); return 0;
    case TL_GOP_SUB: GIVE(x, gy); GIVE(b, tl_g_neg(g, gy, loc)); return 0;
    case TL_GOP_MUL: GIVE(x, tl_g_mul(g, gy, b, loc)); GIVE(b, tl_g_mul(g, gy, x, loc)); return 0;
    case TL_GOP_DIV: /* d(a/b)/db = -a/b^2 = -y/b */
        GIVE(x, tl_g_div(g, gy, b, loc));
        GIVE(b, tl_g_neg(g, tl_g_div(g, tl_g_mul(g, gy, id, loc), b, loc), loc));
        return 0;
    case TL_GOP_POW: /* d a^b/da = b a^(b-1); d a^b/db = log(a) a^b */
        GIVE(x, tl_g_mul(g, gy, tl_g_mul(g, b, tl_g_binary(g, TL_GOP_POW, x, tl_g_sub(g, b, K(1, b), loc), loc), loc), loc));
        GIVE(b, tl_g_mul(g, gy, tl_g_mul(g, tl_g_log(g, x, loc), id, loc), loc));
        return 0;
    case TL_GOP_MAX: case TL_GOP_MIN: { /* ties go to the first operand */
        int m = tl_g_binary(g, n.op == TL_GOP_MAX ? TL_GOP_GE : TL_GOP_LE, x, b, loc);
        GIVE(x, tl_g_select(g, m, gy, K(0, id), loc));
        GIVE(b, tl_g_select(g, m, K(0, id), gy, loc));
        return 0;
    }
    case TL_GOP_SELECT:
        GIVE(n.in[1], tl_g_select(g, x, gy, K(0, id), loc));
        GIVE(n.in[2], tl_g_select(g, x, K(0, id), gy, loc));
        return 0;
    case TL_GOP_CAST: GIVE(x, tl_g_cast(g, gy, g->nodes[x].dtype, loc)); return 0;
    case TL_GOP_SUM:
        GIVE(x, tl_g_broadcast(g, keepdims_shape(g, gy, x, n.axes, n.keepdims, loc), g->nodes[x].shape, loc));
        return 0;
    case TL_GOP_RMAX: { /* routed to the maxima; ties share the gradient equally */
        TlGShape xs = g->nodes[x].shape;
        int ykd = keepdims_shape(g, id, x, n.axes, n.keepdims, loc);
        int gkd = keepdims_shape(g, gy, x, n.axes, n.keepdims, loc);
        int mask = tl_g_cast(g, tl_g_binary(g, TL_GOP_EQ, x, tl_g_broadcast(g, ykd, xs, loc), loc), n.dtype, loc);
        int cnt = tl_g_reduce(g, TL_GOP_SUM, mask, n.axes, 1, loc);
        GIVE(x, tl_g_mul(g, mask, tl_g_broadcast(g, tl_g_div(g, gkd, cnt, loc), xs, loc), loc));
        return 0;
    }
    case TL_GOP_CONTRACT:
        GIVE(x, contract_grad(g, &n, 0, gy, loc));
        if (n.nin == 2) GIVE(b, contract_grad(g, &n, 1, gy, loc));
        return 0;
    case TL_GOP_RESHAPE: GIVE(x, tl_g_reshape(g, gy, g->nodes[x].shape, loc)); return 0;
    case TL_GOP_PERMUTE: {
        int inv[TL_MAX_RANK];
        for (int i = 0; i < n.shape.rank; i++) inv[n.perm[i]] = i;
        GIVE(x, tl_g_permute(g, gy, inv, loc));
        return 0;
    }
    case TL_GOP_BROADCAST: GIVE(x, unbroadcast(g, gy, x, loc)); return 0;
    case TL_GOP_SLICE: GIVE(x, slice_grad(g, &n, gy, loc)); return 0;
    case TL_GOP_PAD: GIVE(x, pad_grad(g, &n, gy, loc)); return 0;
    case TL_GOP_CONCAT: {
        TlGDim off = tl_gdim_const(g, 0);
        for (int k = 0; k < n.nin; k++) {
            TlGDim d = g->nodes[n.in[k]].shape.dim[n.axis];
            TlGDim end = tl_gdim_add(g, off, d);
            GIVE(n.in[k], tl_g_slice_axis(g, gy, n.axis, off, end, 1, loc));
            off = end;
        }
        return 0;
    }
    case TL_GOP_GATHER:
        GIVE(x, tl_g_scatter_add(g, gy, b, n.axis, g->nodes[x].shape.dim[n.axis], loc));
        return 0;
    case TL_GOP_SCATTER_ADD: GIVE(x, tl_g_gather(g, gy, b, n.axis, loc)); return 0;
    case TL_GOP_ATTN: { /* one attn_grad node gives all three: [3, .., T, K] */
        int gr = tl_g_attn_grad(g, x, b, n.in[2], id, gy, n.fill, loc);
        TlGShape qs = g->nodes[x].shape;
        for (int k = 0; k < 3; k++)
            GIVE(n.in[k], tl_g_reshape(g, tl_g_slice_axis(g, gr, 0, tl_gdim_const(g, k), tl_gdim_const(g, k + 1), 1, loc), qs, loc));
        return 0;
    }
    case TL_GOP_PROJ: {
        int *ra = &c->scanadj[x][n.axis];
        *ra = *ra < 0 ? gy : tl_g_add(g, *ra, gy, loc);
        return *ra < 0 ? -1 : 0;
    }
    case TL_GOP_SCAN: return scan_grad(c, id);
    default:
        if (tl_gop_is_compare(n.op)) return 0;
        snprintf(g->err, sizeof g->err, "no gradient rule for %s", tl_gop_name(n.op));
        return -1;
    }
#undef GIVE
#undef K
}

int tl_vjp(TlGraph *g, int nout, const int *outs, const int *seeds, int nwrt, const int *wrt,
           int *grads) {
    if (tl_graph_error(g)) return -1;
    Ctx c = {g, g->nnodes, NULL, NULL, NULL};
    int n0 = c.n0;
    char *from = calloc((size_t)n0 + 1, 1), *to = calloc((size_t)n0 + 1, 1);
    c.needed = calloc((size_t)n0 + 1, 1);
    c.adj = malloc(sizeof(int) * (size_t)(n0 + 1));
    c.scanadj = calloc((size_t)n0 + 1, sizeof(int *));
    for (int i = 0; i < nwrt; i++)
        if (wrt[i] >= 0 && wrt[i] < n0) from[wrt[i]] = 1;
    for (int i = 0; i < n0; i++)
        for (int k = 0; k < g->nodes[i].nin && !from[i]; k++) from[i] = from[g->nodes[i].in[k]];
    for (int k = 0; k < nout; k++)
        if (outs[k] >= 0 && outs[k] < n0 && seeds[k] >= 0) to[outs[k]] = 1;
    for (int i = n0 - 1; i >= 0; i--)
        if (to[i])
            for (int k = 0; k < g->nodes[i].nin; k++) to[g->nodes[i].in[k]] = 1;
    for (int i = 0; i < n0; i++) {
        c.needed[i] = from[i] && to[i] && is_diff(&g->nodes[i]);
        c.adj[i] = -1;
        if (g->nodes[i].op == TL_GOP_SCAN) {
            int nr = g->nodes[i].body->noutputs;
            c.scanadj[i] = malloc(sizeof(int) * (size_t)(nr + 1));
            for (int k = 0; k < nr; k++) c.scanadj[i][k] = -1;
        }
    }
    int rc = 0;
    for (int k = 0; k < nout && rc == 0; k++)
        if (seeds[k] >= 0 && outs[k] >= 0 && outs[k] < n0) rc = accumulate(&c, outs[k], seeds[k], g->nodes[outs[k]].loc);
    for (int i = n0 - 1; i >= 0 && rc == 0; i--)
        if (c.needed[i] && (c.adj[i] >= 0 || g->nodes[i].op == TL_GOP_SCAN)) rc = node_grad(&c, i);
    for (int i = 0; i < nwrt && rc == 0; i++) {
        int w = wrt[i];
        if (w < 0 || w >= n0) { rc = -1; break; }
        grads[i] = c.adj[w] >= 0 ? c.adj[w] : tl_g_const(g, 0, g->nodes[w].dtype, g->nodes[w].shape, g->nodes[w].loc);
        if (grads[i] < 0) rc = -1;
    }
    if (rc == 0 && tl_graph_error(g)) rc = -1;
    if (rc && !g->err[0]) snprintf(g->err, sizeof g->err, "autodiff failed");
    for (int i = 0; i < n0; i++) free(c.scanadj[i]);
    free(c.scanadj), free(c.adj), free(c.needed), free(from), free(to);
    return rc;
}

int tl_grad(TlGraph *g, int loss, int nparams, const int *params, int *grads) {
    if (tl_graph_error(g)) return -1;
    if (loss < 0 || loss >= g->nnodes) return snprintf(g->err, sizeof g->err, "grad: invalid loss node"), -1;
    const TlGNode *l = &g->nodes[loss];
    if (!tl_dtype_is_float(l->dtype)) return snprintf(g->err, sizeof g->err, "grad: the loss must be a float"), -1;
    int seed = tl_g_const(g, 1.0, l->dtype, l->shape, l->loc);
    return tl_vjp(g, 1, &loss, &seed, nparams, params, grads);
}
