/* sampler.c — the decoding loop (see sampler.h). */
#include "sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ckpt.h"
#include "philox.h"

/* The Philox stream of sampling (counter offset), apart from init (1..) and dropout. */
#define SAMPLE_STREAM 0x53414d50ull /* "SAMP" */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The most likely token; the lowest id on ties. */
static int32_t argmax(const float *x, int64_t V) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return (int32_t)best;
}

typedef struct Ranked {
    double x;
    int64_t id;
} Ranked;

/* Descending by value, ascending by id on ties: a total order, so top-k is exact. */
static int by_value_desc(const void *a, const void *b) {
    const Ranked *p = a, *q = b;
    if (p->x != q->x) return p->x > q->x ? -1 : 1;
    return p->id < q->id ? -1 : p->id > q->id;
}

/* A token drawn from softmax(x / T) over the top_k most likely (all when top_k is 0 or
 * >= V): inverse CDF over the candidates in rank order, with the uniform number u. */
static int32_t draw(const float *x, int64_t V, double T, int64_t top_k, double u, Ranked *tmp) {
    for (int64_t v = 0; v < V; v++) tmp[v] = (Ranked){x[v] / T, v};
    qsort(tmp, (size_t)V, sizeof *tmp, by_value_desc);
    int64_t k = top_k > 0 && top_k < V ? top_k : V;
    double total = 0;
    for (int64_t i = 0; i < k; i++) total += exp(tmp[i].x - tmp[0].x);
    double target = u * total, acc = 0;
    for (int64_t i = 0; i < k; i++) {
        acc += exp(tmp[i].x - tmp[0].x);
        if (target < acc) return (int32_t)tmp[i].id;
    }
    return (int32_t)tmp[k - 1].id; /* u * total rounded up to the sum */
}

/* log softmax of one row, in f64 */
static void log_softmax(const float *x, int64_t V, double *out) {
    double m = x[0], s = 0;
    for (int64_t v = 1; v < V; v++)
        if (x[v] > m) m = x[v];
    for (int64_t v = 0; v < V; v++) s += exp(x[v] - m);
    double lse = m + log(s);
    for (int64_t v = 0; v < V; v++) out[v] = x[v] - lse;
}

/* The state of one generation. hist holds W rows of `cap` ids; every row has len ids. */
typedef struct Gen {
    const TlSamplerSpec *s;
    const TlSamplerBackend *be;
    int W;
    int64_t V, C, cap, len;
    int32_t *hist, *tok;
    float *logits;        /* W x V: each row's next-token logits */
    float *kc, *vc, *tmp; /* the caches, W rows on axis 1; tmp for reordering */
    int64_t outer, inner; /* cache elements before and after axis 1 (per row) */
    int64_t filled;       /* positions in the cache */
    char *err;
    size_t errlen;
} Gen;

/* Re-fills the cache from the last n ids of every row (positions 0..n-1); the logits are
 * then those of the newest id. */
static int refill(Gen *g, int64_t n) {
    for (int64_t p = 0; p < n; p++) {
        for (int b = 0; b < g->W; b++) g->tok[b] = g->hist[b * g->cap + g->len - n + p];
        if (g->be->decode(g->be->ctx, g->tok, (int)p, g->kc, g->vc, g->logits, g->err, g->errlen) != 0) return -1;
    }
    g->filled = n;
    return 0;
}

/* Appends each row's newest id to the cache (sliding the window when it is full). */
static int advance_cached(Gen *g) {
    if (g->filled >= g->C) return refill(g, g->C / 2 > 0 ? g->C / 2 : 1);
    for (int b = 0; b < g->W; b++) g->tok[b] = g->hist[b * g->cap + g->len - 1];
    if (g->be->decode(g->be->ctx, g->tok, (int)g->filled, g->kc, g->vc, g->logits, g->err, g->errlen) != 0) return -1;
    g->filled++;
    return 0;
}

