/* sema_internal.h — shared state of the sema_*.c files (not part of sema's contract).
 *
 *   sema.c          modules, imports, scopes, names, const/dim, statements
 *   sema_decl.c     functions and models
 *   sema_expr.c     expressions: operators, broadcasting, matmul, indexing, calls
 *   sema_builtins.c the table of built-in functions and their typing rules
 *   sema_kernel.c   kernels, schedules, tokenizers, train blocks, scan
 */
#ifndef TL_SEMA_INTERNAL_H
#define TL_SEMA_INTERNAL_H
#include "sema.h"
#include "types.h"

typedef enum SymKind {
    SYM_CONST, SYM_DIM, SYM_FN, SYM_MODEL, SYM_KERNEL, SYM_SCHEDULE, SYM_TOKENIZER,
    SYM_TRAIN, SYM_IMPORT, SYM_VAR, SYM_PARAM, SYM_HYPER, SYM_MEMBER, SYM_LOOPVAR,
    SYM_INDEX, SYM_BUILTIN
} SymKind;

typedef struct Sym {
    const char *name;
    SymKind kind;
    TlNode *decl;
    TlLoc loc;
    const TlType *type;
    int used;
    int warn;        /* warn when unused */
    int module;      /* owning module index */
    struct Sym *next;
} Sym;

typedef enum ScopeKind { SC_MODULE, SC_MODEL, SC_FN, SC_BLOCK, SC_LOOP, SC_KERNEL, SC_TRAIN } ScopeKind;

typedef struct Scope {
    struct Scope *parent;
    ScopeKind kind;
    Sym *syms;
} Scope;

typedef struct Module {
    TlModule pub;
    Scope *scope;
    int state;  /* 0 new, 1 loading (imports in progress), 2 declared, 3 checked */
    int index;
} Module;

/* Per-declaration information kept in node->sema of fn, model, kernel, const, dim nodes. */
typedef struct DeclInfo {
    int state;          /* 0 not yet, 1 in progress, 2 done */
    int module;
    Scope *scope;       /* fn: signature scope (dim variables, params); model: member scope */
    Scope *outer;       /* the scope the declaration was made in */
    const TlType *type; /* const: value; fn/kernel: return type */
    const TlType **ptypes; /* fn/kernel: parameter types (patterns) */
    int np;
    TlNode *model;      /* fn: the model it is a method of, or NULL */
    int body_checked;
} DeclInfo;

typedef struct FnCtx {
    struct FnCtx *outer;
    TlNode *decl;        /* fn, kernel, train or model */
    int host;            /* runtime control flow allowed */
    const TlType *ret;   /* declared return type or NULL */
    int loop_depth;
    int returned;
    /* scan bodies */
    int in_scan;
    const TlType **yields;
    int nyields, capyields;
    TlLoc yield_loc;
} FnCtx;

typedef struct Builtin Builtin;
typedef struct KernelCtx KernelCtx;

typedef struct Sema {
    TlNode *schedules[64], *scheduled[64]; /* schedule blocks seen and their kernels */
    int nschedules;
    TlArena *arena;
    TlProgram *prog;
    TlSemaOptions opt;
    Module **mods;
    int nmods, capmods;
    int cur;             /* current module index */
    Scope *scope;
    FnCtx *fn;
    int depth;           /* recursion guard for expressions and lazy declarations */
    KernelCtx *k;        /* inside a kernel statement's right-hand side */
    char stdlib_dir[4096];
    /* the import chain being loaded, for cycle messages */
    int stack[64];
    int nstack;
} Sema;

/* ---- sema.c ---- */
/* Runs a lazily-checked declaration in its own module and scope. */
typedef struct Saved {
    int cur;
    Scope *scope;
    FnCtx *fn;
} Saved;
Saved sema_enter(Sema *S, DeclInfo *info, Scope *scope);
void sema_leave(Sema *S, Saved s);
void sema_warn_unused(Sema *S, Scope *sc);
int sema_is_const_value(const TlType *t);
void sema_check_model(Sema *S, TlNode *model);
Scope *sema_push(Sema *S, ScopeKind kind);
void sema_pop(Sema *S);
Sym *sema_declare(Sema *S, Scope *sc, const char *name, SymKind kind, TlNode *decl, TlLoc loc,
                  const TlType *type);
