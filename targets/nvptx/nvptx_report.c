/* nvptx_report.c — what each kernel of a program asks of the GPU, without a GPU: its launch
 * (flat, warp, gemm, or one thread), the threads launched and the serial work of its busiest
 * thread (nvptx.h TlGpuKernelStat). `tlc kernels --gpu-report` prints it; a kernel whose
 * work per thread is large next to the others is where a step's time goes (a long serial
 * loop on few threads). The launch decisions are the code generator's own
 * (tl_nvptx_plan, tl_nvptx_collapse, the warp schedule's tests), so the report follows it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvptx_internal.h"

typedef struct Rep {
    const TlLProgram *p;
    const int64_t *syms;
    int64_t *vars;
    int warp;  /* warp or block launch: reductions and store-only loops are split across lanes */
    int64_t lanes; /* 32 (warp) or the block's threads */
    int ipar;      /* the loop a kernel without a parallel loop runs across threads, or -1 */
    int64_t ipar_threads;
    int depth; /* recursion guard of the sampling of variable-dependent bounds */
} Rep;

/* An i64 expression of the Loop IR with loop variables at their values in r->vars (loads
 * and floats evaluate to 0: bounds never hold them in practice). */
static int64_t rev(Rep *r, int e) {
    if (e < 0) return 0;
    const TlLExpr *x = &r->p->ex[e];
    switch (x->kind) {
    case TL_LE_INT: return x->ival;
    case TL_LE_SYM: return r->syms ? r->syms[x->sym] : 0;
    case TL_LE_VAR: return r->vars[x->var];
    case TL_LE_CAST: return rev(r, x->a);
    case TL_LE_SELECT: return rev(r, x->a) ? rev(r, x->b) : rev(r, x->c);
    case TL_LE_UN: {
        int64_t a = rev(r, x->a);
        return x->op == TL_LOP_NEG ? -a : x->op == TL_LOP_ABS ? (a < 0 ? -a : a) : 0;
    }
    case TL_LE_BIN: {
        int64_t a = rev(r, x->a), b = rev(r, x->b);
        switch (x->op) {
        case TL_LOP_ADD: return a + b;
        case TL_LOP_SUB: return a - b;
        case TL_LOP_MUL: return a * b;
        case TL_LOP_DIV: case TL_LOP_IDIV: return b ? a / b : 0;
        case TL_LOP_IMOD: return b ? a % b : 0;
        case TL_LOP_MIN: return a < b ? a : b;
        case TL_LOP_MAX: return a > b ? a : b;
        case TL_LOP_AND: return a && b;
        case TL_LOP_OR: return a || b;
        case TL_LOP_EQ: return a == b;
        case TL_LOP_NE: return a != b;
        case TL_LOP_LT: return a < b;
        case TL_LOP_LE: return a <= b;
        case TL_LOP_GT: return a > b;
        case TL_LOP_GE: return a >= b;
        default: return 0;
        }
    }
    default: return 0;
    }
}

static double work(Rep *r, int s, int split);

/* The body of a loop over var in [lo, lo + trip) with the given step: its work summed over
 * the iterations (exact up to 64 iterations, else the mean of the first, middle and last
 * iteration's work times the count). */
static double loop_work(Rep *r, const TlLStmt *l, int64_t lo, int64_t trip, int64_t step, int split) {
    int64_t iters = (trip + step - 1) / step;
    if (iters <= 0) return 0;
    double w = 0;
    int64_t saved = r->vars[l->var];
    if (iters <= 64 && r->depth < 3) {
        r->depth++;
        for (int64_t i = 0; i < iters; i++) r->vars[l->var] = lo + i * step, w += work(r, l->body, split);
        r->depth--;
    } else {
        int64_t at[3] = {lo, lo + (iters / 2) * step, lo + (iters - 1) * step};
        for (int i = 0; i < 3; i++) r->vars[l->var] = at[i], w += work(r, l->body, split) / 3;
        w *= (double)iters;
    }
    r->vars[l->var] = saved;
    return w;
}

