/* train.c — `tlc run`: a train block's plan (lower_train.c) run by the training loop of the
 * runtime (runtime/trainer.h), with the step in the reference interpreter (--interp), in
 * JIT-compiled CPU code, or on the GPU (--target=cuda: runtime/gputrain.h, the params and
 * optimizer state resident on the device). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"
#include "nvptx/nvptx.h"
#include "diag.h"
#include "gputrain.h"
#include "interp.h"
#include "schedule_cache.h"
#include "tokdecl.h"
#include "train.h"
#include "trainer.h"

/* The executor of a graph: the reference interpreter or the JIT-compiled CPU code, behind
 * one small interface (both store values in the interpreter's TlTensor format). */
typedef struct Exec {
    TlInterp *it;
    TlCpuProgram *cp;
    TlGpuProgram *gp;
} Exec;

/* mode: 0 JIT for the host CPU, 1 the interpreter, 2 the GPU (NVPTX + CUDA driver) */
static int ex_init(Exec *e, const TlGraph *g, int mode, int threads, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    if (mode == 1) {
        e->it = tl_interp_new(g);
        return e->it ? 0 : -1;
    }
    if (mode == 2) {
        int ncached = 0;
        e->gp = tl_gpu_compile_cached(g, &ncached, err, (int)errlen);
        if (e->gp && ncached) printf("using %d tuned kernel schedules from the tuning cache (GPU)\n", ncached);
        return e->gp ? 0 : -1;
    }
    int ncached = 0;
    TlCpuOptions co = {.opt_level = 3, .threads = threads};
    e->cp = tl_cpu_compile_cached(g, &co, &ncached, err, (int)errlen);
    if (!e->cp) return -1;
    if (ncached) printf("using %d tuned kernel schedules from the tuning cache\n", ncached);
    if (threads > 0) tl_cpu_set_threads(e->cp, threads);
    return 0;
}
static void ex_free(Exec *e) {
    if (e->gp) tl_gpu_free(e->gp);
    if (e->it) tl_interp_free(e->it);
    if (e->cp) tl_cpu_free(e->cp);
}
/* (the GPU executor is driven by runtime/gputrain, not through these) */
static int ex_set_raw(Exec *e, int node, const void *data, int64_t n) {
    return e->it ? tl_interp_set_raw(e->it, node, data, n) : tl_cpu_set_raw(e->cp, node, data, n);
}
static int ex_set(Exec *e, int node, const double *v, int64_t n) {
    return e->it ? tl_interp_set(e->it, node, v, n) : tl_cpu_set(e->cp, node, v, n);
}
static int ex_run(Exec *e) { return e->it ? tl_interp_run(e->it) : tl_cpu_run(e->cp); }
static const char *ex_error(Exec *e) { return e->it ? tl_interp_error(e->it) : tl_cpu_error(e->cp); }
static const TlTensor *ex_output(Exec *e, int k) { return e->it ? tl_interp_output(e->it, k) : tl_cpu_output(e->cp, k); }


/* The step and eval graphs of a plan as a trainer backend. */
typedef struct GraphBackend {
    const TlTrainPlan *p;
    Exec step, eval;
    int64_t *pn, *sn; /* element counts of params and states */
    double steps;     /* the run's step count (the schedule's horizon) */
    TlTokenizer *tok; /* the data pipeline's tokenizer; NULL: bytes */
    int *maps;        /* GPU: the buffer maps of gpu_backend */
} GraphBackend;

static int gb_tokenize(void *ctx, const uint8_t *text, size_t n, int32_t **ids, int64_t *nids, char *err, size_t errlen) {
    GraphBackend *b = ctx;
    TlTokIds out = {0};
    if (tl_tok_encode(b->tok, text, n, &out, err, errlen) != 0) {
        tl_tok_ids_free(&out);
        return -1;
    }
    *ids = out.v; /* malloc'd by the tokenizer; the trainer frees it */
    *nids = (int64_t)out.n;
    return 0;
}

