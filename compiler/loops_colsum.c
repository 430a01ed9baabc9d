/* loops_colsum.c — column reductions for the CPU: a reduction over the leading axes of a
 * tensor into its last axis (a bias gradient: db[j] = sum over b, t of dy[b, t, j]; a
 * layer_norm weight gradient) is lowered one output per iteration of the parallel loop,
 *
 *   parallel for j in [0, N) { acc = init; for r...: acc = f(acc, x[r.. * N + j]); out[j] = g(acc) }
 *
 * so its inner loop walks x with a stride of N elements: a cache line per element and no
 * vectors (the GPT step spent ~15% of its time in four such kernels). This pass turns the
 * loop over j inside out, over tiles of JT outputs whose accumulators live in a scratch
 * buffer S (the local's type, N elements, planned in the arena like any temporary):
 *
 *   parallel for t in [0, ceil(N / JT)) {
 *     for j in tile t: S[j] = init
 *     for r...: for j in tile t: S[j] = f(S[j], x[r.. * N + j])     (unit stride, vectors)
 *     for j in tile t: out[j] = g(S[j])
 *   }
 *
 * Each output is still one accumulation in the same order over r, from the same initial
 * value: the results are bitwise those of the loop nest, for any thread count (tiles are
 * split across threads, never the reduction). It applies only when the kernel is exactly
 * that shape (one accumulator, nothing but loops and updates of it inside, every load
 * reading x at `q + j` with q free of j, and some load varying with the reduction) and has
 * no source schedule. A CPU pass: the NVPTX back end reduces such kernels across a warp
 * instead. TL_COLSUM=0 turns it off (the loop nest, for comparison). */
#include <stdlib.h>
#include <string.h>

#include "loops.h"

enum { COLSUM_JT = 64, COLSUM_MIN_N = 16 };

enum { COLSUM_MAX_ACC = 8 };

typedef struct Cs {
    TlLProgram *p;
    int j;      /* the parallel loop's variable */
    int acc;    /* the accumulator local of the nest being checked */
    int rvar_seen; /* a load whose index varies with a reduction variable */
    int nacc, accs[COLSUM_MAX_ACC], S[COLSUM_MAX_ACC]; /* accumulators and their scratch buffers */
} Cs;

static int expr_has_var(const TlLProgram *p, int e, int var) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_VAR && x->var == var) return 1;
    return expr_has_var(p, x->a, var) || expr_has_var(p, x->b, var) || expr_has_var(p, x->c, var);
}

/* Some loop variable other than j in e. */
static int expr_has_other_var(const TlLProgram *p, int e, int j) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_VAR && x->var != j) return 1;
    return expr_has_other_var(p, x->a, j) || expr_has_other_var(p, x->b, j) || expr_has_other_var(p, x->c, j);
}

/* Locals in e other than acc (acc_ok: acc itself allowed). */
static int expr_locals_ok(const TlLProgram *p, int e, int acc, int acc_ok) {
    if (e < 0) return 1;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOCAL && (!acc_ok || x->var != acc)) return 0;
    return expr_locals_ok(p, x->a, acc, acc_ok) && expr_locals_ok(p, x->b, acc, acc_ok) && expr_locals_ok(p, x->c, acc, acc_ok);
}

/* When index expression i is q + v (either order) with q free of v: q, else -1. */
static int unit_offset(const TlLProgram *p, int i, int v) {
    const TlLExpr *ix = &p->ex[i];
    if (ix->kind != TL_LE_BIN || ix->op != TL_LOP_ADD) return -1;
    const TlLExpr *xa = &p->ex[ix->a], *xb = &p->ex[ix->b];
    int q = xb->kind == TL_LE_VAR && xb->var == v ? ix->a : xa->kind == TL_LE_VAR && xa->var == v ? ix->b : -1;
    return q >= 0 && !expr_has_var(p, q, v) ? q : -1;
}

/* Every load's index in e is free of j, or q + j with q free of j. */
static int loads_unit_stride(Cs *c, int e) {
    if (e < 0) return 1;
    const TlLExpr *x = &c->p->ex[e];
    if (x->kind == TL_LE_LOAD) {
        if (expr_has_var(c->p, x->a, c->j)) {
            int q = unit_offset(c->p, x->a, c->j);
            if (q < 0) return 0;
            if (expr_has_other_var(c->p, q, c->j)) c->rvar_seen = 1;
        }
        return loads_unit_stride(c, x->a);
    }
    return loads_unit_stride(c, x->a) && loads_unit_stride(c, x->b) && loads_unit_stride(c, x->c);
}