static double work(Rep *r, int s, int split) {
    double w = 0;
    int prev = -1;
    for (; s >= 0; prev = s, s = r->p->st[s].next) {
        const TlLStmt *t = &r->p->st[s];
        switch (t->kind) {
        case TL_LS_STORE: case TL_LS_SET: w += 1; break;
        case TL_LS_IF: {
            double a = work(r, t->body, split), b = work(r, t->els, split);
            w += 1 + (a > b ? a : b);
            break;
        }
        case TL_LS_LOOP: {
            int64_t lo = rev(r, t->lo), trip = rev(r, t->hi) - lo;
            int lanes = r->warp && !split && !t->sched.parallel;
            int loops[TL_NVPTX_MAX_COLLAPSE], nl;
            if (lanes && tl_nvptx_reduce_nest(r->p, prev, s, loops, &nl) >= 0) {
                /* the nest's iterations split across the lanes, then the butterfly (and in a
                 * block, the shared-memory step and a second butterfly) */
                double total = 1;
                for (int j = 0; j < nl; j++) {
                    const TlLStmt *l = &r->p->st[loops[j]];
                    int64_t d = rev(r, l->hi) - rev(r, l->lo);
                    total *= d > 0 ? (double)d : 0;
                }
                const TlLStmt *in = &r->p->st[loops[nl - 1]];
                w += ceil(total / (double)r->lanes) * work(r, in->body, split) + (r->lanes > 32 ? 12 : 5);
            } else if (lanes && tl_nvptx_only_stores(r->p, t->body)) {
                w += loop_work(r, t, lo, trip, r->lanes, 1);
            } else if (s == r->ipar) {
                w += loop_work(r, t, lo, trip, r->ipar_threads, split);
            } else {
                w += loop_work(r, t, lo, trip, 1, split);
            }
            break;
        }
        }
    }
    return w;
}

static double cdiv(double a, double b) { return ceil(a / b); }

void tl_nvptx_kernel_stats(const TlLProgram *lp, const TlNvptxOptions *o, const int64_t *syms, TlGpuKernelStat *out) {
    NvTarget t;
    tl_nvptx_target(&t, o);
    char *used = malloc((size_t)lp->nbuf + 1);
    Rep r = {lp, syms, calloc((size_t)lp->nvars + 1, sizeof(int64_t)), 0, 0, 32, -1, 1};
    if (!used || !r.vars) abort();
    const double maxblocks = 1 << 20;
    for (int k = 0; k < lp->nkern; k++) {
        const TlLKernel *lk = &lp->kern[k];
        TlGpuKernelStat *st = &out[k];
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", lk->name);
        st->launch = tl_nvptx_plan(lp, k, &t, used);
        r.warp = st->launch == TL_GPU_LAUNCH_WARP || st->launch == TL_GPU_LAUNCH_BLOCK;
        r.lanes = st->launch == TL_GPU_LAUNCH_BLOCK ? TL_GPU_BLOCK : 32;
        r.ipar = tl_nvptx_inner_parallel(lp, k, &t, st->launch);
        if (st->launch == TL_GPU_LAUNCH_GEMM) {
            const TlLGemm *g = &lk->gemm;
            double m = (double)rev(&r, g->m), n = (double)rev(&r, g->n), b = (double)rev(&r, g->batch);
            st->items = cdiv(m, TL_GEMM_BM) * cdiv(n, TL_GEMM_BN) * b;
            st->threads = st->items * TL_GPU_BLOCK;
            st->work = 8.0 * (double)rev(&r, g->k);
            continue;
        }
        if (st->launch == TL_GPU_LAUNCH_ATTN) { /* a thread per own row; its keys (queries) x K FMAs per product */
            const TlLAttn *a = &lk->attn;
            double T = (double)rev(&r, a->t), bh = (double)rev(&r, a->bh), K = tl_nvptx_attn_head(lp, k, &t);
            st->items = cdiv(T, TL_GPU_ATTN_ROWS) * bh * (a->grad ? 2 : 1);
            st->threads = st->items * TL_GPU_ATTN_ROWS;
            st->work = T * K * (a->grad ? 4 : 2);
            continue;
        }
        int loops[TL_NVPTX_MAX_COLLAPSE];
        int nl = tl_nvptx_collapse(lp, k, &t, st->launch, loops, TL_NVPTX_MAX_COLLAPSE);
        st->collapsed = nl;
        if (st->launch == TL_GPU_LAUNCH_BLOCK) { /* one block */
            st->items = 1, st->threads = TL_GPU_BLOCK;
            st->work = work(&r, lk->body, 0);
            continue;
        }
        if (nl == 0 && r.ipar >= 0) { /* threads over one loop of the nest */
            const TlLStmt *l = &lp->st[r.ipar];
            double items = (double)(rev(&r, l->hi) - rev(&r, l->lo)), cap = maxblocks * TL_GPU_BLOCK;
            st->collapsed = 1, st->items = items > 0 ? items : 0;
            st->threads = st->items < cap ? st->items : cap;
            r.ipar_threads = st->threads > 0 ? (int64_t)st->threads : 1;
            st->work = work(&r, lk->body, 0);
            continue;
        }
        if (nl == 0) { /* one thread runs the whole body */
            st->serial = 1, st->items = 1, st->threads = 1;
            st->work = work(&r, lk->body, 0);
            continue;
        }
        /* items: the product of the collapsed trips; the busiest thread's item work is the
         * largest of the body's work with every collapsed variable at its first, middle
         * and last value */
        int64_t lo[TL_NVPTX_MAX_COLLAPSE], trip[TL_NVPTX_MAX_COLLAPSE];
        double items = 1;
        for (int j = 0; j < nl; j++) {
            const TlLStmt *l = &lp->st[loops[j]];
            lo[j] = rev(&r, l->lo), trip[j] = rev(&r, l->hi) - lo[j];
            if (trip[j] < 0) trip[j] = 0;
            items *= (double)trip[j];
        }
        double item = 0;
        for (int at = 0; at < 3 && items > 0; at++) {
            for (int j = 0; j < nl; j++)
                r.vars[lp->st[loops[j]].var] = lo[j] + (at == 0 ? 0 : at == 1 ? trip[j] / 2 : trip[j] - 1);
            double w = work(&r, lp->st[loops[nl - 1]].body, 0);
            if (w > item) item = w;
        }
        double block = st->launch == TL_GPU_LAUNCH_FLAT && lk->gpu_block > 0 ? lk->gpu_block : TL_GPU_BLOCK;
        double per = st->launch == TL_GPU_LAUNCH_WARP ? 32 : 1; /* threads per item */
        double threads = items * per, cap = maxblocks * block;
        st->items = items;
        st->threads = threads < cap ? threads : cap;
        st->work = items > 0 ? cdiv(threads, st->threads) * item : 0;
    }
    free(r.vars);
    free(used);
}

