/* dims.c — canonical polynomials over dimension symbols (see dims.h). */
#include "dims.h"
#include <stdlib.h>
#include <string.h>

static const TlDim dim_any = {TL_DIM_ANY, 0, NULL};
static const TlDim dim_dyn = {TL_DIM_DYN, 0, NULL};
static const TlDim dim_ell = {TL_DIM_ELLIPSIS, 0, NULL};
static const TlDim dim_zero = {TL_DIM_POLY, 0, NULL};

const TlDim *tl_dim_any(void) { return &dim_any; }
const TlDim *tl_dim_dyn(void) { return &dim_dyn; }
const TlDim *tl_dim_ellipsis(void) { return &dim_ell; }
int tl_dim_is_poly(const TlDim *d) { return d && d->kind == TL_DIM_POLY; }

/* ---- rationals with overflow detection ---- */

static int64_t gcd64(int64_t a, int64_t b) {
    if (a < 0) a = a == INT64_MIN ? INT64_MAX : -a;
    if (b < 0) b = b == INT64_MIN ? INT64_MAX : -b;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a ? a : 1;
}

/* Sets *ovf on overflow. */
static void rat_norm(int64_t *n, int64_t *d, int *ovf) {
    if (*d == 0) { *ovf = 1; return; }
    if (*d < 0) {
        if (*n == INT64_MIN || *d == INT64_MIN) { *ovf = 1; return; }
        *n = -*n;
        *d = -*d;
    }
    int64_t g = gcd64(*n, *d);
    *n /= g;
    *d /= g;
}

static void rat_add(int64_t an, int64_t ad, int64_t bn, int64_t bd, int64_t *rn, int64_t *rd,
                    int *ovf) {
    int64_t x, y, z;
    if (__builtin_mul_overflow(an, bd, &x) || __builtin_mul_overflow(bn, ad, &y) ||
        __builtin_add_overflow(x, y, rn) || __builtin_mul_overflow(ad, bd, &z)) {
        *ovf = 1;
        *rn = 0;
        *rd = 1;
        return;
    }
    *rd = z;
    rat_norm(rn, rd, ovf);
}

static void rat_mul(int64_t an, int64_t ad, int64_t bn, int64_t bd, int64_t *rn, int64_t *rd,
                    int *ovf) {
    if (__builtin_mul_overflow(an, bn, rn) || __builtin_mul_overflow(ad, bd, rd)) {
        *ovf = 1;
        *rn = 0;
        *rd = 1;
        return;
    }
    rat_norm(rn, rd, ovf);
}

static void cpy(void *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n);
}

/* ---- ordering ---- */

static int atom_order(const TlDimAtom *x, const TlDimAtom *y) {
    if (x == y) return 0;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->kind == TL_DA_SYM) return strcmp(x->name, y->name);
    int c = tl_dim_order(x->a, y->a);
    return c ? c : tl_dim_order(x->b, y->b);
}

static int factors_order(const TlDimTerm *x, const TlDimTerm *y) {
    /* constants last; otherwise lexicographic by (atom, exponent descending) */
    if (!x->nf || !y->nf) return (x->nf == 0) - (y->nf == 0);
    for (int i = 0; i < x->nf && i < y->nf; i++) {
        int c = atom_order(x->f[i].atom, y->f[i].atom);
        if (c) return c;
        if (x->f[i].exp != y->f[i].exp) return x->f[i].exp > y->f[i].exp ? -1 : 1;
    }
    return x->nf == y->nf ? 0 : x->nf < y->nf ? -1 : 1;
}

int tl_dim_order(const TlDim *x, const TlDim *y) {
    if (x == y) return 0;
    if (!x || !y) return x ? 1 : -1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->nt != y->nt) return x->nt < y->nt ? -1 : 1;
    for (int i = 0; i < x->nt; i++) {
        int c = factors_order(&x->t[i], &y->t[i]);
        if (c) return c;
        if (x->t[i].num != y->t[i].num) return x->t[i].num < y->t[i].num ? -1 : 1;
        if (x->t[i].den != y->t[i].den) return x->t[i].den < y->t[i].den ? -1 : 1;
    }
    return 0;
}

/* ---- canonicalization ---- */

static int cmp_factor(const void *p, const void *q) {
    const TlDimFactor *a = p, *b = q;
    return atom_order(a->atom, b->atom);
}

