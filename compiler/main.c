/* main.c — tlc, the command-line driver (docs/cli.md).
 *
 *   tlc check FILE...           parse and check
 *   tlc --emit=ast FILE         print a stage's output (more stages as they land)
 *   tlc run [--interp] FILE -- ARGS   train a train block (JIT or the interpreter)
 *   tlc tokenizer train|encode|decode ...
 *   tlc build|kernels|tune ...   (tune: tune_main.c)
 *
 * Structure: the command line is parsed into a TlcOptions, then one command function runs.
 * A new command is a row in `commands` and a function; a new --emit stage is a case in
 * emit_stage(). Exit statuses: 0 ok, 1 errors in the input, 2 usage error, 3 internal error.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ast.h"
#include "build.h"
#include "cmd_tokenizer.h"
#include "cpu/cpu.h"
#include "fuse.h"
#include "kernels.h"
#include "loops.h"
#include "nvptx/nvptx.h"
#include "schedule_cache.h"
#include "tune.h"
#include "diag.h"
#include "graph.h"
#include "lower.h"
#include "sema.h"
#include "source.h"
#include "sample.h"
#include "train.h"

#define TL_VERSION "0.1.0"
#define TL_LLVM_VERSION "19"

enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

typedef enum Emit {
    EMIT_NONE, EMIT_AST, EMIT_GRAPH, EMIT_FUSED, EMIT_LOOPS, EMIT_LLVM, EMIT_ASM, EMIT_PTX,
    EMIT_SCHEDULE, EMIT_KERNELS, /* `tlc kernels` */
} Emit;

static const char *emit_names[] = {"", "ast", "graph", "fused", "loops", "llvm", "asm", "ptx",
                                   "schedule", "kernels"};

typedef struct TlcOptions {
    const char *command;  /* "check", ..., or "emit" for a bare --emit */
    const char **files;
    int nfiles;
    const char **rest;    /* after `--`: the program's own arguments (tlc run) */
    int nrest;
    Emit emit;
    int dot;
    const char *target;   /* cpu | cuda */
    const char *cpu;
    const char *gpu_arch;
    const char *output;   /* -o */
    int interp;
    int sample;           /* run --sample: decode from a checkpoint instead of training */
    int parse_only;
    const char *entry;    /* --entry: the function or model to lower for --emit=graph */
    const char *call_args;/* --args "x:f32[B,T,D] eps=1e-5" */
    const char *hparams;  /* --hparams "D=64 H=4" (a model's constructor) */
    const char *method;   /* --method (default forward) */
    const char *train;    /* --train NAME when a file has several train blocks */
    const char *kernel;   /* --kernel NAME: one kernel of --emit=loops|llvm|asm|ptx, one row of kernels */
    int time;             /* kernels --time */
    int gpu_report;       /* kernels --gpu-report[=N] */
    int gpu_rows;         /* its N: rows (0 = all) */
    const char *dims;     /* --dims B=4,T=16: dim symbol values (kernels) */
    TlSemaOptions sema;
} TlcOptions;

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tlc: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    exit(EXIT_USAGE);
}

/* ---- help ---- */

