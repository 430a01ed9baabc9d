/* tune_gpu.c — `tlc tune --target cuda`: the launch block of each flat kernel, measured on
 * the GPU through the tl_gpu_* API (targets/nvptx/nvptx.h). docs/tuning.md.
 *
 * The space is small on purpose: a flat kernel (a grid-stride loop over its parallel
 * extent) runs with 32, 64, 128 or 256 threads per block (TlKSched.gpu_block; 256 is the
 * back end's default and its maxntidx). GEMMs keep their 2-D tiling and row reductions
 * their warp per row. Search: every candidate is the whole program compiled with every
 * searched kernel at one block size (a sweep over the four sizes), run on deterministic inputs, its outputs compared with the default's (the same
 * tolerance as on the CPU), each kernel timed alone with CUDA events (the executor's
 * profile). Each kernel takes its fastest size when it beats the default by 2%; the
 * combination is checked again and timed as a whole program (median of 5 samples of >= 2 ms
 * of synchronized reruns) and kept only when the program is faster. Entries go to the tuning
 * cache under the GPU's target key ("cuda:NAME:sm_XY"), where `tlc run --target cuda` finds them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cuda.h"
#include "nvptx/nvptx.h"
#include "plot.h"
#include "progress.h"
#include "schedule_cache.h"
#include "tune.h"

void tl_schedule_gpu_target_key(char *buf, size_t n) {
    int major = 0, minor = 0;
    tl_cuda_capability(&major, &minor);
    const char *name = tl_cuda_device_name();
    snprintf(buf, n, "cuda:%s:sm_%d%d", name ? name : "?", major, minor);
}

typedef struct GTuner {
    const TlGraph *g;
    const TlTuneBinding *bind;
    int nbind;
    double **ref;   /* reference outputs (the default's) */
    int64_t *refn;
    FILE *log;
    int tried;
} GTuner;

static int set_inputs(GTuner *T, TlGpuProgram *gp) {
    const TlGraph *g = T->g;
    TlGDimBinding b[64];
    int nb = T->nbind < 64 ? T->nbind : 64;
    for (int i = 0; i < nb; i++) b[i].name = T->bind[i].name, b[i].value = T->bind[i].value;
    for (int i = 0; i < T->nbind; i++) tl_gpu_bind(gp, T->bind[i].name, T->bind[i].value);
    for (int n = 0; n < g->nnodes; n++) {
        const TlGNode *x = &g->nodes[n];
        if (x->op != TL_GOP_INPUT && x->op != TL_GOP_PARAM) continue;
        int64_t numel = 1, d;
        for (int i = 0; i < x->shape.rank; i++) {
            if (tl_gdim_eval(g, x->shape.dim[i], b, nb, &d)) return -1;
            numel *= d;
        }
        double *v = malloc(sizeof(double) * (size_t)(numel > 0 ? numel : 1));
        if (!v) abort();
        int fl = x->dtype == TL_F32 || x->dtype == TL_F64 || x->dtype == TL_BF16 || x->dtype == TL_F16;
        for (int64_t i = 0; i < numel; i++) v[i] = fl ? 0.05 + 0.9 * (double)((i * 7919 + n) % 2003) / 2003.0 : (double)((i * 7) % 5);
        int r = tl_gpu_set(gp, n, v, numel);
        free(v);
        if (r) return -1;
    }
    return 0;
}

