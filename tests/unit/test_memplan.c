/* test_memplan.c — the memory planner (compiler/memplan.h).
 *
 * Every plan is checked two ways:
 *   - exhaustively, pair by pair: two planned buffers whose live ranges overlap never share
 *     a byte, every offset and size is 64-byte aligned, and every buffer lies in the arena;
 *   - by simulation, independent of the planner's own liveness: the host program is walked
 *     in order (host loops run their real trip counts, aliases are followed as they are
 *     set), each 64-byte chunk of the arena remembers which buffer last wrote it; a kernel
 *     or copy that reads a buffer must find every chunk of it still its own, the buffers one
 *     kernel touches must not share bytes, and at the end the kept outputs must still own
 *     their bytes.
 * Programs: random graphs (pointwise, reductions, matmuls, permutes, scans; forward and
 * forward + backward; fused and unfused), and the step graph of a GPT training block
 * (forward, backward, AdamW) at the sizes of tests/ref/gpt_train.tl. Then the compiled
 * step with the plan against the same step with no reuse (TL_MEMPLAN=0): bitwise equal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "autodiff.h"
#include "check.h"
#include "cpu/cpu.h"
#include "diag.h"
#include "loops.h"
#include "memplan.h"
#include "sema.h"
#include "train.h"

static const TlLoc L = {0, 1, 1, 0, 0};

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
static int irand(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

/* ---- the checks ---- */

static int overlaps(const TlMemPlan *m, int a, int b) {
    return m->offset[a] < m->offset[b] + m->bytes[b] && m->offset[b] < m->offset[a] + m->bytes[a];
}

/* The pairwise property, over every pair of planned buffers. */
static void check_pairs(const TlLProgram *p, const TlMemPlan *m) {
    int bad = 0;
    for (int a = 0; a < p->nbuf; a++) {
        if (!m->bytes[a]) continue;
        EXPECTF(m->offset[a] % 64 == 0 && m->bytes[a] % 64 == 0 && m->offset[a] + m->bytes[a] <= m->arena,
                "b%d: %lld bytes at %lld, arena %lld", a, (long long)m->bytes[a], (long long)m->offset[a], (long long)m->arena);
        if (m->first[a] < 0) continue;
        for (int b = a + 1; b < p->nbuf && bad < 5; b++) {
            if (!m->bytes[b] || m->first[b] < 0) continue;
            int live = !(m->last[a] < m->first[b] || m->last[b] < m->first[a]);
            if (live && overlaps(m, a, b)) {
                bad++;
                EXPECTF(0, "b%d [%d,%d] and b%d [%d,%d] are live together and share bytes", a, m->first[a], m->last[a], b,
                        m->first[b], m->last[b]);
            }
        }
    }
    EXPECTF(m->arena <= m->total || m->total == 0, "arena %lld > no-reuse total %lld", (long long)m->arena, (long long)m->total);
    EXPECTF(m->peak <= m->arena || !m->reuse, "peak live %lld > arena %lld", (long long)m->peak, (long long)m->arena);
}

typedef struct Sim {
    const TlLProgram *p;
    const TlMemPlan *m;
    const int64_t *syms;
    int *owner;       /* per 64-byte chunk of the arena: the buffer that wrote it last, -1 */
    int *target;      /* per buffer: the buffer an alias points into now (itself otherwise) */
    int *rd, *wr;     /* per buffer: read / written by the current op (stamp) */
    int *exmark, stamp;
    int errors, unwritten;
} Sim;

static int root(Sim *s, int b) {
    for (int i = 0; i < 64 && s->target[b] != b; i++) b = s->target[b];
    return b;
}

static void sim_expr(Sim *s, int e) {
    while (e >= 0 && s->exmark[e] != s->stamp) {
        s->exmark[e] = s->stamp;
        const TlLExpr *x = &s->p->ex[e];
        if (x->kind == TL_LE_LOAD) s->rd[x->buf] = s->stamp;
        sim_expr(s, x->b), sim_expr(s, x->c);
        e = x->a;
    }
}