Sym *sema_lookup(Sema *S, const char *name);
Sym *sema_lookup_in(Scope *sc, const char *name);
/* Reports an undefined name with a suggestion. */
void sema_undefined(Sema *S, TlLoc loc, const char *what, const char *name, Scope *sc);
const char *sema_suggest(Sema *S, const char *name, Scope *sc, const char *const *extra, int nextra);
const TlType *sema_sym_type(Sema *S, Sym *sym, TlLoc use);
const TlType *sema_resolve_type(Sema *S, TlNode *t, int sig);
const TlDim *sema_dim_expr(Sema *S, TlNode *e, int sig);
void sema_check_block(Sema *S, TlNode *block, ScopeKind kind);
void sema_check_stmt(Sema *S, TlNode *st);
void sema_ensure_fn(Sema *S, TlNode *fn);
void sema_ensure_model(Sema *S, TlNode *model);
void sema_check_fn_body(Sema *S, TlNode *fn);
DeclInfo *sema_info(Sema *S, TlNode *decl);
void sema_bind_var(Sema *S, TlNode *target, const TlType *t, int origin_kind);
void sema_type_note(Sema *S, const TlType *t);
int sema_types_match(Sema *S, const TlType *want, const TlType *got);
/* Applies dimension bindings to a type (tensors, ints, instances, tuples, lists). */
const TlType *sema_type_subst(Sema *S, const TlType *t, const TlDimEnv *env);
int sema_edit_distance(const char *a, const char *b);

/* ---- sema_expr.c ---- */
const TlType *sema_expr(Sema *S, TlNode *e);
/* Calls `callee` (already typed) with the call node's arguments, plus an optional first
 * argument (the left side of a pipeline). */
const TlType *sema_call(Sema *S, TlNode *call, TlNode *first);
const TlType *sema_call_fn(Sema *S, TlNode *call, TlNode *fn, const TlType *self, TlNode **args,
                           int nargs, TlNode **kwargs, int nkw, const char *what);
const TlType *sema_member_type(Sema *S, const TlType *inst, const char *name, TlLoc loc, int report);
const TlType *sema_broadcast(Sema *S, TlNode *e, const char *verb, const TlType *x, const TlType *y,
                             TlNode *xe, TlNode *ye);
int sema_is_compile_time(const TlType *t);

/* ---- sema_builtins.c ---- */
const Builtin *sema_builtin_find(const char *name);
const char *sema_builtin_name(int index);
int sema_builtin_index(const Builtin *b);
int sema_builtin_count(void);
const TlType *sema_builtin_call(Sema *S, TlNode *call, int index, TlNode **args, int nargs,
                                TlNode **kwargs, int nkw);
/* Initializers allowed for a param/buffer member: checks the call; 1 when it is one. */
int sema_check_initializer(Sema *S, TlNode *init, const TlType *want);

/* ---- sema_kernel.c ---- */
void sema_check_kernel(Sema *S, TlNode *k);
void sema_check_schedule(Sema *S, TlNode *s);
void sema_check_tokenizer(Sema *S, TlNode *t, Sym *sym);
void sema_check_train(Sema *S, TlNode *t);
const TlType *sema_scan(Sema *S, TlNode *e);
/* Kernel mode: `x[i, j]` with index names, and `sum(j) body`. */
const TlType *sema_kernel_access(Sema *S, TlNode *e, const TlType *base);
const TlType *sema_kernel_reduce(Sema *S, TlNode *e);
/* 1 when e names a kernel index (its type in *out). */
int sema_kernel_ident(Sema *S, TlNode *e, const TlType **out);
TlNode **sema_bind_params(Sema *S, TlNode *call, const char *fname, const char *const *pnames,
                          int np, int variadic, TlNode **pos, int npos, TlNode **kw, int nkw);

#endif
