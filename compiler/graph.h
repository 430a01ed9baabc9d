/* graph.h — Graph IR: the contract between the front end and every back end.
 *
 * A graph is an SSA DAG of primitive tensor ops. Each node has one result with a dtype, a
 * shape and the source location it came from. Node ids are indices into g->nodes and the
 * builder only ever refers to nodes that already exist, so id order is a topological order:
 * `for (int i = 0; i < g->nnodes; i++)` visits every operand before its users.
 *
 * Shapes are lists of dims; a dim (TlDim) is an id in a hash-consed table of integer
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
 * Op semantics (x, a, b are operand nodes; "attrs" are TlNode fields):
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

typedef int32_t TlDim;
typedef enum TlDimKind { TL_DIM_CONST, TL_DIM_SYM, TL_DIM_ADD, TL_DIM_MUL, TL_DIM_DIV } TlDimKind;
typedef struct TlDimExpr {
    TlDimKind kind;
    int64_t value;    /* CONST */
    const char *name; /* SYM */
    TlDim a, b;       /* ADD, MUL, DIV (floor division) */
} TlDimExpr;

typedef struct TlDimBinding { const char *name; int64_t value; } TlDimBinding;

typedef struct TlShape { int rank; TlDim dim[TL_MAX_RANK]; } TlShape;

/* ---- nodes ---- */

typedef enum TlOp {
    TL_OP_INPUT, TL_OP_PARAM, TL_OP_CONST, TL_OP_RANDOM,
    /* unary */
    TL_OP_NEG, TL_OP_EXP, TL_OP_LOG, TL_OP_SQRT, TL_OP_RSQRT, TL_OP_TANH, TL_OP_ERF,
    TL_OP_SIN, TL_OP_COS, TL_OP_ABS,
    /* binary */
    TL_OP_ADD, TL_OP_SUB, TL_OP_MUL, TL_OP_DIV, TL_OP_POW, TL_OP_MAX, TL_OP_MIN,
    /* comparisons */
    TL_OP_EQ, TL_OP_NE, TL_OP_LT, TL_OP_LE, TL_OP_GT, TL_OP_GE,
    TL_OP_SELECT, TL_OP_CAST,
    TL_OP_SUM, TL_OP_RMAX,
    TL_OP_CONTRACT,
    TL_OP_RESHAPE, TL_OP_PERMUTE, TL_OP_BROADCAST, TL_OP_SLICE, TL_OP_PAD, TL_OP_CONCAT,
    TL_OP_GATHER, TL_OP_SCATTER_ADD,
    TL_OP_SCAN, TL_OP_PROJ,
    TL_OP_COUNT
} TlOp;

typedef enum TlRandomDist { TL_RANDOM_UNIFORM, TL_RANDOM_NORMAL } TlRandomDist;

typedef struct TlGraph TlGraph;

typedef struct TlNode {
    TlOp op;
    TlDType dtype;
    TlShape shape;
    TlLoc loc;
    int nin;
    int *in;               /* operand node ids */
    /* attributes; which are meaningful depends on op (see the table above) */
    const char *name;      /* input, param */
    double fill;           /* const (when data == NULL), pad */
    const double *data;    /* const literal, numel values */
    const char *spec;      /* contract */
    int axis;              /* concat, gather, scatter_add; proj: result index */
    int keepdims;          /* sum, rmax */
    uint32_t axes;         /* sum, rmax: bit i set = axis i reduced */
    int perm[TL_MAX_RANK]; /* permute */
    TlDim lo[TL_MAX_RANK], hi[TL_MAX_RANK]; /* slice: start, stop; pad: lo, hi */
    int64_t step[TL_MAX_RANK]; /* slice: step (>= 1); pad: interior (>= 0) */
    TlDim size;            /* scatter_add: the output's size along axis */
    TlRandomDist dist;     /* random */
    uint64_t seed, offset; /* random */
    TlGraph *body;         /* scan */
    int ncarry, nseq;      /* scan (the rest of the operands are invariants) */
    int reverse;           /* scan */
} TlNode;

