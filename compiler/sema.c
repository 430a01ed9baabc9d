/* sema.c — semantic analysis, part 1: modules and imports, scopes and names, declarations
 * (const, dim, fn, model) and statements. Expressions are in sema_expr.c, built-ins in
 * sema_builtins.c, kernels/schedules/tokenizers/train/scan in sema_kernel.c. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "diag.h"
#include "sema_internal.h"
#include "source.h"

/* ---- scopes ---- */

Scope *sema_push(Sema *S, ScopeKind kind) {
    Scope *sc = tl_arena_alloc(S->arena, sizeof *sc);
    sc->parent = S->scope;
    sc->kind = kind;
    S->scope = sc;
    return sc;
}

void sema_warn_unused(Sema *S, Scope *sc) {
    if (!S->opt.warn_unused || !sc) return;
    /* symbols are kept newest first; report in source order */
    Sym *list[256];
    int n = 0;
    for (Sym *s = sc->syms; s && n < 256; s = s->next)
        if (s->warn && !s->used && s->name && s->name[0] != '_') list[n++] = s;
    for (int i = n - 1; i >= 0; i--) {
        Sym *s = list[i];
        const char *what = s->kind == SYM_PARAM ? "parameter" : s->kind == SYM_IMPORT ? "import"
                                                                                     : "variable";
        tl_warning(s->loc, "unused %s '%s'", what, s->name);
    }
}

void sema_pop(Sema *S) {
    if (!S->scope) return;
    sema_warn_unused(S, S->scope);
    S->scope = S->scope->parent;
}

Sym *sema_lookup_in(Scope *sc, const char *name) {
    if (!sc || !name) return NULL;
    for (Sym *s = sc->syms; s; s = s->next)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

Sym *sema_lookup(Sema *S, const char *name) {
    for (Scope *sc = S->scope; sc; sc = sc->parent) {
        Sym *s = sema_lookup_in(sc, name);
        if (s) return s;
    }
    return NULL;
}

static const char *sym_what(SymKind k) {
    switch (k) {
    case SYM_CONST: return "constant";
    case SYM_DIM: return "dimension";
    case SYM_FN: return "function";
    case SYM_MODEL: return "model";
    case SYM_KERNEL: return "kernel";
    case SYM_TOKENIZER: return "tokenizer";
    case SYM_TRAIN: return "train block";
    case SYM_IMPORT: return "import";
    case SYM_PARAM: return "parameter";
    case SYM_HYPER: return "hyper-parameter";
    case SYM_MEMBER: return "member";
    case SYM_INDEX: return "index";
    default: return "name";
    }
}

Sym *sema_declare(Sema *S, Scope *sc, const char *name, SymKind kind, TlNode *decl, TlLoc loc,
                  const TlType *type) {
    if (!name || !sc) return NULL;
    if (strcmp(name, "_") == 0) return NULL; /* the placeholder binds nothing */
    Sym *old = sema_lookup_in(sc, name);
    if (old) {
        tl_error(loc, "redefinition of '%s'", name);
        tl_note(old->loc, "previous definition of %s '%s' is here", sym_what(old->kind), name);
        return old;
    }
    Sym *s = tl_arena_alloc(S->arena, sizeof *s);
    s->name = name;
    s->kind = kind;
    s->decl = decl;
    s->loc = loc;
    s->type = type;
    s->module = S->cur;
    s->next = sc->syms;
    sc->syms = s;
    return s;
}

int sema_edit_distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 64 || m > 64) return 99;
    int d[65][65];
    for (int i = 0; i <= n; i++) d[i][0] = i;
    for (int j = 0; j <= m; j++) d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[n][m];
}

static void consider(const char *name, const char *cand, const char **best, int *bestd) {
    if (!cand || strcmp(name, cand) == 0 || strcmp(cand, "_") == 0) return;
    int d = sema_edit_distance(name, cand);
    int limit = (int)strlen(name) / 3;
    if (limit < 1) limit = 1;
    if (limit > 3) limit = 3;
    if (d <= limit && (d < *bestd || (d == *bestd && *best && strcmp(cand, *best) < 0))) {
        *best = cand;
        *bestd = d;
    }
}

const char *sema_suggest(Sema *S, const char *name, Scope *sc, const char *const *extra,
                         int nextra) {
    const char *best = NULL;
    int bestd = 1 << 30;
    (void)S;
    for (; sc; sc = sc->parent)
        for (Sym *s = sc->syms; s; s = s->next) consider(name, s->name, &best, &bestd);
    for (int i = 0; i < nextra; i++) consider(name, extra[i], &best, &bestd);
    return best;
}

void sema_undefined(Sema *S, TlLoc loc, const char *what, const char *name, Scope *sc) {
    int nb = sema_builtin_count();
    const char **names = tl_arena_alloc(S->arena, sizeof *names * (size_t)(nb + 1));
    for (int i = 0; i < nb; i++) names[i] = sema_builtin_name(i);
    const char *sug = sema_suggest(S, name, sc, names, sc == S->scope ? nb : 0);
    /* the misspelled name was meant to use this one: don't also call it unused */
    Sym *meant = sug ? sema_lookup(S, sug) : NULL;
    if (meant) meant->used = 1;
    if (sug) tl_error(loc, "undefined %s '%s'; did you mean '%s'?", what, name, sug);
    else tl_error(loc, "undefined %s '%s'", what, name);
}

