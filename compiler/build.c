/* build.c — `tlc build FILE -o EXE [-- FLAGS]`: a train block as a standalone executable.
 *
 * The step and eval graphs are compiled to one object each (symbols prefixed tl_step_ and
 * tl_eval_), and a small generated C file describes the program to the runtime: its flags,
 * its params and optimizer state, which Loop IR buffer holds each input and output, and a
 * main() that runs runtime/trainer. The system C compiler compiles that file and links the
 * three objects with build/libtlrt.a: the executable needs no LLVM and no tlc.
 *
 * Flags: the settings written as arg(...) in the train block (steps, log_every, eval_every,
 * checkpoint_every, seed, out, the data path, the optimizer's lr) are read when the program
 * runs; every other flag shapes the compiled graphs (sizes such as --dim or --seq), so its
 * value is fixed when the program is built (`tlc build FILE -o EXE -- --dim 128`) and the
 * program refuses a different one with a message saying so.
 *
 * --target=cuda: the step, eval and sampling graphs become GPU program descriptions
 * (runtime/gpuprog.h: PTX text, launches, buffers, host program) embedded in the generated
 * C as bytes; the executable runs them through runtime/gputrain (params and optimizer
 * state resident on the device) and runtime/cuda (the driver is dlopen'd), so it links
 * neither LLVM nor CUDA. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "cpu/cpu.h"
#include "loops.h"
#include "schedule_cache.h"
#include "memplan.h"
#include "nvptx/nvptx.h"
#include "sample.h"
#include "train.h"
#include "trainer.h"

/* A C string literal for s. */
static void cstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 32 || c >= 127) fprintf(f, "\\%03o", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static int buf_of(const TlLProgram *lp, int node) { return node >= 0 ? lp->node_buf[node] : -1; }

/* --target=cuda: the Loop IR programs and their descriptions (NULL members for CPU builds). */
typedef struct GpuBuild {
    TlLProgram *step, *eval, *dec, *full;
    TlGpuDesc *sd, *ed, *dd, *fd;
} GpuBuild;

/* bytes as a C string literal initializing `static const unsigned char name[]` (size n + 1:
 * the literal's NUL); octal escapes (never greedy), '?' escaped (no trigraphs) */
static void emit_blob(FILE *f, const char *name, const unsigned char *p, size_t n) {
    fprintf(f, "static const unsigned char %s[%zu] =\n\"", name, n + 1);
    int col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c >= 32 && c < 127 && c != '"' && c != '\\' && c != '?') fputc((int)c, f), col++;
        else fprintf(f, "\\%03o", c), col += 4;
        if (col >= 120 || (c == '\n' && col >= 40)) fputs("\"\n\"", f), col = 0;
    }
    fputs("\";\n", f);
}

static int emit_gpu_desc(FILE *f, const TlGpuDesc *d, const char *name) {
    unsigned char *b = NULL;
    size_t n = 0;
    if (tl_gpudesc_write(d, &b, &n) != 0) return -1;
    emit_blob(f, name, b, n);
    free(b);
    return 0;
}

static void emit_i64s(FILE *f, const char *name, const int64_t *v, int n) {
    fprintf(f, "static const int64_t %s[] = {", name);
    for (int i = 0; i < n; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)v[i]);
    if (n == 0) fprintf(f, "0");
    fprintf(f, "};\n");
}

/* The memory plan of a program whose dims are all constant (NULL otherwise): its TEMP and
 * STATE buffers in one arena, the graph's outputs kept (compiler/memplan.h). */
static TlMemPlan *static_plan(const TlLProgram *lp) {
    if (lp->nsyms != 0) return NULL;
    int n = lp->g ? lp->g->noutputs : 0;
    int *keep = calloc((size_t)n + 1, sizeof(int));
    if (!keep) return NULL;
    n = tl_memplan_outputs(lp, keep, n);
    const char *mp = getenv("TL_MEMPLAN");
    TlMemPlan *m = tl_memplan_ex(lp, NULL, keep, n, !(mp && strcmp(mp, "0") == 0));
    free(keep);
    return m;
}

static void emit_desc(FILE *f, const TlCpuProgram *cp, const char *prefix, const char *name) {
    const TlLProgram *lp = tl_cpu_loops(cp);
    TlMemPlan *m = static_plan(lp);
    if (m) {
        fprintf(f, "static const int64_t %soffset[] = {", prefix);
        for (int i = 0; i < lp->nbuf; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)m->offset[i]);
        fprintf(f, "};\n");
    }
    fprintf(f, "void %smain(void **, const int64_t *, TlRtParFor, void *);\n", prefix);
    fprintf(f, "void %ssizes(const int64_t *, int64_t *);\n", prefix);
    fprintf(f, "static const signed char %skind[] = {", prefix);
    for (int i = 0; i < lp->nbuf; i++) fprintf(f, "%s%d", i ? "," : "", (int)lp->buf[i].kind);
    fprintf(f, "};\nstatic const unsigned char %selem[] = {", prefix);
    for (int i = 0; i < lp->nbuf; i++) fprintf(f, "%s%d", i ? "," : "", (int)tl_ltype_size(lp->buf[i].elem));
    fprintf(f, "};\nstatic const TlRtProgramDesc %sdesc = {\"%s\", %d, %skind, %selem, %d, %smain, %ssizes", prefix,
            name, lp->nbuf, prefix, prefix, lp->nsyms, prefix, prefix);
    if (m) fprintf(f, ", %soffset, %lld}; /* arena: %lld bytes, %lld without reuse */\n\n", prefix, (long long)m->arena,
                   (long long)m->arena, (long long)m->total);
    else fprintf(f, ", 0, 0};\n\n");
    tl_memplan_free(m);
}

static int is_runtime_flag(const TlTrainPlan *p, const char *name) {
    const char *rt[] = {p->flag_steps, p->flag_log_every, p->flag_eval_every, p->flag_checkpoint_every, p->flag_seed,
                        p->flag_out, p->flag_data, p->flag_lr};
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++)
        if (rt[i] && strcmp(rt[i], name) == 0) return 1;
    /* the trainer's own flags */
    return !strcmp(name, "resume") || !strcmp(name, "out") || !strcmp(name, "eval-batches") || !strcmp(name, "threads");
}

