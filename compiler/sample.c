/* sample.c — the sampling graphs of a train block's model (uncached forward, cached
 * decode step), and `tlc run --sample` over runtime/sampler. See sample.h. */
#include "sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "interp.h"
#include "lower_internal.h"
#include "sampler.h"
#include "simplify.h"
#include "train.h"

static Value *tensor_in(Lower *L, const char *name, TlDType t, int rank, const TlGDim *d, int *node) {
    *node = tl_g_input(L->g, name, t, tl_gshape_dims(rank, d), (TlLoc){0});
    return lv_tensor(L, *node);
}

/* The model of the train block, instantiated into a fresh lowering. */
static Value *bound_model(Lower *L, TlNode *train) {
    Env *env = lower_train_bindings(L, train);
    Value *m = env ? env_get(env, "model") : NULL;
    if (env && (!m || m->kind != V_MODEL)) lower_error(L, train->loc, "the train block needs `model = SomeModel(...)`");
    return m && m->kind == V_MODEL && !L->failed ? m : NULL;
}

static Value *method(Value *model, const char *name) {
    Value *f = env_get(model->inst->env, name);
    return f && f->kind == V_FUNC ? f : NULL;
}

/* Simplifies g, renumbering the input nodes listed in ids. */
static void simplify(TlGraph *g, int **ids, int n) {
    int *remap = calloc((size_t)g->nnodes + 1, sizeof(int));
    tl_simplify(g, TL_SIMPLIFY_ALL, NULL, remap);
    for (int i = 0; i < n; i++)
        if (*ids[i] >= 0) *ids[i] = remap[*ids[i]];
    free(remap);
}

static void free_lower(Lower *L, int keep_graph) {
    if (!keep_graph) tl_graph_free(L->g);
    tl_arena_free(L->arena);
    free(L);
}

/* full: logits[1, C, V] = model.forward(idx[1, C]) */
static int lower_full(TlProgram *prog, TlNode *train, TlArgs *args, TlSamplePlan *p) {
    Lower *L = lower_new(prog);
    L->args = args;
    Value *m = bound_model(L, train);
    int out = -1;
    if (m) {
        TlGDim d[2] = {tl_gdim_const(L->g, 1), tl_gdim_const(L->g, p->C)};
        Value *idx = tensor_in(L, "idx", TL_I32, 2, d, &p->full_idx);
        Value *r = lower_call_value(L, method(m, "forward"), &idx, NULL, NULL, 1, 0, train->loc);
        out = r ? lower_tensor(L, r, 0, train->loc) : -1;
        const TlGNode *n = out >= 0 ? &L->g->nodes[out] : NULL;
        int64_t v;
        if (n && (n->shape.rank != 3 || !tl_gdim_is_const(L->g, n->shape.dim[2], &v) || v != p->V)) {
            lower_error(L, train->loc, "sampling: the model's forward(idx: i32[1, %lld]) must give f32[1, %lld, %lld] logits",
                        (long long)p->C, (long long)p->C, (long long)p->V);
            out = -1;
        }
    }
    if (out < 0 || L->failed) {
        free_lower(L, 0);
        return -1;
    }
    tl_graph_add_output(L->g, out);
    p->full = L->g;
    p->full_seed = L->seed_input;
    int *ids[] = {&p->full_idx, &p->full_seed};
    free_lower(L, 1);
    simplify(p->full, ids, 2);
    return 0;
}

/* The shape of decode's parameter k (a cache), evaluated in the model's hyper-parameters
 * with B = 1. */
