/* fuzz_tok.c — libFuzzer harness over the tokenizer runtime (runtime/tok*.c).
 *
 * The first byte of an input picks what is fuzzed; the rest is the data:
 *   0  GPT-2 encoding: decode(encode(x)) == x; encoding twice (the second time from the
 *      word cache) gives the same ids; the whole of x as one piece merges the same with
 *      the fast path (rank scan / heap) and the O(n^2) oracle
 *   1  pre-tokenizers: the GPT-2 scanner cuts valid UTF-8 as PCRE2 running GPT-2's pattern
 *      (U+180E excepted, documented); pieces always cover the input
 *   2  GPT-2 loaders: data = encoder.json NUL vocab.bpe; when they load, x round-trips
 *   3  WordPiece loader: data = vocab.txt; when it loads, encoding its own text works
 *   4  BPE training on x (vocab 256 + x[0] % 64), then x round-trips through the result
 *   5  characters: a vocabulary from the first half, encoding the whole (error or ids)
 * Files reach the loaders through memfd paths (/proc/self/fd/N), no disk.
 * GPT-2's files come from $TL_TOKFUZZ_GPT2 or ../shared/data/gpt2; without them mode 0
 * uses a small tokenizer trained at start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tok_internal.h"

static TlTokenizer *gpt2;
static TlPretok *scan, *pcre;
static int fd_a = -1, fd_b = -1;
static char path_a[64], path_b[64];

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "tokfuzz: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static const char seed_text[] =
    "The quick brown fox jumps over the lazy dog. It's 2024; don't panic!\n"
    "  Spaces   and\ttabs, caf\xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac, \xf0\x9f\x98\x80 123456789\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char err[1024];
    const char *dir = getenv("TL_TOKFUZZ_GPT2");
    gpt2 = tl_tok_gpt2_load_dir(dir ? dir : "../shared/data/gpt2", err, sizeof err);
    if (!gpt2) {
        TlBpeTrainOpts o = {.vocab_size = 400};
        TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
        CHECK(tr && tl_bpe_trainer_feed(tr, seed_text, sizeof seed_text - 1, err, sizeof err) == 0);
        gpt2 = tl_bpe_trainer_finish(tr, err, sizeof err);
        tl_bpe_trainer_free(tr);
        CHECK(gpt2);
    }
    scan = tl_pretok_new(NULL, 0, err, sizeof err);
    pcre = tl_pretok_new(NULL, 1, err, sizeof err);
    CHECK(scan && pcre);
    fd_a = memfd_create("tokfuzz_a", 0);
    fd_b = memfd_create("tokfuzz_b", 0);
    CHECK(fd_a >= 0 && fd_b >= 0);
    snprintf(path_a, sizeof path_a, "/proc/self/fd/%d", fd_a);
    snprintf(path_b, sizeof path_b, "/proc/self/fd/%d", fd_b);
    return 0;
}

static void set_file(int fd, const uint8_t *p, size_t n) {
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, p, n, 0) == (ssize_t)n);
}

/* encode, decode == input (when the tokenizer can take it), same ids twice */
static void round_trip(TlTokenizer *t, const uint8_t *p, size_t n, int must_encode) {
    char err[1024];
    TlTokIds a = {0}, b = {0};
    TlTokBytes out = {0};
    int ra = tl_tok_encode(t, p, n, &a, err, sizeof err);
    if (must_encode) CHECK(ra == 0);
    if (ra == 0) {
        for (size_t i = 0; i < a.n; i++) CHECK(a.v[i] >= 0 && (size_t)a.v[i] < tl_tok_vocab_size(t));
        CHECK(tl_tok_encode(t, p, n, &b, err, sizeof err) == 0);
        CHECK(a.n == b.n && (a.n == 0 || memcmp(a.v, b.v, a.n * sizeof *a.v) == 0));
        CHECK(tl_tok_decode(t, a.v, a.n, &out, err, sizeof err) == 0);
        if (tl_tok_kind(t) != TL_TOK_WORDPIECE) CHECK(out.n == n && (n == 0 || memcmp(out.p, p, n) == 0));
    } else {
        CHECK(err[0]); /* a failure always says why */
    }
    tl_tok_ids_free(&a);
    tl_tok_ids_free(&b);
    tl_tok_bytes_free(&out);
}

