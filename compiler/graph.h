/* graph.h — Graph IR: the contract between the front end and every back end.
 *
 * A graph is an SSA DAG of primitive tensor ops. Each node has one result with a dtype, a
 * shape and the source location it came from. Node ids are indices into g->nodes and the
 * builder only ever refers to nodes that already exist, so id order is a topological order:
 * `for (int i = 0; i < g->nnodes; i++)` visits every operand before its users.
 *
 * Shapes are lists of dims; a dim (TlGDim) is an id in a hash-consed table of integer
 * expressions (constants, named symbols, +, *, floor-division) owned by the graph, kept in
 * a canonical polynomial form, so `B*T*256` built two ways gets one id and shape equality
 * is id equality. Constant dims fold.
 *
 * Binary ops, select and comparisons take operands of identical shape and dtype: the
 * front end inserts explicit `broadcast` nodes (tl_g_broadcast_binary does numpy rules),
 * so no back end ever broadcasts implicitly.
 *
 * Errors: a builder function returns -1 and records the first error (with its location) in
 * the graph (tl_graph_error); passing -1 as an operand returns -1 quietly, so a front end
 * may build a whole expression and check once.
 *
 * Op semantics (x, a, b are operand nodes; "attrs" are TlGNode fields):
 *
 *   input    () name                    a named runtime input (in a scan body: the body's
 *                                       positional arguments, in creation order)
 *   param    () name                    a named trainable parameter
 *   const    () fill | data             every element = fill, or data[i] (row-major, numel
 *                                       values, constant shape only) when data != NULL
 *   random   (seed?) dist, seed, offset uniform [0,1) or standard normal from Philox4x32-10
 *                                       (runtime/philox.h defines the stream exactly). key =
 *                                       the i64 scalar operand if present, else attr seed;
 *                                       offset is the counter's upper 64 bits.
 *   iota     () axis                    out[i0, i1, ...] = i_axis (any dtype): positions, for
 *                                       masks and one-hots; no gradient
 *   neg exp log sqrt rsqrt tanh erf sin cos abs   (x)  elementwise, float dtypes
 *                                       (neg and abs also on integers)
 *   add sub mul div pow max min   (a, b)  elementwise, a.dtype == b.dtype, same shape.
 *                                       Integer div truncates toward zero; pow is float only.
 *   eq ne lt le gt ge   (a, b)           elementwise, result bool
 *   select   (c, a, b)                  c ? a : b, c is bool, all of one shape
 *   cast     (x) dtype                  value conversion; float->int truncates, ->bool is != 0
 *   sum, rmax (x) axes, keepdims        reduce over the axes in bitmask `axes`; with keepdims
 *                                       the reduced axes stay with size 1. rmax of nothing
 *                                       (an empty axis) is -inf.
 *   contract (a [, b]) spec             einsum: "bij,bjk->bik". Letters name axes; a letter
 *                                       not in the output is summed; a letter appears at most
 *                                       once per operand; equal letters have equal dims.
 *   reshape  (x) shape                  same elements in row-major order, numel preserved
 *   permute  (x) perm                   out.dim[i] = x.dim[perm[i]]
 *   broadcast (x) shape                 numpy: x's dims align to the right of shape; each is
 *                                       equal to the target or the constant 1
 *   slice    (x) start, stop, step      per axis: out[i] = x[start + i*step], i < ceil((stop
 *                                       - start)/step); 0 <= start <= stop <= dim, step >= 1
 *   pad      (x) lo, hi, interior, fill per axis: lo fill values, then the elements with
 *                                       `interior` fill values between neighbours, then hi;
 *                                       out = lo + n + (n-1)*interior + hi (all >= 0)
 *   concat   (x0, x1, ...) axis         join along axis; other dims equal
 *   gather   (table, idx) axis          out = table.shape[:axis] ++ idx.shape ++
 *                                       table.shape[axis+1:], out[p, j.., s] = table[p,
 *                                       idx[j..], s]; idx is i32/i64 in [0, dim)
 *   scatter_add (src, idx) axis, size   the adjoint of gather: out (shape src.shape[:axis] ++
 *                                       [size] ++ src.shape[axis+idx.rank:]) = 0, then
 *                                       out[p, idx[j..], s] += src[p, j.., s]
 *   attn     (q, k, v) fill = scale      causal attention with its row logsumexp: q, k, v of
 *                                       one float shape [.., T, K]; out [.., T, K + 1]. With
 *                                       s_ij = scale q_i.k_j for j <= i, m_i = max_j s_ij,
 *                                       l_i = sum_j exp(s_ij - m_i): out[.., i, d < K] =
 *                                       sum_j exp(s_ij - m_i) / l_i v_jd, out[.., i, K] =
 *                                       m_i + log l_i. Back ends never hold the T x T scores
 *   attn_grad (q, k, v, o, g) fill = scale  the vector-Jacobian product of attn: o = attn(q,
 *                                       k, v) and the adjoint g, both [.., T, K + 1]; out
 *                                       [3, .., T, K] = dq, dk, dv. P_ij = exp(s_ij - o_iK),
 *                                       D_i = sum_{d<K} g_id o_id - g_iK, ds_ij = P_ij (g_i.v_j
 *                                       - D_i): dq_i = scale sum_j ds_ij k_j, dk_j = scale
 *                                       sum_i ds_ij q_i, dv_j = sum_i P_ij g_i (i >= j)
 *   scan     (carries.., seqs.., invariants..) body, ncarry, nseq, reverse
 *                                       a loop: for t over axis 0 of the sequences (T steps,
 *                                       t = T-1..0 when reverse), body(carries, seq[t]..,
 *                                       invariants..) -> (new carries.., ys..). The body is a
 *                                       graph whose inputs are its arguments in that order
 *                                       and whose outputs are the new carries then the
 *                                       per-step outputs. The scan node itself has no value
 *                                       (dtype invalid); read its results with proj.
 *   proj     (scan) index               result `index` of a scan: index < ncarry: the final
 *                                       carry; else per-step output index-ncarry stacked
 *                                       along a new axis 0 (ys[t] at position t)
 */
