/* test_ref_interp.c — the stdlib layers, written in tl, lowered to Graph IR and run by the
 * reference interpreter, against PyTorch reference vectors (the .safetensors files in tests/ref, made
 * by tests/ref/gen.py). Forward outputs and every gradient (of sum(out * dy), or of the
 * loss) must agree to 1e-5 relative error: max|tl - torch| / max|torch| per tensor. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "diag.h"
#include "interp.h"
#include "lower.h"
#include "safetensors.h"
#include "sema.h"
#include "source.h"

#define TOL 1e-5

typedef struct Case {
    const char *file;      /* tests/ref/NAME.safetensors */
    const char *module;    /* .tl file holding the callee */
    const char *callee;
    const char *ctor;      /* "D=16 H=4" or NULL */
    const char *method;
    const char *args[6];   /* tensor names in the file, in call order */
    const char *outs[4];   /* outputs, in result order */
    const char *dys[4];    /* their cotangents, or NULL when the output is the loss */
    const char *prefix;    /* file name of a param = prefix + its path */
} Case;

static const Case cases[] = {
    {"layer_norm", "stdlib/nn.tl", "layer_norm", NULL, NULL, {"x", "w", "b"}, {"out"}, {"dy"}, ""},
    {"softmax", "stdlib/nn.tl", "softmax", NULL, NULL, {"x"}, {"out"}, {"dy"}, ""},
    {"log_softmax", "stdlib/nn.tl", "log_softmax", NULL, NULL, {"x"}, {"out"}, {"dy"}, ""},
    {"gelu", "stdlib/nn.tl", "gelu", NULL, NULL, {"x"}, {"out"}, {"dy"}, ""},
    {"cross_entropy", "stdlib/nn.tl", "cross_entropy", NULL, NULL, {"logits", "targets"}, {"loss"}, {NULL}, ""},
    {"attention", "stdlib/nn.tl", "CausalSelfAttention", "D=16 H=4", "forward", {"x"}, {"out"}, {"dy"}, "attn."},
    {"block", "stdlib/nn.tl", "Block", "D=16 H=4", "forward", {"x"}, {"out"}, {"dy"}, ""},
    {"lstm", "stdlib/nn.tl", "LSTM", "I=5 H=6", "states", {"x", "h0", "c0"}, {"hs", "h", "c"}, {"dy.hs", "dy.h", "dy.c"}, ""},
    {"gpt", "examples/gpt/gpt.tl", "GPT", "V=11 C=8 D=16 H=4 L=2", "loss", {"idx", "targets"}, {"loss"}, {NULL}, ""},
};

static TlDType dtype_of(TlStDType t) {
    switch (t) {
    case TL_ST_F32: return TL_F32;
    case TL_ST_F64: return TL_F64;
    case TL_ST_I32: return TL_I32;
    case TL_ST_I64: return TL_I64;
    default: return TL_DT_INVALID;
    }
}

static int set_from(TlInterp *it, int node, const TlStTensor *t) {
    int64_t n = tl_st_numel(t);
    double *buf = malloc(sizeof(double) * (size_t)(n ? n : 1));
    tl_st_to_f64(t, buf);
    int r = tl_interp_set(it, node, buf, n);
    free(buf);
    return r;
}

/* max|a - b| / max|b| */
static double rel_err(const TlTensor *a, const TlStTensor *b, int64_t *n_out) {
    int64_t n = tl_st_numel(b);
    *n_out = n;
    if (!a || a->numel != n) return INFINITY;
    double *ref = malloc(sizeof(double) * (size_t)(n ? n : 1));
    tl_st_to_f64(b, ref);
    double maxdiff = 0, maxref = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(tl_tensor_get(a, i) - ref[i]);
        if (d > maxdiff || isnan(d)) maxdiff = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    }
    free(ref);
    return maxref > 0 ? maxdiff / maxref : maxdiff;
}

