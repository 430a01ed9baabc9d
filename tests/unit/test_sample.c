/* test_sample.c — decoding from examples/gpt/gpt.tl (compiler/sample.c + runtime/sampler.c)
 * on a tiny GPT (D=32, L=2, H=2, C=32) with random weights large enough to give peaked
 * distributions: the KV-cache step computes what the uncached forward computes at every
 * position; cached and uncached greedy decoding, sampling and beam search give the same
 * tokens; beam search with one beam is greedy; a seed reproduces a sample; a prompt longer
 * than the context is refused; decoding past the context slides the window. The graphs
 * are JIT-compiled once (at -O1, for speed) and shared by every case. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/cpu.h"
#include "diag.h"
#include "philox.h"
#include "sample.h"
#include "sampler.h"
#include "sema.h"
#include "train.h"

static TlSamplePlan *plan;
static TlSamplerSpec spec;
static TlSamplerTensor *ts;
static TlSampleJit *jit;
static TlSamplerBackend be;
static float **params;
static char err[1024];

static const char *const flags[] = {"gpt", "--dim", "32", "--layers", "2", "--heads", "2", "--seq", "32"};

/* Random weights: matrices N(0, 0.5), norms' scales 1 + N(0, 0.1), biases N(0, 0.1). */
static void random_params(void) {
    params = calloc((size_t)spec.nparams, sizeof *params);
    for (int i = 0; i < spec.nparams; i++) {
        int64_t n = 1;
        for (int k = 0; k < ts[i].rank; k++) n *= ts[i].shape[k];
        params[i] = malloc(sizeof(float) * (size_t)n);
        int is_norm = strstr(ts[i].name, "ln") != NULL && ts[i].name[strlen(ts[i].name) - 1] == 'w';
        double std = ts[i].rank >= 2 ? 0.5 : 0.1;
        for (int64_t j = 0; j < n; j++)
            params[i][j] = (float)((is_norm ? 1.0 : 0.0) + std * tl_philox_normal_at(42, (uint64_t)i + 1, (uint64_t)j));
    }
}

static int gen(const char *prompt, int64_t n, double temp, int64_t top_k, uint64_t seed, int beam, int cached, int32_t *out) {
    TlSampleOptions o = {.tokens = n, .temperature = temp, .top_k = top_k, .seed = seed, .beam = beam, .cached = cached};
    int W = beam > 1 ? beam : 1;
    if (be.setup(be.ctx, params, W, err, sizeof err) != 0) return -1;
    int32_t p[64];
    int64_t plen = (int64_t)strlen(prompt);
    for (int64_t i = 0; i < plen; i++) p[i] = (unsigned char)prompt[i];
    return tl_sampler_generate(&spec, &be, &o, p, plen, out, err, sizeof err);
}

static int same(const int32_t *a, const int32_t *b, int n) { return memcmp(a, b, sizeof(int32_t) * (size_t)n) == 0; }

static void show(const char *what, const int32_t *t, int n) {
    printf("    %s:", what);
    for (int i = 0; i < n; i++) printf(" %d", t[i]);
    printf("\n");
}

/* The decode step's logits at each position equal the forward's at that position. */
TEST(decode_matches_forward) {
    const char *text = "Hello, cached world! 0123456789";
    int n = (int)strlen(text);
    EXPECT(be.setup(be.ctx, params, 1, err, sizeof err) == 0);
    int64_t cn = 1;
    for (int i = 0; i < spec.cache_rank; i++) cn *= spec.cache_shape[i];
    float *kc = calloc((size_t)cn, sizeof(float)), *vc = calloc((size_t)cn, sizeof(float));
    float *a = malloc(sizeof(float) * (size_t)spec.V), *b = malloc(sizeof(float) * (size_t)spec.V);
    int32_t idx[64];
    for (int i = 0; i < n; i++) idx[i] = (unsigned char)text[i];
    double worst = 0;
    for (int p = 0; p < n; p++) {
        if (be.decode(be.ctx, &idx[p], p, kc, vc, a, err, sizeof err) != 0 || be.full(be.ctx, idx, p + 1, b, err, sizeof err) != 0) {
            EXPECTF(0, "%s", err);
            break;
        }
        for (int v = 0; v < spec.V; v++) {
            double d = fabs((double)a[v] - b[v]) / (1.0 + fabs((double)b[v]));
            if (d > worst) worst = d;
        }
    }
    EXPECTF(worst < 1e-4, "largest relative difference %g", worst);
    free(kc);
    free(vc);
    free(a);
    free(b);
}

TEST(greedy_cached_equals_uncached) {
    int32_t c[28], u[28];
    EXPECTF(gen("The ", 28, 0, 0, 0, 0, 1, c) == 0, "%s", err);
    EXPECTF(gen("The ", 28, 0, 0, 0, 0, 0, u) == 0, "%s", err);
    EXPECT(same(c, u, 28));
    if (!same(c, u, 28)) show("cached", c, 28), show("uncached", u, 28);
    /* not a degenerate model: the continuation is not one repeated token */
    int distinct = 0;
    for (int i = 1; i < 28; i++) distinct += c[i] != c[0];
    EXPECT(distinct > 0);
}

