/* kernels.c — the kernel table (`tlc kernels`): see kernels.h for what is counted. */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "source.h"
#include "tune.h"

static double numel(const TlGraph *g, const TlGShape *s, const TlGDimBinding *b, int nb) {
    double n = 1;
    int64_t v;
    for (int i = 0; i < s->rank; i++) {
        if (tl_gdim_eval(g, s->dim[i], b, nb, &v)) return -1;
        n *= (double)v;
    }
    return n;
}

static double node_bytes(const TlGraph *g, int n, const TlGDimBinding *b, int nb) {
    double e = numel(g, &g->nodes[n].shape, b, nb);
    return e < 0 ? -1 : e * (double)tl_interp_storage_size(g->nodes[n].dtype);
}

/* FLOPs of one node (-1: unknown). */
static double node_flops(const TlGraph *g, int id, const TlGDimBinding *b, int nb) {
    const TlGNode *n = &g->nodes[id];
    if (tl_gop_is_elementwise(n->op)) return numel(g, &n->shape, b, nb);
    switch (n->op) {
    case TL_GOP_SUM: case TL_GOP_RMAX: return numel(g, &g->nodes[n->in[0]].shape, b, nb);
    case TL_GOP_SCATTER_ADD: return numel(g, &g->nodes[n->in[0]].shape, b, nb);
    case TL_GOP_CONTRACT: {
        TlContractSpec cs;
        if (tl_contract_parse(n->spec, &cs, NULL, 0)) return 0;
        double f = 1;
        char seen[2 * TL_MAX_RANK];
        int ns = 0;
        for (int t = 0; t < cs.nin; t++)
            for (int j = 0; j < cs.rank[t]; j++) {
                if (memchr(seen, cs.in[t][j], (size_t)ns)) continue;
                seen[ns++] = cs.in[t][j];
                int64_t v;
                if (tl_gdim_eval(g, g->nodes[n->in[t]].shape.dim[j], b, nb, &v)) return -1;
                f *= (double)v;
            }
        return cs.nin == 2 ? 2 * f : f;
    }
    default: return 0;
    }
}

static void add_num(double *acc, double v) { *acc = *acc < 0 || v < 0 ? -1 : *acc + v; }

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* "nn.tl:25-26,30 gpt.tl:17" from the locations of nodes[0..n). */
static void source_lines(const TlGraph *g, const int *nodes, int n, char *out, size_t cap) {
    int *key = malloc(sizeof(int) * 2 * (size_t)(n + 1)), m = 0;
    if (!key) abort();
    for (int i = 0; i < n; i++) {
        TlLoc l = g->nodes[nodes[i]].loc;
        if (!l.file || !l.line) continue;
        int dup = 0;
        for (int j = 0; j < m && !dup; j++) dup = key[2 * j] == l.file && key[2 * j + 1] == l.line;
        if (!dup) key[2 * m] = l.file, key[2 * m + 1] = l.line, m++;
    }
    for (int i = 1; i < m; i++) /* insertion sort by (file, line) */
        for (int j = i; j > 0 && (key[2 * j - 2] > key[2 * j] || (key[2 * j - 2] == key[2 * j] && key[2 * j - 1] > key[2 * j + 1])); j--) {
            int f = key[2 * j], l = key[2 * j + 1];
            key[2 * j] = key[2 * j - 2], key[2 * j + 1] = key[2 * j - 1];
            key[2 * j - 2] = f, key[2 * j - 1] = l;
        }
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < m && len + 24 < cap;) {
        int f = key[2 * i], lo = key[2 * i + 1], hi = lo, j = i + 1;
        int newfile = i == 0 || key[2 * i - 2] != f;
        while (j < m && key[2 * j] == f && key[2 * j + 1] == hi + 1) hi++, j++;
        if (newfile) len += (size_t)snprintf(out + len, cap - len, "%s%s:", i ? " " : "", base_name(tl_source_path(f)));
        else len += (size_t)snprintf(out + len, cap - len, ",");
        if (len >= cap) break;
        len += (size_t)(hi > lo ? snprintf(out + len, cap - len, "%d-%d", lo, hi) : snprintf(out + len, cap - len, "%d", lo));
        i = j;
    }
    if (len >= cap) out[cap - 1] = 0;
    free(key);
}

/* "rmax sub exp sum div (+2 broadcast)": compute ops first, movement counted. */
static void op_list(const TlGraph *g, const int *nodes, int n, char *out, size_t cap) {
    size_t len = 0;
    int moves = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        TlGOp op = g->nodes[nodes[i]].op;
        if (op == TL_GOP_BROADCAST || op == TL_GOP_RESHAPE || op == TL_GOP_PERMUTE || op == TL_GOP_SLICE ||
            op == TL_GOP_CONST || op == TL_GOP_IOTA) {
            if (n > 1) { moves++; continue; }
        }
        if (len + 16 >= cap) { moves++; continue; }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? " " : "", tl_gop_name(op));
    }
    if (moves && len + 24 < cap) snprintf(out + len, cap - len, "%s(+%d movement/const)", len ? " " : "", moves);
}