/* The reduction nest: loops (bounds free of j and locals) whose innermost lists hold
 * only updates of acc. */
static int nest_ok(Cs *c, int s, int one) {
    for (; s >= 0; s = one ? -1 : c->p->st[s].next) {
        const TlLStmt *t = &c->p->st[s];
        if (t->kind == TL_LS_LOOP) {
            if (t->sched.parallel || expr_has_var(c->p, t->lo, c->j) || expr_has_var(c->p, t->hi, c->j) ||
                !expr_locals_ok(c->p, t->lo, -1, 0) || !expr_locals_ok(c->p, t->hi, -1, 0) || !nest_ok(c, t->body, 0))
                return 0;
        } else if (t->kind == TL_LS_SET) {
            if (t->var != c->acc || !expr_locals_ok(c->p, t->value, c->acc, 1) || !loads_unit_stride(c, t->value)) return 0;
        } else {
            return 0;
        }
    }
    return 1;
}

static int push_expr(TlLProgram *p, const TlLExpr *x) {
    if (p->nex == p->excap) {
        p->excap = p->excap ? 2 * p->excap : 64;
        TlLExpr *n = realloc(p->ex, sizeof *n * (size_t)p->excap);
        if (!n) abort();
        p->ex = n;
    }
    p->ex[p->nex] = *x;
    return p->nex++;
}

/* e with j replaced by variable jn and each accumulator local by a load of its S[jn]. */
static int rewrite(Cs *c, int e, int jn) {
    if (e < 0) return e;
    TlLExpr x = c->p->ex[e];
    if (x.kind == TL_LE_VAR && x.var == c->j) return tl_loops_var(c->p, jn);
    if (x.kind == TL_LE_LOCAL)
        for (int i = 0; i < c->nacc; i++)
            if (x.var == c->accs[i]) return tl_loops_load(c->p, c->S[i], tl_loops_var(c->p, jn));
    int a = rewrite(c, x.a, jn), b = rewrite(c, x.b, jn), cc = rewrite(c, x.c, jn);
    if (a == x.a && b == x.b && cc == x.c) return e;
    x.a = a, x.b = b, x.c = cc;
    return push_expr(c->p, &x);
}

/* A loop over tile t's outputs: for jn in [t * JT, min(N, t * JT + JT)). */
static int tile_loop(Cs *c, int t, int N, int *jn, TlLType et) {
    TlLProgram *p = c->p;
    *jn = tl_loops_new_var(p);
    int lo = tl_loops_bin(p, TL_LOP_MUL, tl_loops_var(p, t), tl_loops_int(p, TL_LT_I64, COLSUM_JT));
    int hi = tl_loops_bin(p, TL_LOP_MIN, N, tl_loops_bin(p, TL_LOP_ADD, lo, tl_loops_int(p, TL_LT_I64, COLSUM_JT)));
    int s = tl_loops_loop(p, *jn, lo, hi);
    p->st[s].sched.vectorize = et == TL_LT_F32 ? 16 : 8;
    return s;
}

static void append_to(TlLProgram *p, int *head, int s) {
    if (*head < 0) { *head = s; return; }
    int t = *head;
    while (p->st[t].next >= 0) t = p->st[t].next;
    p->st[t].next = s;
}

/* A copy of the reduction nest with each innermost run of updates wrapped in a tile loop. */
static int copy_nest(Cs *c, int s, int one, int t, int N, int S) {
    TlLProgram *p = c->p;
    int head = -1, jloop = -1;
    for (; s >= 0; s = one ? -1 : p->st[s].next) {
        TlLStmt o = p->st[s];
        if (o.kind == TL_LS_LOOP) {
            jloop = -1;
            int n = tl_loops_loop(p, o.var, o.lo, o.hi);
            p->st[n].sched = o.sched, p->st[n].sched.vectorize = 0, p->st[n].axis = o.axis;
            int body = copy_nest(c, o.body, 0, t, N, S);
            p->st[n].body = body;
            append_to(p, &head, n);
        } else { /* SET acc = v */
            int jn;
            if (jloop < 0) {
                jloop = tile_loop(c, t, N, &jn, c->p->buf[S].elem);
                append_to(p, &head, jloop);
            }
            jn = p->st[jloop].var;
            int v = rewrite(c, o.value, jn);
            int st = tl_loops_store(p, S, tl_loops_var(p, jn), v);
            append_to(p, &p->st[jloop].body, st);
        }
    }
    return head;
}

