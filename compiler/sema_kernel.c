/* sema_kernel.c — kernels in index notation, schedules, tokenizers, train blocks and scan.
 *
 * Kernel statements `out[i, j] = rhs`: the left indices are distinct; every index gets its
 * range from the axes it indexes on the right, and those must agree; an index used on the
 * right but not on the left must be bound by an enclosing reduction `sum(j)`, which must
 * not rebind an output index. */
#include <string.h>
#include "diag.h"
#include "sema_internal.h"

#define FMT(buf, t) char buf[512]; tl_type_format(buf, sizeof buf, (t))
#define MAXIDX 64

struct KernelCtx {
    TlNode *stmt;
    int n;
    const char *names[MAXIDX];
    int kind[MAXIDX];            /* 0 output, 1 reduction */
    int active[MAXIDX];
    const TlDim *range[MAXIDX];  /* NULL until used to index a tensor */
    const TlType *range_of[MAXIDX];
    int range_axis[MAXIDX];
    TlLoc range_at[MAXIDX];
};

static int kfind(KernelCtx *k, const char *name) {
    for (int i = k->n - 1; i >= 0; i--)
        if (k->names[i] && name && strcmp(k->names[i], name) == 0) return i;
    return -1;
}

static int kfind_active(KernelCtx *k, const char *name) {
    for (int i = k->n - 1; i >= 0; i--)
        if (k->active[i] && strcmp(k->names[i], name) == 0) return i;
    return -1;
}

static void unbound(Sema *S, TlNode *at, const char *name) {
    KernelCtx *k = S->k;
    const char *target = k->stmt && k->stmt->name ? k->stmt->name : "the result";
    tl_error(at->loc, "index '%s' is not bound: it is not an index of '%s' and no reduction such as "
                      "'sum(%s)' binds it", name, target, name);
}

int sema_kernel_ident(Sema *S, TlNode *e, const TlType **out) {
    KernelCtx *k = S->k;
    if (!k || !e->name) return 0;
    int i = kfind_active(k, e->name);
    if (i >= 0) {
        *out = tl_type_tensor(S->arena, TL_I32, 0, NULL);
        return 1;
    }
    if (kfind(k, e->name) >= 0) {
        unbound(S, e, e->name);
        *out = tl_type_error();
        return 1;
    }
    return 0;
}

const TlType *sema_kernel_access(Sema *S, TlNode *e, const TlType *x) {
    KernelCtx *k = S->k;
    int n = e->list.n;
    if (n != x->rank) {
        FMT(t, x);
        const char *nm = e->a && e->a->kind == TL_N_IDENT ? e->a->name : "the tensor";
        tl_error(e->loc, "'%s' has rank %d (%s) but is indexed with %d ind%s", nm, x->rank, t, n,
                 n == 1 ? "ex" : "ices");
        return tl_type_error();
    }
    int ok = 1;
    for (int a = 0; a < n; a++) {
        TlNode *it = e->list.v[a];
        if (!it) continue;
        if (it->kind != TL_N_IDENT || !it->name) {
            const TlType *t = sema_expr(S, it);
            if (!tl_type_is_error(t) && t->kind != TL_T_INT &&
                !(t->kind == TL_T_TENSOR && t->rank == 0 && tl_dtype_is_int(t->dtype))) {
                FMT(b, t);
                tl_error(it->loc, "a kernel index must be an index name or an integer, not %s", b);
                ok = 0;
            }
            continue;
        }
        int i = kfind_active(k, it->name);
        if (i < 0) {
            Sym *s = sema_lookup(S, it->name);
            if (s && kfind(k, it->name) < 0) { /* an int constant or parameter */
                sema_expr(S, it);
                continue;
            }
            unbound(S, it, it->name);
            ok = 0;
            continue;
        }
        it->type = (struct TlType *)tl_type_tensor(S->arena, TL_I32, 0, NULL);
        const TlDim *d = x->dims[a];
        if (!k->range[i]) {
            k->range[i] = d;
            k->range_of[i] = x;
            k->range_axis[i] = a;
            k->range_at[i] = it->loc;
        } else if (tl_dim_cmp(k->range[i], d) == TL_DIM_NE) {
            char r0[128], r1[128];
            tl_dim_format(r0, sizeof r0, k->range[i]);
            tl_dim_format(r1, sizeof r1, d);
            FMT(t0, k->range_of[i]);
            FMT(t1, x);
            tl_error(it->loc, "index '%s' has conflicting ranges: %s (axis %d of %s) and %s (axis %d of %s)",
                     it->name, r0, k->range_axis[i] + 1, t0, r1, a + 1, t1);
            tl_note(k->range_at[i], "'%s' first ranges over %s here", it->name, r0);
            ok = 0;
        }
    }
    if (!ok) return tl_type_error();
    return tl_type_tensor(S->arena, x->dtype, 0, NULL);
}