DeclInfo *sema_info(Sema *S, TlNode *decl) {
    if (!decl->sema) {
        DeclInfo *info = tl_arena_alloc(S->arena, sizeof *info);
        info->module = S->cur;
        info->outer = S->scope;
        decl->sema = info;
    }
    return decl->sema;
}

/* Runs lazily-checked declarations in their own module and scope. */
Saved sema_enter(Sema *S, DeclInfo *info, Scope *scope) {
    Saved s = {S->cur, S->scope, S->fn};
    S->cur = info->module;
    S->scope = scope;
    S->fn = NULL;
    return s;
}

void sema_leave(Sema *S, Saved s) {
    S->cur = s.cur;
    S->scope = s.scope;
    S->fn = s.fn;
}

/* ---- types written in the source ---- */

static const TlDim *dim_from_type(const TlType *t, TlNode *e) {
    if (tl_type_is_error(t)) return tl_dim_any();
    if (t->kind == TL_T_INT) return t->val ? t->val : tl_dim_dyn();
    char buf[256];
    tl_type_format(buf, sizeof buf, t);
    tl_error(e->loc, "a dimension must be an integer, but '%s' is %s", e->name ? e->name : "this",
             buf);
    return tl_dim_any();
}

/* A dimension expression in a shape. In a signature (sig), a name that is not defined
 * becomes a dimension variable of the function. */
const TlDim *sema_dim_expr(Sema *S, TlNode *e, int sig) {
    if (!e) return tl_dim_any();
    switch (e->kind) {
    case TL_N_INT: return tl_dim_const(S->arena, e->ival);
    case TL_N_WILDCARD: return tl_dim_any();
    case TL_N_DYNAMIC: return tl_dim_dyn();
    case TL_N_ELLIPSIS: return tl_dim_ellipsis();
    case TL_N_IDENT: {
        if (!e->name) return tl_dim_any();
        if (strcmp(e->name, "_") == 0) return tl_dim_any();
        Sym *s = sema_lookup(S, e->name);
        if (!s) {
            if (sig) {
                const TlDim *d = tl_dim_sym(S->arena, e->name);
                Sym *v = sema_declare(S, S->scope, e->name, SYM_DIM, e, e->loc,
                                      tl_type_int(S->arena, d));
                if (v) v->used = 1;
                return d;
            }
            sema_undefined(S, e->loc, "dimension", e->name, S->scope);
            return tl_dim_any();
        }
        s->used = 1;
        return dim_from_type(sema_sym_type(S, s, e->loc), e);
    }
    case TL_N_BINARY: {
        const TlDim *x = sema_dim_expr(S, e->a, sig), *y = sema_dim_expr(S, e->b, sig);
        int err = 0;
        const TlDim *r;
        switch (e->op) {
        case TL_OP_ADD: return tl_dim_add(S->arena, x, y);
        case TL_OP_SUB: return tl_dim_sub(S->arena, x, y);
        case TL_OP_MUL: return tl_dim_mul(S->arena, x, y);
        case TL_OP_DIV: r = tl_dim_div(S->arena, x, y, &err); break;
        case TL_OP_MOD: r = tl_dim_mod(S->arena, x, y, &err); break;
        default:
            tl_error(e->loc, "operator '%s' is not allowed in a dimension", tl_op_name(e->op));
            return tl_dim_any();
        }
        if (err) {
            char a[128], b[128];
            tl_dim_format(a, sizeof a, x);
            tl_dim_format(b, sizeof b, y);
            if (err == 1) tl_error(e->loc, "division by zero in dimension %s / %s", a, b);
            else tl_error(e->loc, "dimension %s / %s is not an integer", a, b);
        }
        return r;
    }
    case TL_N_UNARY:
        if (e->op == TL_OP_NEG) return tl_dim_neg(S->arena, sema_dim_expr(S, e->a, sig));
        break;
    case TL_N_FIELD: {
        const TlType *t = sema_expr(S, e);
        return dim_from_type(t, e);
    }
    default: break;
    }
    const TlType *t = sema_expr(S, e);
    return dim_from_type(t, e);
}

