/* dims.h — symbolic dimension arithmetic for shape types.
 *
 * A dimension is an integer expression over named symbols (B, T, D) and literals, kept in a
 * canonical form: a sum of terms, each a rational coefficient times a product of atoms with
 * integer exponents, sorted and with like terms merged. So `D / H * H` is `D`, `4 * D`
 * equals `D * 4`, and `(T + 1) - 1` is `T`. Division by a single term (`D / H`, `D / 2`) is
 * assumed exact (the program states that H divides D; when both are concrete the caller
 * checks it); division by a sum and `%` that cannot be decided stay opaque atoms.
 *
 * Besides polynomials a dim may be ANY (`_`, or unknown after an error: equal to
 * everything), DYN (`?`, known at run time only) or ELLIPSIS (`...`: a group of leading
 * dims, the same group everywhere in one signature).
 *
 * Dims are immutable and allocated in the arena passed in; they are compared by value. */
#ifndef TL_DIMS_H
#define TL_DIMS_H
#include <stdint.h>
#include <stdio.h>
#include "arena.h"

typedef enum TlDimKind { TL_DIM_POLY, TL_DIM_ANY, TL_DIM_DYN, TL_DIM_ELLIPSIS } TlDimKind;
typedef enum TlDimAtomKind { TL_DA_SYM, TL_DA_FLOORDIV, TL_DA_MOD } TlDimAtomKind;

typedef struct TlDim TlDim;
typedef struct TlDimAtom {
    TlDimAtomKind kind;
    const char *name;       /* TL_DA_SYM */
    const TlDim *a, *b;     /* TL_DA_FLOORDIV: a / b; TL_DA_MOD: a % b */
} TlDimAtom;
typedef struct TlDimFactor {
    const TlDimAtom *atom;
    int exp;                /* nonzero; negative for an exact division */
} TlDimFactor;
typedef struct TlDimTerm {
    int64_t num, den;       /* coefficient num/den, den > 0, reduced */
    int nf;
    const TlDimFactor *f;   /* sorted by atom */
} TlDimTerm;
struct TlDim {
    TlDimKind kind;
    int nt;                 /* TL_DIM_POLY: number of terms (0: the constant 0) */
    const TlDimTerm *t;
};

const TlDim *tl_dim_const(TlArena *a, int64_t v);
const TlDim *tl_dim_sym(TlArena *a, const char *name);
const TlDim *tl_dim_any(void);
const TlDim *tl_dim_dyn(void);
const TlDim *tl_dim_ellipsis(void);

/* Arithmetic. ANY/DYN operands give ANY/DYN. Overflow gives ANY. */
const TlDim *tl_dim_add(TlArena *a, const TlDim *x, const TlDim *y);
const TlDim *tl_dim_sub(TlArena *a, const TlDim *x, const TlDim *y);
const TlDim *tl_dim_mul(TlArena *a, const TlDim *x, const TlDim *y);
const TlDim *tl_dim_neg(TlArena *a, const TlDim *x);
/* x / y. *err (may be NULL) is set to 1 for a division by zero, 2 for a concrete division
 * that is not exact (7 / 2); the result is then ANY. */
const TlDim *tl_dim_div(TlArena *a, const TlDim *x, const TlDim *y, int *err);
const TlDim *tl_dim_mod(TlArena *a, const TlDim *x, const TlDim *y, int *err);

/* 1 and *v set when d is an integer constant. */
int tl_dim_is_const(const TlDim *d, int64_t *v);
/* 1 and *name set when d is exactly one symbol. */
int tl_dim_is_sym(const TlDim *d, const char **name);
int tl_dim_is_poly(const TlDim *d);

typedef enum TlDimCmp { TL_DIM_NE = 0, TL_DIM_EQ = 1, TL_DIM_MAYBE = 2 } TlDimCmp;
/* EQ when canonically equal, MAYBE when either is ANY/DYN, NE otherwise (symbols are rigid:
 * distinct expressions are different dimensions). */
TlDimCmp tl_dim_cmp(const TlDim *x, const TlDim *y);
/* A total order (for sorting); 0 iff structurally equal. */
int tl_dim_order(const TlDim *x, const TlDim *y);
/* 1 when the dim is provably the constant 1. */
int tl_dim_is_one(const TlDim *d);

void tl_dim_print(FILE *out, const TlDim *d);
char *tl_dim_str(TlArena *a, const TlDim *d);
/* Appends the printed dim to buf (snprintf-style, always NUL-terminated). */
void tl_dim_format(char *buf, size_t cap, const TlDim *d);

/* ---- substitution and unification ---- */

/* Bindings of dimension variables (by name) and of the ellipsis. */
typedef struct TlDimEnv {
    int n, cap;
    const char **names;
    const TlDim **dims;
    int ell_bound;
    int nell;
    const TlDim **ell;
} TlDimEnv;

void tl_dim_env_bind(TlArena *a, TlDimEnv *env, const char *name, const TlDim *d);
const TlDim *tl_dim_env_get(const TlDimEnv *env, const char *name);
/* Replaces every bound symbol of d by its binding (simultaneously). */
const TlDim *tl_dim_subst(TlArena *a, const TlDim *d, const TlDimEnv *env);
/* Substitutes a shape, expanding a bound ellipsis into its dims. Returns the new rank. */
int tl_shape_subst(TlArena *a, const TlDim *const *dims, int n, const TlDimEnv *env,
                   const TlDim ***out);

typedef struct TlUnifyErr {
    int kind;              /* 0 ok, 1 rank differs, 2 a dimension differs */
    int pat_axis, act_axis; /* 0-based axes of the differing dim */
    const TlDim *expected; /* the pattern's dim after substitution */
    const TlDim *actual;
} TlUnifyErr;

/* Unifies a pattern shape (whose symbols are variables, bound in env or bound here) with an
 * actual shape. Returns 1 on success; on failure fills err. Variables appearing in compound
 * dims (`4 * D`) are solved when linear. */
int tl_shape_unify(TlArena *a, const TlDim *const *pat, int np, const TlDim *const *act, int na,
                   TlDimEnv *env, TlUnifyErr *err);
/* Unifies one dim: 1 when consistent. */
int tl_dim_unify(TlArena *a, const TlDim *pat, const TlDim *act, TlDimEnv *env);

/* NumPy broadcasting, aligned from the right. Returns 1 and the result shape; 0 and the
 * 0-based axes (of x and y) of the first pair that cannot broadcast. */
int tl_shape_broadcast(TlArena *a, const TlDim *const *x, int nx, const TlDim *const *y, int ny,
                       const TlDim ***out, int *nout, int *bad_x, int *bad_y);

#endif