static int cmp_term(const void *p, const void *q) { return factors_order(p, q); }

/* Builds a canonical dim from raw terms (whose factor arrays may be unsorted and repeat
 * atoms). Takes ownership of nothing: copies into the arena. */
static const TlDim *canon(TlArena *a, TlDimTerm *terms, int n, int ovf) {
    if (ovf) return &dim_any;
    for (int i = 0; i < n; i++) {
        TlDimTerm *t = &terms[i];
        TlDimFactor *f = tl_arena_alloc(a, sizeof *f * (size_t)(t->nf + 1));
        cpy(f, t->f, sizeof *f * (size_t)t->nf);
        qsort(f, (size_t)t->nf, sizeof *f, cmp_factor);
        int m = 0;
        for (int j = 0; j < t->nf; j++) {
            if (m && atom_order(f[m - 1].atom, f[j].atom) == 0) {
                f[m - 1].exp += f[j].exp;
                if (f[m - 1].exp == 0) m--;
            } else {
                f[m++] = f[j];
            }
        }
        t->f = f;
        t->nf = m;
    }
    qsort(terms, (size_t)n, sizeof *terms, cmp_term);
    TlDimTerm *out = tl_arena_alloc(a, sizeof *out * (size_t)(n + 1));
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (terms[i].num == 0) continue;
        if (m && factors_order(&out[m - 1], &terms[i]) == 0) {
            rat_add(out[m - 1].num, out[m - 1].den, terms[i].num, terms[i].den, &out[m - 1].num,
                    &out[m - 1].den, &ovf);
            if (out[m - 1].num == 0) m--;
        } else {
            out[m++] = terms[i];
        }
    }
    if (ovf) return &dim_any;
    if (m == 0) return &dim_zero;
    TlDim *d = tl_arena_alloc(a, sizeof *d);
    d->kind = TL_DIM_POLY;
    d->nt = m;
    d->t = out;
    return d;
}

const TlDim *tl_dim_const(TlArena *a, int64_t v) {
    if (v == 0) return &dim_zero;
    TlDimTerm t = {v, 1, 0, NULL};
    return canon(a, &t, 1, 0);
}

const TlDim *tl_dim_sym(TlArena *a, const char *name) {
    TlDimAtom *at = tl_arena_alloc(a, sizeof *at);
    at->kind = TL_DA_SYM;
    at->name = tl_arena_strdup(a, name ? name : "?");
    TlDimFactor f = {at, 1};
    TlDimTerm t = {1, 1, 1, &f};
    return canon(a, &t, 1, 0);
}

static const TlDim *atom_dim(TlArena *a, TlDimAtomKind kind, const TlDim *x, const TlDim *y) {
    TlDimAtom *at = tl_arena_alloc(a, sizeof *at);
    at->kind = kind;
    at->a = x;
    at->b = y;
    TlDimFactor f = {at, 1};
    TlDimTerm t = {1, 1, 1, &f};
    return canon(a, &t, 1, 0);
}

/* ANY/DYN/ELLIPSIS propagate: DYN wins over ANY only when both are DYN-ish. */
static const TlDim *special(const TlDim *x, const TlDim *y) {
    if (!x || !y) return &dim_any;
    if (x->kind == TL_DIM_POLY && y->kind == TL_DIM_POLY) return NULL;
    if (x->kind == TL_DIM_DYN || y->kind == TL_DIM_DYN) return &dim_dyn;
    return &dim_any;
}

const TlDim *tl_dim_add(TlArena *a, const TlDim *x, const TlDim *y) {
    const TlDim *s = special(x, y);
    if (s) return s;
    int n = x->nt + y->nt;
    TlDimTerm *t = tl_arena_alloc(a, sizeof *t * (size_t)(n + 1));
    cpy(t, x->t, sizeof *t * (size_t)x->nt);
    cpy(t + x->nt, y->t, sizeof *t * (size_t)y->nt);
    return canon(a, t, n, 0);
}

const TlDim *tl_dim_neg(TlArena *a, const TlDim *x) {
    if (!tl_dim_is_poly(x)) return x ? x : &dim_any;
    TlDimTerm *t = tl_arena_alloc(a, sizeof *t * (size_t)(x->nt + 1));
    int ovf = 0;
    for (int i = 0; i < x->nt; i++) {
        t[i] = x->t[i];
        if (t[i].num == INT64_MIN) ovf = 1;
        else t[i].num = -t[i].num;
    }
    return canon(a, t, x->nt, ovf);
}