static void print_help(FILE *out) {
    fputs(
        "usage: tlc <command> [options] FILE...\n"
        "       tlc --emit=STAGE [options] FILE\n"
        "\n"
        "commands:\n"
        "  check FILE...              parse and check files (names, types, shapes)\n"
        "  build FILE -o EXE [-- FLAGS]  compile the train block to a standalone executable\n"
        "                             (no LLVM needed to run it); FLAGS fix its sizes\n"
        "  run FILE [-- ARGS...]      compile the train block through LLVM (JIT) and train;\n"
        "                             ARGS are the program's flags (try: -- --help)\n"
        "  kernels FILE               the table of kernels: the .tl lines each came from, the\n"
        "                             ops it fused, shapes, FLOPs, bytes, arithmetic intensity,\n"
        "                             schedule (and where it came from); --time measures each\n"
        "                             (time, GFLOP/s, GB/s); --kernel NAME --emit=STAGE shows one\n"
        "                             kernel at a stage (loops, llvm, asm, ptx)\n"
        "  tune FILE [--budget S]     search kernel schedules (measured, checked against the\n"
        "                             default's output) and cache the best; see tlc tune --help\n"
        "  tokenizer train|encode|decode ...  train or apply a tokenizer (BPE, GPT-2,\n"
        "                             WordPiece); see 'tlc tokenizer --help'\n"
        "\n"
        "options:\n"
        "  --emit=STAGE               print a stage's output to stdout, STAGE one of:\n"
        "                               ast       the syntax tree (typed after checking)\n"
        "                               graph     Graph IR: the train step, or --entry\n"
        "                               fused     Graph IR partitioned into kernels (fusion)\n"
        "                               loops     Loop IR: kernels, loop nests, schedules\n"
        "                               llvm      LLVM IR of every kernel (or --kernel NAME)\n"
        "                               asm       host machine assembly (or --kernel NAME)\n"
        "                               ptx       NVPTX assembly of every kernel (--gpu-arch)\n"
        "                               schedule  each kernel's schedule and where it came\n"
        "                                         from (default heuristic, tuning cache, or a\n"
        "                                         schedule block of the source)\n"
        "  --dot                      with --emit=graph: Graphviz output (dot -Tsvg renders it)\n"
        "  --entry NAME               with --emit=graph: lower this fn or model (NAME may be\n"
        "                             qualified: nn.layer_norm) instead of the train block\n"
        "  --args \"x:f32[B,T,16] ...\" the entry's arguments: tensors (dims are numbers or\n"
        "                             symbols) and numbers (eps=1e-5)\n"
        "  --hparams \"D=64 H=4\"       a model entry's hyper-parameters\n"
        "  --method NAME              a model entry's method (default forward)\n"
        "  --train NAME               which train block (when a file has several)\n"
        "  --parse-only               stop after parsing (check syntax only)\n"
        "  --target=cpu|cuda          run: where the step runs, default cpu; cuda needs an\n"
        "                             NVIDIA GPU and driver (build: cpu only for now)\n"
        "  --cpu=NAME                 CPU to generate code for (e.g. znver5, skylake-avx512),\n"
        "                             default the host\n"
        "  --kernel NAME              with --emit=loops|llvm|asm|ptx: only this kernel; with\n"
        "                             kernels: only its row\n"
        "  --time                     kernels: run each kernel alone on generated inputs (a\n"
        "                             warm-up, then the median of 5) and print its time,\n"
        "                             GFLOP/s and GB/s\n"
        "  --dims B=4,T=16            kernels: values of the dim symbols (FLOPs, bytes, --time)\n"
        "  --gpu-report[=N]           kernels: for --target=cuda, each kernel's launch (flat,\n"
        "                             warp, gemm, serial), threads and serial work per thread,\n"
        "                             the N (default 20, 0 = all) with the most work first\n"
        "  --gpu-arch=SM              GPU architecture for --emit=ptx and cuda, default sm_80\n"
        "  -o FILE                    output file (build)\n"
        "  --interp                   run: through the reference interpreter (slow, exact)\n"
        "  --sample                   run: generate text from a checkpoint of the train\n"
        "                             block's model (-- --ckpt DIR --prompt TEXT ...; see\n"
        "                             docs/sampling.md)\n"
        "  --stdlib DIR               where `import nn` looks (default $TL_STDLIB, else\n"
        "                             the stdlib/ next to tlc)\n"
        "  -Werror                    treat warnings as errors\n"
        "  -Wno-unused                do not warn about unused names\n"
        "  --max-errors N             stop after N errors (default 50; 0: no limit)\n"
        "  --version                  print the version\n"
        "  -h, --help                 print this help\n"
        "\n"
        "exit status: 0 ok, 1 errors in the input, 2 usage error, 3 internal error\n",
        out);
}

/* ---- files ---- */

/* Parses FILE on its own (no imports, no checking). Returns its AST or NULL. */
static TlAst *parse_file(const char *path) {
    char err[512];
    int file = tl_source_load(path, err, sizeof err);
    if (!file) {
        tl_error((TlLoc){0}, "%s", err);
        return NULL;
    }
    return tl_parse(file);
}