static int cache_shape(Lower *L, Value *model, TlNode *fn, TlSamplePlan *p) {
    TlNode *ty = fn->list.n == 4 ? fn->list.v[2]->a : NULL;
    if (!ty || ty->kind != TL_N_TYPE_TENSOR || ty->list.n < 3 || ty->list.n > TL_SAMPLE_MAX_RANK) {
        lower_error(L, fn->loc, "sampling: decode must be fn decode(tok: i32[B, 1], pos: i32, kc: f32[...], vc: f32[...]) "
                                "with caches of rank 3 to %d", TL_SAMPLE_MAX_RANK);
        return -1;
    }
    Env *env = env_new(L, model->inst->env);
    env_set(L, env, "B", lv_int_c(L, 1));
    p->cache_rank = ty->list.n;
    for (int i = 0; i < ty->list.n; i++) {
        Value *v = lower_expr(L, env, ty->list.v[i]);
        if (!v || v->kind != V_INT || !tl_gdim_is_const(L->g, v->dim, &p->cache_shape[i])) {
            lower_error(L, ty->list.v[i]->loc, "sampling: the cache's sizes must be known from the model's hyper-parameters");
            return -1;
        }
    }
    if (p->cache_shape[1] != 1) {
        lower_error(L, ty->loc, "sampling: the caches' axis 1 must be the batch B");
        return -1;
    }
    p->C = p->cache_shape[p->cache_rank - 2];
    return 0;
}

/* decode: (logits[B, V], kc', vc') = model.decode(tok[B, 1], pos, kc, vc), B symbolic */
static int lower_decode(TlProgram *prog, TlNode *train, TlArgs *args, TlSamplePlan *p) {
    Lower *L = lower_new(prog);
    L->args = args;
    Value *m = bound_model(L, train);
    Value *f = m ? method(m, "decode") : NULL;
    if (m && !f)
        lower_error(L, m->inst->decl->loc,
                    "sampling: model '%s' has no decode method (fn decode(tok: i32[B, 1], pos: i32, kc, vc) -> (logits, kc, vc); "
                    "see docs/sampling.md)",
                    m->inst->decl->name);
    int outs[3] = {-1, -1, -1};
    if (f && cache_shape(L, m, f->decl, p) == 0) {
        TlGDim B = tl_gdim_sym(L->g, "B"), d[TL_SAMPLE_MAX_RANK];
        TlGDim td[2] = {B, tl_gdim_const(L->g, 1)};
        Value *a[4];
        a[0] = tensor_in(L, "tok", TL_I32, 2, td, &p->dec_tok);
        a[1] = tensor_in(L, "pos", TL_I32, 0, NULL, &p->dec_pos);
        for (int i = 0; i < p->cache_rank; i++) d[i] = i == 1 ? B : tl_gdim_const(L->g, p->cache_shape[i]);
        a[2] = tensor_in(L, "kc", TL_F32, p->cache_rank, d, &p->dec_kc);
        a[3] = tensor_in(L, "vc", TL_F32, p->cache_rank, d, &p->dec_vc);
        Value *r = lower_call_value(L, f, a, NULL, NULL, 4, 0, f->decl->loc);
        if (r && (r->kind != V_TUPLE || r->n != 3))
            lower_error(L, f->decl->loc, "sampling: decode must return (logits, kc, vc)");
        else if (r)
            for (int i = 0; i < 3; i++) outs[i] = lower_tensor(L, r->items[i], 0, f->decl->loc);
        int64_t v;
        if (outs[0] >= 0) {
            const TlGNode *n = &L->g->nodes[outs[0]];
            if (n->shape.rank != 2 || !tl_gdim_is_const(L->g, n->shape.dim[1], &v))
                lower_error(L, f->decl->loc, "sampling: decode's logits must be f32[B, V]");
            else
                p->V = v;
        }
    }
    if (L->failed || outs[0] < 0 || outs[1] < 0 || outs[2] < 0) {
        free_lower(L, 0);
        return -1;
    }
    for (int i = 0; i < 3; i++) tl_graph_add_output(L->g, outs[i]);
    p->dec = L->g;
    p->dec_seed = L->seed_input;
    /* the params, by name (the full graph finds them by the same names) */
    p->params = calloc((size_t)L->nparams + 1, sizeof *p->params);
    for (int i = 0; i < L->nparams; i++) {
        TlSampleParam *q = &p->params[p->nparams++];
        const TlGNode *n = &L->g->nodes[L->params[i].node];
        q->name = strdup(L->params[i].name);
        q->rank = n->shape.rank;
        for (int k = 0; k < q->rank; k++) tl_gdim_is_const(L->g, n->shape.dim[k], &q->shape[k]);
    }
    int *ids[] = {&p->dec_tok, &p->dec_pos, &p->dec_kc, &p->dec_vc, &p->dec_seed};
    free_lower(L, 1);
    simplify(p->dec, ids, 5);
    return 0;
}