#ifndef TL_GRAPH_H
#define TL_GRAPH_H
#include <stdint.h>
#include <stdio.h>

#include "dtype.h"
#include "loc.h"

#define TL_MAX_RANK 8

/* ---- symbolic dims ---- */

typedef int32_t TlGDim;
typedef enum TlGDimKind { TL_GDIM_CONST, TL_GDIM_SYM, TL_GDIM_ADD, TL_GDIM_MUL, TL_GDIM_DIV } TlGDimKind;
typedef struct TlGDimExpr {
    TlGDimKind kind;
    int64_t value;    /* CONST */
    const char *name; /* SYM */
    TlGDim a, b;       /* ADD, MUL, DIV (floor division) */
} TlGDimExpr;

typedef struct TlGDimBinding { const char *name; int64_t value; } TlGDimBinding;

typedef struct TlGShape { int rank; TlGDim dim[TL_MAX_RANK]; } TlGShape;

/* ---- nodes ---- */

typedef enum TlGOp {
    TL_GOP_INPUT, TL_GOP_PARAM, TL_GOP_CONST, TL_GOP_RANDOM, TL_GOP_IOTA,
    /* unary */
    TL_GOP_NEG, TL_GOP_EXP, TL_GOP_LOG, TL_GOP_SQRT, TL_GOP_RSQRT, TL_GOP_TANH, TL_GOP_ERF,
    TL_GOP_SIN, TL_GOP_COS, TL_GOP_ABS,
    /* binary */
    TL_GOP_ADD, TL_GOP_SUB, TL_GOP_MUL, TL_GOP_DIV, TL_GOP_POW, TL_GOP_MAX, TL_GOP_MIN,
    /* comparisons */
    TL_GOP_EQ, TL_GOP_NE, TL_GOP_LT, TL_GOP_LE, TL_GOP_GT, TL_GOP_GE,
    TL_GOP_SELECT, TL_GOP_CAST,
    TL_GOP_SUM, TL_GOP_RMAX,
    TL_GOP_CONTRACT,
    TL_GOP_RESHAPE, TL_GOP_PERMUTE, TL_GOP_BROADCAST, TL_GOP_SLICE, TL_GOP_PAD, TL_GOP_CONCAT,
    TL_GOP_GATHER, TL_GOP_SCATTER_ADD,
    TL_GOP_ATTN, TL_GOP_ATTN_GRAD,
    TL_GOP_SCAN, TL_GOP_PROJ,
    TL_GOP_COUNT
} TlGOp;