static int status_from_diags(void) {
    return tl_diag_error_count() ? EXIT_INPUT : EXIT_OK;
}

static void print_error_summary(void) {
    int n = tl_diag_error_count();
    if (n) fprintf(stderr, "tlc: %d error%s\n", n, n == 1 ? "" : "s");
}

/* ---- commands ---- */

static int cmd_check(TlcOptions *o) {
    if (o->nfiles == 0) usage_error("check: no input files (usage: tlc check FILE...)");
    for (int i = 0; i < o->nfiles; i++) {
        if (o->parse_only) {
            tl_ast_free(parse_file(o->files[i]));
        } else {
            TlProgram *prog = tl_sema_check_file(o->files[i], &o->sema);
            tl_program_free(prog);
        }
    }
    if (tl_diag_error_count()) {
        print_error_summary();
        return EXIT_INPUT;
    }
    printf("tlc check: %d file%s OK\n", o->nfiles, o->nfiles == 1 ? "" : "s");
    return EXIT_OK;
}

/* The graph a stage after the AST shows: the entry's (--entry), else the train block's
 * step graph (with the flags' defaults). Fills *l or *plan, which the caller frees. */
static TlGraph *graph_for_emit(TlcOptions *o, TlProgram *prog, TlLowered **l, TlTrainPlan **plan, TlArgs **targs,
                               int *status) {
    *l = NULL;
    *plan = NULL;
    *targs = NULL;
    if (o->entry) {
        TlLowerArg args[16], hp[16];
        char err[256];
        int na = o->call_args ? tl_lower_parse_args(o->call_args, args, 16, err, sizeof err) : 0;
        if (na < 0) usage_error("--args: %s", err);
        int nh = o->hparams ? tl_lower_parse_args(o->hparams, hp, 16, err, sizeof err) : 0;
        if (nh < 0) usage_error("--hparams: %s", err);
        *l = tl_lower_call(prog, o->entry, hp, nh, o->method, args, na);
        tl_lower_args_free(args, na);
        tl_lower_args_free(hp, nh);
        if (!*l) {
            *status = EXIT_INPUT;
            return NULL;
        }
        return (*l)->g;
    }
    TlNode *train = tl_train_find(prog, o->train);
    if (!train) {
        fprintf(stderr, "tlc: --emit=%s: %s; name a function with --entry NAME\n", emit_names[o->emit],
                o->train ? "no train block of that name" : "the file has no train block (or several: pick one with --train)");
        *status = EXIT_USAGE;
        return NULL;
    }
    char err[256];
    *targs = tl_args_new("train", NULL);
    if (tl_train_register_args(train, *targs) < 0) {
        *status = EXIT_INPUT;
        return NULL;
    }
    char *argv0[] = {"train", NULL};
    if (tl_args_parse(*targs, 1, argv0, stdout, err, sizeof err) != TL_ARGS_OK) usage_error("%s", err);
    *plan = tl_train_plan(prog, train, *targs);
    if (!*plan) {
        *status = EXIT_INPUT;
        return NULL;
    }
    return (*plan)->step;
}

/* Kernel k of lp named name; -1 with a message listing a few names. */
static int find_kernel(const TlLProgram *lp, const char *name) {
    for (int k = 0; k < lp->nkern; k++)
        if (!strcmp(lp->kern[k].name, name)) return k;
    fprintf(stderr, "tlc: no kernel named '%s' (see tlc kernels FILE; kernels:", name);
    for (int k = 0; k < lp->nkern && k < 6; k++) fprintf(stderr, " %s", lp->kern[k].name);
    fprintf(stderr, "%s)\n", lp->nkern > 6 ? " ..." : "");
    return -1;
}

/* --dims "B=4,T=16" -> bindings (names point into store, which the caller frees). */
static int parse_dims(const char *text, TlGDimBinding *b, int max, char **store) {
    char *s = strdup(text);
    if (!s) abort();
    *store = s;
    int n = 0;
    for (char *tok = strtok(s, ", "); tok; tok = strtok(NULL, ", ")) {
        char *eq = strchr(tok, '='), *end;
        if (!eq || eq == tok || n == max) return -1;
        *eq = 0;
        long long v = strtoll(eq + 1, &end, 10);
        if (*end || eq[1] == 0 || v < 1) return -1;
        b[n].name = tok, b[n].value = v, n++;
    }
    return n;
}