static void sim_stmts(Sim *s, int t) {
    for (; t >= 0; t = s->p->st[t].next) {
        const TlLStmt *x = &s->p->st[t];
        if (x->kind == TL_LS_STORE) s->wr[x->buf] = s->stamp;
        sim_expr(s, x->lo), sim_expr(s, x->hi), sim_expr(s, x->index), sim_expr(s, x->value), sim_expr(s, x->cond);
        if (x->kind == TL_LS_LOOP || x->kind == TL_LS_IF) sim_stmts(s, x->body), sim_stmts(s, x->els);
    }
}

static void sim_read(Sim *s, int b, const char *what) {
    const TlMemPlan *m = s->m;
    if (!m->bytes[b]) return;
    for (int64_t c = m->offset[b] / 64; c < (m->offset[b] + m->bytes[b]) / 64; c++) {
        if (s->owner[c] == b) continue;
        if (s->owner[c] < 0) { s->unwritten++; return; }
        if (s->errors++ < 5) EXPECTF(0, "%s reads b%d, but b%d wrote over its bytes", what, b, s->owner[c]);
        return;
    }
}

static void sim_write(Sim *s, int b) {
    const TlMemPlan *m = s->m;
    for (int64_t c = m->offset[b] / 64; m->bytes[b] && c < (m->offset[b] + m->bytes[b]) / 64; c++) s->owner[c] = b;
}

