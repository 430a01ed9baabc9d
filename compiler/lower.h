/* lower.h — from a checked program to Graph IR.
 *
 * Lowering is a staged evaluation of the AST: compile-time values (ints, which are graph
 * dims and may be symbolic, floats, bools, strings, tuples, lists, model instances) are
 * computed here, and every tensor operation becomes a Graph IR node. So functions are
 * inlined, models are instantiated (each param becomes a `param` node named by its dotted
 * path, e.g. "blocks.0.attn.qkv.w"), compile-time `for`/`if` are unrolled, `scan` becomes
 * one scan node with a body graph, and index-notation kernels become primitives.
 *
 * Errors are reported through dsl/diag.h at the offending source location. */
#ifndef TL_LOWER_H
#define TL_LOWER_H
#include "graph.h"
#include "sema.h"

/* One argument of an entry point: a tensor input (dtype + dims; a dim is a constant when
 * sym is NULL, else the named symbol), or a compile-time number. */
typedef struct TlLowerArg {
    const char *name;    /* NULL: positional */
    enum { TL_LARG_TENSOR, TL_LARG_INT, TL_LARG_FLOAT } kind;
    TlDType dtype;
    int rank;
    int64_t dim[TL_MAX_RANK];
    const char *sym[TL_MAX_RANK];
    int64_t ival;
    double fval;
} TlLowerArg;

/* How a param is initialised (from its declaration). */
typedef enum TlInitKind {
    TL_INIT_ZEROS, TL_INIT_ONES, TL_INIT_NORMAL, TL_INIT_UNIFORM, TL_INIT_XAVIER,
    TL_INIT_KAIMING, TL_INIT_GRAPH /* a tensor expression: init_graph computes it */
} TlInitKind;

typedef struct TlParamInfo {
    const char *name; /* dotted path */
    int node;         /* the param node in the graph */
    TlInitKind init;
    double a, b;      /* normal: mean, std; uniform: lo, hi */
    int fan_in, fan_out;
    int buffer;       /* a non-trainable `buffer` member */
    TlLoc loc;
} TlParamInfo;

typedef struct TlLowered {
    TlGraph *g;
    TlParamInfo *params; /* every param of the instantiated models, in declaration order */
    int nparams;
    int *inputs;         /* the input nodes of the entry's tensor arguments */
    int ninputs;
    int nresults;        /* graph outputs (a tuple result gives several) */
} TlLowered;

/* Lowers a call of `callee` in the main module (or "nn.layer_norm" — a name qualified by an
 * import), with the given arguments. When callee names a model, `ctor` are its
 * hyper-parameters and `method` (default "forward") is called with `args`. The graph's
 * outputs are the call's results. Returns NULL after reporting errors. */
TlLowered *tl_lower_call(TlProgram *prog, const char *callee, const TlLowerArg *ctor, int nctor,
                         const char *method, const TlLowerArg *args, int nargs);
void tl_lowered_free(TlLowered *l);

/* Parses an argument list such as "x:f32[B,8,16] y:i32[B] eps=1e-5 H=4" into args (at most
 * max). Returns the count, or -1 with a message in err. */
int tl_lower_parse_args(const char *text, TlLowerArg *args, int max, char *err, int errlen);
/* Frees the strings tl_lower_parse_args allocated for n args. */
void tl_lower_args_free(TlLowerArg *args, int n);

#endif