/* tlc kernels: the table, each row's schedule (source block, tuning cache or default),
 * and with --time each kernel measured alone. */
static int emit_kernels(TlcOptions *o, const TlGraph *g) {
    TlGDimBinding b[32];
    char *store = NULL, err[512];
    int nb = o->dims ? parse_dims(o->dims, b, 32, &store) : 0;
    if (nb < 0) {
        free(store);
        usage_error("--dims wants NAME=N pairs with N >= 1, like B=4,T=16");
    }
    int status = EXIT_OK;
    TlKernelTable *t = tl_kernels_build(g, NULL, b, nb);
    TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
    if (!lp) {
        fprintf(stderr, "tlc: kernels: %s\n", err);
        status = tl_diag_error_count() ? EXIT_INPUT : EXIT_INTERNAL;
    }
    int64_t *syms = lp ? calloc((size_t)lp->nsyms + 1, sizeof *syms) : NULL;
    int all = 1;
    for (int s = 0; lp && s < lp->nsyms; s++) {
        int found = 0;
        for (int i = 0; i < nb; i++)
            if (!strcmp(b[i].name, lp->syms[s])) syms[s] = b[i].value, found = 1;
        if (!found) {
            all = 0;
            if (o->time || o->gpu_report) {
                fprintf(stderr, "tlc: kernels %s: dim symbol '%s' has no value; give it with --dims %s=N\n",
                        o->time ? "--time" : "--gpu-report", lp->syms[s], lp->syms[s]);
                status = EXIT_USAGE;
            }
        }
    }
    if (lp && status == EXIT_OK) {
        char key[512];
        tl_schedule_target_key(o->cpu, 0, key, sizeof key);
        TlSchedSource *src = calloc((size_t)lp->nkern + 1, sizeof *src);
        TlKSched *sch = calloc((size_t)lp->nkern + 1, sizeof *sch);
        tl_schedule_cache_apply(lp, key, all ? syms : NULL, NULL, src, sch);
        tl_kernels_schedule(t, lp, src, sch);
        free(src);
        free(sch);
        if (o->gpu_report) { /* what each kernel asks of the GPU */
            TlGpuKernelStat *st = calloc((size_t)lp->nkern + 1, sizeof *st);
            if (!st) abort();
            TlNvptxOptions no = {.arch = o->gpu_arch, .opt_level = 3};
            tl_nvptx_kernel_stats(lp, &no, syms, st);
            tl_nvptx_report_print(stdout, st, lp->nkern, o->gpu_rows);
            free(st);
            free(syms);
            tl_loops_free(lp);
            tl_kernels_free(t);
            free(store);
            return status;
        }
        if (o->kernel) { /* one row */
            int row = -1;
            for (int i = 0; i < t->n; i++)
                if (!strcmp(t->k[i].name, o->kernel)) row = i;
            if (row < 0) {
                find_kernel(lp, o->kernel);
                status = EXIT_USAGE;
            } else {
                t->k[0] = t->k[row];
                t->n = 1;
            }
        }
        if (status == EXIT_OK && o->time &&
            tl_kernels_time(t, lp, syms, o->cpu, 0, isatty(2) ? stderr : NULL, err, sizeof err)) {
            fprintf(stderr, "tlc: kernels --time: %s\n", err);
            status = EXIT_INTERNAL;
        }
        if (status == EXIT_OK) tl_kernels_print(stdout, t);
    }
    free(syms);
    tl_loops_free(lp);
    tl_kernels_free(t);
    free(store);
    return status;
}