const TlDim *tl_dim_sub(TlArena *a, const TlDim *x, const TlDim *y) {
    const TlDim *s = special(x, y);
    if (s) return s;
    return tl_dim_add(a, x, tl_dim_neg(a, y));
}

const TlDim *tl_dim_mul(TlArena *a, const TlDim *x, const TlDim *y) {
    const TlDim *s = special(x, y);
    if (s) return s;
    int n = x->nt * y->nt, k = 0, ovf = 0;
    if (n > 4096) return &dim_any; /* keep pathological inputs cheap */
    TlDimTerm *t = tl_arena_alloc(a, sizeof *t * (size_t)(n + 1));
    for (int i = 0; i < x->nt; i++) {
        for (int j = 0; j < y->nt; j++) {
            TlDimTerm *r = &t[k++];
            rat_mul(x->t[i].num, x->t[i].den, y->t[j].num, y->t[j].den, &r->num, &r->den, &ovf);
            r->nf = x->t[i].nf + y->t[j].nf;
            TlDimFactor *f = tl_arena_alloc(a, sizeof *f * (size_t)(r->nf + 1));
            cpy(f, x->t[i].f, sizeof *f * (size_t)x->t[i].nf);
            cpy(f + x->t[i].nf, y->t[j].f, sizeof *f * (size_t)y->t[j].nf);
            r->f = f;
        }
    }
    return canon(a, t, n, ovf);
}

int tl_dim_is_const(const TlDim *d, int64_t *v) {
    if (!tl_dim_is_poly(d)) return 0;
    if (d->nt == 0) {
        if (v) *v = 0;
        return 1;
    }
    if (d->nt == 1 && d->t[0].nf == 0 && d->t[0].den == 1) {
        if (v) *v = d->t[0].num;
        return 1;
    }
    return 0;
}

static int is_const_rat(const TlDim *d) {
    return tl_dim_is_poly(d) && (d->nt == 0 || (d->nt == 1 && d->t[0].nf == 0));
}

int tl_dim_is_sym(const TlDim *d, const char **name) {
    if (!tl_dim_is_poly(d) || d->nt != 1) return 0;
    const TlDimTerm *t = &d->t[0];
    if (t->num != 1 || t->den != 1 || t->nf != 1 || t->f[0].exp != 1 ||
        t->f[0].atom->kind != TL_DA_SYM)
        return 0;
    if (name) *name = t->f[0].atom->name;
    return 1;
}

int tl_dim_is_one(const TlDim *d) {
    int64_t v;
    return tl_dim_is_const(d, &v) && v == 1;
}

const TlDim *tl_dim_div(TlArena *a, const TlDim *x, const TlDim *y, int *err) {
    const TlDim *s = special(x, y);
    if (s) return s;
    if (y->nt == 0) {
        if (err) *err = 1;
        return &dim_any;
    }
    if (y->nt == 1) {
        /* multiply by the inverse of a monomial: exact by assumption */
        const TlDimTerm *m = &y->t[0];
        if (m->num == INT64_MIN) return &dim_any;
        TlDimTerm inv = {m->den, m->num, m->nf, NULL};
        int ovf = 0;
        rat_norm(&inv.num, &inv.den, &ovf);
        TlDimFactor *f = tl_arena_alloc(a, sizeof *f * (size_t)(m->nf + 1));
        for (int i = 0; i < m->nf; i++) {
            f[i] = m->f[i];
            f[i].exp = -f[i].exp;
        }
        inv.f = f;
        const TlDim *r = tl_dim_mul(a, x, canon(a, &inv, 1, ovf));
        if (is_const_rat(r) && r->nt == 1 && r->t[0].den != 1) {
            if (err) *err = 2;
            return &dim_any;
        }
        return r;
    }
    if (tl_dim_order(x, y) == 0) return tl_dim_const(a, 1);
    return atom_dim(a, TL_DA_FLOORDIV, x, y);
}