const TlType *sema_resolve_type(Sema *S, TlNode *t, int sig) {
    if (!t) return tl_type_error();
    switch (t->kind) {
    case TL_N_TYPE_TENSOR: {
        int n = t->list.n, ne = 0;
        const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(n + 1));
        for (int i = 0; i < n; i++) {
            dims[i] = sema_dim_expr(S, t->list.v[i], sig);
            if (dims[i]->kind == TL_DIM_ELLIPSIS && ++ne == 2)
                tl_error(t->list.v[i]->loc, "'...' may appear only once in a shape");
        }
        TlDType dt = t->dtype ? t->dtype : TL_F32;
        return tl_type_tensor(S->arena, dt, n, dims);
    }
    case TL_N_TYPE_TUPLE: {
        int n = t->list.n;
        const TlType **el = tl_arena_alloc(S->arena, sizeof *el * (size_t)(n + 1));
        for (int i = 0; i < n; i++) el[i] = sema_resolve_type(S, t->list.v[i], sig);
        return tl_type_tuple(S->arena, n, el);
    }
    case TL_N_TYPE_NAME: {
        const char *nm = t->name ? t->name : "";
        if (!strcmp(nm, "int")) return tl_type_int(S->arena, NULL);
        if (!strcmp(nm, "float")) return tl_type_float(S->arena, 0, 0);
        if (!strcmp(nm, "str")) return tl_type_str(S->arena, NULL);
        if (!strcmp(nm, "bool")) return tl_type_bool(S->arena, 0, 0);
        TlDType dt = tl_dtype_from_name(nm);
        if (dt) return tl_type_tensor(S->arena, dt, 0, NULL);
        /* a model name, maybe qualified: nn.LSTMCell */
        const char *dot = strchr(nm, '.');
        Sym *s = NULL;
        if (dot) {
            char mod[256];
            size_t len = (size_t)(dot - nm) < sizeof mod - 1 ? (size_t)(dot - nm) : sizeof mod - 1;
            memcpy(mod, nm, len);
            mod[len] = 0;
            Sym *m = sema_lookup(S, mod);
            if (m && m->kind == SYM_IMPORT && m->type && m->type->index < S->nmods) {
                m->used = 1;
                s = sema_lookup_in(S->mods[m->type->index]->scope, dot + 1);
            }
        } else {
            s = sema_lookup(S, nm);
        }
        if (!s || s->kind != SYM_MODEL) {
            if (s) tl_error(t->loc, "'%s' is not a type", nm);
            else sema_undefined(S, t->loc, "type", nm, S->scope);
            return tl_type_error();
        }
        s->used = 1;
        sema_ensure_model(S, s->decl);
        TlType *it = tl_type_new(S->arena, TL_T_INSTANCE);
        it->decl = s->decl;
        it->env = tl_arena_alloc(S->arena, sizeof *it->env);
        return it;
    }
    default:
        tl_error(t->loc, "expected a type");
        return tl_type_error();
    }
}

/* ---- comparing types ---- */

static int shapes_match(const TlType *w, const TlType *g) {
    int we = -1, ge = -1;
    for (int i = 0; i < w->rank; i++) if (w->dims[i]->kind == TL_DIM_ELLIPSIS) we = i;
    for (int i = 0; i < g->rank; i++) if (g->dims[i]->kind == TL_DIM_ELLIPSIS) ge = i;
    if (we < 0 && ge < 0) {
        if (w->rank != g->rank) return 0;
        for (int i = 0; i < w->rank; i++)
            if (tl_dim_cmp(w->dims[i], g->dims[i]) == TL_DIM_NE) return 0;
        return 1;
    }
    if ((we < 0) != (ge < 0)) return 0; /* `...` against explicit dims */
    if (we != ge || w->rank != g->rank) return 0;
    for (int i = 0; i < w->rank; i++)
        if (tl_dim_cmp(w->dims[i], g->dims[i]) == TL_DIM_NE) return 0;
    return 1;
}

int sema_types_match(Sema *S, const TlType *w, const TlType *g) {
    if (tl_type_is_error(w) || tl_type_is_error(g)) return 1;
    if (w->kind == TL_T_HOST || g->kind == TL_T_HOST) return 1;
    switch (w->kind) {
    case TL_T_TENSOR:
        if (g->kind == TL_T_INT || g->kind == TL_T_FLOAT || g->kind == TL_T_BOOL)
            return w->rank == 0 || (w->rank == 1 && w->dims[0]->kind == TL_DIM_ELLIPSIS);
        if (g->kind != TL_T_TENSOR) return 0;
        return w->dtype == g->dtype && shapes_match(w, g);
    case TL_T_FLOAT: return g->kind == TL_T_FLOAT || g->kind == TL_T_INT ||
                            (g->kind == TL_T_TENSOR && g->rank == 0 && tl_dtype_is_float(g->dtype));
    case TL_T_INT: return g->kind == TL_T_INT;
    case TL_T_BOOL: return g->kind == TL_T_BOOL;
    case TL_T_STR: return g->kind == TL_T_STR;
    case TL_T_TUPLE:
        if (g->kind != TL_T_TUPLE || g->n != w->n) return 0;
        for (int i = 0; i < w->n; i++)
            if (!sema_types_match(S, w->elems[i], g->elems[i])) return 0;
        return 1;
    case TL_T_LIST: return g->kind == TL_T_LIST;
    case TL_T_INSTANCE: return g->kind == TL_T_INSTANCE && g->decl == w->decl;
    default: return w->kind == g->kind;
    }
}

void sema_type_note(Sema *S, const TlType *t) {
    if (!t || t->kind != TL_T_TENSOR || !t->origin.file || !t->origin_name) return;
    char buf[512];
    tl_type_format(buf, sizeof buf, t);
    (void)S;
    if (t->origin_kind == 1) tl_note(t->origin, "%s is the type of '%s', declared here", buf, t->origin_name);
    else if (t->origin_kind == 2) tl_note(t->origin, "%s is the type of '%s', assigned here", buf, t->origin_name);
}