/* --emit=graph|loops|llvm|asm */
static int emit_lowered(TlcOptions *o, TlProgram *prog) {
    TlLowered *l;
    TlTrainPlan *plan;
    TlArgs *targs;
    int status = EXIT_OK;
    TlGraph *g = graph_for_emit(o, prog, &l, &plan, &targs, &status);
    if (g) {
        char err[512];
        TlCpuOptions co = {.cpu = o->cpu, .opt_level = 3};
        if (o->emit == EMIT_GRAPH) {
            if (o->dot) tl_graph_dot(stdout, g);
            else tl_graph_print(stdout, g);
        } else if (o->emit == EMIT_FUSED) {
            TlFusion *fz = tl_fuse(g, NULL);
            if (fz) tl_fuse_print(stdout, fz);
            tl_fuse_free(fz);
        } else if (o->emit == EMIT_KERNELS) {
            status = emit_kernels(o, g);
        } else if (o->emit == EMIT_PTX) {
            TlNvptxOptions no = {.arch = o->gpu_arch};
            char *text = tl_nvptx_emit_ptx(g, &no, o->kernel, err, sizeof err);
            if (!text) {
                fprintf(stderr, "tlc: --emit=ptx: %s\n", err);
                status = EXIT_INPUT;
            } else {
                fputs(text, stdout);
                free(text);
            }
        } else if (o->emit == EMIT_SCHEDULE) {
            TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
            if (!lp) {
                fprintf(stderr, "tlc: --emit=schedule: %s\n", err);
                status = tl_diag_error_count() ? EXIT_INPUT : EXIT_INTERNAL;
            } else {
                char key[512];
                tl_schedule_target_key(o->cpu, 0, key, sizeof key);
                TlSchedSource *src = calloc((size_t)lp->nkern + 1, sizeof *src);
                TlKSched *sch = calloc((size_t)lp->nkern + 1, sizeof *sch);
                tl_schedule_cache_apply(lp, key, NULL, NULL, src, sch);
                tl_schedule_print(stdout, lp, src, sch, o->target && !strcmp(o->target, "cuda"));
                free(src);
                free(sch);
                tl_loops_free(lp);
            }
        } else if (o->emit == EMIT_LOOPS) {
            TlLProgram *lp = tl_loops_lower(g, err, sizeof err);
            if (!lp) {
                fprintf(stderr, "tlc: --emit=loops: %s\n", err);
                status = tl_diag_error_count() ? EXIT_INPUT : EXIT_INTERNAL;
            } else {
                if (!(o->target && strcmp(o->target, "cuda") == 0)) tl_loops_colsum(lp), tl_loops_rowsum(lp); /* what the CPU compiles */
                int k = o->kernel ? find_kernel(lp, o->kernel) : -1;
                if (!o->kernel) tl_loops_print(stdout, lp);
                else if (k >= 0) tl_loops_print_kernel(stdout, lp, k);
                else status = EXIT_USAGE;
                tl_loops_free(lp);
            }
        } else {
            char *text = o->emit == EMIT_LLVM ? tl_cpu_emit_llvm(g, &co, o->kernel, err, sizeof err)
                                              : tl_cpu_emit_asm(g, &co, o->kernel, err, sizeof err);
            if (!text) {
                fprintf(stderr, "tlc: --emit=%s: %s\n", emit_names[o->emit], err);
                status = EXIT_INPUT;
            } else {
                fputs(text, stdout);
                free(text);
            }
        }
    }
    tl_lowered_free(l);
    tl_train_plan_free(plan);
    tl_args_free(targs);
    return status;
}

static int emit_stage(TlcOptions *o, const char *path) {
    TlAst *ast = parse_file(path);
    if (!ast || tl_diag_error_count()) {
        tl_ast_free(ast);
        return EXIT_INPUT;
    }
    if (o->parse_only) {
        if (o->emit != EMIT_AST) usage_error("--parse-only goes with --emit=ast only");
        tl_ast_print(stdout, ast->root);
        tl_ast_free(ast);
        return EXIT_OK;
    }
    TlProgram *prog = tl_sema_check_file(path, &o->sema);
    int status = status_from_diags();
    switch (o->emit) {
    case EMIT_AST:
        /* typed when checking succeeded; the plain parse otherwise */
        if (status == EXIT_OK && prog && prog->nmodules > 0 && prog->modules[0]->ast)
            tl_ast_print(stdout, prog->modules[0]->ast->root);
        else
            tl_ast_print(stdout, ast->root);
        break;
    case EMIT_GRAPH:
    case EMIT_SCHEDULE:
    case EMIT_PTX:
    case EMIT_FUSED:
    case EMIT_KERNELS:
    case EMIT_LOOPS:
    case EMIT_LLVM:
    case EMIT_ASM:
        if (status == EXIT_OK) status = emit_lowered(o, prog);
        break;
    default:
        fflush(stdout);
        fprintf(stderr, "tlc: --emit=%s is not implemented yet (planned)\n", emit_names[o->emit]);
        status = EXIT_USAGE;
        break;
    }
    tl_program_free(prog);
    tl_ast_free(ast);
    return status;
}