const TlDim *tl_dim_mod(TlArena *a, const TlDim *x, const TlDim *y, int *err) {
    const TlDim *s = special(x, y);
    if (s) return s;
    int64_t xv, yv;
    if (tl_dim_is_const(y, &yv) && yv == 0) {
        if (err) *err = 1;
        return &dim_any;
    }
    if (tl_dim_is_const(x, &xv) && tl_dim_is_const(y, &yv)) {
        if (yv == -1) return &dim_zero;
        int64_t r = xv % yv;
        if (r != 0 && ((r < 0) != (yv < 0))) r += yv; /* floor modulo */
        return tl_dim_const(a, r);
    }
    if (tl_dim_order(x, y) == 0) return &dim_zero;
    return atom_dim(a, TL_DA_MOD, x, y);
}

TlDimCmp tl_dim_cmp(const TlDim *x, const TlDim *y) {
    if (!x || !y) return TL_DIM_MAYBE;
    if (x->kind == TL_DIM_ANY || y->kind == TL_DIM_ANY || x->kind == TL_DIM_DYN ||
        y->kind == TL_DIM_DYN)
        return TL_DIM_MAYBE;
    return tl_dim_order(x, y) == 0 ? TL_DIM_EQ : TL_DIM_NE;
}

/* ---- printing ---- */

typedef struct Buf {
    char *p;
    size_t cap, len;
} Buf;

static void bput(Buf *b, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n && b->len + 1 < b->cap; i++) b->p[b->len++] = s[i];
    if (b->cap) b->p[b->len] = 0;
}

static void bint(Buf *b, int64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    bput(b, tmp);
}

static void fmt_dim(Buf *b, const TlDim *d, int paren, int depth);

static void fmt_atom(Buf *b, const TlDimAtom *at, int depth) {
    if (at->kind == TL_DA_SYM) {
        bput(b, at->name);
        return;
    }
    bput(b, "(");
    fmt_dim(b, at->a, 1, depth + 1);
    bput(b, at->kind == TL_DA_FLOORDIV ? " / " : " % ");
    fmt_dim(b, at->b, 1, depth + 1);
    bput(b, ")");
}

/* Prints |coef| * factors; the sign is printed by the caller. */
static void fmt_term(Buf *b, const TlDimTerm *t, int64_t scale, int depth) {
    int64_t num = t->num < 0 ? -t->num : t->num, den = t->den;
    if (scale != 1) {
        int ovf = 0;
        rat_mul(num, den, scale, 1, &num, &den, &ovf);
    }
    int npos = 0, nneg = 0;
    for (int i = 0; i < t->nf; i++) {
        if (t->f[i].exp > 0) npos += t->f[i].exp;
        else nneg -= t->f[i].exp;
    }
    int first = 1;
    if (num != 1 || npos == 0) {
        bint(b, num);
        first = 0;
    }
    for (int i = 0; i < t->nf; i++)
        for (int e = 0; e < t->f[i].exp; e++) {
            if (!first) bput(b, " * ");
            fmt_atom(b, t->f[i].atom, depth);
            first = 0;
        }
    int nden = nneg + (den != 1);
    if (!nden) return;
    bput(b, nden > 1 ? " / (" : " / ");
    first = 1;
    if (den != 1) {
        bint(b, den);
        first = 0;
    }
    for (int i = 0; i < t->nf; i++)
        for (int e = 0; e < -t->f[i].exp; e++) {
            if (!first) bput(b, " * ");
            fmt_atom(b, t->f[i].atom, depth);
            first = 0;
        }
    if (nden > 1) bput(b, ")");
}

static void fmt_dim(Buf *b, const TlDim *d, int paren, int depth) {
    if (!d) { bput(b, "?"); return; }
    if (depth > 20) { bput(b, "..."); return; }
    switch (d->kind) {
    case TL_DIM_ANY: bput(b, "_"); return;
    case TL_DIM_DYN: bput(b, "?"); return;
    case TL_DIM_ELLIPSIS: bput(b, "..."); return;
    case TL_DIM_POLY: break;
    }
    if (d->nt == 0) { bput(b, "0"); return; }
    /* a sum whose coefficients share a denominator prints as (sum) / L */
    int64_t l = 1;
    if (d->nt > 1) {
        for (int i = 0; i < d->nt && l > 0; i++) {
            int64_t g = gcd64(l, d->t[i].den), r;
            if (__builtin_mul_overflow(l / g, d->t[i].den, &r)) l = 0; else l = r;
        }
        if (l <= 0) l = 1;
    }
    int wrap = (paren && d->nt > 1) || l != 1;
    if (wrap) bput(b, "(");
    for (int i = 0; i < d->nt; i++) {
        if (i == 0) { if (d->t[i].num < 0) bput(b, "-"); }
        else bput(b, d->t[i].num < 0 ? " - " : " + ");
        fmt_term(b, &d->t[i], l, depth);
    }
    if (wrap) bput(b, ")");
    if (l != 1) {
        bput(b, " / ");
        bint(b, l);
    }
}