static const char *kind_name(TlArgKind k) {
    switch (k) {
    case TL_ARG_INT: return "TL_ARG_INT";
    case TL_ARG_FLOAT: return "TL_ARG_FLOAT";
    case TL_ARG_BOOL: return "TL_ARG_BOOL";
    case TL_ARG_PATH: return "TL_ARG_PATH";
    default: return "TL_ARG_STRING";
    }
}

static void emit_tensors(FILE *f, const char *name, const TlTrainerTensor *t, int n) {
    fprintf(f, "static const TlTrainerTensor %s[] = {\n", name);
    for (int i = 0; i < n; i++) {
        fprintf(f, "    {");
        cstr(f, t[i].name);
        fprintf(f, ", %d, {", t[i].rank);
        for (int k = 0; k < t[i].rank; k++) fprintf(f, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
        fprintf(f, "}, %d, %.17g, %.17g, %d, %d},\n", (int)t[i].init, t[i].a, t[i].b, t[i].fan_in, t[i].fan_out);
    }
    if (n == 0) fprintf(f, "    {0},\n");
    fprintf(f, "};\n");
}

static void emit_ints(FILE *f, const char *name, const int *v, int n) {
    fprintf(f, "static const int %s[] = {", name);
    for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", v[i]);
    if (n == 0) fprintf(f, "-1");
    fprintf(f, "};\n");
}

/* `prog sample ...`: the sampling graphs of a model with a decode method (compiler/sample.h),
 * compiled to objects with the prefixes tl_dec_ and tl_full_, and runtime/sampler's loop. */
typedef struct SampleBuild {
    const TlSamplePlan *p;
    const TlCpuProgram *dec, *full;   /* CPU builds */
    const TlLProgram *dl, *fl;        /* their Loop IR (either target) */
    const GpuBuild *gpu;              /* --target=cuda: the descriptions */
} SampleBuild;

/* The sampler's backend on the GPU (generated text): the decode and full programs'
 * executors; params uploaded by setup, the KV caches passed through the host each token. */
static const char GPU_SAMPLER[] =
    "#include \"gpuprog.h\"\n"
    "typedef struct SCtx { TlGpuDesc *dd, *fd; TlGpuExec *dx, *fx; int W, ready; int32_t pos; int32_t idx[SC]; float *flog; } SCtx;\n\n"
    "static int s_fail(const TlGpuExec *x, char *err, size_t n) {\n"
    "    snprintf(err, n, \"%s\", tl_gpuexec_error(x) ? tl_gpuexec_error(x) : \"GPU error\");\n"
    "    return -1;\n"
    "}\n\n"
    "static int s_setup(void *c_, float **params, int W, char *err, size_t n) {\n"
    "    SCtx *c = c_;\n"
    "    static const int64_t zero = 0;\n"
    "    if (!c->dx) {\n"
    "        if (!(c->dd = tl_gpudesc_read(tl_dec_gpu, sizeof tl_dec_gpu - 1, err, (int)n)) ||\n"
    "            !(c->fd = tl_gpudesc_read(tl_full_gpu, sizeof tl_full_gpu - 1, err, (int)n)) ||\n"
    "            !(c->dx = tl_gpuexec_new(c->dd, err, (int)n)) || !(c->fx = tl_gpuexec_new(c->fd, err, (int)n))) return -1;\n"
    "        c->flog = malloc(sizeof(float) * SC * SV);\n"
    "        if (!c->flog) { snprintf(err, n, \"out of memory\"); return -1; }\n"
    "    }\n"
    "    if (c->ready && c->W != W) { snprintf(err, n, \"the beam width is fixed per run\"); return -1; }\n"
    "    c->ready = 1;\n"
    "    c->W = W;\n"
    "    tl_gpuexec_bind(c->dx, \"B\", W);\n"
    "    for (int i = 0; i < SNPARAMS; i++) {\n"
    "        if (dec_param_in[i] >= 0 && tl_gpuexec_set(c->dx, dec_param_in[i], params[i], sparam_n[i])) return s_fail(c->dx, err, n);\n"
    "        if (full_param_in[i] >= 0 && tl_gpuexec_set(c->fx, full_param_in[i], params[i], sparam_n[i])) return s_fail(c->fx, err, n);\n"
    "    }\n"
    "    if (DSEED >= 0 && tl_gpuexec_set(c->dx, DSEED, &zero, 1)) return s_fail(c->dx, err, n);\n"
    "    if (FSEED >= 0 && tl_gpuexec_set(c->fx, FSEED, &zero, 1)) return s_fail(c->fx, err, n);\n"
    "    return 0;\n"
    "}\n\n"
    "static int s_full(void *c_, const int32_t *idx, int len, float *logits, char *err, size_t n) {\n"
    "    SCtx *c = c_;\n"
    "    memset(c->idx, 0, sizeof c->idx);\n"
    "    memcpy(c->idx, idx, sizeof(int32_t) * (size_t)len);\n"
    "    if (tl_gpuexec_set(c->fx, FIDX, c->idx, SC) || tl_gpuexec_run(c->fx) ||\n"
    "        tl_gpuexec_read(c->fx, FLOGITS, c->flog, (int64_t)len * SV)) return s_fail(c->fx, err, n);\n"
    "    memcpy(logits, c->flog + (size_t)(len - 1) * SV, sizeof(float) * SV);\n"
    "    return 0;\n"
    "}\n\n"
    "static int s_decode(void *c_, const int32_t *tok, int pos, float *kc, float *vc, float *logits, char *err, size_t n) {\n"
    "    SCtx *c = c_;\n"
    "    int64_t cn = (int64_t)CACHE1 * c->W;\n"
    "    c->pos = pos;\n"
    "    if (tl_gpuexec_set(c->dx, DTOK, tok, c->W) || tl_gpuexec_set(c->dx, DPOS, &c->pos, 1) ||\n"
    "        tl_gpuexec_set(c->dx, DKC, kc, cn) || tl_gpuexec_set(c->dx, DVC, vc, cn) || tl_gpuexec_run(c->dx) ||\n"
    "        tl_gpuexec_read(c->dx, DLOGITS, logits, (int64_t)SV * c->W) || tl_gpuexec_read(c->dx, DKC_OUT, kc, cn) ||\n"
    "        tl_gpuexec_read(c->dx, DVC_OUT, vc, cn)) return s_fail(c->dx, err, n);\n"
    "    return 0;\n"
    "}\n\n"
    "static int s_run(SCtx *c, const TlSamplerSpec *s, TlArgs *a) {\n"
    "    TlSamplerBackend be = {c, s_setup, s_full, s_decode, NULL};\n"
    "    int status = tl_sampler_main(s, &be, a);\n"
    "    tl_gpuexec_free(c->dx); tl_gpuexec_free(c->fx); tl_gpudesc_free(c->dd); tl_gpudesc_free(c->fd); free(c->flog);\n"
    "    return status;\n"
    "}\n\n";

static void emit_sample(FILE *f, const SampleBuild *sb, const char *file) {
    const TlSamplePlan *p = sb->p;
    const TlLProgram *dl = sb->dl;
    if (sb->gpu) {
        emit_gpu_desc(f, sb->gpu->dd, "tl_dec_gpu");
        emit_gpu_desc(f, sb->gpu->fd, "tl_full_gpu");
    } else {
        emit_desc(f, sb->dec, "tl_dec_", "decode");
        emit_desc(f, sb->full, "tl_full_", "full");
    }
    fprintf(f, "#include \"sampler.h\"\nstatic const TlSamplerTensor sparams[] = {\n");
    for (int i = 0; i < p->nparams; i++) {
        fprintf(f, "    {");
        cstr(f, p->params[i].name);
        fprintf(f, ", %d, {", p->params[i].rank);
        for (int k = 0; k < p->params[i].rank; k++) fprintf(f, "%s%lld", k ? "," : "", (long long)p->params[i].shape[k]);
        fprintf(f, "}},\n");
    }
    fprintf(f, "    {0}};\n");
    int *din = calloc((size_t)p->nparams + 1, sizeof(int)), *fin = calloc((size_t)p->nparams + 1, sizeof(int));
    for (int i = 0; i < p->nparams; i++) {
        din[i] = buf_of(sb->dl, p->params[i].dec_node);
        fin[i] = buf_of(sb->fl, p->params[i].full_node);
    }
    emit_ints(f, "dec_param_in", din, p->nparams);
    emit_ints(f, "full_param_in", fin, p->nparams);
    free(din);
    free(fin);
    int bsym = -1;
    for (int i = 0; i < dl->nsyms; i++)
        if (!strcmp(dl->syms[i], "B")) bsym = i;
    int64_t cache1 = 1;
    for (int i = 0; i < p->cache_rank; i++) cache1 *= p->cache_shape[i];
    fprintf(f, "enum { SNPARAMS = %d, SV = %lld, SC = %lld, CACHE1 = %lld, BSYM = %d };\n", p->nparams, (long long)p->V,
            (long long)p->C, (long long)cache1, bsym);
    fprintf(f, "enum { DTOK = %d, DPOS = %d, DKC = %d, DVC = %d, DSEED = %d, DLOGITS = %d, DKC_OUT = %d, DVC_OUT = %d };\n",
            buf_of(dl, p->dec_tok), buf_of(dl, p->dec_pos), buf_of(dl, p->dec_kc), buf_of(dl, p->dec_vc),
            p->dec_seed >= 0 ? buf_of(dl, p->dec_seed) : -1, buf_of(dl, p->dec->outputs[0]), buf_of(dl, p->dec->outputs[1]),
            buf_of(dl, p->dec->outputs[2]));
    fprintf(f, "enum { FIDX = %d, FSEED = %d, FLOGITS = %d };\n", buf_of(sb->fl, p->full_idx),
            p->full_seed >= 0 ? buf_of(sb->fl, p->full_seed) : -1, buf_of(sb->fl, p->full->outputs[0]));
    fprintf(f, "static const int64_t cache_shape[] = {");
    for (int i = 0; i < p->cache_rank; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)p->cache_shape[i]);
    fprintf(f, "};\n\n");
    if (sb->gpu) {
        int64_t *pn = calloc((size_t)p->nparams + 1, sizeof(int64_t));
        for (int i = 0; i < p->nparams; i++) {
            pn[i] = 1;
            for (int k = 0; k < p->params[i].rank; k++) pn[i] *= p->params[i].shape[k];
        }
        emit_i64s(f, "sparam_n", pn, p->nparams);
        free(pn);
        fputs(GPU_SAMPLER, f);
    } else
    fputs(
        "typedef struct SCtx { TlRtProgram dec, full; TlPool *pool; int W, ready; int32_t pos; int32_t idx[SC]; } SCtx;\n\n"
        "static int s_setup(void *c_, float **params, int W, char *err, size_t n) {\n"
        "    SCtx *c = c_;\n"
        "    static int64_t zero = 0;\n"
        "    if (!c->ready && (tl_rt_program_init(&c->dec, &tl_dec_desc, c->pool, err, n) != 0 ||\n"
        "                      tl_rt_program_init(&c->full, &tl_full_desc, c->pool, err, n) != 0)) return -1;\n"
        "    if (c->ready && c->W != W) { snprintf(err, n, \"the beam width is fixed per run\"); return -1; }\n"
        "    c->ready = 1;\n"
        "    c->W = W;\n"
        "    if (BSYM >= 0) c->dec.syms[BSYM] = W;\n"
        "    for (int i = 0; i < SNPARAMS; i++) {\n"
        "        if (dec_param_in[i] >= 0) tl_rt_set(&c->dec, dec_param_in[i], params[i]);\n"
        "        if (full_param_in[i] >= 0) tl_rt_set(&c->full, full_param_in[i], params[i]);\n"
        "    }\n"
        "    if (DSEED >= 0) tl_rt_set(&c->dec, DSEED, &zero);\n"
        "    if (FSEED >= 0) tl_rt_set(&c->full, FSEED, &zero);\n"
        "    return 0;\n"
        "}\n\n"
        "static int s_full(void *c_, const int32_t *idx, int len, float *logits, char *err, size_t n) {\n"
        "    SCtx *c = c_;\n"
        "    memset(c->idx, 0, sizeof c->idx);\n"
        "    memcpy(c->idx, idx, sizeof(int32_t) * (size_t)len);\n"
        "    tl_rt_set(&c->full, FIDX, c->idx);\n"
        "    if (tl_rt_run(&c->full, err, n) != 0) return -1;\n"
        "    memcpy(logits, (float *)tl_rt_buf(&c->full, FLOGITS) + (size_t)(len - 1) * SV, sizeof(float) * SV);\n"
        "    return 0;\n"
        "}\n\n"
        "static int s_decode(void *c_, const int32_t *tok, int pos, float *kc, float *vc, float *logits, char *err, size_t n) {\n"
        "    SCtx *c = c_;\n"
        "    size_t cn = sizeof(float) * (size_t)CACHE1 * (size_t)c->W;\n"
        "    c->pos = pos;\n"
        "    tl_rt_set(&c->dec, DTOK, (void *)tok); tl_rt_set(&c->dec, DPOS, &c->pos);\n"
        "    tl_rt_set(&c->dec, DKC, kc); tl_rt_set(&c->dec, DVC, vc);\n"
        "    if (tl_rt_run(&c->dec, err, n) != 0) return -1;\n"
        "    memcpy(logits, tl_rt_buf(&c->dec, DLOGITS), sizeof(float) * SV * (size_t)c->W);\n"
        "    if (tl_rt_buf(&c->dec, DKC_OUT) != kc) memmove(kc, tl_rt_buf(&c->dec, DKC_OUT), cn);\n"
        "    if (tl_rt_buf(&c->dec, DVC_OUT) != vc) memmove(vc, tl_rt_buf(&c->dec, DVC_OUT), cn);\n"
        "    return 0;\n"
        "}\n\n"
        "static void s_threads(void *c_, int n) {\n"
        "    SCtx *c = c_;\n"
        "    tl_pool_destroy(c->pool);\n"
        "    c->pool = tl_pool_create(n);\n"
        "    c->dec.pool = c->full.pool = c->pool;\n"
        "}\n\n"
        "static int s_run(SCtx *c, const TlSamplerSpec *s, TlArgs *a) {\n"
        "    c->pool = tl_pool_create(0);\n"
        "    TlSamplerBackend be = {c, s_setup, s_full, s_decode, s_threads};\n"
        "    int status = tl_sampler_main(s, &be, a);\n"
        "    if (c->ready) { tl_rt_program_free(&c->dec); tl_rt_program_free(&c->full); }\n"
        "    tl_pool_destroy(c->pool);\n"
        "    return status;\n"
        "}\n\n",
        f);
    char summary[512];
    snprintf(summary, sizeof summary, "Generate text with the model of '%s' (built by tlc from %s; its sizes are fixed).",
             p->name, file);
    fprintf(f, "static int sample_main(int argc, char **argv, const char *prog) {\n    char err[1024];\n    TlArgs *a = tl_args_new(\"sample\", ");
    cstr(f, summary);
    fputs(");\n"
          "    tl_sampler_add_flags(a, err, sizeof err);\n"
          "    switch (tl_args_parse(a, argc, argv, stdout, err, sizeof err)) {\n"
          "    case TL_ARGS_HELP: tl_args_free(a); return 0;\n"
          "    case TL_ARGS_ERROR: fprintf(stderr, \"sample: %s\\n\", err); tl_args_free(a); return 2;\n"
          "    }\n"
          "    TlSamplerSpec s = {0};\n"
          "    s.name = prog; s.V = SV; s.C = SC; s.params = sparams; s.nparams = SNPARAMS;\n"
          "    s.cache_rank = (int)(sizeof cache_shape / sizeof cache_shape[0]);\n"
          "    memcpy(s.cache_shape, cache_shape, sizeof cache_shape);\n"
          "    static SCtx c;\n"
          "    int status = s_run(&c, &s, a);\n"
          "    tl_args_free(a);\n"
          "    return status;\n"
          "}\n\n",
          f);
}