TlSamplePlan *tl_sample_plan(TlProgram *prog, TlNode *train, TlArgs *args) {
    TlSamplePlan *p = calloc(1, sizeof *p);
    p->name = train->name;
    p->full_idx = p->full_seed = p->dec_tok = p->dec_pos = p->dec_kc = p->dec_vc = p->dec_seed = -1;
    if (lower_decode(prog, train, args, p) != 0 || lower_full(prog, train, args, p) != 0) {
        tl_sample_plan_free(p);
        return NULL;
    }
    for (int i = 0; i < p->nparams; i++) {
        p->params[i].full_node = tl_graph_find(p->full, TL_GOP_PARAM, p->params[i].name);
        p->params[i].dec_node = tl_graph_find(p->dec, TL_GOP_PARAM, p->params[i].name);
    }
    return p;
}

void tl_sample_plan_free(TlSamplePlan *p) {
    if (!p) return;
    for (int i = 0; i < p->nparams; i++) free(p->params[i].name);
    free(p->params);
    if (p->full) tl_graph_free(p->full);
    if (p->dec) tl_graph_free(p->dec);
    free(p);
}

/* ---- `tlc run --sample`: the two graphs JIT-compiled (or interpreted) ---- */

typedef struct Exec {
    TlInterp *it;
    TlCpuProgram *cp;
} Exec;

static int ex_init(Exec *e, const TlGraph *g, int interp, const TlCpuOptions *o, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    if (interp) return (e->it = tl_interp_new(g)) ? 0 : -1;
    e->cp = tl_cpu_compile(g, o, err, (int)errlen);
    return e->cp ? 0 : -1;
}
static void ex_free(Exec *e) {
    if (e->it) tl_interp_free(e->it);
    if (e->cp) tl_cpu_free(e->cp);
}
static int ex_set_raw(Exec *e, int node, const void *data, int64_t n) {
    if (!e->it && !e->cp) return -1; /* not compiled: not used in this run */
    return e->it ? tl_interp_set_raw(e->it, node, data, n) : tl_cpu_set_raw(e->cp, node, data, n);
}
static void ex_bind(Exec *e, const char *sym, int64_t v) {
    if (!e->it && !e->cp) return;
    if (e->it) tl_interp_bind(e->it, sym, v);
    else tl_cpu_bind(e->cp, sym, v);
}
static int ex_run(Exec *e, char *err, size_t errlen) {
    if (!e->it && !e->cp) {
        snprintf(err, errlen, "internal: this sampling graph was not compiled");
        return -1;
    }
    if ((e->it ? tl_interp_run(e->it) : tl_cpu_run(e->cp)) == 0) return 0;
    snprintf(err, errlen, "%s", e->it ? tl_interp_error(e->it) : tl_cpu_error(e->cp));
    return -1;
}
static const TlTensor *ex_output(Exec *e, int k) { return e->it ? tl_interp_output(e->it, k) : tl_cpu_output(e->cp, k); }

struct TlSampleJit {
    const TlSamplePlan *p;
    Exec full, dec;
    int interp, want_full, want_dec, compiled;
    TlCpuOptions opts;
    int have_opts;
    int32_t *idx; /* [C] */
    int64_t cache_n;
    int W;
};

