/* lower_internal.h — the values and environment of the lowering evaluator (private to
 * compiler/lower*.c). */
#ifndef TL_LOWER_INTERNAL_H
#define TL_LOWER_INTERNAL_H
#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "graph.h"
#include "lower.h"

typedef struct Value Value;
typedef struct Env Env;
typedef struct Instance Instance;
typedef struct Module Module;
typedef struct Lower Lower;

typedef enum ValueKind {
    V_NONE,
    V_INT,      /* dim: a graph dim, constant or symbolic */
    V_FLOAT,    /* f */
    V_BOOL,     /* b */
    V_STR,      /* s */
    V_TENSOR,   /* g, id */
    V_TUPLE,    /* items, n */
    V_LIST,     /* items, n */
    V_DIMS,     /* items (V_INT), n: what `...` matched in a signature */
    V_MODEL,    /* inst */
    V_FUNC,     /* decl (TL_N_FN), mod, inst (bound self or NULL) */
    V_MODELDEF, /* decl (TL_N_MODEL), mod */
    V_MODULE,   /* mod */
    V_BUILTIN,  /* s: name */
    V_TOKENIZER,/* decl, ival: vocabulary size or -1 */
    V_TYPE,     /* dtype (a dtype name used as a value: zeros(..., dtype = i32)) */
    V_SCANIDX,  /* the step variable of the scan being built */
    V_RANGE,    /* items[0], items[1]: lo..hi (V_INT) */
} ValueKind;

struct Value {
    ValueKind kind;
    TlGDim dim;
    double f;
    int b;
    const char *s;
    TlGraph *g;
    int id;
    Value **items;
    int n;
    Instance *inst;
    TlNode *decl;
    Module *mod;
    TlDType dtype;
    int64_t ival;
    const char *flag; /* set when the value came from arg(flag, default) */
};

struct Env {
    Env *parent;
    const char **names;
    Value **vals;
    int n, cap;
};

struct Instance {
    TlNode *decl;   /* TL_N_MODEL */
    Module *mod;
    Env *env;       /* hyper-parameters and members */
    const char *path;
};

struct Module {
    TlModule *m;
    Env *globals;
    int index;
};

/* A scan body being built: values from enclosing graphs are imported as invariants. */
typedef struct ScanFrame {
    struct ScanFrame *outer;
    TlGraph *body;
    TlGraph *parent;
    /* invariants: parent node -> body input */
    int *inv_outer, *inv_inner;
    int ninv, invcap;
    /* sequences: parent node (axis 0 = time) -> body input */
    int *seq_outer, *seq_inner;
    int nseq, seqcap;
    const char *index_name; /* the step variable */
    Value *seq_dummy;
} ScanFrame;

struct Lower {
    TlProgram *prog;
    TlArena *arena;
    TlGraph *g;          /* the top graph */
    TlGraph *cur;        /* the graph being built (a scan body inside a scan) */
    ScanFrame *scan;
    Module **mods;
    int nmods;
    TlParamInfo *params;
    int nparams, paramcap;
    const char *member_path; /* set while a model member's value is evaluated */
    int depth;               /* call depth, to stop runaway recursion */
    uint64_t random_ops;     /* counter offsets of random ops */
    int seed_input;          /* the "__seed" input node, or -1 */
    int failed;
    struct TlArgs *args;     /* parsed flags: arg(name, default) gives their values */
};


/* lower.c */
Lower *lower_new(TlProgram *prog); /* free with tl_arena_free(L->arena), free(L) */
Value *lv_new(Lower *L, ValueKind k);
Value *lv_int(Lower *L, TlGDim d);
Value *lv_int_c(Lower *L, int64_t v);
Value *lv_float(Lower *L, double f);
Value *lv_bool(Lower *L, int b);
Value *lv_tensor(Lower *L, int id);
int lv_is_number(const Value *v);
int lv_const_int(Lower *L, const Value *v, int64_t *out);
const char *lv_kind_name(ValueKind k);
Value *lower_error(Lower *L, TlLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int lower_tensor(Lower *L, Value *v, TlDType want, TlLoc loc); /* value -> node in L->cur */
const TlGNode *lower_node(Lower *L, int id);
Value *lower_expr(Lower *L, Env *env, TlNode *e);
int lower_exec_stmt(Lower *L, Env *env, TlNode *stmt); /* -1 on error; `return` is an error */
Value *lower_scan(Lower *L, Env *env, TlNode *e);
/* Inside a scan being built (L->scan): node id of graph g (the scan's graph or an
 * enclosing one) as a value of the body (an invariant input); outer node `outer` of the
 * scan's parent graph, sliced along `axis` per step, as a body input (a sequence). */
int lower_import(Lower *L, ScanFrame *f, TlGraph *g, int id);
int lower_seq_input(Lower *L, int outer, int axis, TlLoc loc);
Value *lower_index(Lower *L, Env *env, TlNode *e, Value *base);
Value *lower_call_value(Lower *L, Value *callee, Value **args, const char **kwnames,
                        Value **kwvals, int nargs, int nkw, TlLoc loc);
Env *env_new(Lower *L, Env *parent);
void env_set(Lower *L, Env *e, const char *name, Value *v);
Env *env_frame(Lower *L, Env *parent); /* assignments inside never rebind names outside */
Value *env_get(Env *e, const char *name);
Value *lower_binary(Lower *L, TlOp op, Value *a, Value *b, TlLoc loc);
Value *lower_dim_tensor(Lower *L, TlGDim d, TlDType t, TlLoc loc);

/* lower_builtins.c */
Value *lower_builtin(Lower *L, const char *name, Value **args, int nargs, const char **kwnames,
                     Value **kwvals, int nkw, TlLoc loc);
int lower_is_builtin(const char *name);

/* lower_train.c: a train block's bindings evaluated into env (the model instantiated) */
Env *lower_train_bindings(Lower *L, TlNode *train);

/* lower_kernel.c */
Value *lower_kernel_call(Lower *L, TlNode *kernel, Module *mod, Value **args, int nargs,
                         TlLoc loc);

#endif