/* The training backend of a --target=cuda executable (generated text): the step and eval
 * descriptions' executors under runtime/gputrain. */
static const char GPU_BACKEND[] =
    "typedef struct Ctx { TlGpuDesc *sd, *ed; TlGpuExec *sx, *ex; TlGpuTrain gt; } Ctx;\n\n"
    "static int gpu_open(Ctx *c, double steps, char *err, size_t n) {\n"
    "    if (!(c->sd = tl_gpudesc_read(tl_step_gpu, sizeof tl_step_gpu - 1, err, (int)n)) ||\n"
    "        !(c->ed = tl_gpudesc_read(tl_eval_gpu, sizeof tl_eval_gpu - 1, err, (int)n)) ||\n"
    "        !(c->sx = tl_gpuexec_new(c->sd, err, (int)n)) || !(c->ex = tl_gpuexec_new(c->ed, err, (int)n))) return -1;\n"
    "    TlGpuTrainMap m = {.x = X, .y = Y, .step = STEP, .lr = LR, .steps = STEPS, .seed = SEED, .loss = LOSS,\n"
    "                       .lr_out = LR_OUT, .ex = EX, .ey = EY, .eseed = ESEED, .eloss = ELOSS, .nparams = NPARAMS,\n"
    "                       .nstates = NSTATES, .param_in = param_in, .param_out = param_out, .state_in = state_in,\n"
    "                       .state_out = state_out, .eval_param_in = eval_param_in, .pn = param_n, .sn = state_n,\n"
    "                       .B = B, .T = T, .accum = ACC};\n"
    "    return tl_gputrain_init(&c->gt, c->sx, c->ex, &m, steps, err, n);\n"
    "}\n\n"
    "static void gpu_close(Ctx *c) {\n"
    "    tl_gputrain_free(&c->gt);\n"
    "    tl_gpuexec_free(c->sx); tl_gpuexec_free(c->ex); tl_gpudesc_free(c->sd); tl_gpudesc_free(c->ed);\n"
    "}\n\n";

