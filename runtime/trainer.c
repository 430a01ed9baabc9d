/* trainer.c — the training loop (see trainer.h). */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt.h"
#include "data.h"
#include "metrics.h"
#include "philox.h"
#include "plot.h"
#include "progress.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t numel_of(const TlTrainerTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* Initial values from the declaration's initializer, drawn from Philox with key = seed and
 * counter offset = the param's index + 1: the same on every run with the same seed. */
static void init_param(const TlTrainerTensor *p, float *d, int64_t n, uint64_t seed, uint64_t index) {
    double lo = 0, hi = 0;
    switch (p->init) {
    case TL_TINIT_ZEROS:
        memset(d, 0, sizeof(float) * (size_t)n);
        return;
    case TL_TINIT_ONES:
        for (int64_t i = 0; i < n; i++) d[i] = 1.0f;
        return;
    case TL_TINIT_NORMAL:
        for (int64_t i = 0; i < n; i++) d[i] = (float)(p->a + p->b * tl_philox_normal_at(seed, index + 1, (uint64_t)i));
        return;
    case TL_TINIT_UNIFORM:
        lo = p->a;
        hi = p->b;
        break;
    case TL_TINIT_XAVIER:
        hi = sqrt(6.0 / (p->fan_in + p->fan_out));
        lo = -hi;
        break;
    case TL_TINIT_KAIMING:
        hi = sqrt(6.0 / p->fan_in);
        lo = -hi;
        break;
    }
    for (int64_t i = 0; i < n; i++) d[i] = (float)(lo + (hi - lo) * tl_philox_uniform_at(seed, index + 1, (uint64_t)i));
}

static int mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

int tl_trainer_add_flags(TlArgs *a, char *err, size_t errlen) {
    static const struct { const char *name; TlArgKind kind; const char *def, *help; } flags[] = {
        {"resume", TL_ARG_PATH, "", "continue from the newest checkpoint in DIR (or DIR/ckpt)"},
        {"out", TL_ARG_PATH, "", "output directory: checkpoints, metrics.jsonl, loss.svg"},
        {"eval-batches", TL_ARG_INT, "8", "validation batches per evaluation"},
        {"threads", TL_ARG_INT, "0", "worker threads (0: $TL_THREADS, else all cores)"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int have = 0; /* the program declared it itself (e.g. out = arg("out", ...)) */
        for (int k = 0; k < tl_args_count(a); k++)
            if (strcmp(tl_args_name_at(a, k), flags[i].name) == 0) have = 1;
        if (!have && tl_args_add(a, flags[i].name, flags[i].kind, flags[i].def, flags[i].help, err, errlen) != 0) return -1;
    }
    return 0;
}

/* The mean loss over (up to max_batches of) the validation split, in order. */
static double evaluate(const TlTrainerSpec *s, const TlTrainerBackend *be, const TlBatcher *val, float **params,
                       int64_t max_batches, int32_t *x, int32_t *y, char *err, size_t errlen) {
    int64_t nb = tl_data_seq_batches(val);
    if (max_batches > 0 && nb > max_batches) nb = max_batches;
    double total = 0;
    int64_t rows = 0;
    for (int64_t j = 0; j < nb; j++) {
        int valid = tl_data_seq_batch(val, j, x, y);
        if (valid < (int)s->B) continue; /* a partial last batch would bias the mean */
        double loss;
        if (be->eval(be->ctx, x, y, params, &loss, err, errlen) != 0) return NAN;
        total += loss * valid;
        rows += valid;
    }
    return rows ? total / (double)rows : NAN;
}

/* --resume DIR: DIR holds ckpt-*.safetensors, or is an --out directory with a ckpt/. */
static int open_resume(const char *dir, TlCkpt **ck, char *err, size_t errlen) {
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/ckpt", dir);
    struct stat st;
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) dir = sub;
    return tl_ckpt_open_latest(dir, ck, stderr, err, errlen);
}

