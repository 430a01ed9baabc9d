/* train.c — the training loop of a `train` block: batches, steps, logging, evaluation,
 * checkpoints and resume. The step itself is one run of the plan's step graph, through an
 * executor: the reference interpreter here (`tlc run --interp`). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt.h"
#include "cpu/cpu.h"
#include "data.h"
#include "diag.h"
#include "interp.h"
#include "metrics.h"
#include "philox.h"
#include "plot.h"
#include "progress.h"
#include "train.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t const_numel(const TlGraph *g, TlGShape s, int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++) {
        int64_t v = 0;
        if (!tl_gdim_is_const(g, s.dim[i], &v)) return -1;
        if (dims) dims[i] = v;
        n *= v;
    }
    return n;
}

/* The executor of a graph: the reference interpreter or the JIT-compiled CPU code, behind
 * one small interface (both store values in the interpreter's TlTensor format). */
typedef struct Exec {
    TlInterp *it;
    TlCpuProgram *cp;
} Exec;

static int ex_init(Exec *e, const TlGraph *g, int interp, int threads, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    if (interp) {
        e->it = tl_interp_new(g);
        return e->it ? 0 : -1;
    }
    e->cp = tl_cpu_compile(g, NULL, err, (int)errlen);
    if (!e->cp) return -1;
    if (threads > 0) tl_cpu_set_threads(e->cp, threads);
    return 0;
}
static void ex_free(Exec *e) {
    if (e->it) tl_interp_free(e->it);
    if (e->cp) tl_cpu_free(e->cp);
}
static int ex_set_raw(Exec *e, int node, const void *data, int64_t n) {
    return e->it ? tl_interp_set_raw(e->it, node, data, n) : tl_cpu_set_raw(e->cp, node, data, n);
}
static int ex_set(Exec *e, int node, const double *v, int64_t n) {
    return e->it ? tl_interp_set(e->it, node, v, n) : tl_cpu_set(e->cp, node, v, n);
}
static int ex_run(Exec *e) { return e->it ? tl_interp_run(e->it) : tl_cpu_run(e->cp); }
static const char *ex_error(Exec *e) { return e->it ? tl_interp_error(e->it) : tl_cpu_error(e->cp); }
static const TlTensor *ex_output(Exec *e, int k) { return e->it ? tl_interp_output(e->it, k) : tl_cpu_output(e->cp, k); }

typedef struct Buf {
    const char *name;
    int rank;
    int64_t shape[TL_MAX_RANK];
    int64_t n;
    float *data;
} Buf;

static int make_buf(const TlGraph *g, int node, const char *name, Buf *b) {
    b->name = name;
    b->rank = g->nodes[node].shape.rank;
    b->n = const_numel(g, g->nodes[node].shape, b->shape);
    if (b->n < 0) return -1;
    b->data = calloc((size_t)(b->n ? b->n : 1), sizeof(float));
    return b->data ? 0 : -1;
}

/* Initial values from the declaration's initializer, drawn from Philox with key = seed and
 * counter offset = the param's index + 1: the same on every run with the same seed. */