/* main()'s end in a --target=cuda executable: no GPU, one line and exit status 1, before
 * the trainer creates anything. */
static const char GPU_MAIN[] =
    "    Ctx c = {0};\n"
    "    if (gpu_open(&c, (double)s.steps, err, sizeof err) != 0) {\n"
    "        fprintf(stderr, \"%s: this program trains on an NVIDIA GPU: %s\\n\", argv[0], err);\n"
    "        gpu_close(&c);\n"
    "        tl_args_free(a);\n"
    "        return 1;\n"
    "    }\n"
    "    printf(\"GPU: %s\\n\", tl_cuda_device_name());\n"
    "    TlTrainerBackend be = tl_gputrain_backend(&c.gt);\n"
    "    int status = tl_trainer_run(&s, &be, a);\n"
    "    gpu_close(&c);\n"
    "    tl_args_free(a);\n"
    "    return status;\n"
    "}\n";

/* The generated program: tables, the compiled backend and main(). */
static int emit_main(const char *path, const TlTrainPlan *p, const TlTrainerSpec *spec, const TlCpuProgram *step,
                     const TlCpuProgram *eval, const GpuBuild *gpu, const TlArgs *args, const char *file,
                     const SampleBuild *sb) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    const TlLProgram *sl = gpu ? gpu->step : tl_cpu_loops(step), *el = gpu ? gpu->eval : tl_cpu_loops(eval);
    fprintf(f, "/* Generated by tlc build from %s: the program's description for the runtime. */\n", file);
    fprintf(f, "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"args.h\"\n"
               "#include \"compiled.h\"\n#include \"trainer.h\"\n%s\n",
            gpu ? "#include \"gpuprog.h\"\n#include \"gputrain.h\"\n" : "");
    if (gpu) {
        emit_gpu_desc(f, gpu->sd, "tl_step_gpu");
        emit_gpu_desc(f, gpu->ed, "tl_eval_gpu");
        int64_t *n = calloc((size_t)(spec->nparams + spec->nstates) + 1, sizeof(int64_t));
        for (int i = 0; i < spec->nparams + spec->nstates; i++) {
            const TlTrainerTensor *t = i < spec->nparams ? &spec->params[i] : &spec->states[i - spec->nparams];
            n[i] = 1;
            for (int k = 0; k < t->rank; k++) n[i] *= t->shape[k];
        }
        emit_i64s(f, "param_n", n, spec->nparams);
        emit_i64s(f, "state_n", n + spec->nparams, spec->nstates);
        free(n);
    } else {
        emit_desc(f, step, "tl_step_", "step");
        emit_desc(f, eval, "tl_eval_", "eval");
    }
    emit_tensors(f, "params", spec->params, spec->nparams);
    emit_tensors(f, "states", spec->states, spec->nstates);
    int *pin = calloc((size_t)p->nparams + 1, sizeof(int)), *pout = calloc((size_t)p->nparams + 1, sizeof(int));
    int *sin = calloc((size_t)p->nstates + 1, sizeof(int)), *sout = calloc((size_t)p->nstates + 1, sizeof(int));
    int *epin = calloc((size_t)p->nparams + 1, sizeof(int));
    for (int i = 0; i < p->nparams; i++) {
        pin[i] = buf_of(sl, p->params[i].node);
        pout[i] = p->param_out[i] >= 0 ? buf_of(sl, p->step->outputs[p->param_out[i]]) : -1;
        epin[i] = buf_of(el, tl_graph_find(p->eval, TL_GOP_PARAM, p->params[i].name));
    }
    for (int i = 0; i < p->nstates; i++) {
        sin[i] = buf_of(sl, p->states[i].input);
        sout[i] = buf_of(sl, p->step->outputs[p->state_out[i]]);
    }
    emit_ints(f, "param_in", pin, p->nparams);
    emit_ints(f, "param_out", pout, p->nparams);
    emit_ints(f, "state_in", sin, p->nstates);
    emit_ints(f, "state_out", sout, p->nstates);
    emit_ints(f, "eval_param_in", epin, p->nparams);
    free(pin);
    free(pout);
    free(sin);
    free(sout);
    free(epin);
    fprintf(f, "enum { NPARAMS = %d, NSTATES = %d, B = %lld, T = %lld, ACC = %lld };\n", p->nparams, p->nstates,
            (long long)p->B, (long long)p->T, (long long)p->accum);
    fprintf(f, "enum { X = %d, Y = %d, STEP = %d, LR = %d, STEPS = %d, SEED = %d, LOSS = %d, LR_OUT = %d };\n",
            buf_of(sl, p->x), buf_of(sl, p->y), buf_of(sl, p->stepnum), buf_of(sl, p->lr_in), buf_of(sl, p->steps_in),
            p->seed_in >= 0 ? buf_of(sl, p->seed_in) : -1, buf_of(sl, p->step->outputs[p->loss_out]),
            buf_of(sl, p->step->outputs[p->lr_out]));
    fprintf(f, "enum { EX = %d, EY = %d, ESEED = %d, ELOSS = %d };\n\n", buf_of(el, p->ex), buf_of(el, p->ey),
            p->eseed >= 0 ? buf_of(el, p->eseed) : -1, buf_of(el, p->eval->outputs[0]));
    /* the backend over the two compiled programs */
    if (gpu) fputs(GPU_BACKEND, f);
    else fputs(
        "typedef struct Ctx { TlRtProgram step, eval; TlPool *pool; float stepnum, lr, steps; int64_t seed;\n"
        "                     int32_t *x, *y; } Ctx;\n\n"
        "static int step_fn(void *c_, const int32_t *x, const int32_t *y, int64_t step, int64_t seed, double lr,\n"
        "                   float **params, float **states, double *loss, double *lr_used, char *err, size_t n) {\n"
        "    Ctx *c = c_;\n"
        "    TlRtProgram *p = &c->step;\n"
        "    memcpy(c->x, x, sizeof(int32_t) * ACC * B * T);\n"
        "    memcpy(c->y, y, sizeof(int32_t) * ACC * B * T);\n"
        "    c->stepnum = (float)step; c->lr = (float)lr; c->seed = seed;\n"
        "    tl_rt_set(p, X, c->x); tl_rt_set(p, Y, c->y); tl_rt_set(p, STEP, &c->stepnum);\n"
        "    if (LR >= 0) tl_rt_set(p, LR, &c->lr);\n"
        "    if (STEPS >= 0) tl_rt_set(p, STEPS, &c->steps);\n"
        "    if (SEED >= 0) tl_rt_set(p, SEED, &c->seed);\n"
        "    for (int i = 0; i < NPARAMS; i++) tl_rt_set(p, param_in[i], params[i]);\n"
        "    for (int i = 0; i < NSTATES; i++) tl_rt_set(p, state_in[i], states[i]);\n"
        "    if (tl_rt_run(p, err, n) != 0) return -1;\n"
        "    *loss = *(float *)tl_rt_buf(p, LOSS);\n"
        "    *lr_used = *(float *)tl_rt_buf(p, LR_OUT);\n"
        "    for (int i = 0; i < NPARAMS; i++)\n"
        "        if (param_out[i] >= 0) memcpy(params[i], tl_rt_buf(p, param_out[i]), sizeof(float) * (size_t)tl_rt_numel(p, param_out[i]));\n"
        "    for (int i = 0; i < NSTATES; i++)\n"
        "        memcpy(states[i], tl_rt_buf(p, state_out[i]), sizeof(float) * (size_t)tl_rt_numel(p, state_out[i]));\n"
        "    return 0;\n"
        "}\n\n"
        "static int eval_fn(void *c_, const int32_t *x, const int32_t *y, float **params, double *loss, char *err, size_t n) {\n"
        "    Ctx *c = c_;\n"
        "    TlRtProgram *p = &c->eval;\n"
        "    static int64_t zero = 0;\n"
        "    memcpy(c->x, x, sizeof(int32_t) * B * T);\n"
        "    memcpy(c->y, y, sizeof(int32_t) * B * T);\n"
        "    tl_rt_set(p, EX, c->x); tl_rt_set(p, EY, c->y);\n"
        "    if (ESEED >= 0) tl_rt_set(p, ESEED, &zero);\n"
        "    for (int i = 0; i < NPARAMS; i++) if (eval_param_in[i] >= 0) tl_rt_set(p, eval_param_in[i], params[i]);\n"
        "    if (tl_rt_run(p, err, n) != 0) return -1;\n"
        "    *loss = *(float *)tl_rt_buf(p, ELOSS);\n"
        "    return 0;\n"
        "}\n\n"
        "static void threads_fn(void *c_, int n) {\n"
        "    Ctx *c = c_;\n"
        "    tl_pool_destroy(c->pool);\n"
        "    c->pool = tl_pool_create(n);\n"
        "    c->step.pool = c->eval.pool = c->pool;\n"
        "}\n\n",
        f);
    if (sb) emit_sample(f, sb, file);
    /* main: flags, the fixed ones checked, the settings read */
    fprintf(f, "int main(int argc, char **argv) {\n");
    if (sb) fprintf(f, "    if (argc > 1 && strcmp(argv[1], \"sample\") == 0) return sample_main(argc - 1, argv + 1, argv[0]);\n");
    fprintf(f, "    char err[1024];\n    TlArgs *a = tl_args_new(argv[0], ");
    char summary[512];
    snprintf(summary, sizeof summary, "Train '%s' (built by tlc from %s).", p->name, file);
    cstr(f, summary);
    fprintf(f, ");\n");
    int n = tl_args_count(args);
    for (int i = 0; i < n; i++) {
        const char *name = tl_args_name_at(args, i);
        if (!strcmp(name, "resume") || !strcmp(name, "eval-batches") || !strcmp(name, "threads")) continue;
        if (!strcmp(name, "out") && !p->flag_out) continue; /* the trainer's own --out */
        char val[1024];
        tl_args_value_text(args, i, val, sizeof val);
        int fixed = !is_runtime_flag(p, name);
        fprintf(f, "    tl_args_add(a, ");
        cstr(f, name);
        fprintf(f, ", %s, ", kind_name(tl_args_kind_at(args, i)));
        cstr(f, val);
        fprintf(f, ", %s, err, sizeof err);\n", fixed ? "\"fixed when the program was built\"" : "NULL");
    }
    fprintf(f, "    tl_trainer_add_flags(a, err, sizeof err);\n"
               "    switch (tl_args_parse(a, argc, argv, stdout, err, sizeof err)) {\n"
               "    case TL_ARGS_HELP: tl_args_free(a); return 0;\n"
               "    case TL_ARGS_ERROR: fprintf(stderr, \"%%s: %%s\\n\", argv[0], err); tl_args_free(a); return 2;\n"
               "    }\n");
    for (int i = 0; i < n; i++) {
        const char *name = tl_args_name_at(args, i);
        if (is_runtime_flag(p, name)) continue;
        char val[1024];
        tl_args_value_text(args, i, val, sizeof val);
        fprintf(f, "    if (tl_args_was_set(a, ");
        cstr(f, name);
        fprintf(f, ")) { char v[1024]; for (int k = 0; k < tl_args_count(a); k++) if (!strcmp(tl_args_name_at(a, k), ");
        cstr(f, name);
        fprintf(f, ")) tl_args_value_text(a, k, v, sizeof v);\n        if (strcmp(v, ");
        cstr(f, val);
        fprintf(f, ")) { fprintf(stderr, \"%%s: --%s is fixed when the program was built (%s); rebuild with "
                   "'tlc build %s -o %%s -- --%s %%s'\\n\", argv[0], argv[0], v); tl_args_free(a); return 2; } }\n",
                name, val, file, name);
    }
    fprintf(f, "    TlTrainerSpec s = {0};\n    s.name = ");
    cstr(f, p->name);
    fprintf(f, ";\n    s.backend = \"compiled\";\n");
