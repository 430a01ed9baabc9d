/* types.c — constructors and printing of sema's types (see types.h). */
#include "types.h"
#include <string.h>

static const TlType type_error = {.kind = TL_T_ERROR};
static const TlType type_void = {.kind = TL_T_VOID};

const TlType *tl_type_error(void) { return &type_error; }
const TlType *tl_type_void(void) { return &type_void; }
int tl_type_is_error(const TlType *t) { return !t || t->kind == TL_T_ERROR; }
int tl_type_is_scalar_number(const TlType *t) {
    return t && (t->kind == TL_T_INT || t->kind == TL_T_FLOAT);
}

TlType *tl_type_new(TlArena *a, TlTypeKind kind) {
    TlType *t = tl_arena_alloc(a, sizeof *t);
    t->kind = kind;
    return t;
}

TlType *tl_type_copy(TlArena *a, const TlType *t) {
    TlType *c = tl_arena_alloc(a, sizeof *c);
    *c = *t;
    return c;
}

TlType *tl_type_tensor(TlArena *a, TlDType dt, int rank, const TlDim **dims) {
    TlType *t = tl_type_new(a, TL_T_TENSOR);
    t->dtype = dt;
    t->rank = rank;
    t->dims = tl_arena_alloc(a, sizeof *t->dims * (size_t)(rank + 1));
    for (int i = 0; i < rank; i++) t->dims[i] = dims && dims[i] ? dims[i] : tl_dim_any();
    return t;
}

TlType *tl_type_int(TlArena *a, const TlDim *val) {
    TlType *t = tl_type_new(a, TL_T_INT);
    t->val = val;
    return t;
}

TlType *tl_type_float(TlArena *a, int known, double v) {
    TlType *t = tl_type_new(a, TL_T_FLOAT);
    t->known = known;
    t->fval = v;
    return t;
}

TlType *tl_type_bool(TlArena *a, int known, int v) {
    TlType *t = tl_type_new(a, TL_T_BOOL);
    t->known = known;
    t->bval = v;
    return t;
}

TlType *tl_type_str(TlArena *a, const char *s) {
    TlType *t = tl_type_new(a, TL_T_STR);
    t->known = s != NULL;
    t->sval = s;
    return t;
}

TlType *tl_type_tuple(TlArena *a, int n, const TlType **elems) {
    TlType *t = tl_type_new(a, TL_T_TUPLE);
    t->n = n;
    t->elems = tl_arena_alloc(a, sizeof *t->elems * (size_t)(n + 1));
    for (int i = 0; i < n; i++) t->elems[i] = elems[i] ? elems[i] : tl_type_error();
    return t;
}

TlType *tl_type_list(TlArena *a, const TlType *elem, const TlDim *len) {
    TlType *t = tl_type_new(a, TL_T_LIST);
    t->n = 1;
    t->elems = tl_arena_alloc(a, sizeof *t->elems);
    t->elems[0] = elem ? elem : tl_type_error();
    t->val = len;
    return t;
}

TlType *tl_type_host(TlArena *a, const char *what) {
    TlType *t = tl_type_new(a, TL_T_HOST);
    t->what = what;
    return t;
}

const TlType *tl_type_with_origin(TlArena *a, const TlType *t, TlLoc loc, const char *name,
                                  int kind) {
    if (!t || t->kind != TL_T_TENSOR) return t;
    TlType *c = tl_type_copy(a, t);
    c->origin = loc;
    c->origin_name = name;
    c->origin_kind = kind;
    return c;
}

/* ---- printing ---- */

typedef struct Buf {
    char *p;
    size_t cap, len;
} Buf;

static void put(Buf *b, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n && b->len + 1 < b->cap; i++) b->p[b->len++] = s[i];
    if (b->cap) b->p[b->len] = 0;
}

void tl_shape_format(char *buf, size_t cap, const TlDim *const *dims, int rank) {
    Buf b = {buf, cap, 0};
    if (cap) buf[0] = 0;
    put(&b, "[");
    for (int i = 0; i < rank; i++) {
        char d[256];
        tl_dim_format(d, sizeof d, dims[i]);
        if (i) put(&b, ", ");
        put(&b, d);
    }
    put(&b, "]");
}