int tl_trainer_run(const TlTrainerSpec *s, const TlTrainerBackend *be, const TlArgs *args) {
    char err[1024];
    int status = 1;
    const char *out = tl_args_string(args, "out");
    if (!out || !*out) out = s->out && *s->out ? s->out : "out";
    const char *resume = tl_args_string(args, "resume");
    int64_t eval_batches = tl_args_int(args, "eval-batches");
    int threads = (int)tl_args_int(args, "threads");
    if (threads > 0 && be->set_threads) be->set_threads(be->ctx, threads);
    TlCorpus *corpus = NULL;
    TlTokens all = {0}, tr = {0}, va = {0};
    TlBatcher btrain, bval;
    float **params = calloc((size_t)s->nparams + 1, sizeof *params);
    float **states = calloc((size_t)s->nstates + 1, sizeof *states);
    int64_t *pn = calloc((size_t)s->nparams + 1, sizeof *pn), *sn = calloc((size_t)s->nstates + 1, sizeof *sn);
    int64_t accum = s->accum > 1 ? s->accum : 1;
    int32_t *x = calloc((size_t)(accum * s->B * s->T), sizeof(int32_t));
    int32_t *y = calloc((size_t)(accum * s->B * s->T), sizeof(int32_t));
    TlMetrics metrics = {0};
    int metrics_open = 0;
    TlProgress pbar;
    TlCkpt *ck = NULL;
    int tok_ok = 0;
    if (tl_data_load(s->data_path, &corpus, err, sizeof err) == 0) {
        if (be->tokenize) {
            int32_t *ids = NULL;
            int64_t n = 0;
            if (be->tokenize(be->ctx, corpus->bytes, corpus->n, &ids, &n, err, sizeof err) == 0) {
                all.ids = ids;
                all.n = n;
                all.own_ = ids;
                tok_ok = 1;
            }
        } else {
            tok_ok = tl_data_tokens_bytes(corpus, &all, err, sizeof err) == 0;
        }
    }
    if (!tok_ok ||
        tl_data_split(&all, s->val_frac > 0 ? s->val_frac : 0.1, &tr, &va, err, sizeof err) != 0 ||
        tl_data_batcher_init(&btrain, &tr, (int)s->B, (int)s->T, (uint64_t)s->seed, "the training split", err, sizeof err) != 0 ||
        tl_data_batcher_init(&bval, &va, (int)s->B, (int)s->T, (uint64_t)s->seed, "the validation split", err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    int64_t nvalues = 0;
    for (int i = 0; i < s->nparams; i++) {
        pn[i] = numel_of(&s->params[i]);
        params[i] = calloc((size_t)(pn[i] ? pn[i] : 1), sizeof(float));
        init_param(&s->params[i], params[i], pn[i], (uint64_t)s->seed, (uint64_t)i);
        nvalues += pn[i];
    }
    for (int i = 0; i < s->nstates; i++) {
        sn[i] = numel_of(&s->states[i]);
        states[i] = calloc((size_t)(sn[i] ? sn[i] : 1), sizeof(float));
    }
    int64_t start = 0;
    uint64_t data_pos = 0;
    if (resume && *resume) {
        int r = open_resume(resume, &ck, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "error: %s\n", err);
            goto done;
        }
        if (r == 1) {
            printf("no checkpoint in %s yet: starting from the beginning\n", resume);
        } else {
            TlCkptInfo info = tl_ckpt_info(ck);
            for (int i = 0; i < s->nparams + s->nstates; i++) {
                const TlTrainerTensor *t = i < s->nparams ? &s->params[i] : &s->states[i - s->nparams];
                float *d = i < s->nparams ? params[i] : states[i - s->nparams];
                if (tl_ckpt_read(ck, t->name, t->rank, t->shape, d, err, sizeof err) != 0) {
                    fprintf(stderr, "error: %s\n", err);
                    goto done;
                }
            }
            if (info.seed != (uint64_t)s->seed)
                fprintf(stderr, "warning: the checkpoint was made with seed %llu, this run has %lld\n",
                        (unsigned long long)info.seed, (long long)s->seed);
            start = info.step;
            data_pos = info.data_pos;
            printf("resumed from %s at step %lld\n", tl_ckpt_path(ck), (long long)start);
        }
    }
    if (mkdirs(out) != 0) {
        fprintf(stderr, "error: cannot create the output directory %s: %s\n", out, strerror(errno));
        goto done;
    }
    char path[4200], ckdir[4200], svg[4300];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    snprintf(ckdir, sizeof ckdir, "%s/ckpt", out);
    snprintf(svg, sizeof svg, "%s/loss.svg", out);
    if (tl_metrics_open(&metrics, path, start > 0, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    metrics_open = 1;
    printf("training '%s' (%s): %lld params, %lld tokens (%lld train, %lld validation), batch %lldx%lld%s, %lld steps\n",
           s->name, s->backend, (long long)nvalues, (long long)all.n, (long long)tr.n, (long long)va.n, (long long)s->B,
           (long long)s->T, accum > 1 ? " x accumulated micro-batches" : "", (long long)s->steps);
    fflush(stdout);
    if (be->load && be->load(be->ctx, params, states, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    tl_progress_init(&pbar, stderr, s->steps, accum * s->B * s->T, s->log_every > 0 ? s->log_every : 10);
    pbar.start_step = start;
    double t0 = now_s(), tlast = t0;
    int64_t tokens_since = 0;
    for (int64_t step = start; step < s->steps; step++) {
        for (int64_t j = 0; j < accum; j++) tl_data_batch(&btrain, data_pos++, x + j * s->B * s->T, y + j * s->B * s->T);
        double loss, lr;
        int64_t key = s->seed * 1000003 + step; /* the step's Philox key: dropout masks */
        if (be->step(be->ctx, x, y, step, key, s->lr, params, states, &loss, &lr, err, sizeof err) != 0) {
            fprintf(stderr, "error: step %lld: %s\n", (long long)step, err);
            goto done;
        }
        if (!isfinite(loss)) {
            fprintf(stderr, "error: step %lld: the loss is %g; stopping (lower --lr?)\n", (long long)step, loss);
            goto done;
        }
        tokens_since += accum * s->B * s->T;
        int64_t done_steps = step + 1;
        int last = done_steps == s->steps;
        int do_eval = (s->eval_every > 0 && done_steps % s->eval_every == 0) || last;
        int do_log = (s->log_every > 0 && done_steps % s->log_every == 0) || last || do_eval;
        double val = NAN;
        err[0] = 0;
        if (do_eval) {
            val = evaluate(s, be, &bval, params, eval_batches, x, y, err, sizeof err);
            if (isnan(val) && err[0]) {
                fprintf(stderr, "error: evaluation: %s\n", err);
                goto done;
            }
        }
        tl_progress_update(&pbar, done_steps, loss, lr);
        if (do_log) {
            double t = now_s();
            double tps = t > tlast ? tokens_since / (t - tlast) : 0;
            tlast = t;
            tokens_since = 0;
            TlMetric f[5] = {TL_METRIC_NUM("step", done_steps), TL_METRIC_NUM("loss", loss), TL_METRIC_NUM("lr", lr),
                             TL_METRIC_NUM("tokens_per_s", tps), TL_METRIC_NUM("val_loss", val)};
            if (tl_metrics_write(&metrics, f, isnan(val) ? 4 : 5, err, sizeof err) != 0) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
        }
        if (!isnan(val)) tl_progress_note(&pbar, "step %lld: val_loss %.4f", (long long)done_steps, val);
        if ((s->checkpoint_every > 0 && done_steps % s->checkpoint_every == 0) || last) {
            if (be->store && be->store(be->ctx, params, states, err, sizeof err) != 0) {
                fprintf(stderr, "error: step %lld: fetching the params for the checkpoint: %s\n", (long long)done_steps, err);
                goto done;
            }
            int nt = s->nparams + s->nstates;
            TlCkptTensor *ts = calloc((size_t)nt + 1, sizeof *ts);
            for (int i = 0; i < nt; i++) {
                const TlTrainerTensor *t = i < s->nparams ? &s->params[i] : &s->states[i - s->nparams];
                ts[i].name = t->name;
                ts[i].rank = t->rank;
                memcpy(ts[i].shape, t->shape, sizeof(int64_t) * (size_t)t->rank);
                ts[i].data = i < s->nparams ? params[i] : states[i - s->nparams];
            }
            TlCkptInfo info = {.step = done_steps, .seed = (uint64_t)s->seed, .data_pos = data_pos, .rng_counter = (uint64_t)done_steps};
            TlStMeta meta[1] = {{"train", s->name}};
            int r = tl_ckpt_save(ckdir, &info, ts, nt, meta, 1, 3, err, sizeof err);
            free(ts);
            if (r != 0) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
        }
    }
    tl_progress_finish(&pbar);
    tl_metrics_close(&metrics);
    metrics_open = 0;
    /* the loss curves, from the metrics file (a resumed run plots the whole history) */
    double *xs[2] = {0}, *ys[2] = {0};
    int ns[2] = {0, 0};
    tl_metrics_series(path, "step", "loss", NULL, NULL, &xs[0], &ys[0], &ns[0], err, sizeof err);
    tl_metrics_series(path, "step", "val_loss", NULL, NULL, &xs[1], &ys[1], &ns[1], err, sizeof err);
    TlPlotSeries ser[2] = {{"train loss", xs[0], ys[0], ns[0]}, {"validation loss", xs[1], ys[1], ns[1]}};
    TlPlotOpts po = {.title = s->name, .xlabel = "step", .ylabel = "loss"};
    if (ns[0] > 0 && tl_plot_svg(svg, &po, ser, ns[1] > 0 ? 2 : 1, err, sizeof err) != 0) fprintf(stderr, "warning: %s\n", err);
    for (int k = 0; k < 2; k++) {
        free(xs[k]);
        free(ys[k]);
    }
    /* and the throughput */
    char svg2[4300];
    snprintf(svg2, sizeof svg2, "%s/tokens_per_s.svg", out);
    double *tx = NULL, *ty = NULL;
    int tn = 0;
    tl_metrics_series(path, "step", "tokens_per_s", NULL, NULL, &tx, &ty, &tn, err, sizeof err);
    TlPlotSeries ts1 = {"tokens/s", tx, ty, tn};
    TlPlotOpts po2 = {.title = s->name, .xlabel = "step", .ylabel = "tokens per second"};
    if (tn > 0 && tl_plot_svg(svg2, &po2, &ts1, 1, err, sizeof err) != 0) fprintf(stderr, "warning: %s\n", err);
    free(tx);
    free(ty);
    printf("done: %lld steps in %.1f s; checkpoints in %s, metrics in %s, plots in %s and %s\n",
           (long long)(s->steps - start), now_s() - t0, ckdir, path, svg, svg2);
    status = 0;
done:
    if (metrics_open) tl_metrics_close(&metrics);
    tl_ckpt_close(ck);
    for (int i = 0; i < s->nparams; i++) free(params[i]);
    for (int i = 0; i < s->nstates; i++) free(states[i]);
    free(params);
    free(states);
    free(pn);
    free(sn);
    free(x);
    free(y);
    tl_data_tokens_free(&all);
    tl_data_free(corpus);
    return status;
}