/* One op's accesses (rd/wr stamped): no two of its buffers share bytes; reads, then writes. */
static void sim_access(Sim *s, const char *what) {
    int nb = s->p->nbuf, *used = calloc((size_t)nb + 1, sizeof(int)), n = 0;
    char *isrd = calloc((size_t)nb + 1, 1), *iswr = calloc((size_t)nb + 1, 1);
    for (int b = 0; b < nb; b++) {
        if (s->rd[b] != s->stamp && s->wr[b] != s->stamp) continue;
        int r = root(s, b);
        if (!isrd[r] && !iswr[r]) used[n++] = r;
        if (s->rd[b] == s->stamp) isrd[r] = 1;
        if (s->wr[b] == s->stamp) iswr[r] = 1;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (s->m->bytes[used[i]] && s->m->bytes[used[j]] && overlaps(s->m, used[i], used[j]) && s->errors++ < 5)
                EXPECTF(0, "%s touches b%d and b%d, which share bytes", what, used[i], used[j]);
    /* A buffer the op also writes is read for its own partial results (attention's loop
     * nests accumulate into the rows they zeroed): its bytes need not hold an older value;
     * that it shares no bytes with the op's other buffers is checked above. */
    for (int i = 0; i < n; i++)
        if (isrd[used[i]] && !iswr[used[i]]) sim_read(s, used[i], what);
    for (int i = 0; i < n; i++)
        if (iswr[used[i]]) sim_write(s, used[i]);
    free(used), free(isrd), free(iswr);
}

static void sim_host(Sim *s, int h) {
    const TlLProgram *p = s->p;
    for (; h >= 0; h = p->host[h].next) {
        const TlLHost *o = &p->host[h];
        char what[96];
        switch (o->kind) {
        case TL_LH_KERNEL: {
            const TlLKernel *k = &p->kern[o->kernel];
            s->stamp++;
            sim_stmts(s, k->body);
            if (k->gemm.on) s->rd[k->gemm.a] = s->rd[k->gemm.b] = s->wr[k->gemm.c] = s->stamp;
            snprintf(what, sizeof what, "kernel %s", k->name);
            sim_access(s, what);
            break;
        }
        case TL_LH_COPY:
            s->stamp++;
            s->rd[o->src] = s->wr[o->dst] = s->stamp;
            snprintf(what, sizeof what, "copy b%d <- b%d", o->dst, o->src);
            sim_access(s, what);
            break;
        case TL_LH_ALIAS:
            s->target[o->dst] = root(s, o->src);
            break;
        case TL_LH_LOOP: {
            int64_t n = tl_loops_eval(p, o->count, s->syms);
            for (int64_t i = 0; i < n; i++) sim_host(s, o->body);
            break;
        }
        }
    }
}

static int64_t total_arena, total_sum, nplans, nunwritten;

static void simulate(const TlLProgram *p, const TlMemPlan *m, const int64_t *syms, const int *keep, int nkeep) {
    Sim s = {p, m, syms, NULL, NULL, NULL, NULL, NULL, 0, 0, 0};
    s.owner = malloc(sizeof(int) * (size_t)(m->arena / 64 + 1));
    for (int64_t c = 0; c <= m->arena / 64; c++) s.owner[c] = -1;
    s.target = malloc(sizeof(int) * (size_t)(p->nbuf + 1));
    s.rd = calloc((size_t)p->nbuf + 1, sizeof(int)), s.wr = calloc((size_t)p->nbuf + 1, sizeof(int));
    s.exmark = calloc((size_t)p->nex + 1, sizeof(int));
    for (int b = 0; b < p->nbuf; b++) s.target[b] = b;
    for (int b = 0; b < p->nbuf; b++)
        if (p->buf[b].kind == TL_LB_STATE) sim_write(&s, b);
    sim_host(&s, p->entry);
    for (int i = 0; i < nkeep; i++) sim_read(&s, root(&s, keep[i]), "the end of the run");
    nunwritten += s.unwritten;
    free(s.owner), free(s.target), free(s.rd), free(s.wr), free(s.exmark);
}


/* Plans p (dims bound by name) and checks the plan both ways. */
static TlMemPlan *check_program(const TlLProgram *p, const char *const *names, const int64_t *vals, int nv) {
    int64_t syms[32] = {0};
    for (int i = 0; i < p->nsyms && i < 32; i++)
        for (int k = 0; k < nv; k++)
            if (!strcmp(p->syms[i], names[k])) syms[i] = vals[k];
    int keep[256];
    int nkeep = tl_memplan_outputs(p, keep, 256);
    TlMemPlan *m = tl_memplan(p, syms, keep, nkeep);
    EXPECT(m != NULL);
    if (!m) return NULL;
    check_pairs(p, m);
    simulate(p, m, syms, keep, nkeep < 256 ? nkeep : 256);
    total_arena += m->arena, total_sum += m->total, nplans++;
    return m;
}

/* ---- random graphs ---- */

static int rand_unary(TlGraph *g, int x) {
    static const TlGOp ops[] = {TL_GOP_NEG, TL_GOP_EXP, TL_GOP_TANH, TL_GOP_SIN, TL_GOP_ABS};
    TlGOp op = ops[irand(0, 4)];
    if (op == TL_GOP_EXP) x = tl_g_tanh(g, x, L);
    return tl_g_unary(g, op, x, L);
}

/* A scan over axis 0 of v [R0, R1, R2]: h' = tanh(h + x_t) * w; ys = h' - x_t. */
static int rand_scan(TlGraph *g, int v) {
    int h0 = tl_g_reduce(g, TL_GOP_SUM, v, 1, 0, L);
    TlGraph *b = tl_graph_new_body(g);
    TlGShape cs = g->nodes[h0].shape;
    int h = tl_g_input(b, "h", TL_F32, cs, L), x = tl_g_input(b, "x", TL_F32, cs, L);
    int hn = tl_g_tanh(b, tl_g_add(b, h, x, L), L);
    tl_graph_add_output(b, hn);
    tl_graph_add_output(b, tl_g_sub(b, hn, x, L));
    int res[2];
    tl_g_scan(g, b, 1, &h0, 1, &v, 0, NULL, irand(0, 1), res, L);
    return tl_g_add(g, res[1], tl_g_broadcast_binary(g, TL_GOP_MUL, v, res[0], L), L);
}

static TlGraph *random_graph(int seed, int backward) {
    TlGraph *g = tl_graph_new();
    int64_t d1 = irand(1, 5), d2 = irand(1, 40);
    int sym = seed % 3 == 0;
    TlGDim dims[3] = {sym ? tl_gdim_sym(g, "B") : tl_gdim_const(g, irand(1, 4)), tl_gdim_const(g, d1), tl_gdim_const(g, d2)};
    TlGShape s = tl_gshape_dims(3, dims);
    int pool[64], np = 0;
    pool[np++] = tl_g_input(g, "x0", TL_F32, s, L);
    pool[np++] = tl_g_param(g, "w", TL_F32, s, L);
    TlGDim wd[2] = {tl_gdim_const(g, d2), tl_gdim_const(g, d2)};
    int wm = tl_g_param(g, "wm", TL_F32, tl_gshape_dims(2, wd), L);
    int steps = irand(3, 20);
    for (int i = 0; i < steps && np < 60; i++) {
        int a = pool[irand(0, np - 1)], b = pool[irand(0, np - 1)], v;
        switch (irand(0, 9)) {
        case 0: case 1: v = rand_unary(g, a); break;
        case 2: case 3: v = tl_g_binary(g, irand(0, 1) ? TL_GOP_ADD : TL_GOP_MUL, a, b, L); break;
        case 4: { /* softmax-like: a keepdims reduction broadcast back */
            int r = tl_g_reduce(g, irand(0, 1) ? TL_GOP_SUM : TL_GOP_RMAX, a, 4, 1, L);
            v = tl_g_broadcast_binary(g, TL_GOP_SUB, b, r, L);
            break;
        }
        case 5: case 6: v = tl_g_contract(g, "bij,jk->bik", a, wm, L); break;
        case 7: {
            int p1[3] = {2, 0, 1}, p2[3] = {1, 2, 0};
            v = tl_g_permute(g, rand_unary(g, tl_g_permute(g, a, p1, L)), p2, L);
            break;
        }
        case 8: v = rand_scan(g, a); break;
        default: v = tl_g_tanh(g, tl_g_add(g, a, b, L), L); break;
        }
        pool[np++] = v;
    }
    int out = pool[np - 1];
    if (backward) {
        int loss = tl_g_reduce(g, TL_GOP_SUM, tl_g_mul(g, out, out, L), 7, 0, L);
        int wrt[3] = {pool[0], pool[1], wm}, grads[3];
        if (tl_grad(g, loss, 3, wrt, grads) != 0) return g;
        tl_graph_add_output(g, loss);
        for (int i = 0; i < 3; i++) tl_graph_add_output(g, grads[i]);
    } else {
        tl_graph_add_output(g, out);
        if (irand(0, 2) == 0) tl_graph_add_output(g, pool[irand(2, np - 1)]);
    }
    return g;
}

TEST(random_graphs) {
    const char *names[] = {"B"};
    for (int seed = 0; seed < 120; seed++) {
        int backward = seed % 2;
        TlGraph *g = random_graph(seed, backward);
        EXPECTF(!tl_graph_error(g), "graph %d: %s", seed, tl_graph_error(g));
        for (int fuse = 0; fuse < 2 && !tl_graph_error(g); fuse++) {
            char err[256];
            TlLoopsOptions o = {.fuse = fuse};
            TlLProgram *p = tl_loops_lower_opts(g, &o, err, sizeof err);
            EXPECTF(p != NULL, "graph %d: %s", seed, err);
            if (!p) continue;
            int64_t B = irand(1, 5);
            TlMemPlan *m = check_program(p, names, &B, 1);
            if (m && check_case_failed) {
                printf("  graph %d (%s, %s)\n", seed, backward ? "backward" : "forward", fuse ? "fused" : "unfused");
                tl_memplan_free(m);
                tl_loops_free(p);
                break;
            }
            tl_memplan_free(m);
            tl_loops_free(p);
        }
        tl_graph_free(g);
        if (check_case_failed) break;
    }
    printf("  %lld plans: arenas %lld bytes in all, %lld without reuse; %lld reads of never-written bytes\n",
           (long long)nplans, (long long)total_arena, (long long)total_sum, (long long)nunwritten);
    EXPECT(total_arena < total_sum);
}

/* A hand-made chain x -> a -> b -> c -> d, all f32[1000]: two buffers' worth suffice. */
TEST(chain_reuses) {
    TlGraph *g = tl_graph_new();
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_make(g, 1, (int64_t[]){1000}), L);
    int a = tl_g_tanh(g, x, L), b = tl_g_neg(g, a, L), c = tl_g_tanh(g, b, L), d = tl_g_neg(g, c, L);
    tl_graph_add_output(g, d);
    char err[256];
    TlLoopsOptions o = {.fuse = 0};
    TlLProgram *p = tl_loops_lower_opts(g, &o, err, sizeof err);
    EXPECT(p != NULL);
    TlMemPlan *m = p ? check_program(p, NULL, NULL, 0) : NULL;
    if (m) {
        int64_t one = 4032; /* 1000 floats, rounded to 64 */
        EXPECTF(m->total == 4 * one && m->arena == 2 * one && m->peak == 2 * one,
                "total %lld arena %lld peak %lld", (long long)m->total, (long long)m->arena, (long long)m->peak);
        int bd = p->node_buf[d], bb = p->node_buf[b];
        /* the output d is kept: nothing shares its bytes after it is written */
        EXPECT(m->last[bd] == m->npoints + 1);
        EXPECT(!overlaps(m, bd, p->node_buf[c]));
        EXPECT(overlaps(m, p->node_buf[a], p->node_buf[c]) && overlaps(m, bb, bd));
        TlMemPlan *n = tl_memplan_ex(p, NULL, NULL, 0, 0);
        EXPECT(n && n->arena == n->total && n->total == 4 * one);
        tl_memplan_free(n);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        tl_memplan_print(f, p, m);
        fclose(f);
        EXPECTF(buf && strstr(buf, "arena") && strstr(buf, "temp"), "%s", buf ? buf : "");
        free(buf);
    }
    tl_memplan_free(m);
    tl_loops_free(p);
    tl_graph_free(g);
}