const TlType *sema_type_subst(Sema *S, const TlType *t, const TlDimEnv *env) {
    if (!t || !env) return t;
    switch (t->kind) {
    case TL_T_TENSOR: {
        const TlDim **dims;
        int n = tl_shape_subst(S->arena, t->dims, t->rank, env, &dims);
        TlType *r = tl_type_tensor(S->arena, t->dtype, n, dims);
        r->origin = t->origin;
        r->origin_name = t->origin_name;
        r->origin_kind = t->origin_kind;
        return r;
    }
    case TL_T_INT:
        if (!t->val) return t;
        return tl_type_int(S->arena, tl_dim_subst(S->arena, t->val, env));
    case TL_T_TUPLE: case TL_T_LIST: {
        TlType *r = tl_type_copy(S->arena, t);
        r->elems = tl_arena_alloc(S->arena, sizeof *r->elems * (size_t)(t->n + 1));
        for (int i = 0; i < t->n; i++) r->elems[i] = sema_type_subst(S, t->elems[i], env);
        if (t->kind == TL_T_LIST && t->val) r->val = tl_dim_subst(S->arena, t->val, env);
        return r;
    }
    case TL_T_INSTANCE: {
        TlType *r = tl_type_copy(S->arena, t);
        r->env = tl_arena_alloc(S->arena, sizeof *r->env);
        if (t->env) {
            for (int i = 0; i < t->env->n; i++)
                tl_dim_env_bind(S->arena, r->env, t->env->names[i],
                                tl_dim_subst(S->arena, t->env->dims[i], env));
        }
        r->hvals = tl_arena_alloc(S->arena, sizeof *r->hvals * (size_t)(t->nh + 1));
        for (int i = 0; i < t->nh; i++) r->hvals[i] = sema_type_subst(S, t->hvals[i], env);
        return r;
    }
    default: return t;
    }
}

/* ---- declarations ---- */

int sema_is_const_value(const TlType *t) {
    if (tl_type_is_error(t)) return 1;
    switch (t->kind) {
    case TL_T_INT: return t->val != NULL && t->val->kind == TL_DIM_POLY;
    case TL_T_FLOAT: case TL_T_BOOL: return 1;
    case TL_T_STR: return 1;
    case TL_T_TUPLE:
        for (int i = 0; i < t->n; i++)
            if (!sema_is_const_value(t->elems[i])) return 0;
        return 1;
    default: return 0;
    }
}

static const TlType *eval_const(Sema *S, Sym *sym) {
    TlNode *d = sym->decl;
    DeclInfo *info = sema_info(S, d);
    if (info->state == 2) return info->type;
    if (info->state == 1) {
        tl_error(d->loc, "the value of '%s' depends on itself", sym->name);
        info->type = tl_type_error();
        return info->type;
    }
    info->state = 1;
    Saved sv = sema_enter(S, info, info->outer);
    const TlType *t = tl_type_error();
    if (d->kind == TL_N_DIM) {
        if (d->a) {
            t = sema_expr(S, d->a);
            if (!tl_type_is_error(t) && (t->kind != TL_T_INT || !t->val)) {
                char b[256];
                tl_type_format(b, sizeof b, t);
                tl_error(d->a->loc, "the size of dimension '%s' must be a compile-time integer, not %s",
                         d->name, b);
                t = tl_type_error();
            }
        } else {
            t = tl_type_int(S->arena, tl_dim_sym(S->arena, d->name));
        }
    } else if (d->b) {
        t = sema_expr(S, d->b);
        if (!sema_is_const_value(t)) {
            char b[256];
            tl_type_format(b, sizeof b, t);
            tl_error(d->b->loc, "the value of const '%s' must be known at compile time; it is %s",
                     d->name, b);
            t = tl_type_error();
        } else if (d->a) {
            const TlType *want = sema_resolve_type(S, d->a, 0);
            if (!sema_types_match(S, want, t)) {
                char w[256], g[256];
                tl_type_format(w, sizeof w, want);
                tl_type_format(g, sizeof g, t);
                tl_error(d->b->loc, "const '%s' is declared as %s but its value is %s", d->name, w, g);
            } else if (want->kind == TL_T_FLOAT && t->kind == TL_T_INT) {
                int64_t v = 0;
                tl_dim_is_const(t->val, &v);
                t = tl_type_float(S->arena, 1, (double)v);
            }
        }
    }
    sema_leave(S, sv);
    info->type = t;
    info->state = 2;
    d->type = (struct TlType *)t;
    return t;
}

const TlType *sema_sym_type(Sema *S, Sym *sym, TlLoc use) {
    (void)use;
    if (!sym) return tl_type_error();
    if (S->depth > 200) return tl_type_error();
    S->depth++;
    const TlType *t = sym->type;
    switch (sym->kind) {
    case SYM_CONST: case SYM_DIM:
        if (sym->decl && (sym->decl->kind == TL_N_CONST || sym->decl->kind == TL_N_DIM))
            t = eval_const(S, sym);
        break;
    case SYM_FN:
        if (!t) {
            TlType *f = tl_type_new(S->arena, TL_T_FN);
            f->decl = sym->decl;
            sym->type = t = f;
        }
        break;
    default: break;
    }
    S->depth--;
    return t ? t : tl_type_error();
}

/* Declares the items of a module (pass 1). Imports are loaded here. */
static int load_module(Sema *S, const char *path, const char *name, TlLoc at, int stdlib);

static const char *import_alias(Sema *S, TlNode *it) {
    if (it->alias) return it->alias;
    const char *p = it->name ? it->name : it->str;
    if (!p) return NULL;
    const char *last = strrchr(p, it->name ? '.' : '/');
    last = last ? last + 1 : p;
    size_t n = strlen(last);
    if (!it->name && n > 3 && strcmp(last + n - 3, ".tl") == 0) n -= 3;
    return tl_arena_strndup(S->arena, last, n);
}