#define SETTING(field, flagfield, getter, fmt, value)                                                                 \
    do {                                                                                                              \
        if (p->flagfield) {                                                                                           \
            fprintf(f, "    s." field " = " getter "(a, ");                                                          \
            cstr(f, p->flagfield);                                                                                    \
            fprintf(f, ");\n");                                                                                       \
        } else {                                                                                                      \
            fprintf(f, "    s." field " = " fmt ";\n", value);                                                        \
        }                                                                                                             \
    } while (0)
    SETTING("steps", flag_steps, "tl_args_int", "%lld", (long long)p->steps);
    SETTING("log_every", flag_log_every, "tl_args_int", "%lld", (long long)p->log_every);
    SETTING("eval_every", flag_eval_every, "tl_args_int", "%lld", (long long)p->eval_every);
    SETTING("checkpoint_every", flag_checkpoint_every, "tl_args_int", "%lld", (long long)p->checkpoint_every);
    SETTING("seed", flag_seed, "tl_args_int", "%lld", (long long)p->seed);
    SETTING("lr", flag_lr, "tl_args_float", "%.17g", p->lr);
#undef SETTING
    if (p->flag_out) {
        fprintf(f, "    s.out = tl_args_string(a, ");
        cstr(f, p->flag_out);
        fprintf(f, ");\n");
    } else {
        fprintf(f, "    s.out = ");
        cstr(f, p->out);
        fprintf(f, ";\n");
    }
    if (p->flag_data) {
        fprintf(f, "    s.data_path = tl_args_string(a, ");
        cstr(f, p->flag_data);
        fprintf(f, ");\n");
    } else {
        fprintf(f, "    s.data_path = ");
        cstr(f, p->data_path);
        fprintf(f, ";\n");
    }
    fputs("    s.val_frac = 0.1;\n"
          "    s.B = B; s.T = T; s.accum = ACC;\n"
          "    s.params = params; s.nparams = NPARAMS; s.states = states; s.nstates = NSTATES;\n", f);
    if (gpu) {
        fprintf(f, "    s.backend = \"GPU\";\n");
        fputs(GPU_MAIN, f);
        return fclose(f) == 0 ? 0 : -1;
    }
    fputs("    Ctx c = {0};\n"
          "    c.pool = tl_pool_create(0);\n"
          "    c.steps = (float)s.steps;\n"
          "    c.x = calloc(ACC * B * T, sizeof(int32_t)); c.y = calloc(ACC * B * T, sizeof(int32_t));\n"
          "    if (tl_rt_program_init(&c.step, &tl_step_desc, c.pool, err, sizeof err) != 0 ||\n"
          "        tl_rt_program_init(&c.eval, &tl_eval_desc, c.pool, err, sizeof err) != 0) {\n"
          "        fprintf(stderr, \"%s: %s\\n\", argv[0], err);\n"
          "        return 1;\n"
          "    }\n"
          "    TlTrainerBackend be = {&c, step_fn, eval_fn, threads_fn, NULL};\n"
          "    int status = tl_trainer_run(&s, &be, a);\n"
          "    tl_rt_program_free(&c.step);\n"
          "    tl_rt_program_free(&c.eval);\n"
          "    tl_pool_destroy(c.pool);\n"
          "    free(c.x); free(c.y);\n"
          "    tl_args_free(a);\n"
          "    return status;\n"
          "}\n",
          f);
    return fclose(f) == 0 ? 0 : -1;
}