const TlType *sema_kernel_reduce(Sema *S, TlNode *e) {
    KernelCtx *k = S->k;
    int first = k->n;
    for (int i = 0; i < e->list.n; i++) {
        TlNode *id = e->list.v[i];
        if (!id || !id->name) continue;
        int j = kfind_active(k, id->name);
        if (j >= 0) {
            if (k->kind[j] == 0)
                tl_error(id->loc, "reduction index '%s' is also an output index of '%s'", id->name,
                         k->stmt && k->stmt->name ? k->stmt->name : "the result");
            else
                tl_error(id->loc, "index '%s' is already bound by an enclosing reduction", id->name);
            continue;
        }
        if (k->n >= MAXIDX) {
            tl_error(id->loc, "too many indices");
            break;
        }
        int m = k->n++;
        k->names[m] = id->name;
        k->kind[m] = 1;
        k->active[m] = 1;
        k->range[m] = NULL;
    }
    const TlType *t = sema_expr(S, e->a);
    for (int i = first; i < k->n; i++) {
        k->active[i] = 0;
        if (!k->range[i] && !tl_type_is_error(t)) {
            tl_error(e->loc, "cannot infer the range of reduction index '%s': it does not index any tensor "
                             "in the reduction's body", k->names[i]);
        }
    }
    /* retire these names: later uses are unbound, not stale */
    if (tl_type_is_error(t)) return t;
    if (t->kind == TL_T_TENSOR) return tl_type_tensor(S->arena, t->dtype, 0, NULL);
    return t;
}