/* ---- the GPT training step ---- */

static TlTrainPlan *gpt_plan(TlProgram **prog, TlArgs **args) {
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    *prog = tl_sema_check_file("tests/ref/gpt_train.tl", &opt);
    *args = NULL;
    EXPECT(*prog && tl_diag_error_count() == 0);
    if (!*prog || tl_diag_error_count()) return NULL;
    TlNode *train = tl_train_find(*prog, "gpt_train");
    char err[256], *argv[] = {"gpt_train", NULL};
    *args = tl_args_new("gpt_train", NULL);
    if (!train || tl_train_register_args(train, *args) || tl_args_parse(*args, 1, argv, stdout, err, sizeof err) != TL_ARGS_OK)
        return NULL;
    return tl_train_plan(*prog, train, *args);
}

TEST(gpt_step) {
    TlProgram *prog;
    TlArgs *args;
    TlTrainPlan *tp = gpt_plan(&prog, &args);
    EXPECT(tp != NULL);
    for (int fuse = 0; tp && fuse < 2; fuse++) {
        char err[256];
        TlLoopsOptions o = {.fuse = fuse};
        TlLProgram *p = tl_loops_lower_opts(tp->step, &o, err, sizeof err);
        EXPECTF(p != NULL, "%s", err);
        if (!p) continue;
        TlMemPlan *m = check_program(p, NULL, NULL, 0);
        if (m) {
            printf("  GPT step (%s): %d buffers planned, arena %lld bytes, no reuse %lld (%.1fx), peak live %lld\n",
                   fuse ? "fused" : "unfused", p->nbuf, (long long)m->arena, (long long)m->total,
                   (double)m->total / (double)m->arena, (long long)m->peak);
            EXPECTF(m->arena * 2 < m->total, "arena %lld, no reuse %lld", (long long)m->arena, (long long)m->total);
            EXPECTF(m->arena <= m->peak + m->peak / 4, "arena %lld, peak %lld", (long long)m->arena, (long long)m->peak);
        }
        tl_memplan_free(m);
        tl_loops_free(p);
    }
    tl_train_plan_free(tp);
    tl_args_free(args);
    tl_program_free(prog);
}