/* The directory of the running tlc, for its runtime library and headers. */
static void self_dir(char *buf, size_t n) {
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len <= 0) {
        snprintf(buf, n, ".");
        return;
    }
    buf[len] = 0;
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
}

static int run_cmd(const char *cmd) {
    int r = system(cmd);
    return r == 0 ? 0 : -1;
}

/* A file holding text (the PTX beside a kept build). */
static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* --target=cuda: the graph's Loop IR and its description; -1 after a message. */
static int gpu_program(const TlGraph *g, const char *what, const char *arch, const char *tmp, TlLProgram **lp, TlGpuDesc **d) {
    char err[1024], path[4200];
    TlNvptxOptions no = {.arch = arch, .opt_level = 3};
    *lp = tl_loops_lower(g, err, sizeof err);
    *d = *lp ? tl_nvptx_describe(*lp, &no, what, err, sizeof err) : NULL;
    if (!*d) {
        fprintf(stderr, "tlc: build: --target=cuda: the %s graph: %s\n", what, err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.ptx", tmp, what);
    if (write_text(path, (*d)->ptx) != 0) {
        fprintf(stderr, "tlc: build: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int tl_build_main(TlProgram *prog, const char *train_name, const char *out, const TlBuildOptions *bo, int argc,
                  char **argv, const char *file) {
    const char *cpu = bo->cpu;
    int cuda = bo->target && strcmp(bo->target, "cuda") == 0;
    const char *arch = bo->gpu_arch && bo->gpu_arch[0] ? bo->gpu_arch : "sm_80";
    TlNode *train = tl_train_find(prog, train_name);
    if (!train) {
        fprintf(stderr, "tlc: build: %s\n", train_name ? "no train block of that name" : "the file has no train block (or several: pick one with --train)");
        return 1;
    }
    if (!out) {
        fprintf(stderr, "tlc: build: name the executable with -o FILE\n");
        return 2;
    }
    char err[1024];
    TlArgs *args = tl_args_new("tlc build", NULL);
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
        fprintf(stderr, "tlc: build: %s\n", err);
        tl_args_free(args);
        return 2;
    }
    int status = 1;
    TlTrainPlan *p = tl_train_plan(prog, train, args);
    TlTrainerSpec spec = {0};
    TlCpuProgram *step = NULL, *eval = NULL;
    TlSamplePlan *sp = NULL; /* `prog sample`, when the model has a decode method */
    SampleBuild sb = {0};
    GpuBuild gb = {0};
    char sobjs[8600] = "";
    char tmp[] = "/tmp/tlc-build-XXXXXX";
    int have_tmp = 0;
    if (!p || tl_train_spec(p, &spec) < 0) goto done;
    if (p->tokenizer) {
        fprintf(stderr, "tlc: build: the tokenizer '%s' is not byte-level; built executables train on bytes only for now (use tlc run)\n",
                p->tokenizer);
        goto done;
    }
    TlCpuOptions co = {.cpu = cpu, .opt_level = 3};
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "tlc: build: cannot make a temporary directory: %s\n", strerror(errno));
        goto done;
    }
    have_tmp = 1;
    char so[4200], eo[4200], mc[4200], cmd[40000], dir[4096], objs[8500] = "";
    snprintf(so, sizeof so, "%s/step.o", tmp);
    snprintf(eo, sizeof eo, "%s/eval.o", tmp);
    snprintf(mc, sizeof mc, "%s/main.c", tmp);
    if (cuda) {
        if (gpu_program(p->step, "step", arch, tmp, &gb.step, &gb.sd) != 0 ||
            gpu_program(p->eval, "eval", arch, tmp, &gb.eval, &gb.ed) != 0)
            goto done;
    } else {
        int nc1 = 0, nc2 = 0;
        step = tl_cpu_compile_cached(p->step, &co, &nc1, err, sizeof err);
        eval = step ? tl_cpu_compile_cached(p->eval, &co, &nc2, err, sizeof err) : NULL;
        if (nc1 + nc2) printf("using %d tuned kernel schedules from the tuning cache\n", nc1 + nc2);
        if (!step || !eval) {
            fprintf(stderr, "tlc: build: %s\n", err);
            goto done;
        }
        if (tl_cpu_emit_object_as(step, so, "tl_step_", err, sizeof err) != 0 ||
            tl_cpu_emit_object_as(eval, eo, "tl_eval_", err, sizeof err) != 0) {
            fprintf(stderr, "tlc: build: %s\n", err);
            goto done;
        }
        snprintf(objs, sizeof objs, "'%s' '%s'", so, eo);
    }
    if (tl_sample_available(prog, train, args)) {
        sp = tl_sample_plan(prog, train, args);
        if (!sp) goto done;
        sb.p = sp;
        if (cuda) {
            if (gpu_program(sp->dec, "decode", arch, tmp, &gb.dec, &gb.dd) != 0 ||
                gpu_program(sp->full, "full", arch, tmp, &gb.full, &gb.fd) != 0)
                goto done;
            sb.dl = gb.dec, sb.fl = gb.full, sb.gpu = &gb;
        }
    }
    if (sp && !cuda) {
        sb.dec = tl_cpu_compile(sp->dec, &co, err, sizeof err);
        sb.full = sb.dec ? tl_cpu_compile(sp->full, &co, err, sizeof err) : NULL;
        char dobj[4200], fobj[4200];
        snprintf(dobj, sizeof dobj, "%s/dec.o", tmp);
        snprintf(fobj, sizeof fobj, "%s/full.o", tmp);
        if (!sb.full || tl_cpu_emit_object_as(sb.dec, dobj, "tl_dec_", err, sizeof err) != 0 ||
            tl_cpu_emit_object_as(sb.full, fobj, "tl_full_", err, sizeof err) != 0) {
            fprintf(stderr, "tlc: build: the sampling graphs: %s\n", err);
            goto done;
        }
        snprintf(sobjs, sizeof sobjs, "'%s' '%s'", dobj, fobj);
        sb.dl = tl_cpu_loops(sb.dec), sb.fl = tl_cpu_loops(sb.full);
    }
    if (emit_main(mc, p, &spec, step, eval, cuda ? &gb : NULL, args, file, sp ? &sb : NULL) != 0) {
        fprintf(stderr, "tlc: build: cannot write %s\n", mc);
        goto done;
    }
    /* the runtime: TL_RUNTIME (a directory with libtlrt.a and the headers), else the
     * build directory holding this tlc and the source tree's runtime/ */
    self_dir(dir, sizeof dir);
    const char *rt = getenv("TL_RUNTIME");
    char lib[4200], inc[4200];
    if (rt) {
        snprintf(lib, sizeof lib, "%s/libtlrt.a", rt);
        snprintf(inc, sizeof inc, "%s", rt);
    } else {
        snprintf(lib, sizeof lib, "%s/libtlrt.a", dir);
        snprintf(inc, sizeof inc, "%s/../runtime", dir);
    }
    struct stat st;
    if (stat(lib, &st) != 0) {
        fprintf(stderr, "tlc: build: the runtime library %s is missing (make; or set TL_RUNTIME)\n", lib);
        goto done;
    }
    const char *cc = getenv("CC") ? getenv("CC") : "cc";
    /* link into a temporary name and rename, so a failed build never leaves a broken file */
    char tmpexe[4300];
    snprintf(tmpexe, sizeof tmpexe, "%s/a.out", tmp);
    snprintf(cmd, sizeof cmd, "%s -std=c11 -O2 -D_GNU_SOURCE -I'%s' -o '%s' '%s' %s %s '%s' -lcjson -lpcre2-8 -lutf8proc -lm -lpthread",
             cc, inc, tmpexe, mc, objs, sobjs, lib);
    if (run_cmd(cmd) != 0) {
        fprintf(stderr, "tlc: build: compiling and linking failed: %s\n", cmd);
        goto done;
    }
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", tmpexe, out, out, out);
    if (run_cmd(cmd) != 0) {
        fprintf(stderr, "tlc: build: cannot write %s\n", out);
        goto done;
    }
    if (cuda)
        printf("built %s: train block '%s', %d params, step %d kernels, eval %d kernels%s, on the GPU (PTX for %s)\n", out,
               p->name, p->nparams, gb.sd->nkern, gb.ed->nkern, sp ? ", sampling" : "", arch);
    else
        printf("built %s: train block '%s', %d params, step %d kernels, eval %d kernels\n", out, p->name, p->nparams,
               tl_cpu_loops(step)->nkern, tl_cpu_loops(eval)->nkern);
    status = 0;
done:
    if (have_tmp && !getenv("TL_KEEP_BUILD")) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (run_cmd(cmd) != 0) fprintf(stderr, "tlc: build: could not remove %s\n", tmp);
    } else if (have_tmp) {
        fprintf(stderr, "tlc: build: kept %s\n", tmp);
    }
    tl_gpudesc_free(gb.sd), tl_gpudesc_free(gb.ed), tl_gpudesc_free(gb.dd), tl_gpudesc_free(gb.fd);
    tl_loops_free(gb.step), tl_loops_free(gb.eval), tl_loops_free(gb.dec), tl_loops_free(gb.full);
    if (sb.dec) tl_cpu_free((TlCpuProgram *)sb.dec);
    if (sb.full) tl_cpu_free((TlCpuProgram *)sb.full);
    tl_sample_plan_free(sp);
    if (step) tl_cpu_free(step);
    if (eval) tl_cpu_free(eval);
    tl_train_spec_free(&spec);
    tl_train_plan_free(p);
    tl_args_free(args);
    return status;
}