void sema_check_kernel(Sema *S, TlNode *kn) {
    sema_ensure_fn(S, kn);
    DeclInfo *info = sema_info(S, kn);
    if (info->body_checked) return;
    info->body_checked = 1;
    int save_cur = S->cur;
    Scope *save_scope = S->scope;
    FnCtx *save_fn = S->fn;
    S->cur = info->module;
    S->scope = info->scope;
    FnCtx ctx = {0};
    ctx.decl = kn;
    S->fn = &ctx;
    sema_push(S, SC_BLOCK);
    const TlType *last = NULL;
    TlNode *body = kn->b;
    int nst = body ? body->list.n : 0;
    for (int s = 0; s < nst; s++) {
        TlNode *st = body->list.v[s];
        if (!st) continue;
        if (st->kind != TL_N_KSTMT) {
            tl_error(st->loc, "a kernel body holds only index statements like 'out[i, j] = ...'");
            continue;
        }
        KernelCtx *k = tl_arena_alloc(S->arena, sizeof *k);
        k->stmt = st;
        for (int i = 0; i < st->list.n && k->n < MAXIDX; i++) {
            TlNode *id = st->list.v[i];
            if (!id || !id->name) continue;
            if (kfind(k, id->name) >= 0) {
                tl_error(id->loc, "index '%s' appears twice on the left of '%s'", id->name, st->name);
                continue;
            }
            int m = k->n++;
            k->names[m] = id->name;
            k->active[m] = 1;
        }
        int nout = k->n;
        S->k = k;
        const TlType *t = sema_expr(S, st->a);
        S->k = NULL;
        int is_last = s == nst - 1;
        const TlDim **dims = tl_arena_alloc(S->arena, sizeof *dims * (size_t)(nout + 1));
        int ok = !tl_type_is_error(t);
        for (int i = 0; i < nout; i++) {
            dims[i] = k->range[i];
            if (dims[i]) continue;
            if (is_last && info->type && info->type->kind == TL_T_TENSOR && info->type->rank == nout) {
                dims[i] = info->type->dims[i];
                continue;
            }
            if (ok)
                tl_error(st->list.v[i]->loc, "cannot infer the range of index '%s' of '%s': it does not "
                                             "index any tensor on the right", k->names[i], st->name);
            dims[i] = tl_dim_any();
            ok = 0;
        }
        TlDType dt = t && t->kind == TL_T_TENSOR ? t->dtype : TL_F32;
        const TlType *tt = ok || !tl_type_is_error(t) ? tl_type_tensor(S->arena, dt, nout, dims) : tl_type_error();
        tt = tl_type_with_origin(S->arena, tt, st->loc, st->name, 2);
        st->type = (struct TlType *)tt;
        Sym *sym = sema_declare(S, S->scope, st->name, SYM_VAR, st, st->loc, tt);
        if (sym) sym->warn = !is_last;
        last = tt;
    }
    if (last && info->type && !sema_types_match(S, info->type, last)) {
        FMT(w, info->type);
        FMT(g, last);
        TlNode *st = body->list.v[nst - 1];
        tl_error(st->loc, "kernel '%s' computes %s but is declared to return %s", kn->name, g, w);
        if (kn->a) tl_note(kn->a->loc, "return type declared here");
    } else if (!last && info->type) {
        tl_error(kn->loc, "kernel '%s' has no statements", kn->name);
    }
    sema_pop(S);
    S->cur = save_cur;
    S->scope = save_scope;
    S->fn = save_fn;
}

/* ---- schedules ---- */

static void collect_indices(TlNode *n, const char **names, int *count, int depth) {
    if (!n || depth > 100) return;
    if (n->kind == TL_N_KSTMT || n->kind == TL_N_REDUCE) {
        for (int i = 0; i < n->list.n; i++) {
            TlNode *id = n->list.v[i];
            if (!id || !id->name) continue;
            int dup = 0;
            for (int j = 0; j < *count; j++) if (strcmp(names[j], id->name) == 0) dup = 1;
            if (!dup && *count < MAXIDX) names[(*count)++] = id->name;
        }
    }
    if (n->kind == TL_N_KSTMT || n->kind == TL_N_REDUCE) collect_indices(n->a, names, count, depth + 1);
    else {
        collect_indices(n->a, names, count, depth + 1);
        collect_indices(n->b, names, count, depth + 1);
        collect_indices(n->c, names, count, depth + 1);
        for (int i = 0; i < n->list.n; i++) collect_indices(n->list.v[i], names, count, depth + 1);
    }
}

static const char *directives[] = {"tile", "order", "vectorize", "unroll", "parallel",
                                   "gpu_blocks", "gpu_threads", "shared"};

static int check_sched_index(Sema *S, TlNode *id, const char **names, int n, TlNode *kernel) {
    if (!id) return 0;
    if (id->kind != TL_N_IDENT || !id->name) {
        tl_error(id->loc, "expected an index name of kernel '%s'", kernel->name);
        return 0;
    }
    for (int i = 0; i < n; i++) if (strcmp(names[i], id->name) == 0) return 1;
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(list + len, len < sizeof list ? sizeof list - len : 0, "%s%s", i ? ", " : "", names[i]);
    const char *sug = sema_suggest(S, id->name, NULL, names, n);
    if (sug) tl_error(id->loc, "'%s' is not an index of kernel '%s'; did you mean '%s'?", id->name, kernel->name, sug);
    else tl_error(id->loc, "'%s' is not an index of kernel '%s' (its indices are %s)", id->name, kernel->name, list);
    return 0;
}