static int cmd_emit(TlcOptions *o) {
    if (o->nfiles != 1) usage_error("--emit=%s needs exactly one input file", emit_names[o->emit]);
    int status = emit_stage(o, o->files[0]);
    if (status == EXIT_INPUT) print_error_summary();
    return status;
}

static int cmd_run(TlcOptions *o) {
    if (o->nfiles != 1) usage_error("run: needs exactly one .tl file (usage: tlc run --interp FILE [-- ARGS])");
    TlProgram *prog = tl_sema_check_file(o->files[0], &o->sema);
    if (tl_diag_error_count()) {
        print_error_summary();
        tl_program_free(prog);
        return EXIT_INPUT;
    }
    char *argv[1024];
    int argc = 0;
    argv[argc++] = (char *)o->files[0];
    for (int i = 0; i < o->nrest && argc < 1023; i++) argv[argc++] = (char *)o->rest[i];
    argv[argc] = NULL;
    int mode = o->interp ? 1 : (o->target && strcmp(o->target, "cuda") == 0) ? 2 : 0;
    if (o->sample && mode == 2) {
        fprintf(stderr, "tlc: run --sample: --target=cuda is not supported yet (the sampler runs on the CPU)\n");
        tl_program_free(prog);
        return EXIT_USAGE;
    }
    int status = o->sample ? tl_sample_main(prog, o->train, argc, argv, o->interp)
                           : tl_train_main(prog, o->train, argc, argv, mode);
    if (tl_diag_error_count()) print_error_summary();
    tl_program_free(prog);
    return status;
}

static int cmd_build(TlcOptions *o) {
    if (o->nfiles != 1) usage_error("build: needs exactly one .tl file (usage: tlc build FILE -o EXE [-- FLAGS])");
    TlProgram *prog = tl_sema_check_file(o->files[0], &o->sema);
    if (tl_diag_error_count()) {
        print_error_summary();
        tl_program_free(prog);
        return EXIT_INPUT;
    }
    char *argv[1024];
    int argc = 0;
    argv[argc++] = (char *)"tlc build";
    for (int i = 0; i < o->nrest && argc < 1023; i++) argv[argc++] = (char *)o->rest[i];
    argv[argc] = NULL;
    TlBuildOptions bo = {.cpu = o->cpu, .target = o->target, .gpu_arch = o->gpu_arch};
    int status = tl_build_main(prog, o->train, o->output, &bo, argc, argv, o->files[0]);
    if (tl_diag_error_count()) print_error_summary();
    tl_program_free(prog);
    return status;
}

/* tlc kernels FILE: the table of the kernels of the train step (or --entry) */
static int cmd_kernels(TlcOptions *o) {
    if (o->nfiles != 1) usage_error("kernels: needs exactly one .tl file (usage: tlc kernels FILE [--entry NAME --args ...])");
    if (o->emit == EMIT_NONE) o->emit = EMIT_KERNELS;
    return cmd_emit(o);
}

static int cmd_planned(TlcOptions *o) {
    fprintf(stderr, "tlc: '%s' is not implemented yet (planned); see 'tlc --help'\n", o->command);
    return EXIT_USAGE;
}

typedef struct Command {
    const char *name;
    int (*run)(TlcOptions *o);
} Command;

static const Command commands[] = {
    {"check", cmd_check},
    {"build", cmd_build},
    {"run", cmd_run},
    {"kernels", cmd_kernels},
    {"tune", cmd_planned}, /* handled before parsing: tl_tune_main */
    {"tokenizer", cmd_planned},
    {"emit", cmd_emit}, /* implicit: a bare --emit=STAGE */
};

