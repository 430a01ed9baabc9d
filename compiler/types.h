/* types.h — the types sema gives to expressions and declarations.
 *
 * Tensor types carry a dtype and a symbolic shape (compiler/dims.h) plus where the value
 * came from (origin), so that a shape error can point at the declaration of each operand.
 * Compile-time scalars (int, float, bool, str) carry their value when it is known; an int's
 * value is a dim, so hyper-parameters stay symbolic (`4 * D`). Types are immutable and live
 * in sema's arena. */
#ifndef TL_TYPES_H
#define TL_TYPES_H
#include <stdio.h>
#include "ast.h"
#include "dims.h"

typedef enum TlTypeKind {
    TL_T_ERROR = 0, /* an erroneous expression: compatible with everything, never reported */
    TL_T_VOID,      /* a call used as a statement (print, log) */
    TL_T_TENSOR,
    TL_T_INT,       /* compile-time int (val: a dim, NULL when unknown) or a host int */
    TL_T_FLOAT,
    TL_T_BOOL,
    TL_T_STR,
    TL_T_TUPLE,
    TL_T_LIST,      /* elem; len (a dim or NULL) */
    TL_T_RANGE,     /* lo..hi over ints */
    TL_T_MODEL,     /* a model itself (calling it constructs an instance) */
    TL_T_INSTANCE,  /* a model instance: model + hyper-parameter bindings */
    TL_T_FN,        /* a function or method (decl; inst for a bound method) */
    TL_T_KERNEL,
    TL_T_BUILTIN,   /* a built-in function (builtin) */
    TL_T_MODULE,    /* an imported module */
    TL_T_TOKENIZER,
    TL_T_HOST,      /* a host value: a data pipeline, an optimizer, params, ... (what) */
    TL_T_KIND_COUNT
} TlTypeKind;

typedef struct TlType TlType;
struct TlType {
    TlTypeKind kind;
    /* TL_T_TENSOR */
    TlDType dtype;
    int rank;
    const TlDim **dims;
    /* where a tensor value came from, for notes: "declared here" / "assigned here" */
    TlLoc origin;
    const char *origin_name; /* variable or parameter name, or NULL */
    int origin_kind;         /* 0 none, 1 declared, 2 assigned, 3 produced */
    /* TL_T_INT: value (NULL: unknown); TL_T_RANGE: lo, hi; TL_T_LIST: len */
    const TlDim *val, *hi;
    /* TL_T_FLOAT / TL_T_BOOL / TL_T_STR: value when known */
    int known;
    double fval;
    int bval;
    const char *sval;
    /* TL_T_TUPLE: elems; TL_T_LIST: elem (elems[0]) */
    int n;
    const TlType **elems;
    /* TL_T_MODEL, TL_T_INSTANCE, TL_T_FN, TL_T_KERNEL, TL_T_TOKENIZER: the declaration */
    TlNode *decl;
    /* TL_T_INSTANCE: hyper-parameter bindings (ints as dims; others as types) */
    TlDimEnv *env;
    const char **hnames;
    const TlType **hvals;
    int nh;
    /* TL_T_FN: bound instance (a method), or NULL */
    const TlType *self;
    /* TL_T_BUILTIN: index into sema's builtin table; TL_T_MODULE: module index */
    int index;
    const char *what; /* TL_T_HOST: "data pipeline", "optimizer", ...; name of builtin */
};

const TlType *tl_type_error(void);
const TlType *tl_type_void(void);
TlType *tl_type_new(TlArena *a, TlTypeKind kind);
TlType *tl_type_copy(TlArena *a, const TlType *t);
TlType *tl_type_tensor(TlArena *a, TlDType dt, int rank, const TlDim **dims);
TlType *tl_type_int(TlArena *a, const TlDim *val);
TlType *tl_type_float(TlArena *a, int known, double v);
TlType *tl_type_bool(TlArena *a, int known, int v);
TlType *tl_type_str(TlArena *a, const char *s);
TlType *tl_type_tuple(TlArena *a, int n, const TlType **elems);
TlType *tl_type_list(TlArena *a, const TlType *elem, const TlDim *len);
TlType *tl_type_host(TlArena *a, const char *what);
/* A tensor type with the given origin (copied). */
const TlType *tl_type_with_origin(TlArena *a, const TlType *t, TlLoc loc, const char *name,
                                  int kind);

int tl_type_is_error(const TlType *t);
int tl_type_is_scalar_number(const TlType *t); /* int or float compile-time value */

/* `f32[B, T, 256]`, `int`, `(f32[B, H], f32[B, H])`, `Linear(I = 256, O = 1024)`, ... */
void tl_type_print(FILE *out, const TlType *t);
void tl_type_format(char *buf, size_t cap, const TlType *t);
char *tl_type_to_str(TlArena *a, const TlType *t);
/* The shape alone: `[B, T, 256]`. */
void tl_shape_format(char *buf, size_t cap, const TlDim *const *dims, int rank);
const char *tl_type_kind_name(TlTypeKind k);

#endif