/* 1 and *out when e is a positive integer constant, else an error and 0. */
static int const_pos_int(Sema *S, TlNode *e, const char *what, int64_t *out) {
    const TlType *t = sema_expr(S, e);
    int64_t v;
    if (tl_type_is_error(t)) return 0;
    if (t->kind != TL_T_INT || !t->val || !tl_dim_is_const(t->val, &v) || v < 1) {
        tl_error(e->loc, "%s must be a positive integer constant", what);
        return 0;
    }
    *out = v;
    return 1;
}

/* parallel/order name loops over the kernel's result: the indices of its last statement */
static int result_index(TlNode *kernel, const char *name) {
    TlNode *body = kernel->b;
    TlNode *last = body && body->list.n ? body->list.v[body->list.n - 1] : NULL;
    for (int i = 0; last && i < last->list.n; i++)
        if (last->list.v[i] && last->list.v[i]->name && !strcmp(last->list.v[i]->name, name)) return 1;
    return 0;
}

void sema_check_schedule(Sema *S, TlNode *s) {
    Sym *ks = s->name ? sema_lookup(S, s->name) : NULL;
    if (!ks || ks->kind != SYM_KERNEL) {
        if (ks) {
            tl_error(s->loc, "'%s' is not a kernel; a schedule applies to a kernel", s->name);
            return;
        }
        const char *kn[256];
        int n = 0;
        for (Scope *sc = S->scope; sc; sc = sc->parent)
            for (Sym *y = sc->syms; y && n < 256; y = y->next)
                if (y->kind == SYM_KERNEL) kn[n++] = y->name;
        const char *sug = sema_suggest(S, s->name ? s->name : "", NULL, kn, n);
        if (sug) tl_error(s->loc, "schedule for unknown kernel '%s'; did you mean '%s'?", s->name, sug);
        else tl_error(s->loc, "schedule for unknown kernel '%s'", s->name ? s->name : "?");
        return;
    }
    ks->used = 1;
    TlNode *kernel = ks->decl;
    /* one block per kernel: the first in the file */
    for (int i = 0; i < S->nschedules; i++)
        if (S->scheduled[i] == kernel && S->schedules[i] != s) {
            tl_error(s->loc, "kernel '%s' already has a schedule", s->name);
            tl_note(S->schedules[i]->loc, "the first schedule of '%s' is here", s->name);
            return;
        }
    if (S->nschedules < (int)(sizeof S->schedules / sizeof *S->schedules))
        S->scheduled[S->nschedules] = kernel, S->schedules[S->nschedules++] = s;
    const char *names[MAXIDX];
    int n = 0;
    collect_indices(kernel->b, names, &n, 0);
    for (int i = 0; i < s->list.n; i++) {
        TlNode *d = s->list.v[i];
        if (!d) continue;
        if (d->kind != TL_N_CALL || !d->a || d->a->kind != TL_N_IDENT || !d->a->name) {
            tl_error(d->loc, "expected a schedule directive such as tile(i = 32)");
            continue;
        }
        const char *dn = d->a->name;
        int which = -1;
        for (int j = 0; j < (int)(sizeof directives / sizeof *directives); j++)
            if (strcmp(directives[j], dn) == 0) which = j;
        if (which < 0) {
            const char *sug = sema_suggest(S, dn, NULL, directives, (int)(sizeof directives / sizeof *directives));
            if (sug) tl_error(d->a->loc, "unknown schedule directive '%s'; did you mean '%s'?", dn, sug);
            else tl_error(d->a->loc, "unknown schedule directive '%s'", dn);
            continue;
        }
        int npos = 0;
        for (int j = 0; j < d->list.n; j++) if (d->list.v[j] && d->list.v[j]->kind != TL_N_KWARG) npos++;
        switch (which) {
        case 0: /* tile(i = 32, ...) */
            for (int j = 0; j < d->list.n; j++) {
                TlNode *a = d->list.v[j];
                if (!a) continue;
                if (a->kind != TL_N_KWARG) {
                    tl_error(a->loc, "tile takes index = size pairs, like tile(i = 32)");
                    continue;
                }
                TlNode id = {0};
                id.kind = TL_N_IDENT;
                id.loc = a->loc;
                id.name = a->name;
                check_sched_index(S, &id, names, n, kernel);
                int64_t v;
                if (a->a && const_pos_int(S, a->a, "a tile size", &v) && v < 2)
                    tl_error(a->a->loc, "a tile size must be at least 2 (a tile of 1 does not split the loop)");
            }
            if (d->list.n == 0) tl_error(d->loc, "tile needs at least one index = size");
            break;
        case 6: { /* gpu_threads(j) or gpu_threads(j = 128) */
            TlNode *a = d->list.n == 1 ? d->list.v[0] : NULL;
            if (!a) {
                tl_error(d->loc, "'gpu_threads' takes one index, or index = threads per block, like gpu_threads(j = 128)");
                break;
            }
            TlNode id = *a;
            if (a->kind == TL_N_KWARG) id.kind = TL_N_IDENT;
            check_sched_index(S, &id, names, n, kernel);
            int64_t v;
            if (a->kind == TL_N_KWARG && a->a && const_pos_int(S, a->a, "a thread count", &v) &&
                (v < 32 || v > 1024 || (v & (v - 1))))
                tl_error(a->a->loc, "a thread count must be a power of two from 32 to 1024, not %lld", (long long)v);
            break;
        }
        case 1: case 4: case 5: /* order, parallel, gpu_blocks */
            if (npos == 0 || (which >= 4 && npos != 1))
                tl_error(d->loc, "'%s' takes %s", dn, which >= 4 ? "one index" : "index names");
            for (int j = 0; j < d->list.n; j++) {
                TlNode *a = d->list.v[j];
                if (!a) continue;
                if (a->kind == TL_N_KWARG) tl_error(a->loc, "'%s' takes index names, not keyword arguments", dn);
                else if (check_sched_index(S, a, names, n, kernel) && !result_index(kernel, a->name))
                    tl_error(a->loc, "%s(%s): '%s' is a reduction index of kernel '%s'; only the indices of its result "
                                     "can %s", dn, a->name, a->name, kernel->name,
                             which == 4 ? "be parallel" : which == 5 ? "run over the grid's blocks" : "be reordered");
                else if (a->kind == TL_N_IDENT && a->name)
                    for (int q = 0; q < j; q++)
                        if (d->list.v[q] && d->list.v[q]->name && !strcmp(d->list.v[q]->name, a->name))
                            tl_error(a->loc, "'%s' is named twice in '%s'", a->name, dn);
            }
            break;
        case 2: case 3: /* vectorize(j, 16), unroll(k, 4) */
            if (npos != 2 || d->list.n != 2) {
                tl_error(d->loc, "'%s' takes an index and a %s, like %s(j, %d)", dn, which == 2 ? "width" : "factor",
                         dn, which == 2 ? 16 : 4);
                break;
            }
            check_sched_index(S, d->list.v[0], names, n, kernel);
            int64_t v;
            if (const_pos_int(S, d->list.v[1], which == 2 ? "a vector width" : "an unroll factor", &v)) {
                if (which == 2 && (v > 16 || (v & (v - 1))))
                    tl_error(d->list.v[1]->loc, "a vector width must be a power of two up to 16, not %lld", (long long)v);
                if (which == 3 && v > 16) tl_error(d->list.v[1]->loc, "an unroll factor must be at most 16, not %lld", (long long)v);
            }
            break;
        case 7: { /* shared(tensor) */
            if (npos != 1 || d->list.n != 1) {
                tl_error(d->loc, "'shared' takes one tensor name");
                break;
            }
            TlNode *a = d->list.v[0];
            int found = 0;
            if (a->kind == TL_N_IDENT && a->name) {
                for (int j = 0; j < kernel->list.n; j++)
                    if (kernel->list.v[j] && kernel->list.v[j]->name && !strcmp(kernel->list.v[j]->name, a->name)) found = 1;
                for (int j = 0; kernel->b && j < kernel->b->list.n; j++) {
                    TlNode *st = kernel->b->list.v[j];
                    if (st && st->name && !strcmp(st->name, a->name)) found = 1;
                }
            }
            if (!found) tl_error(a->loc, "'shared' needs a tensor of kernel '%s'", kernel->name);
            break;
        }
        }
    }
}