static void declare_import(Sema *S, TlNode *it) {
    char path[8192];
    const char *shown;
    if (it->name) {
        char rel[4096];
        snprintf(rel, sizeof rel, "%s", it->name);
        for (char *c = rel; *c; c++) if (*c == '.') *c = '/';
        if (snprintf(path, sizeof path, "%s/%s.tl", S->stdlib_dir, rel) >= (int)sizeof path) return;
        shown = it->name;
    } else if (it->str) {
        const char *importer = tl_source_path(it->loc.file);
        const char *slash = strrchr(importer, '/');
        if (it->str[0] == '/' || !slash)
            snprintf(path, sizeof path, "%s", it->str);
        else
            snprintf(path, sizeof path, "%.*s/%s", (int)(slash - importer), importer, it->str);
        shown = path;
    } else {
        return;
    }
    int idx = load_module(S, path, it->name ? it->name : path, it->loc, it->name != NULL);
    (void)shown;
    const char *alias = import_alias(S, it);
    if (!alias) return;
    TlType *mt = tl_type_new(S->arena, TL_T_MODULE);
    mt->index = idx < 0 ? S->nmods : idx;
    mt->what = it->name ? it->name : it->str;
    int cycle = idx >= 0 && S->mods[idx]->state == 1;
    Sym *s = sema_declare(S, S->scope, alias, SYM_IMPORT, it, it->loc, idx < 0 ? tl_type_error() : mt);
    if (s) s->used = idx < 0 || cycle; /* already reported */
}

static void declare_items(Sema *S, TlNode *root) {
    if (!root) return;
    for (int i = 0; i < root->list.n; i++) {
        TlNode *it = root->list.v[i];
        if (!it) continue;
        SymKind k;
        switch (it->kind) {
        case TL_N_IMPORT: declare_import(S, it); continue;
        case TL_N_CONST: k = SYM_CONST; break;
        case TL_N_DIM: k = SYM_DIM; break;
        case TL_N_FN: k = SYM_FN; break;
        case TL_N_MODEL: k = SYM_MODEL; break;
        case TL_N_KERNEL: k = SYM_KERNEL; break;
        case TL_N_TOKENIZER: k = SYM_TOKENIZER; break;
        case TL_N_TRAIN: k = SYM_TRAIN; break;
        default: continue;
        }
        sema_info(S, it);
        const TlType *t = NULL;
        if (k == SYM_MODEL) {
            TlType *m = tl_type_new(S->arena, TL_T_MODEL);
            m->decl = it;
            t = m;
        } else if (k == SYM_KERNEL) {
            TlType *m = tl_type_new(S->arena, TL_T_KERNEL);
            m->decl = it;
            t = m;
        } else if (k == SYM_TOKENIZER) {
            TlType *m = tl_type_new(S->arena, TL_T_TOKENIZER);
            m->decl = it;
            t = m;
        } else if (k == SYM_TRAIN) {
            t = tl_type_host(S->arena, "train block");
        }
        sema_declare(S, S->scope, it->name, k, it, it->loc, t);
    }
}

static void module_name_list(Sema *S, char *buf, size_t cap, int from, int again) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = from; i < S->nstack; i++) {
        len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s -> ",
                                S->mods[S->stack[i]]->pub.name);
        if (len >= cap) return;
    }
    snprintf(buf + len, len < cap ? cap - len : 0, "%s", S->mods[again]->pub.name);
}

static int load_module(Sema *S, const char *path, const char *name, TlLoc at, int stdlib) {
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        if (at.file && stdlib) tl_error(at, "cannot find module '%s' in the standard library", name);
        else if (at.file) tl_error(at, "cannot find module '%s' (no file %s)", name, path);
        else tl_error(at, "cannot open %s", path);
        return -1;
    }
    for (int i = 0; i < S->nmods; i++) {
        if (strcmp(S->mods[i]->pub.path, real) != 0) continue;
        if (S->mods[i]->state == 1) {
            int from = 0;
            for (int k = 0; k < S->nstack; k++) if (S->stack[k] == i) from = k;
            char chain[2048];
            module_name_list(S, chain, sizeof chain, from, i);
            tl_error(at, "import cycle: %s", chain);
        }
        return i;
    }
    if (S->nstack >= 64) {
        tl_error(at, "imports nested too deeply");
        return -1;
    }
    char err[512];
    int file = tl_source_load(path, err, sizeof err);
    if (!file) {
        tl_error(at, "%s", err);
        return -1;
    }
    Module *m = tl_arena_alloc(S->arena, sizeof *m);
    m->pub.name = tl_arena_strdup(S->arena, name);
    m->pub.path = tl_arena_strdup(S->arena, real);
    m->pub.ast = tl_parse(file);
    m->index = S->nmods;
    S->mods = tl_arena_grow(S->arena, S->mods, &S->capmods, S->nmods + 1, sizeof *S->mods);
    S->mods[S->nmods++] = m;
    m->state = 1;
    int save_cur = S->cur;
    Scope *save_scope = S->scope;
    S->cur = m->index;
    S->scope = NULL;
    m->scope = sema_push(S, SC_MODULE);
    S->stack[S->nstack++] = m->index;
    declare_items(S, m->pub.ast ? m->pub.ast->root : NULL);
    S->nstack--;
    m->state = 2;
    S->cur = save_cur;
    S->scope = save_scope;
    return m->index;
}