typedef enum TlRandomDist { TL_RANDOM_UNIFORM, TL_RANDOM_NORMAL } TlRandomDist;

typedef struct TlGraph TlGraph;

/* shared(t) directives a schedule block may hold (schedule_source.c) */
#define TL_SCHED_MAX_SHARED 4

typedef struct TlGNode {
    TlGOp op;
    TlDType dtype;
    TlGShape shape;
    TlLoc loc;
    int nin;
    int *in;               /* operand node ids */
    /* attributes; which are meaningful depends on op (see the table above) */
    const char *name;      /* input, param */
    double fill;           /* const (when data == NULL), pad; attn, attn_grad: the scale */
    const double *data;    /* const literal, numel values */
    const char *spec;      /* contract */
    int axis;              /* iota, concat, gather, scatter_add; proj: result index */
    int keepdims;          /* sum, rmax */
    uint32_t axes;         /* sum, rmax: bit i set = axis i reduced */
    int perm[TL_MAX_RANK]; /* permute */
    TlGDim lo[TL_MAX_RANK], hi[TL_MAX_RANK]; /* slice: start, stop; pad: lo, hi */
    int64_t step[TL_MAX_RANK]; /* slice: step (>= 1); pad: interior (>= 0) */
    TlGDim size;            /* scatter_add: the output's size along axis */
    TlRandomDist dist;     /* random */
    uint64_t seed, offset; /* random */
    TlGraph *body;         /* scan */
    int ncarry, nseq;      /* scan (the rest of the operands are invariants) */
    int reverse;           /* scan */
    /* The source `schedule` block for the kernel that computes this node: set by the
     * lowering on the result of an index-notation kernel call that has one (an AST
     * TL_N_SCHEDULE node, read by compiler/schedule_source.c); NULL otherwise. Builders
     * leave it NULL, so derived nodes (gradients) have none; copies keep it. sched_kernel:
     * the TL_N_KERNEL declaration it schedules (its index names). sched_shared[i]: for
     * the block's i-th `shared(t)` directive, 1 + the node of the call's argument t (0:
     * none), so that the Loop IR stage finds t's buffer. */
    const struct TlNode *sched, *sched_kernel;
    int sched_shared[TL_SCHED_MAX_SHARED];
} TlGNode;

typedef struct TlGDims TlGDims; /* the dim table; shared by a graph and its scan bodies */

struct TlGraph {
    TlGNode *nodes;
    int nnodes, cap;
    int *outputs;          /* graph results (in a scan body: new carries, then ys) */
    int noutputs, outcap;
    int *inputs;           /* every input node in creation order (a body's arguments) */
    int ninputs, incap;
    TlGDims *dims;
    TlGraph *parent;       /* a scan body's enclosing graph, else NULL */
    struct TlGArena *arena;
    TlGraph **bodies;      /* scan bodies owned by this graph */
    int nbodies, bodycap;
    char err[512];         /* first builder error, "" when none */
};

/* ---- graphs ---- */