static int64_t numel(const TlSampleParam *q) {
    int64_t n = 1;
    for (int k = 0; k < q->rank; k++) n *= q->shape[k];
    return n;
}

static int jit_setup(void *ctx, float **params, int W, char *err, size_t errlen) {
    TlSampleJit *b = ctx;
    const TlSamplePlan *p = b->p;
    int64_t zero = 0;
    /* compiled here, not before: bad flags and a missing checkpoint fail fast */
    if (!b->compiled) {
        const TlCpuOptions *o = b->have_opts ? &b->opts : NULL;
        if ((b->want_dec && ex_init(&b->dec, p->dec, b->interp, o, err, errlen) != 0) ||
            (b->want_full && ex_init(&b->full, p->full, b->interp, o, err, errlen) != 0))
            return -1;
        b->compiled = 1;
    }
    b->W = W;
    b->cache_n = W;
    for (int i = 0; i < p->cache_rank; i++) b->cache_n *= i == 1 ? 1 : p->cache_shape[i];
    ex_bind(&b->dec, "B", W);
    for (int i = 0; i < p->nparams; i++) {
        if (p->params[i].full_node >= 0) ex_set_raw(&b->full, p->params[i].full_node, params[i], numel(&p->params[i]));
        if (p->params[i].dec_node >= 0) ex_set_raw(&b->dec, p->params[i].dec_node, params[i], numel(&p->params[i]));
    }
    if (p->full_seed >= 0) ex_set_raw(&b->full, p->full_seed, &zero, 1);
    if (p->dec_seed >= 0) ex_set_raw(&b->dec, p->dec_seed, &zero, 1);
    return 0;
}

static int jit_full(void *ctx, const int32_t *idx, int len, float *logits, char *err, size_t errlen) {
    TlSampleJit *b = ctx;
    const TlSamplePlan *p = b->p;
    memset(b->idx, 0, sizeof(int32_t) * (size_t)p->C); /* right padding: masked out */
    memcpy(b->idx, idx, sizeof(int32_t) * (size_t)len);
    ex_set_raw(&b->full, p->full_idx, b->idx, p->C);
    if (ex_run(&b->full, err, errlen) != 0) return -1;
    memcpy(logits, (const float *)ex_output(&b->full, 0)->data + (int64_t)(len - 1) * p->V, sizeof(float) * (size_t)p->V);
    return 0;
}

static int jit_decode(void *ctx, const int32_t *tok, int pos, float *kc, float *vc, float *logits, char *err, size_t errlen) {
    TlSampleJit *b = ctx;
    const TlSamplePlan *p = b->p;
    int32_t pos32 = pos;
    ex_set_raw(&b->dec, p->dec_tok, tok, b->W);
    ex_set_raw(&b->dec, p->dec_pos, &pos32, 1);
    ex_set_raw(&b->dec, p->dec_kc, kc, b->cache_n);
    ex_set_raw(&b->dec, p->dec_vc, vc, b->cache_n);
    if (ex_run(&b->dec, err, errlen) != 0) return -1;
    memcpy(logits, ex_output(&b->dec, 0)->data, sizeof(float) * (size_t)(b->W * p->V));
    memcpy(kc, ex_output(&b->dec, 1)->data, sizeof(float) * (size_t)b->cache_n);
    memcpy(vc, ex_output(&b->dec, 2)->data, sizeof(float) * (size_t)b->cache_n);
    return 0;
}

static void jit_threads(void *ctx, int n) {
    TlSampleJit *b = ctx;
    if (b->full.cp) tl_cpu_set_threads(b->full.cp, n);
    if (b->dec.cp) tl_cpu_set_threads(b->dec.cp, n);
}