void tl_dim_format(char *buf, size_t cap, const TlDim *d) {
    Buf b = {buf, cap, 0};
    if (cap) buf[0] = 0;
    fmt_dim(&b, d, 0, 0);
}

char *tl_dim_str(TlArena *a, const TlDim *d) {
    char tmp[512];
    tl_dim_format(tmp, sizeof tmp, d);
    return tl_arena_strdup(a, tmp);
}

void tl_dim_print(FILE *out, const TlDim *d) {
    char tmp[512];
    tl_dim_format(tmp, sizeof tmp, d);
    fputs(tmp, out);
}

/* ---- substitution ---- */

void tl_dim_env_bind(TlArena *a, TlDimEnv *env, const char *name, const TlDim *d) {
    for (int i = 0; i < env->n; i++)
        if (strcmp(env->names[i], name) == 0) {
            env->dims[i] = d;
            return;
        }
    int cap = env->cap;
    env->names = tl_arena_grow(a, env->names, &cap, env->n + 1, sizeof *env->names);
    cap = env->cap;
    env->dims = tl_arena_grow(a, env->dims, &cap, env->n + 1, sizeof *env->dims);
    env->cap = cap;
    env->names[env->n] = name;
    env->dims[env->n++] = d;
}

const TlDim *tl_dim_env_get(const TlDimEnv *env, const char *name) {
    for (int i = 0; env && i < env->n; i++)
        if (strcmp(env->names[i], name) == 0) return env->dims[i];
    return NULL;
}

static const TlDim *subst_rec(TlArena *a, const TlDim *d, const TlDimEnv *env, int depth);

static const TlDim *subst_atom(TlArena *a, const TlDimAtom *at, const TlDimEnv *env, int depth) {
    if (at->kind == TL_DA_SYM) {
        const TlDim *b = tl_dim_env_get(env, at->name);
        return b ? b : tl_dim_sym(a, at->name);
    }
    const TlDim *x = subst_rec(a, at->a, env, depth + 1), *y = subst_rec(a, at->b, env, depth + 1);
    int err = 0;
    const TlDim *r = at->kind == TL_DA_FLOORDIV ? tl_dim_div(a, x, y, &err)
                                                : tl_dim_mod(a, x, y, &err);
    /* a floor division that became concrete floors instead of failing */
    int64_t xv, yv;
    if (err == 2 && tl_dim_is_const(x, &xv) && tl_dim_is_const(y, &yv) && yv != 0 &&
        !(xv == INT64_MIN && yv == -1))
        return tl_dim_const(a, xv / yv - ((xv % yv != 0) && ((xv < 0) != (yv < 0))));
    return r;
}

static const TlDim *subst_rec(TlArena *a, const TlDim *d, const TlDimEnv *env, int depth) {
    if (!tl_dim_is_poly(d) || !env || depth > 32) return d ? d : &dim_any;
    const TlDim *sum = &dim_zero;
    for (int i = 0; i < d->nt; i++) {
        const TlDimTerm *t = &d->t[i];
        TlDimTerm c = {t->num, t->den, 0, NULL};
        const TlDim *prod = canon(a, &c, 1, 0);
        for (int j = 0; j < t->nf; j++) {
            const TlDim *ad = subst_atom(a, t->f[j].atom, env, depth);
            int e = t->f[j].exp;
            for (int k = 0; k < (e > 0 ? e : -e) && k < 64; k++) {
                if (e > 0) prod = tl_dim_mul(a, prod, ad);
                else prod = tl_dim_div(a, prod, ad, NULL);
            }
        }
        sum = tl_dim_add(a, sum, prod);
    }
    return sum;
}

const TlDim *tl_dim_subst(TlArena *a, const TlDim *d, const TlDimEnv *env) {
    return subst_rec(a, d, env, 0);
}