/* ---- tokenizers ---- */

typedef struct TokKind {
    const char *name;
    const char *kw[10];
} TokKind;

static const TokKind tok_kinds[] = {
    {"bytes", {NULL}},
    {"chars", {"alphabet", "train", "unk", NULL}},
    {"bpe", {"merges", "vocab", "split", "special", "train", "vocab_size", "lowercase", NULL}},
    {"wordpiece", {"vocab", "lowercase", "strip_accents", "unk", "special", "train", "vocab_size", NULL}},
};

void sema_check_tokenizer(Sema *S, TlNode *t, Sym *sym) {
    TlNode *v = t->a;
    if (!v) return;
    TlNode *callee = v->kind == TL_N_CALL ? v->a : v;
    if (!callee || callee->kind != TL_N_IDENT || !callee->name) {
        tl_error(v->loc, "a tokenizer is bytes(), chars(...), bpe(...) or wordpiece(...)");
        return;
    }
    const TokKind *k = NULL;
    for (int i = 0; i < (int)(sizeof tok_kinds / sizeof *tok_kinds); i++)
        if (strcmp(tok_kinds[i].name, callee->name) == 0) k = &tok_kinds[i];
    if (!k) {
        const char *names[4] = {"bytes", "chars", "bpe", "wordpiece"};
        const char *sug = sema_suggest(S, callee->name, NULL, names, 4);
        if (sug) tl_error(callee->loc, "unknown tokenizer kind '%s'; did you mean '%s'?", callee->name, sug);
        else tl_error(callee->loc, "unknown tokenizer kind '%s' (expected bytes, chars, bpe or wordpiece)", callee->name);
        return;
    }
    int npos = 0;
    for (int i = 0; v->kind == TL_N_CALL && i < v->list.n; i++) {
        TlNode *a = v->list.v[i];
        if (!a) continue;
        if (a->kind != TL_N_KWARG) {
            sema_expr(S, a);
            if (strcmp(k->name, "chars") != 0 || npos++ > 0)
                tl_error(a->loc, "'%s' takes keyword arguments only", k->name);
            continue;
        }
        sema_expr(S, a->a);
        int ok = 0;
        for (int j = 0; k->kw[j]; j++) if (a->name && strcmp(k->kw[j], a->name) == 0) ok = 1;
        if (!ok) {
            int nk = 0;
            while (k->kw[nk]) nk++;
            const char *sug = sema_suggest(S, a->name ? a->name : "", NULL, k->kw, nk);
            if (sug) tl_error(a->loc, "'%s' has no parameter named '%s'; did you mean '%s'?", k->name, a->name, sug);
            else tl_error(a->loc, "'%s' has no parameter named '%s'", k->name, a->name ? a->name : "?");
        }
    }
    if (strcmp(k->name, "bytes") == 0) {
        t->type = (struct TlType *)tl_type_int(S->arena, tl_dim_const(S->arena, 256));
        if (v->kind == TL_N_CALL && v->list.n > 0) tl_error(v->loc, "'bytes' takes no arguments");
    }
    (void)sym;
}