/* The program with blocks[k] (> 0) as kernel k's launch block. NULL with a message. */
static TlGpuProgram *compile_with(GTuner *T, const int *blocks, char *err, int errn) {
    TlLProgram *lp = tl_loops_lower(T->g, err, errn);
    if (!lp) return NULL;
    for (int k = 0; k < lp->nkern; k++)
        if (blocks[k] > 0) lp->kern[k].gpu_block = blocks[k];
    TlGpuProgram *gp = tl_gpu_compile_loops(T->g, lp, NULL, err, errn);
    if (gp && (set_inputs(T, gp) || tl_gpu_run(gp))) {
        snprintf(err, (size_t)errn, "%s", tl_gpu_error(gp) ? tl_gpu_error(gp) : "cannot set the inputs");
        tl_gpu_free(gp);
        return NULL;
    }
    return gp;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds per run over 5 samples, each >= 2 ms of synchronized reruns. */
static double time_program(TlGpuProgram *gp) {
    char err[256];
    if (tl_gpu_rerun(gp) || tl_cuda_sync(err, sizeof err)) return INFINITY; /* warm-up */
    double t0 = tl_progress_now();
    if (tl_gpu_rerun(gp) || tl_cuda_sync(err, sizeof err)) return INFINITY;
    double one = tl_progress_now() - t0;
    int64_t R = one > 0 ? (int64_t)(2e-3 / one) + 1 : 1;
    if (R > 10000) R = 10000;
    double s[5];
    for (int i = 0; i < 5; i++) {
        t0 = tl_progress_now();
        for (int64_t r = 0; r < R; r++)
            if (tl_gpu_rerun(gp)) return INFINITY;
        if (tl_cuda_sync(err, sizeof err)) return INFINITY;
        s[i] = (tl_progress_now() - t0) / (double)R;
    }
    qsort(s, 5, sizeof *s, cmp_d);
    return s[2];
}

/* 0 when gp's outputs match the reference (stored by the first call), else 1 with err. */
static int check_outputs(GTuner *T, TlGpuProgram *gp, char *err, int errn) {
    const TlGraph *g = T->g;
    int first = T->ref == NULL;
    if (first) {
        T->ref = calloc((size_t)g->noutputs + 1, sizeof *T->ref);
        T->refn = calloc((size_t)g->noutputs + 1, sizeof *T->refn);
        if (!T->ref || !T->refn) abort();
    }
    for (int o = 0; o < g->noutputs; o++) {
        const TlTensor *t = tl_gpu_output(gp, o);
        if (!t) {
            snprintf(err, (size_t)errn, "output %d cannot be read back", o);
            return 1;
        }
        if (first) {
            T->ref[o] = malloc(sizeof(double) * (size_t)(t->numel + 1));
            if (!T->ref[o]) abort();
            T->refn[o] = t->numel;
            for (int64_t i = 0; i < t->numel; i++) T->ref[o][i] = tl_tensor_get(t, i);
            continue;
        }
        if (t->numel != T->refn[o]) {
            snprintf(err, (size_t)errn, "output %d has %lld elements, not %lld", o, (long long)t->numel, (long long)T->refn[o]);
            return 1;
        }
        double maxb = 0;
        for (int64_t i = 0; i < t->numel; i++) maxb = fmax(maxb, fabs(T->ref[o][i]));
        for (int64_t i = 0; i < t->numel; i++) {
            double x = tl_tensor_get(t, i), y = T->ref[o][i];
            if (!(fabs(x - y) <= 1e-5 * fmax(1, maxb) + 1e-4 * fabs(y)) && !(x == y)) {
                snprintf(err, (size_t)errn, "output %d differs at %lld: %g, the default gives %g", o, (long long)i, x, y);
                return 1;
            }
        }
    }
    return 0;
}

/* One candidate: compile, check, time. INFINITY when it fails or differs. */
static double try_blocks(GTuner *T, const TlLProgram *lp, const int *blocks, int k, const char *phase, double best) {
    char err[512] = "";
    TlGpuProgram *gp = compile_with(T, blocks, err, sizeof err);
    double t = INFINITY;
    const char *status = "error";
    if (gp) {
        int bad = check_outputs(T, gp, err, sizeof err);
        status = bad ? "mismatch" : "ok";
        if (!bad) t = time_program(gp);
        tl_gpu_free(gp);
    }
    T->tried++;
    if (T->log) {
        fprintf(T->log, "{\"target\":\"cuda\",\"kernel\":\"%s\",\"phase\":\"%s\",\"gpu_block\":%d,\"status\":\"%s\",\"time_s\":%.9g,"
                        "\"best_s\":%.9g}\n",
                k >= 0 ? lp->kern[k].name : "program", phase, k >= 0 ? (blocks[k] ? blocks[k] : 256) : 256, status,
                isfinite(t) ? t : -1.0, isfinite(fmin(best, t)) ? fmin(best, t) : -1.0);
        fflush(T->log);
    }
    if (!gp || strcmp(status, "ok") != 0) fprintf(stderr, "tl tune: %s: gpu_block %d: %s: %s\n", k >= 0 ? lp->kern[k].name : "default", k >= 0 ? blocks[k] : 256, status, err);
    return t;
}

static void fmt_time(double s, char *b, size_t n) {
    if (!isfinite(s)) snprintf(b, n, "-");
    else if (s < 1e-3) snprintf(b, n, "%.1f us", s * 1e6);
    else snprintf(b, n, "%.3f ms", s * 1e3);
}

int tl_tune_graph_gpu(const TlGraph *g, const TlTuneBinding *bind, int nbind, const TlTuneOptions *o, char *err, int errn) {
    FILE *out = o->out ? o->out : stdout;
    double budget = o->budget_s > 0 ? o->budget_s : 60, t_end = tl_progress_now() + budget;
    TlLProgram *lp = tl_loops_lower(g, err, errn);
    if (!lp) return -1;
    int64_t *syms = calloc((size_t)lp->nsyms + 1, sizeof *syms);
    int *blocks = calloc((size_t)lp->nkern + 1, sizeof *blocks), *cand = calloc((size_t)lp->nkern + 1, sizeof *cand);
    int *cached = calloc((size_t)lp->nkern + 1, sizeof *cached);
    double *curve = calloc(4 * (size_t)lp->nkern + 8, sizeof *curve), *xs = calloc(4 * (size_t)lp->nkern + 8, sizeof *xs);
    if (!syms || !blocks || !cand || !cached || !curve || !xs) abort();
    int rc = -1, ncurve = 0;
    GTuner T = {g, bind, nbind, NULL, NULL, NULL, 0};
    for (int s = 0; s < lp->nsyms; s++) {
        int found = 0;
        for (int b = 0; b < nbind; b++)
            if (!strcmp(bind[b].name, lp->syms[s])) syms[s] = bind[b].value, found = 1;
        if (!found) {
            snprintf(err, (size_t)errn, "dim symbol '%s' has no value: give it with --dims %s=N", lp->syms[s], lp->syms[s]);
            goto done;
        }
    }
    char cdir[1024], target[256];
    tl_schedule_cache_dir(o->cache_dir, cdir, sizeof cdir);
    tl_schedule_gpu_target_key(target, sizeof target);
    const char *outd = o->out_dir ? o->out_dir : "tune-out";
    /* which kernels launch flat (planned without compiling, for the device's arch), and
     * which of them the cache already has: with all of them cached nothing is compiled */
    int major = 0, minor = 0;
    tl_cuda_capability(&major, &minor);
    char arch[16];
    snprintf(arch, sizeof arch, "sm_%d%d", major > 0 ? major : 8, major > 0 ? minor : 0);
    TlGpuKernelStat *st = calloc((size_t)lp->nkern + 1, sizeof *st);
    if (!st) abort();
    tl_nvptx_kernel_stats(lp, &(TlNvptxOptions){.arch = arch, .opt_level = 3}, syms, st);
    int flat[4096], nflat = 0, found = 0;
    for (int k = 0; k < lp->nkern && nflat < 4096; k++) {
        if (o->kernel && strcmp(o->kernel, lp->kern[k].name)) continue;
        found = 1;
        if (lp->kern[k].sched) {
            fprintf(out, "%s: schedule from the source (%s), not tuned\n", lp->kern[k].name, lp->kern[k].sched_text);
            continue;
        }
        if (st[k].launch != TL_GPU_LAUNCH_FLAT || lp->kern[k].par_extent < 0) continue;
        char key[32];
        TlSchedEntry e;
        if (tl_schedule_cache_key(lp, k, syms, target, key, sizeof key, NULL, 0)) continue;
        if (!o->force && tl_schedule_cache_get(cdir, key, &e) == 0) {
            cached[k] = 1, blocks[k] = e.sched.gpu_block;
            continue;
        }
        flat[nflat++] = k;
    }
    free(st);
    if (nflat > 0) { /* the default program: the reference outputs */
        TlGpuProgram *gp0 = compile_with(&T, blocks, err, errn);
        if (!gp0) goto done;
        char cerr[256];
        if (check_outputs(&T, gp0, cerr, sizeof cerr)) {
            snprintf(err, (size_t)errn, "%s", cerr);
            tl_gpu_free(gp0);
            goto done;
        }
        tl_gpu_free(gp0);
    }
    if (o->kernel && !found) {
        snprintf(err, (size_t)errn, "no kernel named '%s' (see tlc kernels)", o->kernel);
        goto done;
    }
    if (nflat > 0) {
        mkdir(outd, 0755);
        char path[1200];
        snprintf(path, sizeof path, "%s/tune.jsonl", outd);
        T.log = fopen(path, "a");
    }
    double t_default = nflat ? try_blocks(&T, lp, blocks, -1, "default", INFINITY) : INFINITY, t_best = t_default;
    if (nflat) xs[ncurve] = T.tried, curve[ncurve++] = t_best * 1e6;
    /* The sweep: the whole program once per block size with every searched kernel at that
     * size, outputs checked, each kernel timed alone by the executor's CUDA-event profile
     * (mean of its launches over a few reruns); each kernel then takes its fastest size when
     * that beats the default by 2%, and the combination is checked and timed as a whole
     * (kept only when the program is faster). 1 + 3 + 1 compilations whatever the number of
     * kernels, so the search ends inside the budget and a second tune finds every entry. */
    static const int sizes[] = {256, 128, 64, 32};
    enum { NS = 4 };
    double *kms = calloc((size_t)NS * (size_t)lp->nkern + 1, sizeof *kms);
    int ok_size[NS] = {0}, swept = 0;
    if (!kms) abort();
    TlProgress pr;
    tl_progress_init(&pr, stderr, NS, 0, 1);
    for (int s = 0; s < NS && nflat > 0 && isfinite(t_default); s++) {
        if (s > 0 && tl_progress_now() >= t_end) break;
        memcpy(cand, blocks, sizeof *cand * (size_t)lp->nkern);
        for (int i = 0; i < nflat; i++) cand[flat[i]] = sizes[s] == 256 ? 0 : sizes[s];
        char cerr2[512] = "";
        TlGpuProgram *gp = compile_with(&T, cand, cerr2, sizeof cerr2);
        int good = gp && check_outputs(&T, gp, cerr2, sizeof cerr2) == 0;
        double tp = good ? time_program(gp) : INFINITY;
        if (good && tl_gpu_profile(gp, 1) == 0) {
            for (int r = 0; r < 5 && good; r++) good = tl_gpu_rerun(gp) == 0;
            good = good && tl_gpu_kernel_ms(gp, kms + (size_t)s * (size_t)lp->nkern) == 0;
        } else good = 0;
        if (!good) fprintf(stderr, "tl tune: gpu_block %d for every flat kernel: %s\n", sizes[s], cerr2[0] ? cerr2 : "not measured");
        if (gp) tl_gpu_free(gp);
        T.tried++, ok_size[s] = good, swept = s + 1;
        if (good && tp < t_best) t_best = tp;
        xs[ncurve] = T.tried, curve[ncurve++] = t_best * 1e6;
        for (int i = 0; good && T.log && i < nflat; i++)
            fprintf(T.log, "{\"target\":\"cuda\",\"kernel\":\"%s\",\"phase\":\"sweep\",\"gpu_block\":%d,\"status\":\"ok\",\"time_s\":%.9g}\n",
                    lp->kern[flat[i]].name, sizes[s], kms[(size_t)s * (size_t)lp->nkern + (size_t)flat[i]] * 1e-3);
        if (T.log) fflush(T.log);
        tl_progress_update(&pr, s + 1, NAN, NAN);
    }
    tl_progress_finish(&pr);
    t_best = t_default;
    if (swept == NS && ok_size[0]) {
        memcpy(cand, blocks, sizeof *cand * (size_t)lp->nkern);
        int changed = 0;
        for (int i = 0; i < nflat; i++) {
            int k = flat[i], best = 0;
            for (int s = 1; s < NS; s++)
                if (ok_size[s] && kms[(size_t)s * (size_t)lp->nkern + (size_t)k] < 0.98 * kms[(size_t)best * (size_t)lp->nkern + (size_t)k]) best = s;
            cand[k] = best ? sizes[best] : 0, changed += best != 0;
        }
        double t = changed ? try_blocks(&T, lp, cand, -1, "combined", t_default) : INFINITY;
        if (changed) xs[ncurve] = T.tried, curve[ncurve++] = fmin(t, t_default) * 1e6;
        if (t < t_default) memcpy(blocks, cand, sizeof *cand * (size_t)lp->nkern), t_best = t;
        /* an entry for every searched kernel, the default's too, so none is searched again */
        for (int i = 0; i < nflat; i++) {
            int k = flat[i];
            TlSchedEntry e = {0};
            tl_schedule_cache_key(lp, k, syms, target, e.key, sizeof e.key, e.shape, sizeof e.shape);
            snprintf(e.kernel, sizeof e.kernel, "%s", lp->kern[k].name);
            snprintf(e.target, sizeof e.target, "%.159s", target);
            tl_ksched_default(lp, k, &e.sched);
            e.sched.gpu_block = blocks[k] == 256 ? 0 : blocks[k];
            e.default_s = kms[(size_t)k] * 1e-3;
            e.tuned_s = kms[(size_t)(blocks[k] == 128 ? 1 : blocks[k] == 64 ? 2 : blocks[k] == 32 ? 3 : 0) * (size_t)lp->nkern + (size_t)k] * 1e-3;
            e.candidates = NS;
            char perr[512];
            if (tl_schedule_cache_put(cdir, &e, perr, sizeof perr)) fprintf(stderr, "tl tune: %s\n", perr);
        }
    } else if (nflat > 0)
        fprintf(out, "the budget ended after %d of %d block sizes: no cache entries written (give a larger --budget)\n", swept, NS);
    free(kms);
    fprintf(out, "%-28s %10s %10s\n", "kernel (flat launch)", "block", "");
    for (int k = 0; k < lp->nkern; k++) {
        int searched = 0;
        for (int i = 0; i < nflat; i++) searched |= flat[i] == k;
        if (!searched && !cached[k]) continue;
        fprintf(out, "%-28s %10d %s\n", lp->kern[k].name, blocks[k] ? blocks[k] : 256, cached[k] ? "(cached)" : "");
    }
    char a[32], b[32];
    fmt_time(t_default, a, sizeof a), fmt_time(t_best, b, sizeof b);
    if (nflat)
        fprintf(out, "program on %s: default %s, tuned %s: %.3fx (%d candidates, outputs checked)\n", target, a, b,
                isfinite(t_best) && t_best > 0 ? t_default / t_best : 1.0, T.tried);
    else
        fprintf(out, "program on %s: every flat kernel has a cache entry (or none is flat): nothing to measure\n", target);
    if (ncurve > 1) {
        char svg[1200], perr[512];
        snprintf(svg, sizeof svg, "%s/tune.svg", outd);
        TlPlotSeries ser = {"program", xs, curve, ncurve};
        TlPlotOpts po = {.title = "tlc tune --target cuda: best program time", .xlabel = "candidates tried",
                         .ylabel = "best time (us)", .log_y = 1};
        if (tl_plot_svg(svg, &po, &ser, 1, perr, sizeof perr)) fprintf(stderr, "tl tune: %s\n", perr);
        else fprintf(out, "log: %s/tune.jsonl  plot: %s\n", outd, svg);
    }
    fprintf(out, "cache: %s\n", cdir);
    rc = 0;
done:
    if (T.log) fclose(T.log);
    for (int i = 0; T.ref && i < g->noutputs; i++) free(T.ref[i]);
    free(T.ref), free(T.refn);
    free(syms), free(blocks), free(cand), free(cached), free(curve), free(xs);
    tl_loops_free(lp);
    return rc;
}
