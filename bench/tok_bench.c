/* tok_bench.c — GPT-2 encode throughput and BPE training time of tl's tokenizers.
 *   tok_bench GPT2_DIR FILE [RUNS]                 one thread
 *   tok_bench --threads N GPT2_DIR FILE RUNS       N threads, N tokenizers
 *   tok_bench --train VOCAB FILE RUNS [hf]         training time (hf: HF's tie-break)
 * Encode prints "tl MB/s <median> ids <count> fnv <hash of the ids>" (median of RUNS timed
 * encodes, each with fresh tokenizers so the word cache starts empty, as tiktoken's does
 * not cache across calls; loading is not timed). With N threads the text is cut into N
 * chunks at line starts (after a '\n' between printable ASCII characters: always a GPT-2
 * piece boundary, so the concatenated ids are those of the whole text), each encoded by
 * its own tokenizer on its own thread. Train prints "tl train_s <median> merges <n>".
 * Built and run by bench/bench_tokenizer.py and bench/tokenizer/run.sh. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
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

typedef struct {
    TlTokenizer *t;
    const char *s;
    size_t n;
    TlTokIds ids;
    int rc;
} Job;

static void *encode_job(void *ud) {
    Job *j = ud;
    char err[512];
    j->rc = tl_tok_encode(j->t, j->s, j->n, &j->ids, err, sizeof err);
    if (j->rc) fprintf(stderr, "%s\n", err);
    return NULL;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(text);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return text;
}

/* The next chunk boundary at or after i: just after a '\n' between two printable ASCII
 * characters (a piece boundary of GPT-2's pattern: "x\n" + "y" gives "x" "\n" "y"
 * whole or cut; a run like "\n\n" would not be, since at the end of a chunk
 * \s+(?!\S) takes it whole), or n. */
static size_t boundary(const char *s, size_t n, size_t i) {
    for (; i + 1 < n; i++)
        if (s[i] == '\n' && i > 0 && s[i - 1] > ' ' && s[i - 1] < 0x7f && s[i + 1] > ' ' &&
            s[i + 1] < 0x7f)
            return i + 1;
    return n;
}

static int bench_threads(int nt, const char *dir, const char *path, int runs) {
    size_t n;
    char *text = slurp(path, &n), err[512];
    if (!text || nt < 1 || nt > 64) return 1;
    Job job[64];
    pthread_t th[64];
    double *mbs = malloc(sizeof(double) * (size_t)runs);
    size_t count = 0;
    uint64_t fnv = 0;
    for (int r = 0; r < runs; r++) {
        size_t lo = 0;
        for (int k = 0; k < nt; k++) {
            size_t hi = k + 1 == nt ? n : boundary(text, n, n / (size_t)nt * (size_t)(k + 1));
            if (hi < lo) hi = lo;
            job[k] = (Job){tl_tok_gpt2_load_dir(dir, err, sizeof err), text + lo, hi - lo, {0}, 0};
            if (!job[k].t) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            lo = hi;
        }
        double t0 = now();
        for (int k = 0; k < nt; k++) pthread_create(&th[k], NULL, encode_job, &job[k]);
        for (int k = 0; k < nt; k++) pthread_join(th[k], NULL);
        mbs[r] = n / 1e6 / (now() - t0);
        count = 0;
        fnv = 1469598103934665603ull;
        for (int k = 0; k < nt; k++) {
            if (job[k].rc) return 1;
            count += job[k].ids.n;
            for (size_t i = 0; i < job[k].ids.n; i++) fnv = (fnv ^ (uint32_t)job[k].ids.v[i]) * 1099511628211ull;
            tl_tok_ids_free(&job[k].ids);
            tl_tok_free(job[k].t);
        }
    }
    qsort(mbs, (size_t)runs, sizeof *mbs, cmp);
    printf("tl MB/s %.2f ids %zu fnv %016llx\n", mbs[runs / 2], count, (unsigned long long)fnv);
    free(mbs);
    free(text);
    return 0;
}

static int bench_train(size_t vocab, const char *path, int runs, int hf) {
    size_t n, merges = 0;
    char *text = slurp(path, &n), err[512];
    if (!text) return 1;
    double *secs = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        TlBpeTrainOpts o = {.vocab_size = vocab, .hf_ties = hf};
        TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
        TlTokenizer *t = NULL;
        if (tr && tl_bpe_trainer_feed(tr, text, n, err, sizeof err) == 0)
            t = tl_bpe_trainer_finish(tr, err, sizeof err);
        tl_bpe_trainer_free(tr);
        secs[r] = now() - t0;
        if (!t) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        merges = tl_tok_vocab_size(t) - 256;
        tl_tok_free(t);
    }
    qsort(secs, (size_t)runs, sizeof *secs, cmp);
    printf("tl train_s %.3f merges %zu\n", secs[runs / 2], merges);
    free(secs);
    free(text);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "--threads"))
        return bench_threads(atoi(argv[2]), argv[3], argv[4], atoi(argv[5]) > 0 ? atoi(argv[5]) : 1);
    if (argc >= 5 && !strcmp(argv[1], "--train"))
        return bench_train((size_t)atol(argv[2]), argv[3], atoi(argv[4]) > 0 ? atoi(argv[4]) : 1,
                           argc > 5 && !strcmp(argv[5], "hf"));
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