/* ---- train ---- */

static const char *settings[] = {"steps", "log_every", "eval_every", "checkpoint_every", "out",
                                 "seed", "grad_accum", "clip", "warmup", "schedule"};
static const char *bindings[] = {"data", "eval_data", "model", "opt", "trainable"};
#define NSETTINGS ((int)(sizeof settings / sizeof *settings))

static int in_list(const char *name, const char *const *list, int n) {
    for (int i = 0; i < n; i++) if (strcmp(list[i], name) == 0) return 1;
    return 0;
}

static void check_setting(TlNode *st, const char *name, const TlType *t) {
    if (tl_type_is_error(t) || t->kind == TL_T_HOST) return;
    int ok = 1;
    const char *want = "an int";
    if (!strcmp(name, "out") || !strcmp(name, "schedule")) ok = t->kind == TL_T_STR, want = "a string";
    else if (!strcmp(name, "clip")) ok = tl_type_is_scalar_number(t), want = "a number";
    else if (!strcmp(name, "model")) ok = t->kind == TL_T_INSTANCE, want = "a model instance";
    else if (!strcmp(name, "opt")) ok = t->kind == TL_T_INSTANCE, want = "an optimizer (a model instance)";
    else if (in_list(name, bindings, 5)) ok = 1;
    else ok = t->kind == TL_T_INT;
    if (!ok) {
        FMT(b, t);
        tl_error(st->a ? st->a->loc : st->loc, "'%s' must be %s, not %s", name, want, b);
    }
}