static void fmt(Buf *b, const TlType *t, int depth) {
    char tmp[512];
    if (!t) { put(b, "<error>"); return; }
    if (depth > 8) { put(b, "..."); return; }
    switch (t->kind) {
    case TL_T_ERROR: put(b, "<error>"); return;
    case TL_T_VOID: put(b, "()"); return;
    case TL_T_TENSOR:
        put(b, tl_dtype_name(t->dtype));
        tl_shape_format(tmp, sizeof tmp, t->dims, t->rank);
        put(b, tmp);
        return;
    case TL_T_INT:
        put(b, "int");
        if (t->val && tl_dim_is_poly(t->val)) {
            tl_dim_format(tmp, sizeof tmp, t->val);
            put(b, " = ");
            put(b, tmp);
        }
        return;
    case TL_T_FLOAT:
        put(b, "float");
        if (t->known) {
            snprintf(tmp, sizeof tmp, " = %g", t->fval);
            put(b, tmp);
        }
        return;
    case TL_T_BOOL:
        put(b, "bool");
        if (t->known) put(b, t->bval ? " = true" : " = false");
        return;
    case TL_T_STR: put(b, "str"); return;
    case TL_T_TUPLE:
        put(b, "(");
        for (int i = 0; i < t->n; i++) {
            if (i) put(b, ", ");
            fmt(b, t->elems[i], depth + 1);
        }
        put(b, t->n == 1 ? ",)" : ")");
        return;
    case TL_T_LIST:
        put(b, "[");
        fmt(b, t->n ? t->elems[0] : NULL, depth + 1);
        if (t->val) {
            tl_dim_format(tmp, sizeof tmp, t->val);
            put(b, "; ");
            put(b, tmp);
        }
        put(b, "]");
        return;
    case TL_T_RANGE:
        put(b, "range(");
        tl_dim_format(tmp, sizeof tmp, t->val);
        put(b, tmp);
        put(b, "..");
        tl_dim_format(tmp, sizeof tmp, t->hi);
        put(b, tmp);
        put(b, ")");
        return;
    case TL_T_MODEL:
        put(b, "model ");
        put(b, t->decl && t->decl->name ? t->decl->name : "?");
        return;
    case TL_T_INSTANCE:
        put(b, t->decl && t->decl->name ? t->decl->name : "?");
        put(b, "(");
        for (int i = 0; i < t->nh; i++) {
            if (i) put(b, ", ");
            put(b, t->hnames[i]);
            put(b, " = ");
            const TlType *v = t->hvals[i];
            if (v && v->kind == TL_T_INT && v->val) tl_dim_format(tmp, sizeof tmp, v->val);
            else if (v && v->kind == TL_T_FLOAT && v->known) snprintf(tmp, sizeof tmp, "%g", v->fval);
            else if (v && v->kind == TL_T_BOOL && v->known) snprintf(tmp, sizeof tmp, "%s", v->bval ? "true" : "false");
            else tl_type_format(tmp, sizeof tmp, v);
            put(b, tmp);
        }
        put(b, ")");
        return;
    case TL_T_FN:
        put(b, "fn ");
        put(b, t->decl && t->decl->name ? t->decl->name : "?");
        return;
    case TL_T_KERNEL:
        put(b, "kernel ");
        put(b, t->decl && t->decl->name ? t->decl->name : "?");
        return;
    case TL_T_BUILTIN:
        put(b, "builtin ");
        put(b, t->what ? t->what : "?");
        return;
    case TL_T_MODULE:
        put(b, "module ");
        put(b, t->what ? t->what : "?");
        return;
    case TL_T_TOKENIZER: put(b, "tokenizer"); return;
    case TL_T_HOST: put(b, t->what ? t->what : "host value"); return;
    case TL_T_KIND_COUNT: break;
    }
    put(b, "?");
}

void tl_type_format(char *buf, size_t cap, const TlType *t) {
    Buf b = {buf, cap, 0};
    if (cap) buf[0] = 0;
    fmt(&b, t, 0);
}

char *tl_type_to_str(TlArena *a, const TlType *t) {
    char tmp[1024];
    tl_type_format(tmp, sizeof tmp, t);
    return tl_arena_strdup(a, tmp);
}

void tl_type_print(FILE *out, const TlType *t) {
    char tmp[1024];
    tl_type_format(tmp, sizeof tmp, t);
    fputs(tmp, out);
}

const char *tl_type_kind_name(TlTypeKind k) {
    static const char *names[TL_T_KIND_COUNT] = {
        "<error>", "()", "tensor", "int", "float", "bool", "str", "tuple", "list", "range",
        "model", "model instance", "function", "kernel", "built-in function", "module",
        "tokenizer", "host value"};
    return k < TL_T_KIND_COUNT ? names[k] : "?";
}
