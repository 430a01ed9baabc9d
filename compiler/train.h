/* train.h — a `train` block as a plan (graphs + settings), and the driver that runs it.
 *
 * tl_train_plan lowers a train block: its data pipeline, model, optimizer and settings are
 * evaluated with the values of the command-line flags (`arg(name, default)`), and two
 * graphs are built:
 *   step: inputs x, y (i32[B, T]), step (f32, counted from 0), every param and every
 *         optimizer state tensor; outputs loss, lr, the new params and the new states.
 *         It holds the forward pass, the backward pass (autodiff), clipping by global norm,
 *         the learning-rate schedule and the optimizer update, all from tl code.
 *   eval: inputs x, y and the params; output loss.
 * tl_train_run runs the loop: batches, steps, logging, evaluation, checkpoints, resume. */
#ifndef TL_TRAIN_H
#define TL_TRAIN_H
#include "args.h"
#include "graph.h"
#include "lower.h"
#include "sema.h"

typedef struct TlTrainState {
    const char *name; /* "opt.0.blocks.0.ln1.w": state k of a param */
    int param;        /* index into params */
    int input;        /* input node in the step graph */
} TlTrainState;

typedef struct TlTrainPlan {
    const char *name; /* the train block's name */
    /* settings */
    int64_t steps, log_every, eval_every, checkpoint_every, seed, warmup, grad_accum;
    double clip;
    const char *out;
    double lr;                  /* the optimizer's peak learning rate */
    /* the flags (arg names) the settings came from, NULL when written as values: an
     * executable reads these at run time; every other flag is fixed when it is built */
    const char *flag_steps, *flag_log_every, *flag_eval_every, *flag_checkpoint_every, *flag_seed,
        *flag_out, *flag_data, *flag_lr;
    /* data: text(path) | tokenize(bytes) | batches(B, T) */
    const char *data_path;
    const char *tokenizer;      /* the tokenizer declaration's name; NULL: byte-level */
    int64_t B, T, vocab;
    int64_t accum;              /* micro-batches per step (grad_accum); x, y are [accum, B, T] when > 1 */
    /* the step graph */
    TlGraph *step;
    int x, y, stepnum, seed_in; /* input nodes (seed_in: -1 when nothing is random) */
    int lr_in, steps_in;        /* input nodes: the peak learning rate, the step count (f32) */
    TlParamInfo *params;        /* trainable params and buffers, with their step-graph nodes */
    int nparams;
    int *param_out;             /* output index of each param's new value (-1: unchanged) */
    TlTrainState *states;
    int nstates;
    int *state_out;             /* output index of each state's new value */
    int loss_out, lr_out;
    /* the eval graph (params found by name) */
    TlGraph *eval;
    int ex, ey, eseed;
} TlTrainPlan;

/* Finds the train block (by name, or the only one when name is NULL) in the main module. */
TlNode *tl_train_find(TlProgram *prog, const char *name);
/* Registers every `arg(name, default)` of the train block as a flag. 0, or -1 after an error. */
int tl_train_register_args(TlNode *train, TlArgs *args);
/* Lowers the train block with the parsed flags. NULL after reporting errors. */
TlTrainPlan *tl_train_plan(TlProgram *prog, TlNode *train, TlArgs *args);
void tl_train_plan_free(TlTrainPlan *p);

struct TlTrainerSpec;
/* The runtime trainer's description of a plan (params, states, settings); free with
 * tl_train_spec_free. -1 when a shape is not known. */
int tl_train_spec(const TlTrainPlan *p, struct TlTrainerSpec *s);
void tl_train_spec_free(struct TlTrainerSpec *s);

/* `tlc run [--interp|--target=cuda] FILE -- ARGS`: parses ARGS (argv[0] is the program
 * name), and trains, with the step JIT-compiled for the host CPU (mode 0), run by the
 * reference interpreter (1), or compiled to PTX and run on the GPU (2). Returns the
 * process exit status. */
int tl_train_main(TlProgram *prog, const char *train_name, int argc, char **argv, int mode);

#endif