/* ---- statements ---- */

void sema_check_block(Sema *S, TlNode *block, ScopeKind kind) {
    if (!block) return;
    if (S->depth > 200) {
        tl_error(block->loc, "code nested too deeply");
        return;
    }
    S->depth++;
    sema_push(S, kind);
    if (block->kind == TL_N_BLOCK) {
        for (int i = 0; i < block->list.n; i++) sema_check_stmt(S, block->list.v[i]);
    } else {
        sema_check_stmt(S, block);
    }
    sema_pop(S);
    S->depth--;
}

/* A name assigned in a function: rebinds a local of the same function, else declares one. */
void sema_bind_var(Sema *S, TlNode *target, const TlType *t, int origin_kind) {
    if (!target) return;
    if (target->kind != TL_N_IDENT) {
        if (S->fn && S->fn->host) {
            sema_expr(S, target);
            return;
        }
        tl_error(target->loc, "only names can be assigned in tensor code (values are immutable)");
        return;
    }
    if (!target->name || strcmp(target->name, "_") == 0) return;
    t = tl_type_with_origin(S->arena, t, target->loc, target->name, origin_kind);
    target->type = (struct TlType *)t;
    for (Scope *sc = S->scope; sc; sc = sc->parent) {
        Sym *s = sema_lookup_in(sc, target->name);
        if (s && (s->kind == SYM_VAR || s->kind == SYM_PARAM || s->kind == SYM_LOOPVAR)) {
            s->type = t;
            target->sema = s;
            return;
        }
        if (s) break;
        if (sc->kind == SC_FN || sc->kind == SC_KERNEL || sc->kind == SC_TRAIN ||
            sc->kind == SC_MODEL || sc->kind == SC_MODULE)
            break;
    }
    Sym *s = sema_declare(S, S->scope, target->name, SYM_VAR, target, target->loc, t);
    if (s) {
        s->warn = 1;
        target->sema = s;
    }
}

static void check_assign(Sema *S, TlNode *st) {
    const TlType *t;
    if (st->op != TL_OP_NONE && st->list.n == 1) {
        /* x += y is x = x + y */
        TlNode tmp = *st;
        tmp.kind = TL_N_BINARY;
        tmp.a = st->list.v[0];
        tmp.b = st->a;
        t = sema_expr(S, &tmp);
    } else {
        t = sema_expr(S, st->a);
    }
    int origin = 2;
    if (st->b) {
        const TlType *want = sema_resolve_type(S, st->b, 0);
        if (!sema_types_match(S, want, t)) {
            char w[256], g[256];
            tl_type_format(w, sizeof w, want);
            tl_type_format(g, sizeof g, t);
            tl_error(st->a ? st->a->loc : st->loc, "value of type %s does not match the declared type %s", g, w);
            sema_type_note(S, t);
        }
        t = want;
        origin = 1;
    }
    if (st->list.n == 1) {
        sema_bind_var(S, st->list.v[0], t, origin);
        return;
    }
    if (tl_type_is_error(t) || t->kind == TL_T_HOST) {
        for (int i = 0; i < st->list.n; i++) sema_bind_var(S, st->list.v[i], t, origin);
        return;
    }
    if (t->kind != TL_T_TUPLE || t->n != st->list.n) {
        char g[256];
        tl_type_format(g, sizeof g, t);
        tl_error(st->loc, "cannot unpack %s into %d names", g, st->list.n);
        for (int i = 0; i < st->list.n; i++) sema_bind_var(S, st->list.v[i], tl_type_error(), origin);
        return;
    }
    for (int i = 0; i < st->list.n; i++) sema_bind_var(S, st->list.v[i], t->elems[i], origin);
}

static void check_return(Sema *S, TlNode *st) {
    FnCtx *f = S->fn;
    if (!f) {
        tl_error(st->loc, "'return' outside of a function");
        return;
    }
    if (f->in_scan) {
        tl_error(st->loc, "'return' inside a scan body; use 'yield'");
        return;
    }
    const TlType *t = st->a ? sema_expr(S, st->a) : tl_type_void();
    f->returned = 1;
    if (!f->ret) return;
    if (!st->a) {
        tl_error(st->loc, "missing return value");
        return;
    }
    if (!sema_types_match(S, f->ret, t)) {
        char w[256], g[256];
        tl_type_format(w, sizeof w, f->ret);
        tl_type_format(g, sizeof g, t);
        const char *nm = f->decl && f->decl->name ? f->decl->name : "function";
        tl_error(st->a->loc, "'%s' returns %s but is declared to return %s", nm, g, w);
        sema_type_note(S, t);
        if (f->decl && f->decl->a) tl_note(f->decl->a->loc, "return type declared here");
    }
}