TlKernelTable *tl_kernels_build(const TlGraph *g, const TlFuseOptions *o, const TlGDimBinding *b, int nb) {
    const char *ep = getenv("TL_GEMM_EPILOGUE"); /* as the lowering reads it (loops.h) */
    const char *rc = getenv("TL_FUSE_RECOMPUTE");
    TlFuseOptions on = {1, 0, ep && strcmp(ep, "0") == 0, rc && strcmp(rc, "0") == 0};
    TlKernelTable *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->g = g;
    t->fusion = tl_fuse(g, o ? o : &on);
    t->fused = o ? o->enabled : 1;
    t->nprims = tl_fuse_primitive_count(g);
    const TlFusion *f = t->fusion;
    t->k = calloc((size_t)f->ngroups + 1, sizeof *t->k);
    int *list = malloc(sizeof(int) * (size_t)(g->nnodes + 1));
    if (!t->k || !list) abort();
    static const char *kinds[] = {"op", "pointwise", "reduce", "row", "gemm"};
    for (int gi = 0; gi < f->ngroups; gi++) {
        const TlFuseGroup *gr = &f->groups[gi];
        TlKernelInfo *k = &t->k[t->n++];
        k->lk = -1, k->seconds = -1;
        const TlGNode *r = &g->nodes[gr->root];
        k->group = gi, k->root = gr->root, k->kind = kinds[gr->kind];
        k->nkern = r->op == TL_GOP_CONCAT ? r->nin : r->op == TL_GOP_SCATTER_ADD ? 2 : 1;
        snprintf(k->name, sizeof k->name, gr->nnodes > 1 ? "tl_k%d_fused_%s" : "tl_k%d_%s", t->nkernels, tl_gop_name(r->op));
        t->nkernels += k->nkern;
        /* members plus the constants recomputed in the group */
        int n = 0;
        for (int j = 0; j < gr->nnodes; j++) {
            const TlGNode *m = &g->nodes[gr->nodes[j]];
            for (int s = 0; s < m->nin; s++) {
                int x = m->in[s];
                if (f->group_of[x] != TL_FUSE_INLINED) continue;
                int dup = 0;
                for (int q = 0; q < n && !dup; q++) dup = list[q] == x;
                if (!dup) list[n++] = x;
            }
            list[n++] = gr->nodes[j];
        }
        k->nops = n;
        op_list(g, list, n, k->ops, sizeof k->ops);
        source_lines(g, list, n, k->source, sizeof k->source);
        tl_gshape_str(g, r->dtype, r->shape, k->shape, sizeof k->shape);
        k->flops = 0;
        for (int j = 0; j < gr->nnodes; j++) add_num(&k->flops, node_flops(g, gr->nodes[j], b, nb));
        k->bytes = node_bytes(g, gr->root, b, nb);
        for (int j = 0; j < gr->ninputs; j++) add_num(&k->bytes, node_bytes(g, gr->inputs[j], b, nb));
        k->intensity = k->flops < 0 || k->bytes <= 0 ? -1 : k->flops / k->bytes;
        add_num(&t->flops, k->flops);
        add_num(&t->bytes, k->bytes);
    }
    free(list);
    return t;
}

static void num(FILE *f, double v) {
    if (v < 0) fprintf(f, " %10s", "?");
    else if (v >= 1e9) fprintf(f, " %9.2fG", v / 1e9);
    else if (v >= 1e6) fprintf(f, " %9.2fM", v / 1e6);
    else if (v >= 1e4) fprintf(f, " %9.1fK", v / 1e3);
    else fprintf(f, " %10.0f", v);
}

void tl_kernels_schedule(TlKernelTable *t, const TlLProgram *lp, const TlSchedSource *src, const TlKSched *sch) {
    for (int i = 0; i < t->n; i++) {
        TlKernelInfo *r = &t->k[i];
        r->lk = -1;
        for (int k = 0; k < lp->nkern && r->lk < 0; k++)
            if (!strcmp(lp->kern[k].name, r->name)) r->lk = k;
        if (r->lk < 0) continue;
        const TlLKernel *K = &lp->kern[r->lk];
        TlSchedSource s = src ? src[r->lk] : K->sched ? TL_SCHED_SOURCE : TL_SCHED_DEFAULT;
        char buf[192];
        if (s == TL_SCHED_SOURCE) snprintf(buf, sizeof buf, "%s", K->sched_text);
        else {
            TlKSched d;
            if (sch) d = sch[r->lk];
            else tl_ksched_default(lp, r->lk, &d);
            tl_ksched_format(&d, buf, sizeof buf);
        }
        if (s == TL_SCHED_DEFAULT && !strcmp(buf, "default")) snprintf(r->sched, sizeof r->sched, "default");
        else snprintf(r->sched, sizeof r->sched, "%s: %s", tl_sched_source_name(s), buf);
    }
}