TlSampleJit *tl_sample_jit_new(const TlSamplePlan *p, int interp, int full, int dec, const TlCpuOptions *o, char *err,
                               size_t errlen) {
    TlSampleJit *j = calloc(1, sizeof *j);
    j->p = p;
    j->idx = calloc((size_t)p->C, sizeof(int32_t));
    j->interp = interp;
    j->want_full = full;
    j->want_dec = dec;
    if (o) {
        j->opts = *o;
        j->have_opts = 1;
    }
    (void)err;
    (void)errlen;
    return j;
}

void tl_sample_jit_free(TlSampleJit *j) {
    if (!j) return;
    ex_free(&j->full);
    ex_free(&j->dec);
    free(j->idx);
    free(j);
}

void tl_sample_jit_backend(TlSampleJit *j, TlSamplerBackend *be) {
    *be = (TlSamplerBackend){j, jit_setup, jit_full, jit_decode, jit_threads};
}

void tl_sample_spec(const TlSamplePlan *p, TlSamplerSpec *s, TlSamplerTensor *ts) {
    for (int i = 0; i < p->nparams; i++) {
        ts[i].name = p->params[i].name;
        ts[i].rank = p->params[i].rank;
        memcpy(ts[i].shape, p->params[i].shape, sizeof(int64_t) * (size_t)ts[i].rank);
    }
    *s = (TlSamplerSpec){.name = p->name, .V = p->V, .C = p->C, .cache_rank = p->cache_rank, .params = ts, .nparams = p->nparams};
    memcpy(s->cache_shape, p->cache_shape, sizeof s->cache_shape);
}

int tl_sample_main(TlProgram *prog, const char *train_name, int argc, char **argv, int interp) {
    TlNode *train = tl_train_find(prog, train_name);
    if (!train) {
        fprintf(stderr, "tlc: %s\n", train_name ? "no train block of that name" : "the program has no train block (or several: name one with --train NAME)");
        return 1;
    }
    char err[1024], summary[256];
    snprintf(summary, sizeof summary, "Sample from the model of '%s' (tl%s).", train->name, interp ? ", through the reference interpreter" : "");
    TlArgs *args = tl_args_new(argc > 0 ? argv[0] : train->name, summary);
    if (tl_train_register_args(train, args) < 0 || tl_sampler_add_flags(args, err, sizeof err) != 0) {
        tl_args_free(args);
        return 1;
    }
    switch (tl_args_parse(args, argc, argv, stdout, err, sizeof err)) {
    case TL_ARGS_HELP:
        tl_args_free(args);
        return 0;
    case TL_ARGS_ERROR:
        fprintf(stderr, "%s: %s\n", argc > 0 ? argv[0] : "sample", err);
        tl_args_free(args);
        return 2;
    }
    TlSamplePlan *p = tl_sample_plan(prog, train, args);
    if (!p) {
        tl_args_free(args);
        return 1;
    }
    int status = 1;
    TlSamplerTensor *ts = calloc((size_t)p->nparams + 1, sizeof *ts);
    TlSamplerSpec spec;
    tl_sample_spec(p, &spec, ts);
    spec.name = argc > 0 ? argv[0] : "sample";
    int cached = tl_args_bool(args, "cache");
    TlSampleJit *j = tl_sample_jit_new(p, interp, !cached, cached, NULL, err, sizeof err);
    if (!j) {
        fprintf(stderr, "tlc: compiling the sampling graphs: %s\n", err);
    } else {
        TlSamplerBackend be;
        tl_sample_jit_backend(j, &be);
        status = tl_sampler_main(&spec, &be, args);
    }
    tl_sample_jit_free(j);
    free(ts);
    tl_sample_plan_free(p);
    tl_args_free(args);
    return status;
}

int tl_sample_available(TlProgram *prog, TlNode *train, TlArgs *args) {
    Lower *L = lower_new(prog);
    L->args = args;
    Value *m = bound_model(L, train);
    int ok = m && method(m, "decode") != NULL;
    free_lower(L, 0);
    return ok;
}