static void declare_loop_vars(Sema *S, TlNode *st, const TlType *it) {
    int n = st->list.n;
    const TlType *elem = tl_type_error();
    if (!tl_type_is_error(it)) {
        switch (it->kind) {
        case TL_T_RANGE: elem = tl_type_int(S->arena, NULL); break;
        case TL_T_LIST: elem = it->elems[0]; break;
        case TL_T_TUPLE: elem = it->n ? it->elems[0] : tl_type_error(); break;
        case TL_T_HOST: elem = tl_type_host(S->arena, "host value"); break;
        case TL_T_INT: elem = tl_type_int(S->arena, NULL); break;
        case TL_T_TENSOR:
            if (it->rank >= 1) {
                elem = tl_type_tensor(S->arena, it->dtype, it->rank - 1, it->dims + 1);
                break;
            }
            /* fallthrough */
        default: {
            char b[256];
            tl_type_format(b, sizeof b, it);
            tl_error(st->a->loc, "cannot iterate over %s", b);
        }
        }
    }
    for (int i = 0; i < n; i++) {
        TlNode *v = st->list.v[i];
        if (!v) continue;
        const TlType *vt = elem;
        if (n > 1) {
            if (elem->kind == TL_T_TUPLE && elem->n == n) vt = elem->elems[i];
            else if (!tl_type_is_error(elem) && elem->kind != TL_T_HOST) {
                if (i == 0) {
                    char b[256];
                    tl_type_format(b, sizeof b, elem);
                    tl_error(v->loc, "cannot unpack %s into %d loop variables", b, n);
                }
                vt = tl_type_error();
            }
        }
        v->type = (struct TlType *)vt;
        Sym *s = sema_declare(S, S->scope, v->name, SYM_LOOPVAR, v, v->loc, vt);
        if (s) s->warn = 1;
    }
}

static void check_if(Sema *S, TlNode *st) {
    const TlType *c = sema_expr(S, st->a);
    int host = S->fn && S->fn->host;
    if (!tl_type_is_error(c) && c->kind != TL_T_HOST) {
        char b[256];
        tl_type_format(b, sizeof b, c);
        if (!host && c->kind != TL_T_BOOL) {
            if (c->kind == TL_T_TENSOR) {
                tl_error(st->a->loc,
                         "condition of 'if' in tensor code must be known at compile time, but it is a "
                         "tensor (%s)", b);
                tl_note(st->a->loc, "use where(cond, a, b) to choose elementwise at run time");
            } else {
                tl_error(st->a->loc, "condition of 'if' must be a bool, not %s", b);
            }
        } else if (host && c->kind != TL_T_BOOL &&
                   !(c->kind == TL_T_TENSOR && c->rank == 0 && c->dtype == TL_BOOL)) {
            tl_error(st->a->loc, "condition of 'if' must be a bool, not %s", b);
        }
    }
    int returned = S->fn ? S->fn->returned : 0;
    sema_check_block(S, st->b, SC_BLOCK);
    int then_ret = S->fn ? S->fn->returned : 0;
    if (S->fn) S->fn->returned = returned;
    if (st->c) {
        if (st->c->kind == TL_N_IF) {
            sema_push(S, SC_BLOCK);
            check_if(S, st->c);
            sema_pop(S);
        } else {
            sema_check_block(S, st->c, SC_BLOCK);
        }
    }
    int else_ret = S->fn ? S->fn->returned : 0;
    /* a return in one branch counts: the other path may return after the if */
    if (S->fn) S->fn->returned = returned || then_ret || else_ret;
}

void sema_check_stmt(Sema *S, TlNode *st) {
    if (!st) return;
    int host = S->fn && S->fn->host;
    switch (st->kind) {
    case TL_N_ASSIGN: check_assign(S, st); break;
    case TL_N_EXPR_STMT: sema_expr(S, st->a); break;
    case TL_N_RETURN: check_return(S, st); break;
    case TL_N_YIELD: {
        const TlType *t = sema_expr(S, st->a);
        if (!S->fn || !S->fn->in_scan) {
            tl_error(st->loc, "'yield' outside of a scan body");
            break;
        }
        FnCtx *f = S->fn;
        f->yields = tl_arena_grow(S->arena, f->yields, &f->capyields, f->nyields + 1, sizeof *f->yields);
        f->yields[f->nyields++] = t;
        f->yield_loc = st->loc;
        break;
    }
    case TL_N_FOR: {
        const TlType *it = sema_expr(S, st->a);
        sema_push(S, SC_LOOP);
        declare_loop_vars(S, st, it);
        if (S->fn) S->fn->loop_depth++;
        sema_check_block(S, st->b, SC_BLOCK);
        if (S->fn) S->fn->loop_depth--;
        sema_pop(S);
        break;
    }
    case TL_N_IF: check_if(S, st); break;
    case TL_N_WHILE:
        if (!host)
            tl_error(st->loc, "'while' is only allowed in host code (host fn, train); tensor code "
                              "loops over time with scan");
        sema_expr(S, st->a);
        if (S->fn) S->fn->loop_depth++;
        sema_check_block(S, st->b, SC_BLOCK);
        if (S->fn) S->fn->loop_depth--;
        break;
    case TL_N_BREAK: case TL_N_CONTINUE: {
        const char *kw = st->kind == TL_N_BREAK ? "break" : "continue";
        if (!S->fn || S->fn->loop_depth == 0) tl_error(st->loc, "'%s' outside of a loop", kw);
        else if (!host)
            tl_error(st->loc, "'%s' is only allowed in host code: tensor code loops are unrolled at "
                              "compile time", kw);
        break;
    }
    case TL_N_BLOCK: sema_check_block(S, st, SC_BLOCK); break;
    case TL_N_FN: {
        /* a function nested in a train block or host fn */
        DeclInfo *fi = sema_info(S, st);
        fi->outer = S->scope;
        fi->module = S->cur;
        Sym *s = sema_declare(S, S->scope, st->name, SYM_FN, st, st->loc, NULL);
        (void)s;
        sema_check_fn_body(S, st);
        break;
    }
    default:
        if (st->kind >= TL_N_INT) sema_expr(S, st);
        else tl_error(st->loc, "unexpected %s here", tl_node_kind_name(st->kind));
        break;
    }
}