static int by_work(const void *a, const void *b) {
    const TlGpuKernelStat *x = *(const TlGpuKernelStat *const *)a, *y = *(const TlGpuKernelStat *const *)b;
    if (x->work != y->work) return x->work < y->work ? 1 : -1;
    return strcmp(x->name, y->name);
}

void tl_nvptx_report_print(FILE *f, const TlGpuKernelStat *s, int n, int top) {
    const TlGpuKernelStat **o = malloc(sizeof *o * (size_t)(n + 1));
    if (!o) abort();
    double sum = 0, maxw = 0;
    for (int i = 0; i < n; i++) {
        o[i] = &s[i], sum += s[i].work;
        if (s[i].work > maxw) maxw = s[i].work;
    }
    qsort(o, (size_t)n, sizeof *o, by_work);
    int shown = top > 0 && top < n ? top : n;
    fprintf(f, "%-4s %-34s %-6s %5s %12s %12s %14s %8s\n", "rank", "kernel", "launch", "loops", "items", "threads",
            "work/thread", "share");
    for (int i = 0; i < shown; i++) {
        const TlGpuKernelStat *k = o[i];
        const char *launch = k->serial ? "serial"
                             : k->launch == TL_GPU_LAUNCH_WARP  ? "warp"
                             : k->launch == TL_GPU_LAUNCH_GEMM  ? "gemm"
                             : k->launch == TL_GPU_LAUNCH_BLOCK ? "block"
                             : k->launch == TL_GPU_LAUNCH_ATTN  ? "attn"
                                                                : "flat";
        fprintf(f, "%-4d %-34s %-6s %5d %12.0f %12.0f %14.0f %7.1f%%\n", i + 1, k->name, launch, k->collapsed, k->items,
                k->threads, k->work, sum > 0 ? 100 * k->work / sum : 0);
    }
    if (shown < n) fprintf(f, "... %d more\n", n - shown);
    fprintf(f, "%d kernels; serial work per thread: max %.0f, sum over kernels %.0f (statements)\n", n, maxw, sum);
    free(o);
}