static int gb_step(void *ctx, const int32_t *x, const int32_t *y, int64_t step, int64_t seed, double lr, float **params,
                   float **states, double *loss, double *lr_used, char *err, size_t errlen) {
    GraphBackend *b = ctx;
    const TlTrainPlan *p = b->p;
    Exec *e = &b->step;
    double sd = (double)step;
    ex_set_raw(e, p->x, x, p->accum * p->B * p->T);
    ex_set_raw(e, p->y, y, p->accum * p->B * p->T);
    ex_set(e, p->stepnum, &sd, 1);
    ex_set(e, p->lr_in, &lr, 1);
    ex_set(e, p->steps_in, &b->steps, 1);
    if (p->seed_in >= 0) ex_set_raw(e, p->seed_in, &seed, 1);
    for (int i = 0; i < p->nparams; i++) ex_set_raw(e, p->params[i].node, params[i], b->pn[i]);
    for (int i = 0; i < p->nstates; i++) ex_set_raw(e, p->states[i].input, states[i], b->sn[i]);
    if (ex_run(e) != 0) {
        snprintf(err, errlen, "%s", ex_error(e));
        return -1;
    }
    *loss = tl_tensor_get(ex_output(e, p->loss_out), 0);
    *lr_used = tl_tensor_get(ex_output(e, p->lr_out), 0);
    for (int i = 0; i < p->nparams; i++)
        if (p->param_out[i] >= 0) memcpy(params[i], ex_output(e, p->param_out[i])->data, sizeof(float) * (size_t)b->pn[i]);
    for (int i = 0; i < p->nstates; i++) memcpy(states[i], ex_output(e, p->state_out[i])->data, sizeof(float) * (size_t)b->sn[i]);
    return 0;
}

static int gb_eval(void *ctx, const int32_t *x, const int32_t *y, float **params, double *loss, char *err, size_t errlen) {
    GraphBackend *b = ctx;
    const TlTrainPlan *p = b->p;
    Exec *e = &b->eval;
    for (int i = 0; i < p->nparams; i++) {
        int node = tl_graph_find(p->eval, TL_GOP_PARAM, p->params[i].name);
        if (node >= 0) ex_set_raw(e, node, params[i], b->pn[i]);
    }
    if (p->eseed >= 0) {
        int64_t s0 = 0;
        ex_set_raw(e, p->eseed, &s0, 1);
    }
    ex_set_raw(e, p->ex, x, p->B * p->T);
    ex_set_raw(e, p->ey, y, p->B * p->T);
    if (ex_run(e) != 0) {
        snprintf(err, errlen, "%s", ex_error(e));
        return -1;
    }
    *loss = tl_tensor_get(ex_output(e, 0), 0);
    return 0;
}

/* --target=cuda: the plan's inputs and outputs as buffers of the two GPU programs, and the
 * resident backend over them (runtime/gputrain.h). */
static int gpu_backend(GraphBackend *b, TlGpuTrain *gt, char *err, size_t errlen) {
    const TlTrainPlan *p = b->p;
    const int *sb = tl_gpu_loops(b->step.gp)->node_buf, *eb = tl_gpu_loops(b->eval.gp)->node_buf;
#define SB(node) ((node) >= 0 ? sb[node] : -1)
    int np = p->nparams, ns = p->nstates;
    int *m = b->maps = calloc((size_t)(3 * np + 2 * ns) + 1, sizeof(int));
    if (!m) abort();
    int *pin = m, *pout = m + np, *epin = m + 2 * np, *sin = m + 3 * np, *sout = m + 3 * np + ns;
    for (int i = 0; i < np; i++) {
        pin[i] = SB(p->params[i].node);
        pout[i] = p->param_out[i] >= 0 ? SB(p->step->outputs[p->param_out[i]]) : -1;
        int en = tl_graph_find(p->eval, TL_GOP_PARAM, p->params[i].name);
        epin[i] = en >= 0 ? eb[en] : -1;
    }
    for (int i = 0; i < ns; i++) sin[i] = SB(p->states[i].input), sout[i] = SB(p->step->outputs[p->state_out[i]]);
    TlGpuTrainMap map = {
        .x = SB(p->x), .y = SB(p->y), .step = SB(p->stepnum), .lr = SB(p->lr_in), .steps = SB(p->steps_in),
        .seed = SB(p->seed_in), .loss = SB(p->step->outputs[p->loss_out]), .lr_out = SB(p->step->outputs[p->lr_out]),
        .ex = eb[p->ex], .ey = eb[p->ey], .eseed = p->eseed >= 0 ? eb[p->eseed] : -1, .eloss = eb[p->eval->outputs[0]],
        .nparams = np, .nstates = ns, .param_in = pin, .param_out = pout, .state_in = sin, .state_out = sout,
        .eval_param_in = epin, .pn = b->pn, .sn = b->sn, .B = p->B, .T = p->T, .accum = p->accum};
#undef SB
    if (tl_gputrain_init(gt, tl_gpu_exec(b->step.gp), tl_gpu_exec(b->eval.gp), &map, b->steps, err, errlen) != 0) return -1;
    if (b->tok) gt->tokenize = gb_tokenize, gt->tokenize_ctx = b;
    return 0;
}

static void gb_threads(void *ctx, int n) {
    GraphBackend *b = ctx;
    if (b->step.cp) tl_cpu_set_threads(b->step.cp, n);
    if (b->eval.cp) tl_cpu_set_threads(b->eval.cp, n);
}

