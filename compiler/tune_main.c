/* tune_main.c — `tlc tune FILE ...`: the graph to tune (an --entry with --args, or the
 * file's train step with its flags' defaults, as --emit does) handed to tl_tune_graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cuda.h"
#include "diag.h"
#include "lower.h"
#include "sema.h"
#include "source.h"
#include "train.h"
#include "tune.h"

static void tune_usage(FILE *f) {
    fputs("usage: tlc tune FILE [--budget SECONDS] [--kernel NAME] [--target cpu|cuda]\n"
          "                [--entry NAME --args \"x:f32[B,64] ...\" [--hparams ...] [--method M]]\n"
          "                [--train NAME] [--dims B=4,T=16] [--cache DIR] [--out DIR]\n"
          "                [--threads N] [--beam W] [--force] [--no-verify] [--cpu NAME] [--stdlib DIR]\n"
          "Searches each kernel's schedule (measured), stores the best in the tuning cache\n"
          "($TL_TUNE_CACHE, default ~/.cache/tl/tune), prints a table, and writes OUT/tune.jsonl\n"
          "(every candidate) and OUT/tune.svg (default OUT: tune-out). --target cuda measures on\n"
          "the GPU (it needs one; the search space there is the launch block size). docs/tuning.md.\n", f);
}

static int parse_dims(const char *text, TlTuneBinding *b, int max, char **store) {
    char *s = strdup(text);
    if (!s) abort();
    *store = s;
    int n = 0;
    for (char *tok = strtok(s, ", "); tok; tok = strtok(NULL, ", ")) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok || n == max) return -1;
        *eq = 0;
        char *end;
        long long v = strtoll(eq + 1, &end, 10);
        if (*end || v < 0) return -1;
        b[n].name = tok, b[n].value = v, n++;
    }
    return n;
}

int tl_tune_main(int argc, char **argv) {
    TlTuneOptions o = {.budget_s = 60, .verify_program = 1};
    const char *file = NULL, *entry = NULL, *call_args = NULL, *hparams = NULL, *method = NULL, *train = NULL;
    const char *dims = NULL;
    int cuda = 0;
    TlSemaOptions so = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        char flag[32] = "";
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
            if (eq) v = eq + 1;
        }
        static const char *with_value[] = {"--budget", "--kernel", "--target", "--entry", "--args", "--hparams",
                                           "--method", "--train", "--dims", "--cache", "--out", "--threads",
                                           "--beam", "--cpu", "--stdlib", "--seed"};
        int needs = 0;
        for (size_t j = 0; j < sizeof with_value / sizeof *with_value; j++) needs |= strcmp(flag, with_value[j]) == 0;
        if (needs && !v) {
            if (i + 1 >= argc) { fprintf(stderr, "tlc tune: %s needs a value\n", flag); return 2; }
            v = argv[++i];
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { tune_usage(stdout); return 0; }
        else if (!strcmp(flag, "--budget")) {
            char *end;
            o.budget_s = strtod(v, &end);
            if (*end || !(o.budget_s > 0)) { fprintf(stderr, "tlc tune: --budget needs seconds > 0, not '%s'\n", v); return 2; }
        } else if (!strcmp(flag, "--kernel")) o.kernel = v;
        else if (!strcmp(flag, "--target")) {
            if (!strcmp(v, "cuda")) cuda = 1;
            else if (strcmp(v, "cpu") != 0) { fprintf(stderr, "tlc tune: unknown target '%s' (targets: cpu cuda)\n", v); return 2; }
        } else if (!strcmp(flag, "--entry")) entry = v;
        else if (!strcmp(flag, "--args")) call_args = v;
        else if (!strcmp(flag, "--hparams")) hparams = v;
        else if (!strcmp(flag, "--method")) method = v;
        else if (!strcmp(flag, "--train")) train = v;
        else if (!strcmp(flag, "--dims")) dims = v;
        else if (!strcmp(flag, "--cache")) o.cache_dir = v;
        else if (!strcmp(flag, "--out")) o.out_dir = v;
        else if (!strcmp(flag, "--threads")) o.threads = atoi(v);
        else if (!strcmp(flag, "--beam")) o.beam = atoi(v);
        else if (!strcmp(flag, "--seed")) o.seed = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(flag, "--cpu")) o.cpu = v;
        else if (!strcmp(flag, "--stdlib")) so.stdlib_dir = v;
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--no-verify")) o.verify_program = 0;
        else if (a[0] == '-') { fprintf(stderr, "tlc tune: unknown option '%s'\n", a); tune_usage(stderr); return 2; }
        else if (!file) file = a;
        else { fprintf(stderr, "tlc tune: one .tl file only ('%s')\n", a); return 2; }
    }
    if (!file) { tune_usage(stderr); return 2; }
    if (cuda) { /* measured on the GPU: there must be one */
        char cerr[256] = "";
        if (tl_cuda_open(cerr, sizeof cerr)) {
            fprintf(stderr, "tlc tune: --target=cuda: no usable NVIDIA GPU here (%s)\n", cerr);
            return 1;
        }
        o.target_cuda = 1;
    }
    TlTuneBinding bind[32];
    char *dstore = NULL;
    int nbind = dims ? parse_dims(dims, bind, 32, &dstore) : 0;
    if (nbind < 0) { fprintf(stderr, "tlc tune: --dims wants NAME=N pairs, like B=4,T=16\n"); free(dstore); return 2; }
    TlProgram *prog = tl_sema_check_file(file, &so);
    int status = 0;
    TlLowered *l = NULL;
    TlTrainPlan *plan = NULL;
    TlArgs *targs = NULL;
    const TlGraph *g = NULL;
    char err[512];
    if (tl_diag_error_count()) status = 1;
    else if (entry) {
        TlLowerArg args[16], hp[16];
        int na = call_args ? tl_lower_parse_args(call_args, args, 16, err, sizeof err) : 0;
        if (na < 0) { fprintf(stderr, "tlc tune: --args: %s\n", err); status = 2; }
        int nh = status == 0 && hparams ? tl_lower_parse_args(hparams, hp, 16, err, sizeof err) : 0;
        if (nh < 0) { fprintf(stderr, "tlc tune: --hparams: %s\n", err); status = 2; nh = 0; }
        if (status == 0) {
            l = tl_lower_call(prog, entry, hp, nh, method, args, na);
            if (!l) status = 1;
            else g = l->g;
        }
        if (na > 0) tl_lower_args_free(args, na);
        if (nh > 0) tl_lower_args_free(hp, nh);
    } else {
        TlNode *tn = tl_train_find(prog, train);
        if (!tn) {
            fprintf(stderr, "tlc tune: %s: %s; name a function with --entry NAME\n", file,
                    train ? "no train block of that name" : "no train block (or several: pick one with --train)");
            status = 2;
        } else {
            targs = tl_args_new("train", NULL);
            char *argv0[] = {"train", NULL};
            if (tl_train_register_args(tn, targs) < 0) status = 1;
            else if (tl_args_parse(targs, 1, argv0, stdout, err, sizeof err) != TL_ARGS_OK) {
                fprintf(stderr, "tlc tune: %s\n", err);
                status = 2;
            } else if (!(plan = tl_train_plan(prog, tn, targs))) status = 1;
            else g = plan->step;
        }
    }
    if (status == 0 && g && tl_tune_graph(g, bind, nbind, &o, err, sizeof err)) {
        fprintf(stderr, "tlc tune: %s\n", err);
        status = 3;
    }
    if (tl_diag_error_count()) {
        int n = tl_diag_error_count();
        fprintf(stderr, "tlc: %d error%s\n", n, n == 1 ? "" : "s");
        if (!status) status = 1;
    }
    tl_lowered_free(l);
    tl_train_plan_free(plan);
    tl_args_free(targs);
    tl_program_free(prog);
    free(dstore);
    return status;
}