/* Uncached: each row's logits from its last C ids. */
static int logits_uncached(Gen *g) {
    int64_t n = g->len < g->C ? g->len : g->C;
    for (int b = 0; b < g->W; b++)
        if (g->be->full(g->be->ctx, g->hist + b * g->cap + g->len - n, (int)n, g->logits + b * g->V, g->err, g->errlen) != 0)
            return -1;
    return 0;
}

/* Rows take their parents' histories and caches. */
static void reorder(Gen *g, const int *parent) {
    int64_t rows = (int64_t)g->W * g->cap;
    int32_t *h = malloc(sizeof(int32_t) * (size_t)rows);
    memcpy(h, g->hist, sizeof(int32_t) * (size_t)rows);
    for (int b = 0; b < g->W; b++) memcpy(g->hist + b * g->cap, h + parent[b] * g->cap, sizeof(int32_t) * (size_t)g->len);
    free(h);
    if (!g->kc) return;
    size_t n = sizeof(float) * (size_t)(g->outer * g->W * g->inner);
    float *caches[2] = {g->kc, g->vc};
    for (int c = 0; c < 2; c++) {
        memcpy(g->tmp, caches[c], n);
        for (int64_t o = 0; o < g->outer; o++)
            for (int b = 0; b < g->W; b++)
                memcpy(caches[c] + (o * g->W + b) * g->inner, g->tmp + (o * g->W + parent[b]) * g->inner,
                       sizeof(float) * (size_t)g->inner);
    }
}

/* One beam step: the W best extensions of the W rows (only row 0 on the first step, when
 * the rows are equal). */
static void beam_step(Gen *g, double *score, double *lp, int first) {
    int W = g->W;
    int64_t V = g->V, n = (int64_t)W * V;
    for (int b = 0; b < W; b++) {
        log_softmax(g->logits + b * V, V, lp + b * V);
        for (int64_t v = 0; v < V; v++) lp[b * V + v] += score[b];
    }
    int parent[64];
    int32_t token[64];
    double best_s[64];
    for (int k = 0; k < W; k++) {
        int64_t best = -1;
        for (int64_t c = 0; c < (first ? V : n); c++)
            if (!isnan(lp[c]) && (best < 0 || lp[c] > lp[best])) best = c;
        if (best < 0) best = 0;
        parent[k] = (int)(best / V);
        token[k] = (int32_t)(best % V);
        best_s[k] = lp[best];
        lp[best] = NAN; /* taken */
    }
    reorder(g, parent);
    for (int b = 0; b < W; b++) {
        g->hist[b * g->cap + g->len] = token[b];
        score[b] = best_s[b];
    }
}