static void run_case(const Case *c) {
    case_begin("ref_interp/%s", c->file);
    char path[256], err[512];
    snprintf(path, sizeof path, "tests/ref/%s.safetensors", c->file);
    TlSafetensors *st = NULL;
    if (tl_st_open(path, &st, err, sizeof err) != 0) {
        EXPECTF(0, "%s", err);
        case_end();
        return;
    }
    TlSemaOptions opt = {.stdlib_dir = "stdlib", .warn_unused = 0};
    tl_diag_reset();
    TlProgram *prog = tl_sema_check_file(c->module, &opt);
    EXPECTF(tl_diag_error_count() == 0, "%s has errors", c->module);

    TlLowerArg ctor[8], args[6];
    int nctor = 0, nargs = 0;
    if (c->ctor) {
        nctor = tl_lower_parse_args(c->ctor, ctor, 8, err, sizeof err);
        EXPECTF(nctor >= 0, "%s", err);
    }
    for (int i = 0; i < 6 && c->args[i]; i++) {
        const TlStTensor *t = tl_st_find(st, c->args[i]);
        EXPECTF(t != NULL, "no tensor %s", c->args[i]);
        if (!t) break;
        TlLowerArg *a = &args[nargs++];
        memset(a, 0, sizeof *a);
        a->kind = TL_LARG_TENSOR;
        a->name = c->args[i];
        a->dtype = dtype_of(t->dtype);
        a->rank = t->rank;
        for (int k = 0; k < t->rank; k++) a->dim[k] = t->shape[k];
    }
    /* arguments are positional; their names only label the graph inputs */
    TlLowered *l = nctor >= 0 ? tl_lower_call(prog, c->callee, ctor, nctor > 0 ? nctor : 0, c->method, args, nargs) : NULL;
    if (nctor > 0) tl_lower_args_free(ctor, nctor);
    EXPECTF(l != NULL, "lowering %s failed", c->callee);
    if (!l) goto done;
    TlGraph *g = l->g;
    int nout = 0;
    while (nout < 4 && c->outs[nout]) nout++;
    EXPECTF(l->nresults == nout, "%d results, expected %d", l->nresults, nout);
    if (l->nresults != nout) goto done;
    /* the scalar whose gradients are checked: the loss, or sum_k sum(out_k * dy_k) */
    int loss = -1;
    int dy_nodes[4] = {-1, -1, -1, -1};
    TlLoc noloc = {0};
    for (int k = 0; k < nout; k++) {
        int o = g->outputs[k];
        int term;
        if (c->dys[k]) {
            dy_nodes[k] = tl_g_input(g, c->dys[k], g->nodes[o].dtype, g->nodes[o].shape, noloc);
            int m = tl_g_mul(g, o, dy_nodes[k], noloc);
            uint32_t all = g->nodes[m].shape.rank ? (uint32_t)((1u << g->nodes[m].shape.rank) - 1) : 0;
            term = all ? tl_g_reduce(g, TL_GOP_SUM, m, all, 0, noloc) : m;
        } else {
            term = o;
        }
        loss = loss < 0 ? term : tl_g_add(g, loss, term, noloc);
    }
    /* gradients with respect to float inputs and every param */
    int wrt[64], nwrt = 0;
    const char *wrt_name[64];
    for (int i = 0; i < l->ninputs && nwrt < 64; i++)
        if (tl_dtype_is_float(g->nodes[l->inputs[i]].dtype)) {
            wrt_name[nwrt] = g->nodes[l->inputs[i]].name;
            wrt[nwrt++] = l->inputs[i];
        }
    for (int i = 0; i < l->nparams && nwrt < 64; i++) {
        wrt_name[nwrt] = l->params[i].name;
        wrt[nwrt++] = l->params[i].node;
    }
    int grads[64];
    EXPECTF(tl_grad(g, loss, nwrt, wrt, grads) == 0, "tl_grad: %s", tl_graph_error(g) ? tl_graph_error(g) : "?");
    TlInterp *it = tl_interp_new(g);
    for (int i = 0; i < l->ninputs; i++) {
        const TlStTensor *t = tl_st_find(st, g->nodes[l->inputs[i]].name);
        EXPECT(t && set_from(it, l->inputs[i], t) == 0);
    }
    for (int k = 0; k < nout; k++)
        if (dy_nodes[k] >= 0) {
            const TlStTensor *t = tl_st_find(st, c->dys[k]);
            EXPECT(t && set_from(it, dy_nodes[k], t) == 0);
        }
    for (int i = 0; i < l->nparams; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s%s", c->prefix, l->params[i].name);
        const TlStTensor *t = tl_st_find(st, name);
        EXPECTF(t != NULL, "param %s not in %s", name, path);
        if (t) EXPECT(set_from(it, l->params[i].node, t) == 0);
    }
    int ok = tl_interp_run(it) == 0;
    EXPECTF(ok, "interp: %s", tl_interp_error(it));
    if (ok) {
        int compared = 0;
        for (int k = 0; k < nout; k++) {
            const TlStTensor *ref = tl_st_find(st, c->outs[k]);
            int64_t n;
            double e = ref ? rel_err(tl_interp_value(it, g->outputs[k]), ref, &n) : INFINITY;
            EXPECTF(e <= TOL, "%s: relative error %.3g", c->outs[k], e);
            compared++;
        }
        for (int i = 0; i < nwrt; i++) {
            char name[300];
            int is_param = i >= nwrt - l->nparams;
            snprintf(name, sizeof name, "grad.%s%s", is_param ? c->prefix : "", wrt_name[i]);
            const TlStTensor *ref = tl_st_find(st, name);
            EXPECTF(ref != NULL, "%s not in %s", name, path);
            if (!ref) continue;
            int64_t n;
            double e = rel_err(tl_interp_value(it, grads[i]), ref, &n);
            EXPECTF(e <= TOL, "%s: relative error %.3g", name, e);
            compared++;
        }
        printf("  %s: %d tensors compared\n", c->file, compared);
    }
    tl_interp_free(it);
done:
    tl_lowered_free(l);
    if (prog) tl_program_free(prog);
    tl_st_close(st);
    case_end();
}

int main(void) {
    tl_diag_set_output(stdout);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    return check_done();
}
