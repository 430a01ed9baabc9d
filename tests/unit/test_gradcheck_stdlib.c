/* test_gradcheck_stdlib.c — finite-difference gradient checks of every stdlib layer (the tl
 * code in stdlib/nn.tl, lowered to Graph IR), in double precision.
 *
 * Each layer is lowered with f32 types, then every float node is switched to f64 so the
 * interpreter computes in double. The checked scalar is sum(out * r) for a fixed random r
 * (or the loss itself). Gradients from autodiff must match central differences
 * (h = 1e-6) within |a - n| <= 1e-6 + 1e-5 * max(|a|, |n|) on every entry (or on a sample
 * of entries for big tensors). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "diag.h"
#include "interp.h"
#include "lower.h"
#include "philox.h"
#include "sema.h"

typedef struct Case {
    const char *callee, *ctor, *method;
    const char *args; /* tl_lower_parse_args syntax; integer tensors get ids in [0, int_range) */
    int int_range;
} Case;

static const Case cases[] = {
    {"softmax", NULL, NULL, "x:f32[3,5]", 0},
    {"softmax", NULL, NULL, "x:f32[2,3,4]", 0},
    {"log_softmax", NULL, NULL, "x:f32[4,7]", 0},
    {"log_softmax", NULL, NULL, "x:f32[2,2,3]", 0},
    {"layer_norm", NULL, NULL, "x:f32[3,6] w:f32[6] b:f32[6]", 0},
    {"layer_norm", NULL, NULL, "x:f32[2,3,5] w:f32[5] b:f32[5]", 0},
    {"gelu", NULL, NULL, "x:f32[4,5]", 0},
    {"gelu", NULL, NULL, "x:f32[7]", 0},
    {"relu", NULL, NULL, "x:f32[3,4]", 0},
    {"sigmoid", NULL, NULL, "x:f32[3,4]", 0},
    {"sigmoid", NULL, NULL, "x:f32[2,2,2]", 0},
    {"dropout", NULL, NULL, "x:f32[4,6] p=0.3", 0},
    {"cross_entropy", NULL, NULL, "logits:f32[5,7] targets:i32[5]", 7},
    {"cross_entropy", NULL, NULL, "logits:f32[2,3,4] targets:i32[2,3]", 4},
    {"split_heads", NULL, NULL, "x:f32[2,3,8] H=2", 0},
    {"merge_heads", NULL, NULL, "x:f32[2,2,3,4]", 0},
    {"causal_attention", NULL, NULL, "q:f32[1,2,4,3] k:f32[1,2,4,3] v:f32[1,2,4,3]", 0},
    {"Linear", "I=4 O=3", "forward", "x:f32[2,4]", 0},
    {"Linear", "I=3 O=5", "forward", "x:f32[2,3,3]", 0},
    {"Embedding", "V=6 D=4", "forward", "idx:i32[2,3]", 6},
    {"LayerNorm", "D=5", "forward", "x:f32[3,5]", 0},
    {"MLP", "D=4 F=8", "forward", "x:f32[2,3,4]", 0},
    {"CausalSelfAttention", "D=8 H=2", "forward", "x:f32[2,3,8]", 0},
    {"CausalSelfAttention", "D=6 H=3", "forward", "x:f32[1,4,6]", 0},
    {"Block", "D=8 H=2", "forward", "x:f32[1,3,8]", 0},
    {"RNNCell", "I=3 H=4", "forward", "x:f32[2,3] h:f32[2,4]", 0},
    {"LSTMCell", "I=3 H=4", "forward", "x:f32[2,3] h:f32[2,4] c:f32[2,4]", 0},
    {"GRUCell", "I=3 H=4", "forward", "x:f32[2,3] h:f32[2,4]", 0},
    {"LSTM", "I=3 H=4", "forward", "x:f32[5,2,3] h0:f32[2,4] c0:f32[2,4]", 0},
    {"LSTM", "I=2 H=3", "states", "x:f32[3,1,2] h0:f32[1,3] c0:f32[1,3]", 0},
    {"GRU", "I=3 H=4", "forward", "x:f32[4,2,3] h0:f32[2,4]", 0},
};

static uint64_t rng_i;
static double urand(void) { return tl_philox_uniform_at(12345, 7, rng_i++); }

static void to_f64(TlGraph *g) {
    for (int i = 0; i < g->nnodes; i++) {
        if (g->nodes[i].dtype == TL_F32) g->nodes[i].dtype = TL_F64;
        if (g->nodes[i].body) to_f64(g->nodes[i].body);
    }
}

static int64_t numel_of(const TlGraph *g, int id, TlInterp *it) {
    const TlTensor *t = tl_interp_value(it, id);
    (void)g;
    return t ? t->numel : 0;
}

static double eval_loss(TlInterp *it, int loss) {
    if (tl_interp_run(it) != 0) return NAN;
    return tl_tensor_get(tl_interp_value(it, loss), 0);
}

static int total_entries;