typedef struct TlDims TlDims; /* the dim table; shared by a graph and its scan bodies */

struct TlGraph {
    TlNode *nodes;
    int nnodes, cap;
    int *outputs;          /* graph results (in a scan body: new carries, then ys) */
    int noutputs, outcap;
    int *inputs;           /* every input node in creation order (a body's arguments) */
    int ninputs, incap;
    TlDims *dims;
    TlGraph *parent;       /* a scan body's enclosing graph, else NULL */
    struct TlArena *arena;
    TlGraph **bodies;      /* scan bodies owned by this graph */
    int nbodies, bodycap;
    char err[512];         /* first builder error, "" when none */
};

/* ---- graphs ---- */

TlGraph *tl_graph_new(void);
TlGraph *tl_graph_new_body(TlGraph *parent); /* a scan body: shares the parent's dims */
void tl_graph_free(TlGraph *g);               /* frees bodies too; not for bodies */
const char *tl_graph_error(const TlGraph *g); /* NULL when no error */
void tl_graph_add_output(TlGraph *g, int node);
int tl_graph_find(const TlGraph *g, TlOp op, const char *name); /* input/param by name */
const char *tl_op_name(TlOp op);
int tl_op_is_unary(TlOp op);
int tl_op_is_binary(TlOp op);  /* add .. min */
int tl_op_is_compare(TlOp op); /* eq .. ge */
int tl_op_is_elementwise(TlOp op); /* unary, binary, compare, select, cast */
void *tl_graph_alloc(TlGraph *g, size_t n); /* arena memory that lives as long as g */
/* Append a node built by hand (validated only lightly): for passes that copy nodes. The
 * node's arrays are copied into g's arena. */
int tl_graph_add_node(TlGraph *g, const TlNode *proto);
int *tl_graph_use_counts(const TlGraph *g); /* malloc'd; outputs count as uses */

void tl_graph_print(FILE *f, const TlGraph *g);
void tl_graph_dot(FILE *f, const TlGraph *g);
void tl_node_print(FILE *f, const TlGraph *g, int id);

/* ---- dims ---- */

TlDim tl_dim_const(TlGraph *g, int64_t v);
TlDim tl_dim_sym(TlGraph *g, const char *name);
TlDim tl_dim_add(TlGraph *g, TlDim a, TlDim b);
TlDim tl_dim_sub(TlGraph *g, TlDim a, TlDim b);
TlDim tl_dim_mul(TlGraph *g, TlDim a, TlDim b);
TlDim tl_dim_div(TlGraph *g, TlDim a, TlDim b); /* floor division */
const TlDimExpr *tl_dim_expr(const TlGraph *g, TlDim d);
int tl_dim_is_const(const TlGraph *g, TlDim d, int64_t *v); /* 1 and *v when constant */
/* 0 and *out on success; -1 when a symbol is unbound or a division is by zero. */
int tl_dim_eval(const TlGraph *g, TlDim d, const TlDimBinding *b, int nb, int64_t *out);
int tl_dim_str(const TlGraph *g, TlDim d, char *buf, int n); /* like snprintf */

TlShape tl_shape_make(TlGraph *g, int rank, const int64_t *dims); /* constant dims */
TlShape tl_shape_dims(int rank, const TlDim *dims);
int tl_shape_eq(TlShape a, TlShape b);
TlDim tl_shape_numel(TlGraph *g, TlShape s);
int tl_shape_str(const TlGraph *g, TlDType t, TlShape s, char *buf, int n); /* "f32[B, 4]" */

/* ---- builders: each returns the new node id, or -1 (see Errors above) ---- */

int tl_g_input(TlGraph *g, const char *name, TlDType t, TlShape s, TlLoc loc);
int tl_g_param(TlGraph *g, const char *name, TlDType t, TlShape s, TlLoc loc);
int tl_g_const(TlGraph *g, double fill, TlDType t, TlShape s, TlLoc loc);
int tl_g_const_data(TlGraph *g, const double *data, TlDType t, TlShape s, TlLoc loc);
int tl_g_random(TlGraph *g, TlRandomDist dist, int seed_node, uint64_t seed, uint64_t offset,
                TlDType t, TlShape s, TlLoc loc); /* seed_node: an i64 scalar or -1 */
