/* sample.h — the sampling graphs of a train block's model, and `tlc run --sample`.
 *
 * tl_sample_plan evaluates the train block's bindings with the flags' values (the same
 * model, the same param names as the training step, so a checkpoint loads directly) and
 * lowers two graphs:
 *   full:   logits f32[1, C, V] = model.forward(idx: i32[1, C])      (uncached: the whole
 *           window each token; right padding is harmless under the causal mask)
 *   decode: (logits f32[B, V], kc', vc') = model.decode(tok: i32[B, 1], pos: i32,
 *           kc, vc)                        (one position with a KV cache)
 * B is the dim symbol "B" (the beam width, bound at run time); the caches' shapes come
 * from decode's signature, evaluated in the model's hyper-parameters; their axis 1 is B and
 * their second-last axis is the position (so C, the context, is read from there).
 *
 * tl_sample_main is the JIT (or interpreter) side of `tlc run FILE --sample -- FLAGS`; the
 * decoding loop itself is runtime/sampler.h, shared with built executables. */
#ifndef TL_SAMPLE_H
#define TL_SAMPLE_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "graph.h"
#include "sema.h"

enum { TL_SAMPLE_MAX_RANK = 8 };

typedef struct TlSampleParam {
    char *name; /* "blocks.0.attn.qkv.w" */
    int rank;
    int64_t shape[TL_SAMPLE_MAX_RANK];
    int full_node, dec_node; /* the param node in each graph, -1 when that graph does not use it */
} TlSampleParam;

typedef struct TlSamplePlan {
    const char *name; /* the train block */
    int64_t V, C;     /* vocabulary and context length */
    TlGraph *full;
    int full_idx, full_seed;       /* input nodes (seed: -1 when nothing is random) */
    TlGraph *dec;
    int dec_tok, dec_pos, dec_kc, dec_vc, dec_seed;
    int cache_rank;
    int64_t cache_shape[TL_SAMPLE_MAX_RANK]; /* with B (axis 1) = 1 */
    TlSampleParam *params;
    int nparams;
} TlSamplePlan;

/* Lowers the sampling graphs of the train block's model with the parsed flags (those of
 * tl_train_register_args). NULL after reporting errors (a model without a decode method
 * gets one line saying what to add). */
TlSamplePlan *tl_sample_plan(TlProgram *prog, TlNode *train, TlArgs *args);
void tl_sample_plan_free(TlSamplePlan *p);
/* 1 when the train block's model has a decode method (tl_sample_plan can be tried). */
int tl_sample_available(TlProgram *prog, TlNode *train, TlArgs *args);

struct TlSamplerSpec;
struct TlSamplerTensor;
struct TlSamplerBackend;
struct TlCpuOptions;

/* The runtime sampler's description of a plan; ts has room for p->nparams (the spec
 * points into it and into p). */
void tl_sample_spec(const TlSamplePlan *p, struct TlSamplerSpec *s, struct TlSamplerTensor *ts);

/* The plan's graphs as a sampler backend: JIT-compiled (o: NULL for the host at O3) or
 * interpreted; full and dec say which graphs to prepare (uncached and cached decoding).
 * They are compiled by the backend's setup (a compile error is setup's). */
typedef struct TlSampleJit TlSampleJit;
TlSampleJit *tl_sample_jit_new(const TlSamplePlan *p, int interp, int full, int dec, const struct TlCpuOptions *o,
                               char *err, size_t errlen);
void tl_sample_jit_backend(TlSampleJit *j, struct TlSamplerBackend *be);
void tl_sample_jit_free(TlSampleJit *j);

/* `tlc run [--interp] FILE --sample -- FLAGS`: the program's flags plus the sampler's
 * (runtime/sampler.h). Returns the process exit status. */
int tl_sample_main(TlProgram *prog, const char *train_name, int argc, char **argv, int interp);

#endif
