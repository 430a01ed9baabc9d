/* gputrain.c — resident training on the GPU (gputrain.h). */
#include "gputrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const TlGpuExec *x, char *err, size_t errlen) {
    snprintf(err, errlen, "%s", tl_gpuexec_error(x) ? tl_gpuexec_error(x) : "GPU error");
    return -1;
}

int tl_gputrain_init(TlGpuTrain *t, TlGpuExec *step, TlGpuExec *eval, const TlGpuTrainMap *m, double steps, char *err,
                     size_t errlen) {
    memset(t, 0, sizeof *t);
    t->step = step, t->eval = eval, t->m = *m, t->steps = (float)steps;
    if (m->x < 0 || m->y < 0 || m->loss < 0 || m->ex < 0 || m->ey < 0 || m->eloss < 0) {
        snprintf(err, errlen, "the GPU step or evaluation has no buffer for the batch or the loss");
        return -1;
    }
    /* the host side of each buffer: int32 ids, f32 scalars and values, an i64 seed */
    const TlGpuDesc *sd = tl_gpuexec_desc(step), *ed = tl_gpuexec_desc(eval);
    struct { const TlGpuDesc *d; int buf, elem; const char *what; } want[] = {
        {sd, m->x, 4, "the batch ids"}, {sd, m->y, 4, "the batch targets"}, {sd, m->step, 4, "the step number"},
        {sd, m->lr, 4, "the learning rate"}, {sd, m->steps, 4, "the step count"}, {sd, m->seed, 8, "the seed"},
        {sd, m->loss, 4, "the loss"}, {sd, m->lr_out, 4, "the learning rate used"}, {ed, m->ex, 4, "the batch ids"},
        {ed, m->ey, 4, "the batch targets"}, {ed, m->eseed, 8, "the seed"}, {ed, m->eloss, 4, "the loss"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (want[i].buf >= 0 && (want[i].buf >= want[i].d->nbuf || want[i].d->buf[want[i].buf].elem != want[i].elem)) {
            snprintf(err, errlen, "%s: %s is not in a %d-byte buffer", want[i].d->name, want[i].what, want[i].elem);
            return -1;
        }
    for (int i = 0; i < m->nparams + m->nstates; i++) {
        int b = i < m->nparams ? m->param_in[i] : m->state_in[i - m->nparams];
        if (b >= sd->nbuf || (b >= 0 && sd->buf[b].elem != 4)) {
            snprintf(err, errlen, "%s: %s %d is not an f32 buffer", sd->name, i < m->nparams ? "param" : "state", i);
            return -1;
        }
    }
    t->fout = calloc((size_t)(m->nparams + m->nstates) + 1, sizeof *t->fout);
    t->fin = calloc((size_t)(m->nparams + m->nstates) + 1, sizeof *t->fin);
    if (!t->fout || !t->fin) abort();
    for (int i = 0; i < m->nparams; i++)
        if (m->param_out[i] >= 0 && m->param_in[i] >= 0) t->fout[t->nfeed] = m->param_out[i], t->fin[t->nfeed++] = m->param_in[i];
    for (int i = 0; i < m->nstates; i++) {
        if (m->state_out[i] < 0 || m->state_in[i] < 0) {
            snprintf(err, errlen, "optimizer state %d has no buffer in the GPU step", i);
            return -1;
        }
        t->fout[t->nfeed] = m->state_out[i], t->fin[t->nfeed++] = m->state_in[i];
    }
    for (int i = 0; i < m->nparams; i++)
        if (m->eval_param_in[i] >= 0 && m->param_in[i] >= 0 &&
            tl_gpuexec_share(eval, m->eval_param_in[i], step, m->param_in[i]) != 0)
            return fail(eval, err, errlen);
    return 0;
}

void tl_gputrain_free(TlGpuTrain *t) {
    free(t->fout);
    free(t->fin);
    memset(t, 0, sizeof *t);
}

/* A scalar input in the buffer's storage (f32 or f64 values; i64 for the seed). */
static int set_real(TlGpuExec *x, int buf, double v) {
    if (buf < 0) return 0;
    float f = (float)v;
    return tl_gpuexec_set(x, buf, &f, 1);
}

static int gt_load(void *ctx, float **params, float **states, char *err, size_t errlen) {
    TlGpuTrain *t = ctx;
    const TlGpuTrainMap *m = &t->m;
    for (int i = 0; i < m->nparams; i++)
        if (m->param_in[i] >= 0 && tl_gpuexec_set(t->step, m->param_in[i], params[i], m->pn[i]) != 0) return fail(t->step, err, errlen);
    for (int i = 0; i < m->nstates; i++)
        if (tl_gpuexec_set(t->step, m->state_in[i], states[i], m->sn[i]) != 0) return fail(t->step, err, errlen);
    t->loaded = 1, t->stepped = 0;
    return 0;
}

static int gt_store(void *ctx, float **params, float **states, char *err, size_t errlen) {
    TlGpuTrain *t = ctx;
    const TlGpuTrainMap *m = &t->m;
    if (!t->stepped) return 0; /* the host arrays are what load() staged */
    for (int i = 0; i < m->nparams; i++)
        if (m->param_in[i] >= 0 && tl_gpuexec_read(t->step, m->param_in[i], params[i], m->pn[i]) != 0) return fail(t->step, err, errlen);
    for (int i = 0; i < m->nstates; i++)
        if (tl_gpuexec_read(t->step, m->state_in[i], states[i], m->sn[i]) != 0) return fail(t->step, err, errlen);
    return 0;
}

static int gt_step(void *ctx, const int32_t *x, const int32_t *y, int64_t step, int64_t seed, double lr, float **params,
                   float **states, double *loss, double *lr_used, char *err, size_t errlen) {
    (void)params, (void)states; /* resident: the device holds them (load/store) */
    TlGpuTrain *t = ctx;
    const TlGpuTrainMap *m = &t->m;
    TlGpuExec *e = t->step;
    if (!t->loaded) {
        snprintf(err, errlen, "the GPU step ran before the params were loaded");
        return -1;
    }
    int64_t n = (m->accum > 1 ? m->accum : 1) * m->B * m->T;
    float l = 0, r = 0;
    if (tl_gpuexec_set(e, m->x, x, n) || tl_gpuexec_set(e, m->y, y, n) || set_real(e, m->step, (double)step) ||
        set_real(e, m->lr, lr) || set_real(e, m->steps, t->steps) || (m->seed >= 0 && tl_gpuexec_set(e, m->seed, &seed, 1)) ||
        tl_gpuexec_run(e) || tl_gpuexec_read(e, m->loss, &l, 1) || (m->lr_out >= 0 && tl_gpuexec_read(e, m->lr_out, &r, 1)) ||
        tl_gpuexec_feed(e, t->fout, t->fin, t->nfeed))
        return fail(e, err, errlen);
    t->stepped = 1;
    *loss = l;
    *lr_used = m->lr_out >= 0 ? r : lr;
    return 0;
}

static int gt_eval(void *ctx, const int32_t *x, const int32_t *y, float **params, double *loss, char *err, size_t errlen) {
    (void)params; /* the eval program reads the step's resident param buffers */
    TlGpuTrain *t = ctx;
    const TlGpuTrainMap *m = &t->m;
    TlGpuExec *e = t->eval;
    int64_t zero = 0;
    float l = 0;
    if (!t->stepped) {
        snprintf(err, errlen, "evaluation on the GPU before the first step");
        return -1;
    }
    if (tl_gpuexec_set(e, m->ex, x, m->B * m->T) || tl_gpuexec_set(e, m->ey, y, m->B * m->T) ||
        (m->eseed >= 0 && tl_gpuexec_set(e, m->eseed, &zero, 1)) || tl_gpuexec_run(e) || tl_gpuexec_read(e, m->eloss, &l, 1))
        return fail(e, err, errlen);
    *loss = l;
    return 0;
}

static int gt_tokenize(void *ctx, const uint8_t *text, size_t n, int32_t **ids, int64_t *nids, char *err, size_t errlen) {
    TlGpuTrain *t = ctx;
    return t->tokenize(t->tokenize_ctx, text, n, ids, nids, err, errlen);
}

TlTrainerBackend tl_gputrain_backend(TlGpuTrain *t) {
    TlTrainerBackend be = {0};
    be.tokenize = t->tokenize ? gt_tokenize : NULL;
    be.ctx = t;
    be.step = gt_step;
    be.eval = gt_eval;
    be.load = gt_load;
    be.store = gt_store;
    return be;
}
