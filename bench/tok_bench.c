/* tok_bench.c — GPT-2 encode throughput of tl's BPE on one text file, single thread.
 *   tok_bench GPT2_DIR FILE [RUNS]
 * Prints "tl MB/s <median> ids <count>" (median of RUNS timed encodes, each with a fresh
 * tokenizer so the word cache starts empty, as tiktoken's does not cache across calls;
 * loading is not timed). Built and run by bench/bench_tokenizer.py. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tok_bench GPT2_DIR FILE [RUNS]\n");
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 7;
    if (runs < 1) runs = 1;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: read failed\n", argv[2]);
        return 1;
    }
    fclose(f);
    double *mbs = malloc(sizeof(double) * (size_t)runs);
    size_t count = 0;
    char err[512];
    double load = 0;
    for (int r = 0; r < runs; r++) {
        double l0 = now();
        TlTokenizer *t = tl_tok_gpt2_load_dir(argv[1], err, sizeof err);
        load = now() - l0;
        if (!t) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        TlTokIds ids = {0};
        double t0 = now();
        if (tl_tok_encode(t, text, (size_t)n, &ids, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double dt = now() - t0;
        mbs[r] = n / 1e6 / dt;
        count = ids.n;
        tl_tok_ids_free(&ids);
        tl_tok_free(t);
    }
    qsort(mbs, (size_t)runs, sizeof *mbs, cmp);
    printf("tl MB/s %.2f ids %zu\n", mbs[runs / 2], count);
    fprintf(stderr, "tl: loading GPT-2 takes %.3f s; encode MB/s min %.2f median %.2f max %.2f\n",
            load, mbs[0], mbs[runs / 2], mbs[runs - 1]);
    free(mbs);
    free(text);
    return 0;
}