/* ---- modules ---- */

static void check_module(Sema *S, Module *m) {
    if (m->state != 2 || !m->pub.ast || !m->pub.ast->root) return;
    m->state = 3;
    int save_cur = S->cur;
    Scope *save_scope = S->scope;
    S->cur = m->index;
    S->scope = m->scope;
    TlNode *root = m->pub.ast->root;
    for (int i = 0; i < root->list.n; i++) {
        TlNode *it = root->list.v[i];
        if (!it) continue;
        switch (it->kind) {
        case TL_N_CONST: case TL_N_DIM: {
            Sym *s = sema_lookup_in(m->scope, it->name);
            if (s && s->decl == it) sema_sym_type(S, s, it->loc);
            break;
        }
        case TL_N_FN: sema_check_fn_body(S, it); break;
        case TL_N_MODEL: sema_check_model(S, it); break;
        case TL_N_KERNEL: sema_check_kernel(S, it); break;
        case TL_N_SCHEDULE: sema_check_schedule(S, it); break;
        case TL_N_TOKENIZER: sema_check_tokenizer(S, it, sema_lookup_in(m->scope, it->name)); break;
        case TL_N_TRAIN: sema_check_train(S, it); break;
        case TL_N_IMPORT: break;
        default:
            tl_error(it->loc, "unexpected %s at the top level", tl_node_kind_name(it->kind));
            break;
        }
    }
    /* unused imports */
    if (S->opt.warn_unused) {
        Sym *list[256];
        int n = 0;
        for (Sym *s = m->scope->syms; s && n < 256; s = s->next)
            if (s->kind == SYM_IMPORT && !s->used && s->name[0] != '_') list[n++] = s;
        for (int i = n - 1; i >= 0; i--) tl_warning(list[i]->loc, "unused import '%s'", list[i]->name);
    }
    S->cur = save_cur;
    S->scope = save_scope;
}

static void find_stdlib(Sema *S) {
    const char *d = S->opt.stdlib_dir;
    if (!d || !*d) d = getenv("TL_STDLIB");
    if (d && *d) {
        snprintf(S->stdlib_dir, sizeof S->stdlib_dir, "%s", d);
        return;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(S->stdlib_dir, sizeof S->stdlib_dir, "stdlib");
        return;
    }
    exe[n] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
    }
    if (snprintf(S->stdlib_dir, sizeof S->stdlib_dir, "%s/stdlib", exe) >= (int)sizeof S->stdlib_dir)
        snprintf(S->stdlib_dir, sizeof S->stdlib_dir, "stdlib");
}

static Sema *sema_new(const TlSemaOptions *opt) {
    Sema *S = calloc(1, sizeof *S);
    if (!S) abort();
    S->arena = tl_arena_new();
    if (opt) S->opt = *opt;
    else S->opt.warn_unused = 1;
    S->prog = tl_arena_alloc(S->arena, sizeof *S->prog);
    S->prog->priv = S;
    find_stdlib(S);
    /* so that --emit=ast shows the inferred types */
    tl_ast_set_type_printer(tl_type_print);
    return S;
}

static TlProgram *finish(Sema *S) {
    for (int i = 0; i < S->nmods; i++) check_module(S, S->mods[i]);
    S->prog->nmodules = S->nmods;
    S->prog->modules = tl_arena_alloc(S->arena, sizeof *S->prog->modules * (size_t)(S->nmods + 1));
    for (int i = 0; i < S->nmods; i++) S->prog->modules[i] = &S->mods[i]->pub;
    return S->prog;
}

TlProgram *tl_sema_check_file(const char *path, const TlSemaOptions *opt) {
    Sema *S = sema_new(opt);
    TlLoc none = {0};
    load_module(S, path, path, none, 0);
    return finish(S);
}

TlProgram *tl_sema_check_text(const char *name, const char *text, size_t len,
                              const TlSemaOptions *opt) {
    Sema *S = sema_new(opt);
    int file = tl_source_add(name, text, len);
    Module *m = tl_arena_alloc(S->arena, sizeof *m);
    m->pub.name = tl_arena_strdup(S->arena, name);
    m->pub.path = tl_arena_strdup(S->arena, name);
    m->pub.ast = tl_parse(file);
    S->mods = tl_arena_grow(S->arena, S->mods, &S->capmods, 1, sizeof *S->mods);
    S->mods[S->nmods++] = m;
    m->state = 1;
    S->cur = 0;
    m->scope = sema_push(S, SC_MODULE);
    S->stack[S->nstack++] = 0;
    declare_items(S, m->pub.ast ? m->pub.ast->root : NULL);
    S->nstack--;
    m->state = 2;
    S->scope = NULL;
    return finish(S);
}

void tl_program_free(TlProgram *prog) {
    if (!prog) return;
    Sema *S = prog->priv;
    for (int i = 0; i < S->nmods; i++)
        if (S->mods[i]->pub.ast) tl_ast_free(S->mods[i]->pub.ast);
    tl_arena_free(S->arena);
    free(S);
}