int tl_g_unary(TlGraph *g, TlOp op, int x, TlLoc loc);
int tl_g_binary(TlGraph *g, TlOp op, int a, int b, TlLoc loc); /* also comparisons */
int tl_g_broadcast_binary(TlGraph *g, TlOp op, int a, int b, TlLoc loc); /* numpy rules */
int tl_g_select(TlGraph *g, int c, int a, int b, TlLoc loc);
int tl_g_cast(TlGraph *g, int x, TlDType t, TlLoc loc);
int tl_g_reduce(TlGraph *g, TlOp op, int x, uint32_t axes, int keepdims, TlLoc loc);
int tl_g_contract(TlGraph *g, const char *spec, int a, int b, TlLoc loc); /* b = -1: unary */
int tl_g_reshape(TlGraph *g, int x, TlShape s, TlLoc loc);
int tl_g_permute(TlGraph *g, int x, const int *perm, TlLoc loc);
int tl_g_broadcast(TlGraph *g, int x, TlShape s, TlLoc loc);
int tl_g_slice(TlGraph *g, int x, const TlDim *start, const TlDim *stop, const int64_t *step,
               TlLoc loc);
int tl_g_slice_axis(TlGraph *g, int x, int axis, TlDim start, TlDim stop, int64_t step, TlLoc loc);
int tl_g_pad(TlGraph *g, int x, const TlDim *lo, const TlDim *hi, const int64_t *interior,
             double fill, TlLoc loc);
int tl_g_concat(TlGraph *g, int n, const int *xs, int axis, TlLoc loc);
int tl_g_gather(TlGraph *g, int table, int idx, int axis, TlLoc loc);
int tl_g_scatter_add(TlGraph *g, int src, int idx, int axis, TlDim size, TlLoc loc);
/* Builds the scan node and its proj nodes: results[0..ncarry) are the final carries,
 * results[ncarry..) the stacked per-step outputs (body->noutputs results in all). Returns
 * the scan node id. */
int tl_g_scan(TlGraph *g, TlGraph *body, int ncarry, const int *carries, int nseq,
              const int *seqs, int ninv, const int *invs, int reverse, int *results, TlLoc loc);
int tl_g_proj(TlGraph *g, int scan, int index, TlLoc loc);

/* Short forms. */
#define tl_g_neg(g, x, l) tl_g_unary(g, TL_OP_NEG, x, l)
#define tl_g_exp(g, x, l) tl_g_unary(g, TL_OP_EXP, x, l)
#define tl_g_log(g, x, l) tl_g_unary(g, TL_OP_LOG, x, l)
#define tl_g_sqrt(g, x, l) tl_g_unary(g, TL_OP_SQRT, x, l)
#define tl_g_rsqrt(g, x, l) tl_g_unary(g, TL_OP_RSQRT, x, l)
#define tl_g_tanh(g, x, l) tl_g_unary(g, TL_OP_TANH, x, l)
#define tl_g_add(g, a, b, l) tl_g_binary(g, TL_OP_ADD, a, b, l)
#define tl_g_sub(g, a, b, l) tl_g_binary(g, TL_OP_SUB, a, b, l)
#define tl_g_mul(g, a, b, l) tl_g_binary(g, TL_OP_MUL, a, b, l)
#define tl_g_div(g, a, b, l) tl_g_binary(g, TL_OP_DIV, a, b, l)
#define tl_g_sum(g, x, axes, kd, l) tl_g_reduce(g, TL_OP_SUM, x, axes, kd, l)

/* ---- contraction specs ---- */

typedef struct TlContractSpec {
    int nin;                        /* 1 or 2 operands */
    int rank[2], out_rank;
    char in[2][TL_MAX_RANK], out[TL_MAX_RANK]; /* axis letters */
} TlContractSpec;
/* 0 on success; -1 with a message in err (if err) on a malformed spec. */
int tl_contract_parse(const char *spec, TlContractSpec *cs, char *err, int errn);

#endif