TlGraph *tl_graph_new(void);
TlGraph *tl_graph_new_body(TlGraph *parent); /* a scan body: shares the parent's dims */
void tl_graph_free(TlGraph *g);               /* frees bodies too; not for bodies */
void tl_graph_free_body(TlGraph *body);       /* frees a body early (scratch graphs) */
const char *tl_graph_error(const TlGraph *g); /* NULL when no error */
void tl_graph_add_output(TlGraph *g, int node);
int tl_graph_find(const TlGraph *g, TlGOp op, const char *name); /* input/param by name */
const char *tl_gop_name(TlGOp op);
int tl_gop_is_unary(TlGOp op);
int tl_gop_is_binary(TlGOp op);  /* add .. min */
int tl_gop_is_compare(TlGOp op); /* eq .. ge */
int tl_gop_is_elementwise(TlGOp op); /* unary, binary, compare, select, cast */
void *tl_graph_alloc(TlGraph *g, size_t n); /* arena memory that lives as long as g */
/* Append a node built by hand (validated only lightly): for passes that copy nodes. The
 * node's arrays are copied into g's arena. */
int tl_graph_add_node(TlGraph *g, const TlGNode *proto);
int *tl_graph_use_counts(const TlGraph *g); /* malloc'd; outputs count as uses */

void tl_graph_print(FILE *f, const TlGraph *g);
void tl_graph_dot(FILE *f, const TlGraph *g);
void tl_node_print(FILE *f, const TlGraph *g, int id);

/* ---- dims ---- */

TlGDim tl_gdim_const(TlGraph *g, int64_t v);
TlGDim tl_gdim_sym(TlGraph *g, const char *name);
TlGDim tl_gdim_add(TlGraph *g, TlGDim a, TlGDim b);
TlGDim tl_gdim_sub(TlGraph *g, TlGDim a, TlGDim b);
TlGDim tl_gdim_mul(TlGraph *g, TlGDim a, TlGDim b);
TlGDim tl_gdim_div(TlGraph *g, TlGDim a, TlGDim b); /* floor division */
const TlGDimExpr *tl_gdim_expr(const TlGraph *g, TlGDim d);
int tl_gdim_is_const(const TlGraph *g, TlGDim d, int64_t *v); /* 1 and *v when constant */
/* 0 and *out on success; -1 when a symbol is unbound or a division is by zero. */
int tl_gdim_eval(const TlGraph *g, TlGDim d, const TlGDimBinding *b, int nb, int64_t *out);
int tl_gdim_str(const TlGraph *g, TlGDim d, char *buf, int n); /* like snprintf */

TlGShape tl_gshape_make(TlGraph *g, int rank, const int64_t *dims); /* constant dims */
TlGShape tl_gshape_dims(int rank, const TlGDim *dims);
int tl_gshape_eq(TlGShape a, TlGShape b);
TlGDim tl_gshape_numel(TlGraph *g, TlGShape s);
int tl_gshape_str(const TlGraph *g, TlDType t, TlGShape s, char *buf, int n); /* "f32[B, 4]" */

/* ---- builders: each returns the new node id, or -1 (see Errors above) ---- */

int tl_g_input(TlGraph *g, const char *name, TlDType t, TlGShape s, TlLoc loc);
int tl_g_param(TlGraph *g, const char *name, TlDType t, TlGShape s, TlLoc loc);
int tl_g_const(TlGraph *g, double fill, TlDType t, TlGShape s, TlLoc loc);
int tl_g_const_data(TlGraph *g, const double *data, TlDType t, TlGShape s, TlLoc loc);
int tl_g_random(TlGraph *g, TlRandomDist dist, int seed_node, uint64_t seed, uint64_t offset,
                TlDType t, TlGShape s, TlLoc loc); /* seed_node: an i64 scalar or -1 */
