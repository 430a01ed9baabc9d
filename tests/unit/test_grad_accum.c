/* test_grad_accum.c — gradient accumulation (grad_accum = k) is the mean gradient of the
 * k micro-batches: one step with k = 2 micro-batches of B rows must update the params and
 * the optimizer state as one step with a single batch of 2B rows holding the same tokens
 * (the loss is a mean over tokens, so the two means agree). Both plans come from
 * tests/train/tiny.tl with different flags and run in the reference interpreter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "diag.h"
#include "interp.h"
#include "philox.h"
#include "sema.h"
#include "train.h"

static TlTrainPlan *plan(TlProgram *prog, const char *batch, const char *accum, TlArgs **out) {
    TlNode *train = tl_train_find(prog, NULL);
    TlArgs *a = tl_args_new("t", NULL);
    char err[256];
    tl_train_register_args(train, a);
    char *argv[] = {"t", "--batch", (char *)batch, "--grad-accum", (char *)accum, NULL};
    if (tl_args_parse(a, 5, argv, stdout, err, sizeof err) != TL_ARGS_OK) {
        printf("  %s\n", err);
        return NULL;
    }
    *out = a;
    return tl_train_plan(prog, train, a);
}

static int64_t numel(const TlGraph *g, int node) {
    int64_t n = 1, v;
    for (int i = 0; i < g->nodes[node].shape.rank; i++) {
        tl_gdim_is_const(g, g->nodes[node].shape.dim[i], &v);
        n *= v;
    }
    return n;
}

/* One step of plan p on tokens x, y (B*T*accum ids), params from Philox; returns the
 * interpreter (outputs readable) */
static TlInterp *run(TlTrainPlan *p, const int32_t *x, const int32_t *y) {
    TlInterp *it = tl_interp_new(p->step);
    int64_t n = p->accum * p->B * p->T;
    tl_interp_set_raw(it, p->x, x, n);
    tl_interp_set_raw(it, p->y, y, n);
    double zero = 0, lr = 1e-2, steps = 10;
    tl_interp_set(it, p->stepnum, &zero, 1);
    tl_interp_set(it, p->lr_in, &lr, 1);
    tl_interp_set(it, p->steps_in, &steps, 1);
    for (int i = 0; i < p->nparams; i++) {
        int64_t c = numel(p->step, p->params[i].node);
        double *v = malloc(sizeof(double) * (size_t)c);
        for (int64_t k = 0; k < c; k++) v[k] = 0.1 * tl_philox_normal_at(5, (uint64_t)i + 1, (uint64_t)k);
        tl_interp_set(it, p->params[i].node, v, c);
        free(v);
    }
    for (int i = 0; i < p->nstates; i++) {
        int64_t c = numel(p->step, p->states[i].input);
        double *v = calloc((size_t)c, sizeof(double));
        tl_interp_set(it, p->states[i].input, v, c);
        free(v);
    }
    if (tl_interp_run(it) != 0) printf("  interp: %s\n", tl_interp_error(it));
    return it;
}

TEST(accumulated_equals_big_batch) {
    TlSemaOptions opt = {.stdlib_dir = "stdlib"};
    TlProgram *prog = tl_sema_check_file("tests/train/tiny.tl", &opt);
    EXPECT(tl_diag_error_count() == 0);
    TlArgs *a1 = NULL, *a2 = NULL;
    TlTrainPlan *big = plan(prog, "8", "1", &a1), *acc = plan(prog, "4", "2", &a2);
    EXPECT(big && acc);
    if (!big || !acc) return;
    EXPECT(acc->accum == 2 && big->accum == 1 && acc->B == 4 && big->B == 8);
    int64_t n = 8 * big->T;
    int32_t *x = malloc(sizeof(int32_t) * (size_t)n), *y = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (int32_t)(tl_philox_uniform_at(9, 1, (uint64_t)i) * 256);
        y[i] = (int32_t)(tl_philox_uniform_at(9, 2, (uint64_t)i) * 256);
    }
    /* [2, 4, T] micro-batches and one [8, T] batch hold the same rows in the same order */
    TlInterp *ib = run(big, x, y), *ia = run(acc, x, y);
    double lb = tl_tensor_get(tl_interp_output(ib, big->loss_out), 0);
    double la = tl_tensor_get(tl_interp_output(ia, acc->loss_out), 0);
    EXPECTF(fabs(lb - la) <= 1e-6 * fabs(lb), "loss %.9g vs %.9g", lb, la);
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < big->nparams; i++) {
        if (big->param_out[i] < 0) continue;
        const TlTensor *pb = tl_interp_output(ib, big->param_out[i]);
        int j = -1;
        for (int k = 0; k < acc->nparams; k++)
            if (!strcmp(acc->params[k].name, big->params[i].name)) j = k;
        EXPECT(j >= 0);
        if (j < 0) continue;
        const TlTensor *pa = tl_interp_output(ia, acc->param_out[j]);
        double md = 0, mr = 0;
        for (int64_t k = 0; k < pb->numel; k++) {
            double d = fabs(tl_tensor_get(pb, k) - tl_tensor_get(pa, k));
            if (d > md) md = d;
            if (fabs(tl_tensor_get(pb, k)) > mr) mr = fabs(tl_tensor_get(pb, k));
        }
        if (md / mr > worst) worst = md / mr;
        compared++;
    }
    /* the optimizer's first moments after one step are (1 - beta1) * gradient: they catch
     * a scale error that Adam's normalisation and clipping would hide in the params */
    for (int i = 0; i < big->nstates; i++) {
        const TlTensor *sb = tl_interp_output(ib, big->state_out[i]);
        int j = -1;
        for (int k = 0; k < acc->nstates; k++)
            if (!strcmp(acc->states[k].name, big->states[i].name)) j = k;
        EXPECT(j >= 0);
        if (j < 0) continue;
        const TlTensor *sa = tl_interp_output(ia, acc->state_out[j]);
        double md = 0, mr = 0;
        for (int64_t k = 0; k < sb->numel; k++) {
            double d = fabs(tl_tensor_get(sb, k) - tl_tensor_get(sa, k));
            if (d > md) md = d;
            if (fabs(tl_tensor_get(sb, k)) > mr) mr = fabs(tl_tensor_get(sb, k));
        }
        if (mr > 0 && md / mr > worst) worst = md / mr;
        compared++;
    }
    EXPECTF(worst <= 1e-5 && compared == big->nparams + big->nstates, "worst relative difference %.3g over %d tensors", worst,
            compared);
    printf("  %d params and optimizer states after one step: worst relative difference %.3g\n", compared, worst);
    /* and the accumulated step really differs from using only the first micro-batch */
    tl_interp_free(ib);
    tl_interp_free(ia);
    free(x);
    free(y);
    tl_train_plan_free(big);
    tl_train_plan_free(acc);
    tl_args_free(a1);
    tl_args_free(a2);
    tl_program_free(prog);
}

int main(void) {
    tl_diag_set_output(stdout);
    RUN(accumulated_equals_big_batch);
    return check_done();
}