int tl_sampler_generate(const TlSamplerSpec *s, const TlSamplerBackend *be, const TlSampleOptions *o, const int32_t *prompt,
                        int64_t plen, int32_t *out, char *err, size_t errlen) {
    static const int32_t newline = '\n';
    if (plen == 0) {
        prompt = &newline;
        plen = 1;
    }
    if (plen > s->C) {
        snprintf(err, errlen, "the prompt is %lld tokens, longer than the context of %lld", (long long)plen, (long long)s->C);
        return -1;
    }
    if (o->beam > 64) {
        snprintf(err, errlen, "--beam %d: at most 64 beams", o->beam);
        return -1;
    }
    Gen g = {.s = s, .be = be, .W = o->beam > 1 ? o->beam : 1, .V = s->V, .C = s->C, .err = err, .errlen = errlen};
    g.cap = plen + o->tokens + 1;
    g.len = plen;
    g.hist = calloc((size_t)(g.W * g.cap), sizeof(int32_t));
    g.tok = calloc((size_t)g.W, sizeof(int32_t));
    g.logits = calloc((size_t)(g.W * g.V), sizeof(float));
    double *score = calloc((size_t)g.W, sizeof(double)), *lp = calloc((size_t)(g.W * g.V), sizeof(double));
    Ranked *tmp = calloc((size_t)g.V, sizeof(Ranked));
    for (int b = 0; b < g.W; b++) memcpy(g.hist + b * g.cap, prompt, sizeof(int32_t) * (size_t)plen);
    int status = -1;
    if (o->cached) {
        g.outer = s->cache_shape[0];
        g.inner = 1;
        for (int i = 2; i < s->cache_rank; i++) g.inner *= s->cache_shape[i];
        size_t n = (size_t)(g.outer * g.W * g.inner);
        g.kc = calloc(n, sizeof(float));
        g.vc = calloc(n, sizeof(float));
        g.tmp = calloc(n, sizeof(float));
        if (refill(&g, plen) != 0) goto done;
    }
    for (int64_t i = 0; i < o->tokens; i++) {
        if (!o->cached && logits_uncached(&g) != 0) goto done;
        if (o->beam >= 1) {
            beam_step(&g, score, lp, i == 0);
        } else {
            int32_t t = o->temperature > 0
                            ? draw(g.logits, g.V, o->temperature, o->top_k, tl_philox_uniform_at(o->seed, SAMPLE_STREAM, (uint64_t)i), tmp)
                            : argmax(g.logits, g.V);
            g.hist[g.len] = t;
        }
        g.len++;
        if (o->cached && i + 1 < o->tokens && advance_cached(&g) != 0) goto done;
    }
    /* the best beam (beams are kept in order of score) */
    memcpy(out, g.hist + plen, sizeof(int32_t) * (size_t)o->tokens);
    status = 0;
done:
    free(g.hist);
    free(g.tok);
    free(g.logits);
    free(g.kc);
    free(g.vc);
    free(g.tmp);
    free(score);
    free(lp);
    free(tmp);
    return status;
}

int tl_sampler_add_flags(TlArgs *a, char *err, size_t errlen) {
    static const struct { const char *name; TlArgKind kind; const char *def, *help; } flags[] = {
        {"ckpt", TL_ARG_PATH, "", "checkpoint directory, or a training --out directory (with ckpt/)"},
        {"prompt", TL_ARG_STRING, "", "text to continue (empty: a newline)"},
        {"tokens", TL_ARG_INT, "200", "how many tokens to generate"},
        {"temperature", TL_ARG_FLOAT, "1.0", "softmax temperature; 0: greedy"},
        {"top-k", TL_ARG_INT, "0", "sample among the K most likely tokens (0: all)"},
        {"seed", TL_ARG_INT, "1337", "seed of the sampling stream (Philox)"},
        {"beam", TL_ARG_INT, "0", "beam search with W beams (deterministic; ignores temperature)"},
        {"cache", TL_ARG_BOOL, "true", "decode with the KV cache (--no-cache: recompute the window)"},
        {"threads", TL_ARG_INT, "0", "worker threads (0: $TL_THREADS, else all cores)"},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int have = 0;
        for (int k = 0; k < tl_args_count(a); k++)
            if (strcmp(tl_args_name_at(a, k), flags[i].name) == 0) have = 1;
        if (!have && tl_args_add(a, flags[i].name, flags[i].kind, flags[i].def, flags[i].help, err, errlen) != 0) return -1;
    }
    return 0;
}

/* --ckpt DIR: DIR holds ckpt-*.safetensors, or is an --out directory with a ckpt/. */
static int open_ckpt(const char *dir, TlCkpt **ck, char *err, size_t errlen) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "no checkpoint: %s does not exist", dir);
        return -1;
    }
    if (S_ISREG(st.st_mode)) return tl_ckpt_open(dir, ck, err, errlen);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/ckpt", dir);
    if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) dir = sub;
    int r = tl_ckpt_open_latest(dir, ck, stderr, err, errlen);
    if (r == 1) snprintf(err, errlen, "no checkpoint in %.900s (train first, with --out)", dir);
    return r == 0 ? 0 : -1;
}