int tl_g_iota(TlGraph *g, TlDType t, TlGShape s, int axis, TlLoc loc);
int tl_g_unary(TlGraph *g, TlGOp op, int x, TlLoc loc);
int tl_g_binary(TlGraph *g, TlGOp op, int a, int b, TlLoc loc); /* also comparisons */
int tl_g_broadcast_binary(TlGraph *g, TlGOp op, int a, int b, TlLoc loc); /* numpy rules */
int tl_g_select(TlGraph *g, int c, int a, int b, TlLoc loc);
int tl_g_cast(TlGraph *g, int x, TlDType t, TlLoc loc);
int tl_g_reduce(TlGraph *g, TlGOp op, int x, uint32_t axes, int keepdims, TlLoc loc);
int tl_g_contract(TlGraph *g, const char *spec, int a, int b, TlLoc loc); /* b = -1: unary */
int tl_g_reshape(TlGraph *g, int x, TlGShape s, TlLoc loc);
int tl_g_permute(TlGraph *g, int x, const int *perm, TlLoc loc);
int tl_g_broadcast(TlGraph *g, int x, TlGShape s, TlLoc loc);
int tl_g_slice(TlGraph *g, int x, const TlGDim *start, const TlGDim *stop, const int64_t *step,
               TlLoc loc);
int tl_g_slice_axis(TlGraph *g, int x, int axis, TlGDim start, TlGDim stop, int64_t step, TlLoc loc);
int tl_g_pad(TlGraph *g, int x, const TlGDim *lo, const TlGDim *hi, const int64_t *interior,
             double fill, TlLoc loc);
int tl_g_concat(TlGraph *g, int n, const int *xs, int axis, TlLoc loc);
int tl_g_gather(TlGraph *g, int table, int idx, int axis, TlLoc loc);
int tl_g_scatter_add(TlGraph *g, int src, int idx, int axis, TlGDim size, TlLoc loc);
int tl_g_attn(TlGraph *g, int q, int k, int v, double scale, TlLoc loc);
int tl_g_attn_grad(TlGraph *g, int q, int k, int v, int o, int gy, double scale, TlLoc loc);
/* Builds the scan node and its proj nodes: results[0..ncarry) are the final carries,
 * results[ncarry..) the stacked per-step outputs (body->noutputs results in all). Returns
 * the scan node id. */
int tl_g_scan(TlGraph *g, TlGraph *body, int ncarry, const int *carries, int nseq,
              const int *seqs, int ninv, const int *invs, int reverse, int *results, TlLoc loc);
int tl_g_proj(TlGraph *g, int scan, int index, TlLoc loc);

/* Short forms. */
#define tl_g_neg(g, x, l) tl_g_unary(g, TL_GOP_NEG, x, l)
#define tl_g_exp(g, x, l) tl_g_unary(g, TL_GOP_EXP, x, l)
#define tl_g_log(g, x, l) tl_g_unary(g, TL_GOP_LOG, x, l)
#define tl_g_sqrt(g, x, l) tl_g_unary(g, TL_GOP_SQRT, x, l)
#define tl_g_rsqrt(g, x, l) tl_g_unary(g, TL_GOP_RSQRT, x, l)
#define tl_g_tanh(g, x, l) tl_g_unary(g, TL_GOP_TANH, x, l)
#define tl_g_add(g, a, b, l) tl_g_binary(g, TL_GOP_ADD, a, b, l)
#define tl_g_sub(g, a, b, l) tl_g_binary(g, TL_GOP_SUB, a, b, l)
#define tl_g_mul(g, a, b, l) tl_g_binary(g, TL_GOP_MUL, a, b, l)
#define tl_g_div(g, a, b, l) tl_g_binary(g, TL_GOP_DIV, a, b, l)
#define tl_g_sum(g, x, axes, kd, l) tl_g_reduce(g, TL_GOP_SUM, x, axes, kd, l)

/* ---- contraction specs ---- */

typedef struct TlContractSpec {
    int nin;                        /* 1 or 2 operands */
    int rank[2], out_rank;
    char in[2][TL_MAX_RANK], out[TL_MAX_RANK]; /* axis letters */
} TlContractSpec;
/* 0 on success; -1 with a message in err (if err) on a malformed spec. */
int tl_contract_parse(const char *spec, TlContractSpec *cs, char *err, int errn);

#endif