static TlDType dtype_of(TlLType t) {
    switch (t) {
    case TL_LT_F32: return TL_F32;
    case TL_LT_F64: return TL_F64;
    case TL_LT_I64: return TL_I64;
    default: return TL_DT_INVALID;
    }
}

/* e (the store's index: idx = 0, or value: 1) reads no local but the accumulators (the
 * index none). */
static int store_locals_ok(const Cs *c, int e, int value) {
    if (e < 0) return 1;
    const TlLExpr *x = &c->p->ex[e];
    if (x->kind == TL_LE_LOCAL) {
        if (!value) return 0;
        for (int i = 0; i < c->nacc; i++)
            if (c->accs[i] == x->var) return 1;
        return 0;
    }
    return store_locals_ok(c, x->a, value) && store_locals_ok(c, x->b, value) && store_locals_ok(c, x->c, value);
}

static int new_scratch(TlLProgram *p, TlDType dt, TlLType et, int N) {
    if (p->nbuf == p->bufcap) {
        p->bufcap = p->bufcap ? 2 * p->bufcap : 64;
        TlLBuf *nb = realloc(p->buf, sizeof *nb * (size_t)p->bufcap);
        if (!nb) abort();
        p->buf = nb;
    }
    int S = p->nbuf++;
    memset(&p->buf[S], 0, sizeof p->buf[S]);
    p->buf[S].kind = TL_LB_TEMP, p->buf[S].dtype = dt, p->buf[S].elem = et, p->buf[S].numel = N;
    p->buf[S].node = -1, p->buf[S].depth = 0;
    return S;
}

/* The kernel's parallel body must be (acc_i = init_i; reduction nest_i)+ then one store;
 * fusion puts sibling reductions of one output (sum(x) + sum(x * y)) into one kernel. */
static int colsum_kernel(TlLProgram *p, int k) {
    TlLKernel *K = &p->kern[k];
    if (K->gemm.on || K->attn.on || K->sched || K->par_extent < 0) return 0;
    int P = K->body;
    if (P < 0 || p->st[P].kind != TL_LS_LOOP || !p->st[P].sched.parallel || p->st[P].next >= 0) return 0;
    const TlLExpr *lo = &p->ex[p->st[P].lo];
    if (lo->kind != TL_LE_INT || lo->ival != 0) return 0;
    Cs c = {.p = p, .j = p->st[P].var};
    int sets[COLSUM_MAX_ACC], nests[COLSUM_MAX_ACC], s = p->st[P].body;
    while (s >= 0 && p->st[s].kind == TL_LS_SET) {
        int r = p->st[s].next;
        if (c.nacc == COLSUM_MAX_ACC || r < 0 || p->st[r].kind != TL_LS_LOOP) return 0;
        int a = p->st[s].var;
        for (int i = 0; i < c.nacc; i++)
            if (c.accs[i] == a) return 0;
        TlDType dt = dtype_of(K->local_type[a]);
        if (dt == TL_DT_INVALID) return 0;
        if (!expr_locals_ok(p, p->st[s].value, -1, 0) || expr_has_var(p, p->st[s].value, c.j)) return 0;
        c.acc = a;
        if (!nest_ok(&c, r, 1)) return 0;
        sets[c.nacc] = s, nests[c.nacc] = r, c.accs[c.nacc++] = a;
        s = p->st[r].next;
    }
    if (!c.nacc || !c.rvar_seen || s < 0 || p->st[s].kind != TL_LS_STORE || p->st[s].next >= 0) return 0;
    const TlLStmt *w = &p->st[s];
    if (!store_locals_ok(&c, w->index, 0) || !store_locals_ok(&c, w->value, 1)) return 0;
    if (p->buf[w->buf].depth != 0) return 0;
    int N = p->st[P].hi;
    if (p->ex[N].kind == TL_LE_INT && p->ex[N].ival < COLSUM_MIN_N) return 0; /* too small to matter */

    for (int i = 0; i < c.nacc; i++) {
        TlLType et = K->local_type[c.accs[i]];
        c.S[i] = new_scratch(p, dtype_of(et), et, N);
    }
    int wbuf = p->st[s].buf, widx = p->st[s].index, wval = p->st[s].value;
    int t = tl_loops_new_var(p);
    int ntiles = tl_loops_bin(p, TL_LOP_IDIV, tl_loops_bin(p, TL_LOP_ADD, N, tl_loops_int(p, TL_LT_I64, COLSUM_JT - 1)),
                              tl_loops_int(p, TL_LT_I64, COLSUM_JT));
    int np = tl_loops_loop(p, t, tl_loops_int(p, TL_LT_I64, 0), ntiles);
    p->st[np].sched.parallel = 1, p->st[np].axis = p->st[P].axis;
    int body = -1;
    for (int i = 0; i < c.nacc; i++) {
        int j1;
        int l1 = tile_loop(&c, t, N, &j1, p->buf[c.S[i]].elem);
        int st1 = tl_loops_store(p, c.S[i], tl_loops_var(p, j1), rewrite(&c, p->st[sets[i]].value, j1)); /* (the pools may move) */
        p->st[l1].body = st1;
        append_to(p, &body, l1);
        int nest = copy_nest(&c, nests[i], 1, t, N, c.S[i]);
        append_to(p, &body, nest);
    }
    int j3;
    int l3 = tile_loop(&c, t, N, &j3, p->buf[c.S[0]].elem);
    int st3 = tl_loops_store(p, wbuf, rewrite(&c, widx, j3), rewrite(&c, wval, j3));
    p->st[l3].body = st3;
    append_to(p, &body, l3);
    p->st[np].body = body;
    K = &p->kern[k];
    K->body = np;
    K->par_extent = ntiles;
    return 1;
}

