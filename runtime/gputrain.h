/* gputrain.h — the training step and evaluation of a train block on the GPU, with the
 * params and optimizer state resident on the device: a trainer backend (trainer.h) over
 * two executors (gpuprog.h), shared by `tlc run --target=cuda` and by executables from
 * `tlc build --target=cuda`.
 *
 * load() stages the host values of params and states once (the trainer calls it after
 * initializing or resuming); each step then uploads only the batch ids and the scalars
 * (step, lr, steps, seed), runs, downloads the loss and the learning rate (8 bytes), and
 * feeds the updated params and states back into the step's input buffers on the device
 * (tl_gpuexec_feed: swapped allocations). Evaluation reads the step's param buffers
 * directly (tl_gpuexec_share). store() downloads params and states for checkpoints. */
#ifndef TL_GPUTRAIN_H
#define TL_GPUTRAIN_H
#include <stddef.h>
#include <stdint.h>

#include "gpuprog.h"
#include "trainer.h"

/* Which buffer of the step (or eval) program holds what; -1: none. */
typedef struct TlGpuTrainMap {
    int x, y, step, lr, steps, seed, loss, lr_out;
    int ex, ey, eseed, eloss;
    int nparams, nstates;
    const int *param_in, *param_out, *state_in, *state_out, *eval_param_in;
    const int64_t *pn, *sn;    /* element counts of params and states */
    int64_t B, T, accum;
} TlGpuTrainMap;

typedef struct TlGpuTrain {
    TlGpuExec *step, *eval;   /* not owned */
    TlGpuTrainMap m;
    float steps;
    int loaded, stepped;
    int *fout, *fin, nfeed;   /* the step's output -> input feeds */
    /* the corpus tokenizer, passed through as the backend's tokenize (NULL: bytes) */
    int (*tokenize)(void *ctx, const uint8_t *text, size_t n, int32_t **ids, int64_t *nids, char *err, size_t errlen);
    void *tokenize_ctx;
} TlGpuTrain;

/* Checks the map against the programs (buffer kinds and element sizes): 0 or -1 with a
 * message. steps: the run's step count (the schedule's horizon). */
int tl_gputrain_init(TlGpuTrain *t, TlGpuExec *step, TlGpuExec *eval, const TlGpuTrainMap *m, double steps, char *err,
                     size_t errlen);
void tl_gputrain_free(TlGpuTrain *t);
/* The trainer backend (step, eval, load, store) over t. */
TlTrainerBackend tl_gputrain_backend(TlGpuTrain *t);

#endif