static int tensor_of(const TlGraph *g, int node, const char *name, TlTrainerTensor *t) {
    const TlGNode *n = &g->nodes[node];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->rank = n->shape.rank;
    for (int i = 0; i < t->rank; i++)
        if (!tl_gdim_is_const(g, n->shape.dim[i], &t->shape[i])) return -1;
    return 0;
}

/* The trainer's description of a plan: settings, and every param and state tensor. */
int tl_train_spec(const TlTrainPlan *p, TlTrainerSpec *s) {
    memset(s, 0, sizeof *s);
    s->name = p->name;
    s->steps = p->steps;
    s->log_every = p->log_every;
    s->eval_every = p->eval_every;
    s->checkpoint_every = p->checkpoint_every;
    s->seed = p->seed;
    s->lr = p->lr;
    s->out = p->out;
    s->data_path = p->data_path;
    s->val_frac = 0.1;
    s->B = p->B;
    s->T = p->T;
    s->accum = p->accum;
    TlTrainerTensor *ps = calloc((size_t)p->nparams + 1, sizeof *ps), *ss = calloc((size_t)p->nstates + 1, sizeof *ss);
    s->params = ps;
    s->states = ss;
    s->nparams = p->nparams;
    s->nstates = p->nstates;
    for (int i = 0; i < p->nparams; i++) {
        if (tensor_of(p->step, p->params[i].node, p->params[i].name, &ps[i]) < 0) {
            fprintf(stderr, "tlc: param %s: its shape must be known when training starts\n", p->params[i].name);
            return -1;
        }
        ps[i].init = (TlTrainerInit)p->params[i].init;
        ps[i].a = p->params[i].a;
        ps[i].b = p->params[i].b;
        ps[i].fan_in = p->params[i].fan_in;
        ps[i].fan_out = p->params[i].fan_out;
    }
    for (int i = 0; i < p->nstates; i++)
        if (tensor_of(p->step, p->states[i].input, p->states[i].name, &ss[i]) < 0) return -1;
    return 0;
}

void tl_train_spec_free(TlTrainerSpec *s) {
    free((void *)s->params);
    free((void *)s->states);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int tl_train_main(TlProgram *prog, const char *train_name, int argc, char **argv, int mode) {
    int interp = mode == 1;
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
    tl_trainer_add_flags(args, err, sizeof err);
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
    TlTrainerSpec spec;
    GraphBackend gb = {.p = p};
    TlGpuTrain gt = {0};

    if (tl_train_spec(p, &spec) < 0) goto done;
    spec.backend = mode == 1 ? "reference interpreter" : mode == 2 ? "GPU" : "JIT";
    gb.steps = (double)spec.steps;
    gb.pn = calloc((size_t)p->nparams + 1, sizeof(int64_t));
    gb.sn = calloc((size_t)p->nstates + 1, sizeof(int64_t));
    for (int i = 0; i < p->nparams; i++) {
        gb.pn[i] = 1;
        for (int k = 0; k < spec.params[i].rank; k++) gb.pn[i] *= spec.params[i].shape[k];
    }
    for (int i = 0; i < p->nstates; i++) {
        gb.sn[i] = 1;
        for (int k = 0; k < spec.states[i].rank; k++) gb.sn[i] *= spec.states[i].shape[k];
    }
    if (p->tokenizer) {
        gb.tok = tl_tokdecl_build(prog, p->tokenizer, err, sizeof err);
        if (!gb.tok) {
            fprintf(stderr, "tlc: %s\n", err);
            goto done;
        }
    }
    double tc = now_s();
    if (ex_init(&gb.step, p->step, mode, 0, err, sizeof err) != 0 || ex_init(&gb.eval, p->eval, mode, 0, err, sizeof err) != 0) {
        fprintf(stderr, "tlc: %s: %s\n", mode == 2 ? "--target=cuda" : "compiling the training step", err);
        goto done;
    }
    if (mode != 1) printf("compiled the step (%d graph nodes) and the evaluation in %.1f s\n", p->step->nnodes, now_s() - tc);
    TlTrainerBackend be = {&gb, gb_step, gb_eval, gb_threads, gb.tok ? gb_tokenize : NULL, NULL, NULL};
    if (mode == 2) {
        if (gpu_backend(&gb, &gt, err, sizeof err) != 0) {
            fprintf(stderr, "tlc: --target=cuda: %s\n", err);
            goto done;
        }
        be = tl_gputrain_backend(&gt);
    }
    status = tl_trainer_run(&spec, &be, args);
done:
    tl_gputrain_free(&gt);
    free(gb.maps);
    ex_free(&gb.step);
    ex_free(&gb.eval);
    if (gb.tok) tl_tok_free(gb.tok);
    free(gb.pn);
    free(gb.sn);
    tl_train_spec_free(&spec);
    tl_train_plan_free(p);
    tl_args_free(args);
    return status;
}