static void init_param(const TlParamInfo *p, Buf *b, uint64_t seed, uint64_t index) {
    double lo = 0, hi = 0;
    switch (p->init) {
    case TL_INIT_ZEROS:
        memset(b->data, 0, sizeof(float) * (size_t)b->n);
        return;
    case TL_INIT_ONES:
        for (int64_t i = 0; i < b->n; i++) b->data[i] = 1.0f;
        return;
    case TL_INIT_NORMAL:
        for (int64_t i = 0; i < b->n; i++) b->data[i] = (float)(p->a + p->b * tl_philox_normal_at(seed, index + 1, (uint64_t)i));
        return;
    case TL_INIT_UNIFORM:
        lo = p->a;
        hi = p->b;
        break;
    case TL_INIT_XAVIER:
        hi = sqrt(6.0 / (p->fan_in + p->fan_out));
        lo = -hi;
        break;
    case TL_INIT_KAIMING:
        hi = sqrt(6.0 / p->fan_in);
        lo = -hi;
        break;
    default:
        break;
    }
    for (int64_t i = 0; i < b->n; i++) b->data[i] = (float)(lo + (hi - lo) * tl_philox_uniform_at(seed, index + 1, (uint64_t)i));
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

/* The mean loss over (up to max_batches of) the validation split, in order. */
static double evaluate(const TlTrainPlan *p, Exec *it, const TlBatcher *val, Buf *params, int64_t max_batches,
                       int32_t *x, int32_t *y, char *err, size_t errlen) {
    for (int i = 0; i < p->nparams; i++) {
        int node = tl_graph_find(p->eval, TL_GOP_PARAM, p->params[i].name);
        if (node >= 0) ex_set_raw(it, node, params[i].data, params[i].n);
    }
    if (p->eseed >= 0) {
        int64_t s = 0;
        ex_set_raw(it, p->eseed, &s, 1);
    }
    int64_t nb = tl_data_seq_batches(val);
    if (max_batches > 0 && nb > max_batches) nb = max_batches;
    double total = 0;
    int64_t rows = 0;
    for (int64_t j = 0; j < nb; j++) {
        int valid = tl_data_seq_batch(val, j, x, y);
        if (valid < (int)p->B) continue; /* a partial last batch would bias the mean */
        ex_set_raw(it, p->ex, x, p->B * p->T);
        ex_set_raw(it, p->ey, y, p->B * p->T);
        if (ex_run(it) != 0) {
            snprintf(err, errlen, "evaluation: %s", ex_error(it));
            return NAN;
        }
        total += tl_tensor_get(ex_output(it, 0), 0) * valid;
        rows += valid;
    }
    return rows ? total / (double)rows : NAN;
}

int tl_train_main(TlProgram *prog, const char *train_name, int argc, char **argv, int interp) {
    TlNode *train = tl_train_find(prog, train_name);
    if (!train) {
        fprintf(stderr, "tlc: %s\n", train_name ? "no train block of that name" : "the program has no train block (or several: name one with --train NAME)");
        return 1;
    }
    char err[1024], summary[256];
    snprintf(summary, sizeof summary, "Train '%s' (tl%s).", train->name, interp ? ", through the reference interpreter" : "");
    TlArgs *args = tl_args_new(argc > 0 ? argv[0] : train->name, summary);
    if (tl_train_register_args(train, args) < 0) {
        tl_args_free(args);
        return 1;
    }
    tl_args_add(args, "resume", TL_ARG_PATH, "", "continue from the newest checkpoint in this directory", err, sizeof err);
    tl_args_add(args, "eval-batches", TL_ARG_INT, "8", "validation batches per evaluation", err, sizeof err);
    tl_args_add(args, "out", TL_ARG_PATH, "", "output directory (checkpoints, metrics.jsonl)", err, sizeof err);
    tl_args_add(args, "threads", TL_ARG_INT, "0", "worker threads (0: TL_THREADS, else all cores)", err, sizeof err);
    switch (tl_args_parse(args, argc, argv, stdout, err, sizeof err)) {
    case TL_ARGS_HELP:
        tl_args_free(args);
        return 0;
    case TL_ARGS_ERROR:
        fprintf(stderr, "%s: %s\n", argc > 0 ? argv[0] : "train", err);
        tl_args_free(args);
        return 2;
    }
    TlTrainPlan *p = tl_train_plan(prog, train, args);
    if (!p) {
        tl_args_free(args);
        return 1;
    }
    int status = 1;
    const char *out = tl_args_string(args, "out");
    if (!out || !*out) out = p->out;
    const char *resume = tl_args_string(args, "resume");
    int64_t eval_batches = tl_args_int(args, "eval-batches");
    TlCorpus *corpus = NULL;
    TlTokens all = {0}, tr = {0}, va = {0};
    TlBatcher btrain, bval;
    Buf *params = calloc((size_t)p->nparams + 1, sizeof *params);
    Buf *states = calloc((size_t)p->nstates + 1, sizeof *states);
    int32_t *x = calloc((size_t)(p->B * p->T), sizeof(int32_t)), *y = calloc((size_t)(p->B * p->T), sizeof(int32_t));
    Exec it = {0}, eit = {0};
    int exec_ready = 0;
    TlMetrics metrics = {0};
    int metrics_open = 0;
    TlProgress pbar;
    TlCkpt *ck = NULL;
    if (tl_data_load(p->data_path, &corpus, err, sizeof err) != 0 || tl_data_tokens_bytes(corpus, &all, err, sizeof err) != 0 ||
        tl_data_split(&all, 0.1, &tr, &va, err, sizeof err) != 0 ||
        tl_data_batcher_init(&btrain, &tr, (int)p->B, (int)p->T, (uint64_t)p->seed, "the training split", err, sizeof err) != 0 ||
        tl_data_batcher_init(&bval, &va, (int)p->B, (int)p->T, (uint64_t)p->seed, "the validation split", err, sizeof err) != 0) {
        fprintf(stderr, "tlc: %s\n", err);
        goto done;
    }
    int64_t nparam_values = 0;
    for (int i = 0; i < p->nparams; i++) {
        if (make_buf(p->step, p->params[i].node, p->params[i].name, &params[i]) < 0) {
            fprintf(stderr, "tlc: param %s: its shape must be known when training starts\n", p->params[i].name);
            goto done;
        }
        init_param(&p->params[i], &params[i], (uint64_t)p->seed, (uint64_t)i);
        nparam_values += params[i].n;
    }
    for (int i = 0; i < p->nstates; i++)
        if (make_buf(p->step, p->states[i].input, p->states[i].name, &states[i]) < 0) goto done;
    int64_t start = 0;
    uint64_t data_pos = 0;
    if (resume && *resume) {
        int r = tl_ckpt_open_latest(resume, &ck, stderr, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "tlc: %s\n", err);
            goto done;
        }
        if (r == 1) {
            printf("no checkpoint in %s yet: starting from the beginning\n", resume);
        } else {
            TlCkptInfo info = tl_ckpt_info(ck);
            for (int i = 0; i < p->nparams; i++)
                if (tl_ckpt_read(ck, params[i].name, params[i].rank, params[i].shape, params[i].data, err, sizeof err) != 0) {
                    fprintf(stderr, "tlc: %s\n", err);
                    goto done;
                }
            for (int i = 0; i < p->nstates; i++)
                if (tl_ckpt_read(ck, states[i].name, states[i].rank, states[i].shape, states[i].data, err, sizeof err) != 0) {
                    fprintf(stderr, "tlc: %s\n", err);
                    goto done;
                }
            start = info.step;
            data_pos = info.data_pos;
            printf("resumed from %s at step %lld\n", tl_ckpt_path(ck), (long long)start);
        }
    }
    if (mkdirs(out) != 0) {
        fprintf(stderr, "tlc: cannot create the output directory %s: %s\n", out, strerror(errno));
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    if (tl_metrics_open(&metrics, path, start > 0, err, sizeof err) != 0) {
        fprintf(stderr, "tlc: %s\n", err);
        goto done;
    }
    metrics_open = 1;
    double tc = now_s();
    int threads = (int)tl_args_int(args, "threads");
    if (ex_init(&it, p->step, interp, threads, err, sizeof err) != 0 || ex_init(&eit, p->eval, interp, threads, err, sizeof err) != 0) {
        fprintf(stderr, "tlc: compiling the training step: %s\n", err);
        ex_free(&it);
        goto done;
    }
    exec_ready = 1;
    if (!interp) printf("compiled the step (%d graph nodes) and the evaluation in %.1f s\n", p->step->nnodes, now_s() - tc);
    printf("training '%s': %lld params, %zu tokens (%lld train, %lld validation), batch %lldx%lld, %lld steps\n",
           train->name, (long long)nparam_values, (size_t)all.n, (long long)tr.n, (long long)va.n, (long long)p->B,
           (long long)p->T, (long long)p->steps);
    tl_progress_init(&pbar, stderr, p->steps, p->B * p->T, p->log_every > 0 ? p->log_every : 10);
    pbar.start_step = start;
    double t0 = now_s(), tlast = t0;
    int64_t tokens_since = 0;
    char ckdir[4200];
    snprintf(ckdir, sizeof ckdir, "%s/ckpt", out);
    for (int64_t s = start; s < p->steps; s++) {
        tl_data_batch(&btrain, data_pos++, x, y);
        ex_set_raw(&it, p->x, x, p->B * p->T);
        ex_set_raw(&it, p->y, y, p->B * p->T);
        double sd = (double)s;
        ex_set(&it, p->stepnum, &sd, 1);
        if (p->seed_in >= 0) {
            int64_t k = p->seed * 1000003 + s;
            ex_set_raw(&it, p->seed_in, &k, 1);
        }
        for (int i = 0; i < p->nparams; i++) ex_set_raw(&it, p->params[i].node, params[i].data, params[i].n);
        for (int i = 0; i < p->nstates; i++) ex_set_raw(&it, p->states[i].input, states[i].data, states[i].n);
        if (ex_run(&it) != 0) {
            fprintf(stderr, "tlc: step %lld: %s\n", (long long)s, ex_error(&it));
            goto done;
        }
        double loss = tl_tensor_get(ex_output(&it, p->loss_out), 0);
        double lr = tl_tensor_get(ex_output(&it, p->lr_out), 0);
        if (!isfinite(loss)) {
            fprintf(stderr, "tlc: step %lld: the loss is %g; stopping (lower --lr?)\n", (long long)s, loss);
            goto done;
        }
        for (int i = 0; i < p->nparams; i++)
            if (p->param_out[i] >= 0) memcpy(params[i].data, ex_output(&it, p->param_out[i])->data, sizeof(float) * (size_t)params[i].n);
        for (int i = 0; i < p->nstates; i++)
            memcpy(states[i].data, ex_output(&it, p->state_out[i])->data, sizeof(float) * (size_t)states[i].n);
        tokens_since += p->B * p->T;
        int64_t done_steps = s + 1;
        int last = done_steps == p->steps;
        int do_eval = (p->eval_every > 0 && done_steps % p->eval_every == 0) || last;
        int do_log = (p->log_every > 0 && done_steps % p->log_every == 0) || last || do_eval;
        double val = NAN;
        if (do_eval) {
            val = evaluate(p, &eit, &bval, params, eval_batches, x, y, err, sizeof err);
            if (isnan(val) && err[0]) {
                fprintf(stderr, "tlc: %s\n", err);
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
                fprintf(stderr, "tlc: %s\n", err);
                goto done;
            }
        }
        if (!isnan(val)) tl_progress_note(&pbar, "step %lld: val_loss %.4f", (long long)done_steps, val);
        if ((p->checkpoint_every > 0 && done_steps % p->checkpoint_every == 0) || last) {
            int nt = p->nparams + p->nstates;
            TlCkptTensor *ts = calloc((size_t)nt, sizeof *ts);
            for (int i = 0; i < nt; i++) {
                Buf *b = i < p->nparams ? &params[i] : &states[i - p->nparams];
                ts[i].name = b->name;
                ts[i].rank = b->rank;
                memcpy(ts[i].shape, b->shape, sizeof(int64_t) * (size_t)b->rank);
                ts[i].data = b->data;
            }
            TlCkptInfo info = {.step = done_steps, .seed = (uint64_t)p->seed, .data_pos = data_pos, .rng_counter = 0};
            int r = tl_ckpt_save(ckdir, &info, ts, nt, NULL, 0, 3, err, sizeof err);
            free(ts);
            if (r != 0) {
                fprintf(stderr, "tlc: %s\n", err);
                goto done;
            }
        }
    }
    tl_progress_finish(&pbar);
    tl_metrics_close(&metrics);
    metrics_open = 0;
    /* the loss curves, from the metrics file (so a resumed run plots the whole history) */
    char svg[4300];
    snprintf(svg, sizeof svg, "%s/loss.svg", out);
    double *xs[2] = {0}, *ys[2] = {0};
    int ns[2] = {0, 0};
    tl_metrics_series(path, "step", "loss", NULL, NULL, &xs[0], &ys[0], &ns[0], err, sizeof err);
    tl_metrics_series(path, "step", "val_loss", NULL, NULL, &xs[1], &ys[1], &ns[1], err, sizeof err);
    TlPlotSeries ser[2] = {{"train loss", xs[0], ys[0], ns[0]}, {"validation loss", xs[1], ys[1], ns[1]}};
    TlPlotOpts po = {.title = train->name, .xlabel = "step", .ylabel = "loss"};
    if (ns[0] > 0 && tl_plot_svg(svg, &po, ser, ns[1] > 0 ? 2 : 1, err, sizeof err) != 0) fprintf(stderr, "tlc: %s\n", err);
    for (int k = 0; k < 2; k++) {
        free(xs[k]);
        free(ys[k]);
    }
    printf("done: %lld steps in %.1f s; checkpoints in %s, metrics in %s, plot in %s\n", (long long)(p->steps - start),
           now_s() - t0, ckdir, path, svg);
    status = 0;
done:
    if (metrics_open) tl_metrics_close(&metrics);
    tl_ckpt_close(ck);
    if (exec_ready) {
        ex_free(&it);
        ex_free(&eit);
    }
    for (int i = 0; i < p->nparams; i++) free(params[i].data);
    for (int i = 0; i < p->nstates; i++) free(states[i].data);
    free(params);
    free(states);
    free(x);
    free(y);
    tl_data_tokens_free(&all);
    tl_data_free(corpus);
    tl_train_plan_free(p);
    tl_args_free(args);
    return status;
}
