/* sampler.h — the decoding loop of a language model, shared by `tlc run --sample` (the
 * model's graphs JIT-compiled or interpreted) and by executables from `tlc build` (`prog
 * sample ...`, the graphs compiled in). Like trainer.h, the loop only moves tokens and
 * caches around; the model is the backend's two functions:
 *
 *   full(idx, len)             the logits at position len-1 of idx[0..len), computing the
 *                              whole prefix (uncached; len <= C)
 *   decode(tok[W], pos, kc, vc) one position for each of W rows with a KV cache: the logits
 *                              of tok at position pos from the keys and values of positions
 *                              0..pos-1 in kc, vc, which it updates in place
 *
 * Decoding (ids are bytes: the model's tokenizer is bytes()):
 *   - greedy (--temperature 0): the most likely token (the lowest id on ties);
 *   - sampling: softmax(logits / T), restricted to the top_k most likely when top_k > 0,
 *     drawn by inverse CDF with a Philox uniform keyed by --seed, element = the token's
 *     index: the same seed gives the same text, whatever the thread count;
 *   - beam search (--beam W): W rows, each the sum of its tokens' log-probabilities; every
 *     step keeps the W best of the W x V extensions and reorders the caches by parent; the
 *     result is the best beam (all have N tokens, so no length normalization).
 * The prompt fills the cache one position at a time through decode (or, uncached, is just
 * the first window). An empty prompt starts from "\n". The window is C positions; when it
 * is full, cached decoding keeps the newest C/2 tokens and re-fills the cache from them
 * (one re-fill every C/2 tokens), while uncached decoding always takes the last C tokens;
 * the two agree exactly while prompt + tokens <= C. */
#ifndef TL_SAMPLER_H
#define TL_SAMPLER_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"

enum { TL_SAMPLER_MAX_RANK = 8 };

/* A param the backend needs, loaded from the checkpoint by name and shape. */
typedef struct TlSamplerTensor {
    const char *name;
    int rank;
    int64_t shape[TL_SAMPLER_MAX_RANK];
} TlSamplerTensor;

typedef struct TlSamplerSpec {
    const char *name;     /* the program, for messages */
    int64_t V, C;         /* vocabulary, context length */
    int cache_rank;       /* the KV caches: [.., B, .., C, ..], B on axis 1, shape with B = 1 */
    int64_t cache_shape[TL_SAMPLER_MAX_RANK];
    const TlSamplerTensor *params;
    int nparams;
} TlSamplerSpec;

typedef struct TlSamplerBackend {
    void *ctx;
    /* Called once before decoding: the params (spec order, f32) and the row count W of every
     * decode call. */
    int (*setup)(void *ctx, float **params, int W, char *err, size_t errlen);
    int (*full)(void *ctx, const int32_t *idx, int len, float *logits, char *err, size_t errlen);
    int (*decode)(void *ctx, const int32_t *tok, int pos, float *kc, float *vc, float *logits, char *err,
                  size_t errlen);
    void (*set_threads)(void *ctx, int threads); /* may be NULL */
} TlSamplerBackend;

typedef struct TlSampleOptions {
    int64_t tokens;     /* how many to generate */
    double temperature; /* 0: greedy */
    int64_t top_k;      /* 0: all */
    uint64_t seed;
    int beam;           /* 0: no beam search; W >= 1: W beams (1 beam is greedy) */
    int cached;         /* 1: decode with the KV cache; 0: the uncached forward */
} TlSampleOptions;

/* Generates o->tokens ids after prompt[0..plen) into out (o->tokens of them). 0, or -1
 * with a one-line message. */
int tl_sampler_generate(const TlSamplerSpec *s, const TlSamplerBackend *be, const TlSampleOptions *o,
                        const int32_t *prompt, int64_t plen, int32_t *out, char *err, size_t errlen);

/* Registers the sampler's flags: --ckpt DIR, --prompt TEXT, --tokens N, --temperature T,
 * --top-k K, --seed S, --beam W, --cache/--no-cache, --threads N (a name the program
 * already registered, such as its own --seed, is shared). */
int tl_sampler_add_flags(TlArgs *a, char *err, size_t errlen);
/* Loads the checkpoint named by --ckpt, generates, and writes the prompt and its
 * continuation to stdout (a summary line to stderr). Returns the exit status: 0, 1 after
 * a one-line error (missing checkpoint, shape mismatch, prompt longer than the context). */
int tl_sampler_main(const TlSamplerSpec *s, const TlSamplerBackend *be, const TlArgs *args);

#endif