int tl_shape_subst(TlArena *a, const TlDim *const *dims, int n, const TlDimEnv *env,
                   const TlDim ***out) {
    int cap = n + (env && env->ell_bound ? env->nell : 0) + 1;
    const TlDim **r = tl_arena_alloc(a, sizeof *r * (size_t)cap);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (dims[i] && dims[i]->kind == TL_DIM_ELLIPSIS && env && env->ell_bound) {
            for (int j = 0; j < env->nell; j++) r[k++] = env->ell[j];
        } else {
            r[k++] = tl_dim_subst(a, dims[i], env);
        }
    }
    *out = r;
    return k;
}

/* ---- unification ---- */

/* Collects the first unbound symbol of d (NULL when none) and how many distinct ones. */
static void unbound_syms(const TlDim *d, const TlDimEnv *env, const char **first, int *count,
                         int depth) {
    if (!tl_dim_is_poly(d) || depth > 32) return;
    for (int i = 0; i < d->nt; i++)
        for (int j = 0; j < d->t[i].nf; j++) {
            const TlDimAtom *at = d->t[i].f[j].atom;
            if (at->kind == TL_DA_SYM) {
                if (tl_dim_env_get(env, at->name)) continue;
                if (*first && strcmp(*first, at->name) == 0) continue;
                if (!*first) *first = at->name;
                (*count)++;
            } else {
                unbound_syms(at->a, env, first, count, depth + 1);
                unbound_syms(at->b, env, first, count, depth + 1);
            }
        }
}

/* 1 ok, 0 mismatch, -1 undecided (needs more bindings). */
static int unify1(TlArena *a, const TlDim *pat, const TlDim *act, TlDimEnv *env) {
    if (!pat || !act) return 1;
    if (pat->kind == TL_DIM_ANY || act->kind == TL_DIM_ANY) return 1;
    if (pat->kind == TL_DIM_DYN || act->kind == TL_DIM_DYN) return 1;
    if (pat->kind == TL_DIM_ELLIPSIS || act->kind == TL_DIM_ELLIPSIS)
        return pat->kind == act->kind;
    const char *v = NULL;
    int nv = 0;
    unbound_syms(pat, env, &v, &nv, 0);
    if (nv == 0) return tl_dim_cmp(tl_dim_subst(a, pat, env), act) != TL_DIM_NE;
    if (nv > 1) return -1;
    const char *name;
    if (tl_dim_is_sym(pat, &name)) {
        tl_dim_env_bind(a, env, name, act);
        return 1;
    }
    /* pat = c * v + rest, linear in v: v = (act - rest) / c */
    const TlDim *p = tl_dim_subst(a, pat, env);
    if (!tl_dim_is_poly(p)) return 1;
    const TlDimTerm *vt = NULL;
    for (int i = 0; i < p->nt; i++) {
        const TlDimTerm *t = &p->t[i];
        for (int j = 0; j < t->nf; j++)
            if (t->f[j].atom->kind == TL_DA_SYM && strcmp(t->f[j].atom->name, v) == 0) {
                if (vt || t->nf != 1 || t->f[j].exp != 1) return -1;
                vt = t;
            }
    }
    if (!vt) return -1;
    TlDimTerm c = {vt->num, vt->den, 0, NULL};
    const TlDim *cd = canon(a, &c, 1, 0);
    const TlDim *vd = tl_dim_mul(a, cd, tl_dim_sym(a, v));
    const TlDim *rest = tl_dim_sub(a, p, vd);
    int err = 0;
    const TlDim *sol = tl_dim_div(a, tl_dim_sub(a, act, rest), cd, &err);
    if (err) return 0;
    tl_dim_env_bind(a, env, v, sol);
    return 1;
}

int tl_dim_unify(TlArena *a, const TlDim *pat, const TlDim *act, TlDimEnv *env) {
    return unify1(a, pat, act, env) != 0;
}