void sema_check_train(Sema *S, TlNode *t) {
    int save_cur = S->cur;
    FnCtx *save_fn = S->fn;
    FnCtx ctx = {0};
    ctx.decl = t;
    ctx.host = 1;
    S->fn = &ctx;
    Scope *sc = sema_push(S, SC_TRAIN);
    int have_model = 0, have_loss = 0;
    TlNode *body = t->b;
    for (int i = 0; body && i < body->list.n; i++) {
        TlNode *st = body->list.v[i];
        if (!st) continue;
        if (st->kind == TL_N_ASSIGN && st->list.n == 1 && st->list.v[0] && st->list.v[0]->kind == TL_N_IDENT &&
            st->list.v[0]->name && !st->b && st->op == TL_OP_NONE && !sema_lookup_in(sc, st->list.v[0]->name)) {
            TlNode *id = st->list.v[0];
            const TlType *v = sema_expr(S, st->a);
            int known = in_list(id->name, settings, NSETTINGS) || in_list(id->name, bindings, 5);
            if (known) check_setting(st, id->name, v);
            if (!strcmp(id->name, "model")) have_model = 1;
            Sym *s = sema_declare(S, sc, id->name, SYM_VAR, id, id->loc, v);
            id->type = (struct TlType *)v;
            if (s && !known) {
                const char *sug = sema_suggest(S, id->name, NULL, settings, NSETTINGS);
                if (sug && S->opt.warn_unused) {
                    tl_warning(id->loc, "'%s' is not a train setting; did you mean '%s'?", id->name, sug);
                    s->used = 1;
                } else {
                    s->warn = 1;
                }
            }
            continue;
        }
        if (st->kind == TL_N_FN && st->name && (!strcmp(st->name, "loss") || !strcmp(st->name, "step")))
            have_loss = 1;
        sema_check_stmt(S, st);
        if (st->kind == TL_N_FN && st->name && !strcmp(st->name, "loss")) {
            DeclInfo *fi = sema_info(S, st);
            const TlType *r = fi->type;
            if (!r || (!tl_type_is_error(r) &&
                       !(r->kind == TL_T_TENSOR && r->rank == 0 && tl_dtype_is_float(r->dtype)))) {
                char b[512] = "nothing";
                if (r) tl_type_format(b, sizeof b, r);
                tl_error(st->loc, "the loss function must return a scalar float (-> f32), not %s", b);
            }
        }
    }
    if (!have_model) tl_error(t->loc, "train block '%s' has no 'model = ...' binding", t->name ? t->name : "?");
    if (!have_loss) tl_error(t->loc, "train block '%s' defines neither 'fn loss' nor 'fn step'", t->name ? t->name : "?");
    sema_pop(S);
    S->fn = save_fn;
    S->cur = save_cur;
}

/* ---- scan ---- */