TEST(sampling_cached_equals_uncached) {
    int32_t c[24], u[24];
    EXPECTF(gen("Once", 24, 0.8, 20, 7, 0, 1, c) == 0, "%s", err);
    EXPECTF(gen("Once", 24, 0.8, 20, 7, 0, 0, u) == 0, "%s", err);
    EXPECT(same(c, u, 24));
}

TEST(sampling_is_reproducible) {
    int32_t a[40], b[40], d[40];
    EXPECTF(gen("x", 40, 1.0, 0, 123, 0, 1, a) == 0, "%s", err);
    EXPECTF(gen("x", 40, 1.0, 0, 123, 0, 1, b) == 0, "%s", err);
    EXPECTF(gen("x", 40, 1.0, 0, 124, 0, 1, d) == 0, "%s", err);
    EXPECT(same(a, b, 40));
    EXPECT(!same(a, d, 40)); /* another seed, another sample */
}

TEST(top_k_one_is_greedy) {
    int32_t a[20], g[20];
    EXPECTF(gen("ab", 20, 1.5, 1, 99, 0, 1, a) == 0, "%s", err);
    EXPECTF(gen("ab", 20, 0, 0, 0, 0, 1, g) == 0, "%s", err);
    EXPECT(same(a, g, 20));
}

TEST(beam_one_is_greedy) {
    int32_t b[24], g[24];
    EXPECTF(gen("The ", 24, 0, 0, 0, 1, 1, b) == 0, "%s", err);
    EXPECTF(gen("The ", 24, 0, 0, 0, 0, 1, g) == 0, "%s", err);
    EXPECT(same(b, g, 24));
}

TEST(beam_cached_equals_uncached) {
    int32_t c[20], u[20];
    EXPECTF(gen("The ", 20, 0, 0, 0, 4, 1, c) == 0, "%s", err);
    EXPECTF(gen("The ", 20, 0, 0, 0, 4, 0, u) == 0, "%s", err);
    EXPECT(same(c, u, 20));
    if (!same(c, u, 20)) show("cached", c, 20), show("uncached", u, 20);
}

TEST(prompt_longer_than_context) {
    int32_t o[4];
    EXPECT(gen("this prompt is longer than thirty-two bytes", 4, 0, 0, 0, 0, 1, o) != 0);
    EXPECTF(strstr(err, "longer than the context") != NULL, "%s", err);
}

TEST(slides_past_the_context) {
    int32_t c[80];
    for (int i = 0; i < 80; i++) c[i] = -1;
    EXPECTF(gen("The ", 80, 0.7, 0, 5, 0, 1, c) == 0, "%s", err);
    int ok = 1;
    for (int i = 0; i < 80; i++) ok &= c[i] >= 0 && c[i] < spec.V;
    EXPECT(ok);
    int32_t b[60];
    EXPECTF(gen("The ", 60, 0, 0, 0, 3, 1, b) == 0, "%s", err);
}

int main(void) {
    TlSemaOptions so = {.stdlib_dir = getenv("TL_STDLIB") ? getenv("TL_STDLIB") : "stdlib", .warn_unused = 0};
    TlProgram *prog = tl_sema_check_file("examples/gpt/gpt.tl", &so);
    TlNode *train = tl_diag_error_count() ? NULL : tl_train_find(prog, NULL);
    TlArgs *args = tl_args_new("gpt", NULL);
    if (!train || tl_train_register_args(train, args) != 0 || tl_sampler_add_flags(args, err, sizeof err) != 0 ||
        tl_args_parse(args, (int)(sizeof flags / sizeof flags[0]), (char **)flags, stdout, err, sizeof err) != TL_ARGS_OK ||
        !(plan = tl_sample_plan(prog, train, args))) {
        printf("FAIL: sample_plan %s\n", err);
        return 1;
    }
    ts = calloc((size_t)plan->nparams + 1, sizeof *ts);
    tl_sample_spec(plan, &spec, ts);
    case_begin("plan_shapes");
    EXPECT(spec.V == 256 && spec.C == 32 && spec.cache_rank == 5);
    EXPECT(spec.cache_shape[0] == 2 && spec.cache_shape[2] == 2 && spec.cache_shape[3] == 32 && spec.cache_shape[4] == 16);
    case_end();
    random_params();
    TlCpuOptions co = {.opt_level = 1};
    jit = tl_sample_jit_new(plan, 0, 1, 1, &co, err, sizeof err);
    tl_sample_jit_backend(jit, &be);
    RUN(decode_matches_forward);
    RUN(greedy_cached_equals_uncached);
    RUN(sampling_cached_equals_uncached);
    RUN(sampling_is_reproducible);
    RUN(top_k_one_is_greedy);
    RUN(beam_one_is_greedy);
    RUN(beam_cached_equals_uncached);
    RUN(prompt_longer_than_context);
    RUN(slides_past_the_context);
    for (int i = 0; i < spec.nparams; i++) free(params[i]);
    free(params);
    tl_sample_jit_free(jit);
    free(ts);
    tl_sample_plan_free(plan);
    tl_args_free(args);
    tl_program_free(prog);
    return check_done();
}