static void run_case(const Case *c, TlProgram *prog) {
    case_begin("gradcheck_stdlib/%s%s%s(%s)", c->callee, c->ctor ? "[" : "", c->ctor ? c->ctor : "", c->args);
    TlLowerArg ctor[8], args[8];
    char err[256];
    int nctor = c->ctor ? tl_lower_parse_args(c->ctor, ctor, 8, err, sizeof err) : 0;
    int nargs = tl_lower_parse_args(c->args, args, 8, err, sizeof err);
    EXPECTF(nctor >= 0 && nargs >= 0, "%s", err);
    if (nctor < 0 || nargs < 0) {
        case_end();
        return;
    }
    TlLowered *l = tl_lower_call(prog, c->callee, ctor, nctor, c->method, args, nargs);
    tl_lower_args_free(ctor, nctor);
    tl_lower_args_free(args, nargs);
    EXPECTF(l != NULL, "lowering failed");
    if (!l) {
        case_end();
        return;
    }
    TlGraph *g = l->g;
    to_f64(g);
    TlLoc noloc = {0};
    /* loss = sum_k sum(out_k * r_k) with fixed random r_k */
    int loss = -1, rs[8], nr = 0;
    for (int k = 0; k < l->nresults && k < 8; k++) {
        int o = g->outputs[k];
        int r = tl_g_input(g, "r", g->nodes[o].dtype, g->nodes[o].shape, noloc);
        rs[nr++] = r;
        int m = tl_g_mul(g, o, r, noloc);
        int rank = g->nodes[m].shape.rank;
        int term = rank ? tl_g_reduce(g, TL_GOP_SUM, m, (uint32_t)((1u << rank) - 1), 0, noloc) : m;
        loss = loss < 0 ? term : tl_g_add(g, loss, term, noloc);
    }
    int wrt[64], nwrt = 0;
    for (int i = 0; i < l->ninputs; i++)
        if (tl_dtype_is_float(g->nodes[l->inputs[i]].dtype)) wrt[nwrt++] = l->inputs[i];
    for (int i = 0; i < l->nparams && nwrt < 64; i++) wrt[nwrt++] = l->params[i].node;
    int grads[64];
    EXPECTF(tl_grad(g, loss, nwrt, wrt, grads) == 0, "tl_grad: %s", tl_graph_error(g) ? tl_graph_error(g) : "");
    TlInterp *it = tl_interp_new(g);
    int seed = tl_graph_find(g, TL_GOP_INPUT, "__seed");
    if (seed >= 0) {
        double s = 99;
        tl_interp_set(it, seed, &s, 1);
    }
    /* random values for every input and param; integer inputs in [0, int_range) */
    double *vals[80];
    int nodes[80], nv = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const TlGNode *n = &g->nodes[i];
        if ((n->op != TL_GOP_INPUT && n->op != TL_GOP_PARAM) || i == seed) continue;
        int64_t cnt = 1;
        for (int d = 0; d < n->shape.rank; d++) {
            int64_t v;
            tl_gdim_is_const(g, n->shape.dim[d], &v);
            cnt *= v;
        }
        double *buf = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
        for (int64_t k = 0; k < cnt; k++)
            buf[k] = tl_dtype_is_int(n->dtype) ? floor(urand() * c->int_range) : urand() * 2.0 - 1.0;
        tl_interp_set(it, i, buf, cnt);
        vals[nv] = buf;
        nodes[nv++] = i;
    }
    (void)rs;
    (void)nr;
    int ok = tl_interp_run(it) == 0;
    EXPECTF(ok, "interp: %s", tl_interp_error(it));
    /* analytic gradients, copied before the finite-difference runs overwrite them */
    double *gall[64] = {0};
    for (int w = 0; ok && w < nwrt; w++) {
        const TlTensor *gt = tl_interp_value(it, grads[w]);
        int64_t cnt = numel_of(g, wrt[w], it);
        gall[w] = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
        for (int64_t k = 0; k < cnt; k++) gall[w][k] = gt && gt->numel == cnt ? tl_tensor_get(gt, k) : NAN;
    }
    int checked = 0;
    for (int w = 0; ok && w < nwrt; w++) {
        int vi = -1;
        for (int k = 0; k < nv; k++)
            if (nodes[k] == wrt[w]) vi = k;
        if (vi < 0) continue;
        int64_t cnt = numel_of(g, wrt[w], it);
        double *ga = gall[w];
        int64_t stride = cnt > 40 ? cnt / 40 : 1;
        for (int64_t k = 0; k < cnt; k += stride) {
            double x0 = vals[vi][k], h = 1e-6;
            vals[vi][k] = x0 + h;
            tl_interp_set(it, wrt[w], vals[vi], cnt);
            double fp = eval_loss(it, loss);
            vals[vi][k] = x0 - h;
            tl_interp_set(it, wrt[w], vals[vi], cnt);
            double fm = eval_loss(it, loss);
            vals[vi][k] = x0;
            tl_interp_set(it, wrt[w], vals[vi], cnt);
            double num = (fp - fm) / (2 * h), a = ga[k];
            double tol = 1e-6 + 1e-5 * fmax(fabs(a), fabs(num));
            EXPECTF(fabs(a - num) <= tol, "%s[%lld]: autodiff %.9g, differences %.9g", g->nodes[wrt[w]].name,
                    (long long)k, a, num);
            checked++;
        }
    }
    for (int w = 0; w < nwrt; w++) free(gall[w]);
    total_entries += checked;
    for (int k = 0; k < nv; k++) free(vals[k]);
    tl_interp_free(it);
    tl_lowered_free(l);
    case_end();
}

int main(void) {
    tl_diag_set_output(stdout);
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    TlProgram *prog = tl_sema_check_file("stdlib/nn.tl", &opt);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], prog);
    printf("  %d cases, %d gradient entries checked\n", (int)(sizeof cases / sizeof cases[0]), total_entries);
    tl_program_free(prog);
    return check_done();
}