const TlType *sema_scan(Sema *S, TlNode *e) {
    const TlType *r = sema_expr(S, e->a);
    const TlDim *len = tl_dim_any();
    if (!tl_type_is_error(r)) {
        if (r->kind == TL_T_RANGE) len = tl_dim_sub(S->arena, r->hi, r->val);
        else {
            FMT(b, r);
            tl_error(e->a ? e->a->loc : e->loc, "a scan runs over a range like 0..T, not %s", b);
        }
    }
    int nc = e->list.n;
    const TlType **init = tl_arena_alloc(S->arena, sizeof *init * (size_t)(nc + 1));
    for (int i = 0; i < nc; i++) {
        TlNode *c = e->list.v[i];
        init[i] = c && c->kind == TL_N_KWARG ? sema_expr(S, c->a) : tl_type_error();
        if (c && c->kind == TL_N_KWARG) init[i] = tl_type_with_origin(S->arena, init[i], c->loc, c->name, 1);
    }
    FnCtx ctx = {0};
    FnCtx *outer = S->fn;
    if (outer) {
        ctx.decl = outer->decl;
        ctx.host = outer->host;
    }
    ctx.in_scan = 1;
    ctx.outer = outer;
    S->fn = &ctx;
    sema_push(S, SC_BLOCK);
    Sym **cs = tl_arena_alloc(S->arena, sizeof *cs * (size_t)(nc + 1));
    for (int i = 0; i < nc; i++) {
        TlNode *c = e->list.v[i];
        if (!c) continue;
        cs[i] = sema_declare(S, S->scope, c->name, SYM_VAR, c, c->loc, init[i]);
        if (cs[i]) cs[i]->used = 1;
    }
    if (e->name) {
        Sym *t = sema_declare(S, S->scope, e->name, SYM_LOOPVAR, e, e->loc, tl_type_int(S->arena, NULL));
        if (t) t->warn = 1;
    }
    sema_check_block(S, e->b, SC_BLOCK);
    int ok = 1;
    const TlType **out = tl_arena_alloc(S->arena, sizeof *out * (size_t)(nc + 8));
    int n = 0;
    for (int i = 0; i < nc; i++) {
        if (!cs[i] || cs[i]->decl != e->list.v[i]) { out[n++] = tl_type_error(); continue; }
        const TlType *fin = cs[i]->type;
        if (!sema_types_match(S, init[i], fin)) {
            FMT(a, init[i]);
            FMT(b, fin);
            TlLoc at = fin && fin->kind == TL_T_TENSOR && fin->origin.file ? fin->origin : e->list.v[i]->loc;
            tl_error(at, "scan carry '%s' changes type in the loop body: it starts as %s and becomes %s",
                     cs[i]->name, a, b);
            tl_note(e->list.v[i]->loc, "'%s' is carried from here; every step must keep its type", cs[i]->name);
            ok = 0;
        }
        out[n++] = init[i];
    }
    if (ctx.nyields > 0) {
        const TlType *y = ctx.yields[0];
        int ny = y && y->kind == TL_T_TUPLE ? y->n : 1;
        for (int j = 0; j < ny && n < nc + 8; j++) {
            const TlType *yt = y && y->kind == TL_T_TUPLE ? y->elems[j] : y;
            if (tl_type_is_error(yt)) { out[n++] = yt; continue; }
            if (yt->kind == TL_T_FLOAT || yt->kind == TL_T_INT) {
                out[n++] = tl_type_tensor(S->arena, yt->kind == TL_T_FLOAT ? TL_F32 : TL_I32, 1, &len);
                continue;
            }
            if (yt->kind != TL_T_TENSOR) {
                FMT(b, yt);
                tl_error(ctx.yield_loc, "a scan can only yield tensors, not %s", b);
                out[n++] = tl_type_error();
                continue;
            }
            TlType *st = tl_type_tensor(S->arena, yt->dtype, yt->rank + 1, NULL);
            st->dims[0] = len;
            for (int k = 0; k < yt->rank; k++) st->dims[k + 1] = yt->dims[k];
            out[n++] = st;
        }
        for (int j = 1; j < ctx.nyields; j++)
            if (!sema_types_match(S, ctx.yields[0], ctx.yields[j])) {
                tl_error(ctx.yield_loc, "every 'yield' of a scan must have the same type");
                break;
            }
    }
    sema_pop(S);
    S->fn = outer;
    (void)ok;
    if (n == 1) return out[0];
    return tl_type_tuple(S->arena, n, out);
}