/* ---- row sums: f64 accumulations over a contiguous axis as 8-lane partial sums ---- */

/* e reads memory only at indices free of v or of the form q + v with q free of v. */
static int unit_stride_in(const TlLProgram *p, int e, int v) {
    if (e < 0) return 1;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOAD && expr_has_var(p, x->a, v) && unit_offset(p, x->a, v) < 0) return 0;
    if (x->kind == TL_LE_RANDOM) return 0;
    return unit_stride_in(p, x->a, v) && unit_stride_in(p, x->b, v) && unit_stride_in(p, x->c, v);
}

static int expr_has_local(const TlLProgram *p, int e, int local) {
    if (e < 0) return 0;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOCAL && x->var == local) return 1;
    return expr_has_local(p, x->a, local) || expr_has_local(p, x->b, local) || expr_has_local(p, x->c, local);
}

static int rowsum_stmts(TlLProgram *p, const TlLKernel *K, int s) {
    int n = 0;
    for (; s >= 0; s = p->st[s].next) {
        TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_IF) n += rowsum_stmts(p, K, t->body) + rowsum_stmts(p, K, t->els);
        if (t->kind != TL_LS_LOOP) continue;
        int b = t->body;
        if (b >= 0 && p->st[b].kind == TL_LS_SET && p->st[b].next < 0 && !t->sched.parallel && t->sched.vectorize <= 1 &&
            t->sched.unroll <= 1 && K->local_type[p->st[b].var] == TL_LT_F64) {
            int acc = p->st[b].var;
            const TlLExpr *v = &p->ex[p->st[b].value];
            int other = v->kind == TL_LE_BIN && v->op == TL_LOP_ADD
                            ? (p->ex[v->a].kind == TL_LE_LOCAL && p->ex[v->a].var == acc ? v->b
                               : p->ex[v->b].kind == TL_LE_LOCAL && p->ex[v->b].var == acc ? v->a : -1)
                            : -1;
            if (other >= 0 && !expr_has_local(p, other, acc) && unit_stride_in(p, other, t->var) &&
                expr_has_var(p, other, t->var)) {
                t->sched.vectorize = 8, t->sched.interleave = 1;
                n++;
                continue;
            }
        }
        n += rowsum_stmts(p, K, t->body);
    }
    return n;
}

int tl_loops_colsum(TlLProgram *p) {
    const char *e = getenv("TL_COLSUM");
    if (e && strcmp(e, "0") == 0) return 0;
    int n = 0;
    for (int k = 0; k < p->nkern; k++) n += colsum_kernel(p, k);
    return n;
}

int tl_loops_rowsum(TlLProgram *p) {
    const char *e = getenv("TL_ROWSUM");
    if (e && strcmp(e, "0") == 0) return 0;
    int n = 0;
    for (int k = 0; k < p->nkern; k++) {
        const TlLKernel *K = &p->kern[k];
        if (K->gemm.on || K->attn.on || K->sched) continue;
        n += rowsum_stmts(p, K, K->body);
    }
    return n;
}