int tl_sampler_main(const TlSamplerSpec *s, const TlSamplerBackend *be, const TlArgs *args) {
    char err[1024];
    int status = 1;
    const char *prog = s->name ? s->name : "sample";
    const char *dir = tl_args_string(args, "ckpt"), *text = tl_args_string(args, "prompt");
    TlSampleOptions o = {.tokens = tl_args_int(args, "tokens"), .temperature = tl_args_float(args, "temperature"),
                         .top_k = tl_args_int(args, "top-k"), .seed = (uint64_t)tl_args_int(args, "seed"),
                         .beam = (int)tl_args_int(args, "beam"), .cached = tl_args_bool(args, "cache")};
    if (!dir || !*dir) {
        fprintf(stderr, "%s: sample: --ckpt DIR is required (a checkpoint directory, or a training --out directory)\n", prog);
        return 2;
    }
    if (o.tokens < 0 || o.temperature < 0 || o.top_k < 0 || o.beam < 0 || o.beam > 64) {
        fprintf(stderr, "%s: sample: --tokens, --temperature and --top-k must not be negative; --beam is 0..64\n", prog);
        return 2;
    }
    int threads = (int)tl_args_int(args, "threads");
    if (threads > 0 && be->set_threads) be->set_threads(be->ctx, threads);
    float **params = calloc((size_t)s->nparams + 1, sizeof *params);
    int64_t plen = (int64_t)strlen(text ? text : "");
    int32_t *prompt = calloc((size_t)plen + 1, sizeof(int32_t)), *out = calloc((size_t)o.tokens + 1, sizeof(int32_t));
    for (int64_t i = 0; i < plen; i++) prompt[i] = (unsigned char)text[i];
    TlCkpt *ck = NULL;
    if (plen > s->C) {
        fprintf(stderr, "%s: sample: the prompt is %lld bytes, longer than the context of %lld\n", prog, (long long)plen,
                (long long)s->C);
        goto done;
    }
    if (open_ckpt(dir, &ck, err, sizeof err) != 0) {
        fprintf(stderr, "%s: sample: %s\n", prog, err);
        goto done;
    }
    for (int i = 0; i < s->nparams; i++) {
        const TlSamplerTensor *t = &s->params[i];
        int64_t n = 1;
        for (int k = 0; k < t->rank; k++) n *= t->shape[k];
        params[i] = calloc((size_t)(n ? n : 1), sizeof(float));
        if (tl_ckpt_read(ck, t->name, t->rank, t->shape, params[i], err, sizeof err) != 0) {
            fprintf(stderr, "%s: sample: %s (a checkpoint of another model? give the size flags it was trained with)\n", prog,
                    err);
            goto done;
        }
    }
    if (be->setup(be->ctx, params, o.beam > 1 ? o.beam : 1, err, sizeof err) != 0) {
        fprintf(stderr, "%s: sample: %s\n", prog, err);
        goto done;
    }
    double t0 = now_s();
    if (tl_sampler_generate(s, be, &o, prompt, plen, out, err, sizeof err) != 0) {
        fprintf(stderr, "%s: sample: %s\n", prog, err);
        goto done;
    }
    double dt = now_s() - t0;
    fwrite(text ? text : "", 1, (size_t)plen, stdout);
    for (int64_t i = 0; i < o.tokens; i++) putchar(out[i] & 0xff);
    putchar('\n');
    fflush(stdout);
    const char *how = o.beam >= 1 ? "beam search" : o.temperature > 0 ? "sampled" : "greedy";
    fprintf(stderr, "%s: %lld tokens in %.3f s (%.1f tokens/s), %s, %s, from %s\n", prog, (long long)o.tokens, dt,
            dt > 0 ? (double)o.tokens / dt : 0.0, how, o.cached ? "KV cache" : "no cache", tl_ckpt_path(ck));
    status = 0;
done:
    tl_ckpt_close(ck);
    for (int i = 0; i < s->nparams; i++) free(params[i]);
    free(params);
    free(prompt);
    free(out);
    return status;
}