/* ---- the command line ---- */

static const char *known_flags[] = {
    "--emit=", "--dot", "--parse-only", "--target=", "--cpu=", "--gpu-arch=", "-o", "--interp", "--sample",
    "--stdlib", "-Werror", "-Wno-unused", "--max-errors", "--version", "--help", "--entry",
    "--args", "--hparams", "--method", "--train", "--kernel", "--time", "--dims", "--gpu-report",
};

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static void unknown_flag(const char *arg) {
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
    const char *best = NULL;
    int bestd = 3;
    for (size_t i = 0; i < sizeof known_flags / sizeof known_flags[0]; i++) {
        char k[64];
        snprintf(k, sizeof k, "%.*s", (int)strcspn(known_flags[i], "="), known_flags[i]);
        int dist = edit_distance(name, k);
        if (dist < bestd) { bestd = dist; best = known_flags[i]; }
    }
    if (best)
        usage_error("unknown option '%s' (did you mean '%s'?); see 'tlc --help'", arg, best);
    usage_error("unknown option '%s'; see 'tlc --help'", arg);
}

/* `--flag=value` or `--flag value`: returns the value, advancing *i for the second form. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag) {
    const char *a = argv[*i];
    size_t n = strlen(flag);
    if (a[n] == '=') return a + n + 1;
    if (*i + 1 >= argc) usage_error("%s needs a value", flag);
    return argv[++*i];
}

static int is_flag(const char *a, const char *flag) {
    size_t n = strlen(flag);
    return strncmp(a, flag, n) == 0 && (a[n] == 0 || a[n] == '=');
}

static void parse_args(int argc, char **argv, TlcOptions *o) {
    static const char *files[4096];
    o->files = files;
    o->sema.warn_unused = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            o->rest = (const char **)argv + i + 1;
            o->nrest = argc - i - 1;
            break;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (!o->command && o->nfiles == 0) {
                for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
                    if (strcmp(a, commands[c].name) == 0 && strcmp(a, "emit") != 0)
                        o->command = commands[c].name;
                if (o->command) continue;
            }
            if (o->nfiles == (int)(sizeof files / sizeof files[0])) usage_error("too many files");
            files[o->nfiles++] = a;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(stdout);
            exit(EXIT_OK);
        } else if (strcmp(a, "--version") == 0) {
            printf("tl %s (LLVM %s)\n", TL_VERSION, TL_LLVM_VERSION);
            exit(EXIT_OK);
        } else if (is_flag(a, "--emit")) {
            const char *v = flag_value(argc, argv, &i, "--emit");
            o->emit = EMIT_NONE;
            for (int e = 1; e < (int)(sizeof emit_names / sizeof emit_names[0]); e++)
                if (strcmp(v, emit_names[e]) == 0) o->emit = (Emit)e;
            if (o->emit == EMIT_NONE)
                usage_error("unknown stage '--emit=%s' (stages: ast graph fused loops llvm asm "
                            "ptx schedule)", v);
        } else if (strcmp(a, "--dot") == 0) {
            o->dot = 1;
        } else if (strcmp(a, "--parse-only") == 0) {
            o->parse_only = 1;
        } else if (is_flag(a, "--target")) {
            o->target = flag_value(argc, argv, &i, "--target");
            if (strcmp(o->target, "cpu") != 0 && strcmp(o->target, "cuda") != 0)
                usage_error("unknown target '%s' (targets: cpu cuda)", o->target);
        } else if (is_flag(a, "--cpu")) {
            o->cpu = flag_value(argc, argv, &i, "--cpu");
        } else if (is_flag(a, "--gpu-arch")) {
            o->gpu_arch = flag_value(argc, argv, &i, "--gpu-arch");
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) usage_error("-o needs a file name");
            o->output = argv[++i];
        } else if (is_flag(a, "--entry")) {
            o->entry = flag_value(argc, argv, &i, "--entry");
        } else if (is_flag(a, "--args")) {
            o->call_args = flag_value(argc, argv, &i, "--args");
        } else if (is_flag(a, "--hparams")) {
            o->hparams = flag_value(argc, argv, &i, "--hparams");
        } else if (is_flag(a, "--method")) {
            o->method = flag_value(argc, argv, &i, "--method");
        } else if (is_flag(a, "--kernel")) {
            o->kernel = flag_value(argc, argv, &i, "--kernel");
        } else if (strcmp(a, "--time") == 0) {
            o->time = 1;
        } else if (strcmp(a, "--gpu-report") == 0) {
            o->gpu_report = 1, o->gpu_rows = 20;
        } else if (strncmp(a, "--gpu-report=", 13) == 0) {
            char *end;
            long v = strtol(a + 13, &end, 10);
            if (end == a + 13 || *end || v < 0 || v > 1000000) usage_error("--gpu-report=N wants a row count N >= 0 (0: all)");
            o->gpu_report = 1, o->gpu_rows = (int)v;
        } else if (is_flag(a, "--dims")) {
            o->dims = flag_value(argc, argv, &i, "--dims");
        } else if (is_flag(a, "--train")) {
            o->train = flag_value(argc, argv, &i, "--train");
        } else if (strcmp(a, "--interp") == 0) {
            o->interp = 1;
        } else if (strcmp(a, "--sample") == 0) {
            o->sample = 1;
        } else if (is_flag(a, "--stdlib")) {
            o->sema.stdlib_dir = flag_value(argc, argv, &i, "--stdlib");
        } else if (strcmp(a, "-Werror") == 0) {
            tl_diag_set_werror(1);
        } else if (strcmp(a, "-Wno-unused") == 0) {
            o->sema.warn_unused = 0;
        } else if (is_flag(a, "--max-errors")) {
            const char *v = flag_value(argc, argv, &i, "--max-errors");
            char *end;
            long n = strtol(v, &end, 10);
            if (*v == 0 || *end || n < 0 || n > 1000000)
                usage_error("--max-errors needs a number, not '%s'", v);
            tl_diag_set_max_errors(n == 0 ? 1000000000 : (int)n);
        } else {
            unknown_flag(a);
        }
    }
    if (!o->command) {
        if (o->emit != EMIT_NONE) {
            o->command = "emit";
        } else if (o->nfiles > 0) {
            usage_error("unknown command '%s' (commands: check build run kernels tune "
                        "tokenizer); see 'tlc --help'", o->files[0]);
        } else {
            fputs("tlc: no command given; try 'tlc check FILE' or 'tlc --help'\n", stderr);
            exit(EXIT_USAGE);
        }
    } else if (o->emit != EMIT_NONE && strcmp(o->command, "check") == 0) {
        o->command = "emit";
    }
}

#if defined(__SANITIZE_ADDRESS__)
#define TL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define TL_SANITIZED 1
#endif
#endif

#ifndef TL_SANITIZED
/* A crash is a bug in tlc, never the user's: say so and exit with the internal status. */
static void on_crash(int sig) {
    static const char msg[] = "tlc: internal error (crashed); please report it with the input\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    (void)sig;
    _exit(EXIT_INTERNAL);
}

#endif

int main(int argc, char **argv) {
#ifndef TL_SANITIZED
    if (!getenv("TL_NO_CRASH_HANDLER")) {
        signal(SIGSEGV, on_crash);
        signal(SIGBUS, on_crash);
        signal(SIGFPE, on_crash);
        signal(SIGILL, on_crash);
        signal(SIGABRT, on_crash);
    }
#endif
    /* `tlc tune ...` and `tlc tokenizer ...` have their own flags (docs/tuning.md,
     * docs/tokenizers.md) */
    if (argc >= 2 && strcmp(argv[1], "tune") == 0) return tl_tune_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "tokenizer") == 0) return tl_cmd_tokenizer(argc - 1, argv + 1);
    TlcOptions o = {0};
    parse_args(argc, argv, &o);
    int status = EXIT_USAGE;
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(o.command, commands[c].name) == 0) status = commands[c].run(&o);
    fflush(stdout);
    tl_source_reset();
    return status;
}