int tl_shape_unify(TlArena *a, const TlDim *const *pat, int np, const TlDim *const *act, int na,
                   TlDimEnv *env, TlUnifyErr *err) {
    TlUnifyErr dummy;
    if (!err) err = &dummy;
    memset(err, 0, sizeof *err);
    int pe = -1, ae = -1;
    for (int i = 0; i < np; i++)
        if (pat[i] && pat[i]->kind == TL_DIM_ELLIPSIS && pe < 0) pe = i;
    for (int i = 0; i < na; i++)
        if (act[i] && act[i]->kind == TL_DIM_ELLIPSIS && ae < 0) ae = i;
    /* pairs[k] = (pattern axis, actual axis) */
    int cap = np + na + 1, npairs = 0;
    int *pp = tl_arena_alloc(a, sizeof(int) * (size_t)cap);
    int *pa = tl_arena_alloc(a, sizeof(int) * (size_t)cap);
    if (pe < 0 && ae < 0) {
        if (np != na) {
            err->kind = 1;
            return 0;
        }
        for (int i = 0; i < np; i++) pp[npairs] = i, pa[npairs++] = i;
    } else if (pe >= 0) {
        int pre = pe, post = np - pe - 1;
        if (ae < 0 && na < pre + post) {
            err->kind = 1;
            return 0;
        }
        if (ae >= 0 && (ae < pre || na - ae - 1 < post)) {
            /* the actual's own `...` may cover what the pattern names: accept */
            return 1;
        }
        for (int i = 0; i < pre; i++) pp[npairs] = i, pa[npairs++] = i;
        for (int i = 0; i < post; i++) pp[npairs] = np - 1 - i, pa[npairs++] = na - 1 - i;
        int nell = na - pre - post;
        const TlDim **ell = tl_arena_alloc(a, sizeof *ell * (size_t)(nell + 1));
        for (int i = 0; i < nell; i++) ell[i] = act[pre + i];
        if (env->ell_bound) {
            int ok = env->nell == nell;
            for (int i = 0; ok && i < nell; i++)
                ok = tl_dim_cmp(env->ell[i], ell[i]) != TL_DIM_NE;
            if (!ok) {
                err->kind = 2;
                err->pat_axis = pe;
                err->act_axis = pre;
                err->expected = tl_dim_ellipsis();
                err->actual = nell > 0 ? ell[0] : tl_dim_ellipsis();
                return 0;
            }
        } else {
            env->ell_bound = 1;
            env->nell = nell;
            env->ell = ell;
        }
    } else {
        /* actual has `...`, pattern does not: match the explicit suffix only */
        int post = na - ae - 1;
        if (np < post) {
            err->kind = 1;
            return 0;
        }
        for (int i = 0; i < post; i++) pp[npairs] = np - 1 - i, pa[npairs++] = na - 1 - i;
    }
    /* bind in passes: simple variables first, then solvable compound dims */
    int *done = tl_arena_alloc(a, sizeof(int) * (size_t)cap);
    for (int pass = 0; pass < 4; pass++) {
        int progress = 0, pending = 0;
        for (int k = 0; k < npairs; k++) {
            if (done[k]) continue;
            int r = unify1(a, pat[pp[k]], act[pa[k]], env);
            if (r == 0) {
                err->kind = 2;
                err->pat_axis = pp[k];
                err->act_axis = pa[k];
                err->expected = tl_dim_subst(a, pat[pp[k]], env);
                err->actual = act[pa[k]];
                return 0;
            }
            if (r == 1) done[k] = 1, progress = 1;
            else pending = 1;
        }
        if (!pending || !progress) break;
    }
    return 1;
}

int tl_shape_broadcast(TlArena *a, const TlDim *const *x, int nx, const TlDim *const *y, int ny,
                       const TlDim ***out, int *nout, int *bad_x, int *bad_y) {
    int n = nx > ny ? nx : ny;
    const TlDim **r = tl_arena_alloc(a, sizeof *r * (size_t)(n + 1));
    int i = nx - 1, j = ny - 1, k = n - 1;
    while (i >= 0 || j >= 0) {
        const TlDim *dx = i >= 0 ? x[i] : NULL, *dy = j >= 0 ? y[j] : NULL;
        int ex = dx && dx->kind == TL_DIM_ELLIPSIS, ey = dy && dy->kind == TL_DIM_ELLIPSIS;
        if (ex || ey) {
            /* a group of leading dims: the rest of both shapes is inside it */
            r[k--] = tl_dim_ellipsis();
            break;
        }
        if (!dx) r[k--] = dy;
        else if (!dy) r[k--] = dx;
        else if (tl_dim_is_one(dx)) r[k--] = dy;
        else if (tl_dim_is_one(dy)) r[k--] = dx;
        else {
            TlDimCmp c = tl_dim_cmp(dx, dy);
            if (c == TL_DIM_NE) {
                *bad_x = i;
                *bad_y = j;
                return 0;
            }
            r[k--] = dx->kind == TL_DIM_POLY ? dx : dy;
        }
        i--, j--;
    }
    *out = r + k + 1;
    *nout = n - k - 1;
    return 1;
}