/* The step compiled (O0, one thread) with the plan and with TL_MEMPLAN=0 (no reuse): run
 * twice each, feeding the new params and states back; every output bitwise equal. */
static TlCpuProgram *compile_step(const TlTrainPlan *tp, int reuse) {
    char err[512];
    if (reuse) unsetenv("TL_MEMPLAN");
    else setenv("TL_MEMPLAN", "0", 1);
    TlCpuOptions o = {.opt_level = 0, .threads = 1};
    TlCpuProgram *cp = tl_cpu_compile(tp->step, &o, err, sizeof err);
    unsetenv("TL_MEMPLAN");
    EXPECTF(cp != NULL, "%s", err);
    return cp;
}

static unsigned char *run_steps(const TlTrainPlan *tp, TlCpuProgram *cp, size_t *len) {
    const TlGraph *g = tp->step;
    size_t cap = 1 << 20, n = 0;
    unsigned char *out = malloc(cap);
    float **vals = calloc((size_t)g->nnodes, sizeof(float *));
    int64_t *cnt = calloc((size_t)g->nnodes, sizeof(int64_t));
    uint64_t saved = rng_state;
    rng_state = 42;
    for (int i = 0; i < g->nnodes; i++) {
        const TlGNode *nd = &g->nodes[i];
        if (nd->op != TL_GOP_INPUT && nd->op != TL_GOP_PARAM) continue;
        int64_t c = 1;
        for (int k = 0; k < nd->shape.rank; k++) {
            int64_t d = 1;
            tl_gdim_is_const(g, nd->shape.dim[k], &d);
            c *= d;
        }
        cnt[i] = c;
        vals[i] = calloc((size_t)c + 1, 8);
        for (int64_t j = 0; j < c; j++) {
            if (nd->dtype == TL_I32) ((int32_t *)vals[i])[j] = irand(0, 10);
            else if (nd->dtype == TL_I64) ((int64_t *)(void *)vals[i])[j] = irand(0, 10);
            else if (nd->dtype == TL_F32) vals[i][j] = (float)irand(-100, 100) / 500.0f;
        }
    }
    if (tp->stepnum >= 0) vals[tp->stepnum][0] = 0;
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < g->nnodes; i++)
            if (vals[i]) tl_cpu_set_raw(cp, i, vals[i], cnt[i]);
        EXPECTF(tl_cpu_run(cp) == 0, "%s", tl_cpu_error(cp));
        for (int k = 0; k < g->noutputs; k++) {
            const TlTensor *t = tl_cpu_output(cp, k);
            if (!t) continue;
            size_t nb = (size_t)t->numel * tl_interp_storage_size(t->dtype);
            while (n + nb > cap) cap *= 2, out = realloc(out, cap);
            memcpy(out + n, t->data, nb), n += nb;
        }
        for (int i = 0; i < tp->nparams; i++)
            if (tp->param_out[i] >= 0) memcpy(vals[tp->params[i].node], tl_cpu_output(cp, tp->param_out[i])->data, sizeof(float) * (size_t)cnt[tp->params[i].node]);
        for (int i = 0; i < tp->nstates; i++)
            memcpy(vals[tp->states[i].input], tl_cpu_output(cp, tp->state_out[i])->data, sizeof(float) * (size_t)cnt[tp->states[i].input]);
        if (tp->stepnum >= 0) vals[tp->stepnum][0] = (float)(s + 1);
    }
    for (int i = 0; i < g->nnodes; i++) free(vals[i]);
    free(vals), free(cnt);
    rng_state = saved;
    *len = n;
    return out;
}

TEST(gpt_step_bitwise) {
    TlProgram *prog;
    TlArgs *args;
    TlTrainPlan *tp = gpt_plan(&prog, &args);
    EXPECT(tp != NULL);
    if (tp) {
        TlCpuProgram *a = compile_step(tp, 1), *b = compile_step(tp, 0);
        if (a && b) {
            size_t na = 0, nb = 0;
            unsigned char *ra = run_steps(tp, a, &na), *rb = run_steps(tp, b, &nb);
            EXPECTF(na == nb && na > 0 && memcmp(ra, rb, na) == 0, "outputs differ (%zu vs %zu bytes)", na, nb);
            free(ra), free(rb);
        }
        tl_cpu_free(a), tl_cpu_free(b);
    }
    tl_train_plan_free(tp);
    tl_args_free(args);
    tl_program_free(prog);
}

int main(void) {
    RUN(chain_reuses);
    RUN(random_graphs);
    RUN(gpt_step);
    RUN(gpt_step_bitwise);
    return check_done();
}
