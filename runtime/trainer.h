/* trainer.h — the training loop of a tl `train` block, shared by `tlc run` (the step runs
 * in the reference interpreter or JIT-compiled code) and by executables from `tlc build`
 * (the step is compiled code linked in). The loop only moves data and state around: the
 * step itself — forward, backward, clipping, schedule, optimizer — is the backend's.
 *
 *   TlArgs *a = tl_args_new(...);  ... register the program's flags ...
 *   tl_trainer_add_flags(a, err, n);          // --resume --out --eval-batches --threads
 *   tl_args_parse(a, argc, argv, ...);
 *   return tl_trainer_run(&spec, &backend, a);
 *
 * Each step: the next batch (a pure function of seed and batch index), one backend step
 * (params and optimizer state updated in place), a metrics line every log_every steps,
 * validation every eval_every, a checkpoint every checkpoint_every and at the end (params,
 * optimizer state, step, seed, data position: resuming repeats the uninterrupted run
 * bitwise), a loss plot at the end. */
#ifndef TL_TRAINER_H
#define TL_TRAINER_H
#include <stddef.h>
#include <stdint.h>

#include "args.h"

enum { TL_TRAINER_MAX_RANK = 8 };

/* How a param starts (the declaration's initializer). */
typedef enum TlTrainerInit {
    TL_TINIT_ZEROS, TL_TINIT_ONES, TL_TINIT_NORMAL, TL_TINIT_UNIFORM, TL_TINIT_XAVIER, TL_TINIT_KAIMING
} TlTrainerInit;

typedef struct TlTrainerTensor {
    const char *name; /* "blocks.0.attn.qkv.w", "opt.0.wte" */
    int rank;
    int64_t shape[TL_TRAINER_MAX_RANK];
    TlTrainerInit init; /* params only; states start at zero */
    double a, b;        /* normal: mean, std; uniform: lo, hi */
    int fan_in, fan_out;
} TlTrainerTensor;

typedef struct TlTrainerSpec {
    const char *name;      /* the train block */
    const char *backend;   /* "interpreter", "JIT", "compiled": for the banner */
    int64_t steps, log_every, eval_every, checkpoint_every, seed;
    double lr;             /* the peak learning rate (a step input) */
    const char *out;       /* output directory (--out overrides) */
    const char *data_path; /* file or directory of text */
    double val_frac;       /* the validation split, e.g. 0.1 */
    int64_t B, T;          /* batch shape */
    int64_t accum;         /* micro-batches per step (gradient accumulation); 0 or 1: none.
                            * step() then gets x, y of accum * B * T ids, batch after batch */
    const TlTrainerTensor *params;
    int nparams;
    const TlTrainerTensor *states;
    int nstates;
} TlTrainerSpec;

/* The step, as a backend provides it. params[i] / states[i] hold the values in f32 (the
 * layout of the spec's tensors); step() updates them in place. */
typedef struct TlTrainerBackend {
    void *ctx;
    int (*step)(void *ctx, const int32_t *x, const int32_t *y, int64_t step, int64_t seed, double lr,
                float **params, float **states, double *loss, double *lr_used, char *err, size_t errlen);
    int (*eval)(void *ctx, const int32_t *x, const int32_t *y, float **params, double *loss, char *err,
                size_t errlen);
    void (*set_threads)(void *ctx, int threads); /* may be NULL */
    /* The corpus as token ids (into out->ids / out->n, malloc'd, owned by the caller);
     * NULL: byte-level (id = byte). */
    int (*tokenize)(void *ctx, const uint8_t *text, size_t n, int32_t **ids, int64_t *nids, char *err, size_t errlen);
    /* A resident backend (the GPU: runtime/gputrain.h) keeps params and optimizer state
     * itself: load() takes the host values once, before the first step (initialized or
     * resumed); step() and eval() then ignore the arrays; store() writes the current values
     * back into them before each checkpoint. NULL (both): step() updates the arrays. */
    int (*load)(void *ctx, float **params, float **states, char *err, size_t errlen);
    int (*store)(void *ctx, float **params, float **states, char *err, size_t errlen);
} TlTrainerBackend;

/* Registers the loop's own flags: --resume DIR, --out DIR, --eval-batches N, --threads N
 * (names the program already registered are left alone). 0 or -1 with a message. */
int tl_trainer_add_flags(TlArgs *a, char *err, size_t errlen);
/* Runs the loop; returns the process exit status (0, or 1 after a one-line error). */
int tl_trainer_run(const TlTrainerSpec *spec, const TlTrainerBackend *be, const TlArgs *args);

#endif