typedef struct { size_t n; size_t *end; size_t cap; const uint8_t *base; } Pieces;
static int on_piece(void *ud, const uint8_t *piece, size_t len) {
    Pieces *ps = ud;
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->end = realloc(ps->end, ps->cap * sizeof *ps->end);
        CHECK(ps->end);
    }
    CHECK(len > 0);
    ps->end[ps->n++] = (size_t)(piece - ps->base) + len;
    return 0;
}

static int valid_utf8_without_180e(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += tl_utf8_next(p, n, i, &cp);
        if (cp < 0 || cp == 0x180E) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 6;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char err[1024];
    switch (mode) {
    case 0: {
        round_trip(gpt2, p, n, 1);
        if (n <= 600) {
            TlTokIds a = {0}, b = {0};
            CHECK(tl_bpe_encode_piece(gpt2, p, n, &a) == 0);
            CHECK(tl_bpe_encode_piece_ref(gpt2, p, n, &b) == 0);
            CHECK(a.n == b.n && (a.n == 0 || memcmp(a.v, b.v, a.n * sizeof *a.v) == 0));
            tl_tok_ids_free(&a);
            tl_tok_ids_free(&b);
        }
        break;
    }
    case 1: {
        Pieces x = {.base = p}, y = {.base = p};
        CHECK(tl_pretok_split(scan, p, n, on_piece, &x, err, sizeof err) == 0);
        CHECK(x.n == 0 ? n == 0 : x.end[x.n - 1] == n);
        if (valid_utf8_without_180e(p, n)) {
            CHECK(tl_pretok_split(pcre, p, n, on_piece, &y, err, sizeof err) == 0);
            CHECK(x.n == y.n && (x.n == 0 || memcmp(x.end, y.end, x.n * sizeof *x.end) == 0));
        }
        free(x.end);
        free(y.end);
        break;
    }
    case 2: {
        const uint8_t *z = memchr(p, 0, n);
        size_t na = z ? (size_t)(z - p) : n;
        set_file(fd_a, p, na);
        set_file(fd_b, z ? z + 1 : p, z ? n - na - 1 : 0);
        TlTokenizer *t = tl_tok_gpt2_load(path_a, path_b, err, sizeof err);
        if (t) round_trip(t, p, n, 1);
        else CHECK(err[0]);
        tl_tok_free(t);
        break;
    }
    case 3: {
        set_file(fd_a, p, n);
        TlWordPieceOpts o = {.lowercase = n & 1};
        TlTokenizer *t = tl_tok_wordpiece_load(path_a, &o, err, sizeof err);
        if (t) round_trip(t, p, n, 0);
        else CHECK(err[0]);
        tl_tok_free(t);
        break;
    }
    case 4: {
        if (n > 4096) break;
        TlBpeTrainOpts o = {.vocab_size = 256 + (n ? p[0] % 64 : 0)};
        TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
        CHECK(tr);
        CHECK(tl_bpe_trainer_feed(tr, p, n, err, sizeof err) == 0);
        TlTokenizer *t = tl_bpe_trainer_finish(tr, err, sizeof err);
        tl_bpe_trainer_free(tr);
        CHECK(t);
        round_trip(t, p, n, 1);
        tl_tok_free(t);
        break;
    }
    case 5: {
        TlTokenizer *t = tl_tok_chars_new(p, n / 2, err, sizeof err);
        if (t) round_trip(t, p, n, 0);
        else CHECK(err[0]);
        tl_tok_free(t);
        break;
    }
    }
    return 0;
}
