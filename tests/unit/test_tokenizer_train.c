/* test_tokenizer_train.c — BPE training against Hugging Face tokenizers' BpeTrainer.
 *
 * tests/ref/tok_hf_train.py (run by hand) trains HF's BpeTrainer on the fortunes corpus
 * (ByteLevel pre-tokenizer, vocab 256 + 1000, min_frequency 2) and writes the files it
 * used and its 1,000 merges to tests/ref/tok_hf_train.ref. Here tl trains on the same files
 * (through tl_data_load) with the same settings: with hf_ties the merges must be equal one
 * for one; with tl's default byte-order ties the first difference is reported (ties break
 * differently by design, see docs/tokenizers.md). SKIP when the corpus, a file of it, or
 * the .ref is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"
#include "tok.h"

#define REF "tests/ref/tok_hf_train.ref"
#define CORPUS "/usr/share/games/fortunes"

typedef struct { uint8_t a[64], b[64]; size_t la, lb; } Merge;
static Merge *want;
static size_t nwant;
static TlCorpus *corpus;
static char *use; /* per corpus file: fed or not */

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1) break;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* Reads the .ref and matches its files with the corpus; a reason to skip, or NULL. */
static const char *setup(void) {
    static char why[1024];
    FILE *f = fopen(REF, "r");
    if (!f) return REF " is absent (bench/.venv/bin/python tests/ref/tok_hf_train.py)";
    char err[512];
    if (tl_data_load(CORPUS, &corpus, err, sizeof err)) {
        fclose(f);
        snprintf(why, sizeof why, "the fortunes corpus: %s", err);
        return why;
    }
    use = calloc((size_t)corpus->nfiles + 1, 1);
    want = calloc(4096, sizeof *want);
    char line[1024], rel[512];
    size_t size;
    const char *skip = NULL;
    while (!skip && fgets(line, sizeof line, f)) {
        if (sscanf(line, "file %511s %zu", rel, &size) == 2) {
            int found = 0;
            for (int i = 0; i < corpus->nfiles; i++) {
                const char *p = corpus->files[i];
                size_t lp = strlen(p), lr = strlen(rel);
                size_t hi = i + 1 < corpus->nfiles ? corpus->offsets[i + 1] : corpus->n;
                if (lp >= lr && strcmp(p + lp - lr, rel) == 0 && (lp == lr || p[lp - lr - 1] == '/') &&
                    hi - corpus->offsets[i] == size)
                    use[i] = 1, found = 1;
            }
            if (!found) {
                snprintf(why, sizeof why, "%s (%zu bytes) of " REF " is not in this corpus", rel, size);
                skip = why;
            }
        } else if (!strncmp(line, "merge ", 6) && nwant < 4096) {
            char a[256], b[256];
            if (sscanf(line + 6, "%255s %255s", a, b) == 2) {
                want[nwant].la = unhex(a, want[nwant].a, 64);
                want[nwant].lb = unhex(b, want[nwant].b, 64);
                nwant++;
            }
        }
    }
    fclose(f);
    return skip;
}

/* Trains on the files of the .ref; returns the index of the first merge that differs from
 * HF's (nwant when all are equal), -1 on error. */
static long train_and_compare(int hf_ties, double *secs) {
    char err[512];
    TlBpeTrainOpts o = {.vocab_size = 256 + nwant, .min_count = 2, .hf_ties = hf_ties};
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
    if (!tr) return -1;
    for (int i = 0; i < corpus->nfiles; i++) {
        if (!use[i]) continue;
        size_t lo = corpus->offsets[i], hi = i + 1 < corpus->nfiles ? corpus->offsets[i + 1] : corpus->n;
        if (tl_bpe_trainer_feed(tr, corpus->bytes + lo, hi - lo, err, sizeof err)) {
            tl_bpe_trainer_free(tr);
            return -1;
        }
    }
    (void)secs;
    TlTokenizer *t = tl_bpe_trainer_finish(tr, err, sizeof err);
    tl_bpe_trainer_free(tr);
    if (!t) return -1;
    /* merge k made token 256 + k (no merge of this corpus respells a token) */
    long first = (long)nwant;
    for (size_t k = 0; k < nwant; k++) {
        size_t la, lb;
        int32_t id = (int32_t)(256 + k);
        const uint8_t *z = tl_tok_token(t, id, &la);
        (void)lb;
        /* the merge's two halves: the token's bytes split as HF's merge says */
        int same = z && la == want[k].la + want[k].lb && memcmp(z, want[k].a, want[k].la) == 0 &&
                   memcmp(z + want[k].la, want[k].b, want[k].lb) == 0;
        if (!same) {
            first = (long)k;
            break;
        }
    }
    tl_tok_free(t);
    return first;
}

int main(void) {
    const char *skip = setup();
    if (skip) {
        case_skip("bpe_train_hf_parity", skip);
    } else {
        case_begin("bpe_train_hf_parity (hf_ties: %zu merges on the fortunes corpus equal HF's)", nwant);
        long d = train_and_compare(1, NULL);
        EXPECTF(nwant == 1000 && d == (long)nwant, "first difference at merge %ld of %zu", d, nwant);
        case_end();
        case_begin("bpe_train_byte_ties_differ_only_by_ties");
        long e = train_and_compare(0, NULL);
        printf("  byte-order ties: first merge different from HF's: %ld of %zu\n", e, nwant);
        EXPECT(e >= 0);
        case_end();
    }
    free(want);
    free(use);
    tl_data_free(corpus);
    return check_done();
}
