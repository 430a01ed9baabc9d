/* plan.c — the memory figures of a train block's step (bench/memory/run.sh): its params,
 * optimizer states and inputs, and the memory plan of the step and eval programs as
 * tlc lowers them (fusion on, compiler/memplan.h). One JSON object on stdout.
 *
 *   build/bench/memplan FILE [TRAIN-FLAGS...]     e.g. examples/gpt/gpt.tl --dim 64 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "diag.h"
#include "loops.h"
#include "memplan.h"
#include "sema.h"
#include "train.h"

static int64_t buf_bytes(const TlLProgram *lp, int node) {
    int b = node >= 0 ? lp->node_buf[node] : -1;
    if (b < 0) return 0;
    return tl_loops_eval(lp, lp->buf[b].numel, NULL) * (int64_t)tl_ltype_size(lp->buf[b].elem);
}

static TlMemPlan *plan_of(const TlLProgram *lp) {
    int keep[4096];
    int n = tl_memplan_outputs(lp, keep, 4096);
    return tl_memplan(lp, NULL, keep, n < 4096 ? n : 4096);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [TRAIN-FLAGS...]\n", argv[0]);
        return 2;
    }
    TlSemaOptions opt = {.stdlib_dir = getenv("TL_STDLIB") ? getenv("TL_STDLIB") : "stdlib", .warn_unused = 0};
    TlProgram *prog = tl_sema_check_file(argv[1], &opt);
    if (!prog || tl_diag_error_count()) return 1;
    TlNode *train = tl_train_find(prog, NULL);
    char err[512];
    TlArgs *args = tl_args_new("memplan", NULL);
    argv[1] = argv[0];
    if (!train || tl_train_register_args(train, args) || tl_args_parse(args, argc - 1, argv + 1, stdout, err, sizeof err) != TL_ARGS_OK) {
        fprintf(stderr, "memplan: %s\n", err);
        return 1;
    }
    TlTrainPlan *tp = tl_train_plan(prog, train, args);
    if (!tp) return 1;
    TlLProgram *lp = tl_loops_lower(tp->step, err, sizeof err), *le = tl_loops_lower(tp->eval, err, sizeof err);
    if (!lp || !le) {
        fprintf(stderr, "memplan: %s\n", err);
        return 1;
    }
    int64_t params = 0, states = 0, inputs = 0, outputs = 0;
    for (int i = 0; i < tp->nparams; i++) params += buf_bytes(lp, tp->params[i].node);
    for (int i = 0; i < tp->nstates; i++) states += buf_bytes(lp, tp->states[i].input);
    for (int i = 0; i < lp->nbuf; i++)
        if (lp->buf[i].kind == TL_LB_INPUT || lp->buf[i].kind == TL_LB_PARAM)
            inputs += tl_loops_eval(lp, lp->buf[i].numel, NULL) * (int64_t)tl_ltype_size(lp->buf[i].elem);
    inputs -= params + states;
    for (int k = 0; k < tp->step->noutputs; k++) outputs += buf_bytes(lp, tp->step->outputs[k]);
    TlMemPlan *m = plan_of(lp), *e = plan_of(le);
    int64_t nparam = params / 4;
    printf("{\"params_bytes\": %lld, \"nparams\": %lld, \"states_bytes\": %lld, \"inputs_bytes\": %lld, "
           "\"outputs_bytes\": %lld, \"step_buffers\": %d, \"step_arena\": %lld, \"step_no_reuse\": %lld, "
           "\"step_peak_live\": %lld, \"eval_arena\": %lld, \"eval_no_reuse\": %lld, \"eval_peak_live\": %lld}\n",
           (long long)params, (long long)nparam, (long long)states, (long long)inputs, (long long)outputs, lp->nbuf,
           (long long)m->arena, (long long)m->total, (long long)m->peak, (long long)e->arena, (long long)e->total,
           (long long)e->peak);
    if (getenv("MEMPLAN_PRINT")) tl_memplan_print(stderr, lp, m);
    tl_memplan_free(m), tl_memplan_free(e);
    tl_loops_free(lp), tl_loops_free(le);
    tl_train_plan_free(tp);
    tl_args_free(args);
    tl_program_free(prog);
    return 0;
}