int tl_kernels_time(TlKernelTable *t, const TlLProgram *lp, const int64_t *syms, const char *cpu, int threads,
                    FILE *progress, char *err, int errn) {
    TlTuneMeasureOpts mo = {.cpu = cpu, .threads = threads, .repeats = 5, .min_sample_s = 1e-3};
    t->timed = 1;
    for (int i = 0; i < t->n; i++) {
        TlKernelInfo *r = &t->k[i];
        r->seconds = -1;
        if (r->lk < 0) continue;
        double total = 0;
        int ok = 1;
        for (int k = r->lk; k < r->lk + r->nkern && k < lp->nkern && ok; k++) {
            if (!tl_kernel_tunable(lp, k)) { ok = 0; break; }
            char e[512];
            TlTuneBench *b = tl_tune_bench_new(t->g, lp, k, syms, &mo, e, sizeof e);
            if (!b) {
                snprintf(err, (size_t)errn, "%s: %s", lp->kern[k].name, e);
                return -1;
            }
            TlKSched s;
            tl_ksched_default(lp, k, &s);
            double sec = 0;
            int rc = tl_tune_bench_measure(b, &s, &sec, e, sizeof e);
            tl_tune_bench_free(b);
            if (rc) {
                snprintf(err, (size_t)errn, "%s: %s", lp->kern[k].name, e);
                return -1;
            }
            total += sec;
        }
        if (ok) r->seconds = total;
        if (progress) {
            fprintf(progress, "\rtiming kernels: %d/%d", i + 1, t->n);
            fflush(progress);
        }
    }
    if (progress) fputs("\n", progress);
    return 0;
}

static void timecol(FILE *f, double s) {
    if (s < 0) fprintf(f, " %10s", "-");
    else if (s < 1e-3) fprintf(f, " %8.2fus", s * 1e6);
    else if (s < 1) fprintf(f, " %8.3fms", s * 1e3);
    else fprintf(f, " %9.3fs", s);
}

void tl_kernels_print(FILE *f, const TlKernelTable *t) {
    if (!t) return;
    fprintf(f, "%-24s %-9s %-22s %10s %10s %7s", "kernel", "kind", "output", "flops", "bytes", "flop/B");
    if (t->timed) fprintf(f, " %10s %8s %8s", "time", "GFLOP/s", "GB/s");
    fprintf(f, "  %-26s %-44s %s\n", "source", "ops", "schedule");
    double total_s = 0;
    for (int i = 0; i < t->n; i++) {
        const TlKernelInfo *k = &t->k[i];
        fprintf(f, "%-24s %-9s %-22s", k->name, k->kind, k->shape);
        num(f, k->flops);
        num(f, k->bytes);
        if (k->intensity < 0) fprintf(f, " %7s", "?");
        else fprintf(f, " %7.2f", k->intensity);
        if (t->timed) {
            timecol(f, k->seconds);
            if (k->seconds > 0 && k->flops >= 0) fprintf(f, " %8.2f", k->flops / k->seconds / 1e9);
            else fprintf(f, " %8s", "-");
            if (k->seconds > 0 && k->bytes >= 0) fprintf(f, " %8.2f", k->bytes / k->seconds / 1e9);
            else fprintf(f, " %8s", "-");
            if (k->seconds > 0) total_s += k->seconds;
        }
        fprintf(f, "  %-26s %-44s %s\n", k->source[0] ? k->source : "-", k->ops, k->sched[0] ? k->sched : "-");
    }
    fprintf(f, "# %d kernels for %d primitives (fusion %s);", t->nkernels, t->nprims, t->fused ? "on" : "off");
    if (t->flops < 0) fputs(" flops ?", f);
    else fprintf(f, " %.4g flops", t->flops);
    if (t->bytes < 0) fputs(", bytes ?", f);
    else fprintf(f, ", %.4g bytes moved", t->bytes);
    if (t->timed) fprintf(f, "; %.4g ms in the measured kernels (each alone, median of 5)", total_s * 1e3);
    fputc('\n', f);
}

void tl_kernels_free(TlKernelTable *t) {
    if (!t) return;
    tl_fuse_free(t->fusion);
    free(t->k);
    free(t);
}
