/* test_tokenizer_input.c — bad and extreme input to the tokenizers: empty text and files,
 * invalid UTF-8, blank vocab lines, a long single line and single long pieces. Each must
 * give ids that decode back (byte-level BPE, bytes), a one-line error, or WordPiece's
 * documented [UNK]; never a crash. Regressions found by tests/tokfuzz are here too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tok.h"

#define GPT2_DIR "../shared/data/gpt2"

static void spit(const char *path, const void *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(s, 1, n, f);
    fclose(f);
}

static int round_trips(TlTokenizer *t, const void *s, size_t n, size_t *nids) {
    char err[512];
    TlTokIds ids = {0};
    TlTokBytes out = {0};
    int ok = tl_tok_encode(t, s, n, &ids, err, sizeof err) == 0 &&
             tl_tok_decode(t, ids.v, ids.n, &out, err, sizeof err) == 0 && out.n == n &&
             (n == 0 || memcmp(out.p, s, n) == 0);
    if (nids) *nids = ids.n;
    tl_tok_ids_free(&ids);
    tl_tok_bytes_free(&out);
    return ok;
}

static TlTokenizer *gpt2;

TEST(empty_text_and_empty_files) {
    char err[512], enc[] = "/tmp/tl_tok_in_XXXXXX";
    size_t n = 99;
    TlTokenizer *b = tl_tok_bytes_new();
    EXPECT(round_trips(b, "", 0, &n) && n == 0);
    tl_tok_free(b);
    if (gpt2) EXPECT(round_trips(gpt2, "", 0, &n) && n == 0);
    int fd = mkstemp(enc);
    EXPECT(fd >= 0);
    close(fd);
    spit(enc, "", 0);
    err[0] = 0;
    EXPECT(tl_tok_gpt2_load(enc, enc, err, sizeof err) == NULL && strstr(err, enc));
    err[0] = 0;
    EXPECT(tl_tok_wordpiece_load(enc, NULL, err, sizeof err) == NULL && strstr(err, enc));
    /* an empty alphabet: a tokenizer with no ids, which rejects any character */
    TlTokenizer *c = tl_tok_chars_new("", 0, err, sizeof err);
    TlTokIds none = {0};
    EXPECT(c && tl_tok_vocab_size(c) == 0 && round_trips(c, "", 0, NULL) &&
           tl_tok_encode(c, "a", 1, &none, err, sizeof err) == -1 && strstr(err, "U+0061"));
    tl_tok_ids_free(&none);
    tl_tok_free(c);
    /* training on nothing: just the 256 byte tokens */
    TlBpeTrainOpts o = {.vocab_size = 300};
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
    TlTokenizer *t = tr ? tl_bpe_trainer_finish(tr, err, sizeof err) : NULL;
    EXPECTF(t && tl_tok_vocab_size(t) == 256, "%s", err);
    if (t) EXPECT(round_trips(t, "abc", 3, NULL));
    tl_tok_free(t);
    tl_bpe_trainer_free(tr);
    unlink(enc);
}

TEST(invalid_utf8_everywhere) {
    const char bad[] = "ok \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf end\x80";
    size_t n = sizeof bad - 1;
    char err[512];
    if (gpt2) EXPECT(round_trips(gpt2, bad, n, NULL));
    TlTokenizer *c = tl_tok_chars_new(bad, n, err, sizeof err);
    EXPECTF(c && round_trips(c, bad, n, NULL), "%s", err);
    tl_tok_free(c);
    TlBpeTrainOpts o = {.vocab_size = 270};
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
    EXPECT(tr && tl_bpe_trainer_feed(tr, bad, n, err, sizeof err) == 0);
    TlTokenizer *t = tr ? tl_bpe_trainer_finish(tr, err, sizeof err) : NULL;
    EXPECT(t && round_trips(t, bad, n, NULL));
    tl_tok_free(t);
    tl_bpe_trainer_free(tr);
    /* WordPiece: invalid bytes never crash; they become [UNK] (documented) */
    char vocab[] = "/tmp/tl_tok_wpin_XXXXXX";
    int fd = mkstemp(vocab);
    close(fd);
    spit(vocab, "[UNK]\nok\nend\n", 13);
    TlTokenizer *w = tl_tok_wordpiece_load(vocab, NULL, err, sizeof err);
    TlTokIds ids = {0};
    EXPECTF(w && tl_tok_encode(w, bad, n, &ids, err, sizeof err) == 0 && ids.n >= 2 &&
                ids.v[0] == 1,
            "%s", err);
    tl_tok_ids_free(&ids);
    tl_tok_free(w);
    unlink(vocab);
}

/* tokfuzz found: a vocab.txt of blank lines made empty tokens with no blob (NULL + 0, UB) */
TEST(blank_vocab_lines_regression) {
    char vocab[] = "/tmp/tl_tok_wpbl_XXXXXX", err[512];
    int fd = mkstemp(vocab);
    close(fd);
    const char *cases[] = {"\n", "\n\n[UNK]\n", "[UNK]\n\n\nx\n"};
    for (int i = 0; i < 3; i++) {
        spit(vocab, cases[i], strlen(cases[i]));
        err[0] = 0;
        TlTokenizer *w = tl_tok_wordpiece_load(vocab, NULL, err, sizeof err);
        EXPECT(w || err[0]);
        if (w) {
            TlTokIds ids = {0};
            EXPECT(tl_tok_encode(w, "x y", 3, &ids, err, sizeof err) == 0);
            EXPECT(tl_tok_lookup(w, "", 0) >= -1);
            tl_tok_ids_free(&ids);
        }
        tl_tok_free(w);
    }
    unlink(vocab);
}

TEST(long_line_and_long_pieces) {
    /* 8 MB in one line (no newline); 4 MB of one letter and 4 MB of spaces are single
     * pieces: the heap merge takes them in O(n log n). (100 MB: see docs/tokenizers.md.) */
    size_t n = 8u << 20;
    char *s = malloc(n);
    const char words[] = "the quick brown fox, jumps over 42 lazy dogs! ";
    for (size_t i = 0; i < n; i++) s[i] = words[i % (sizeof words - 1)];
    size_t nids;
    EXPECT(round_trips(gpt2, s, n, &nids) && nids > n / 8);
    memset(s, 'a', n / 2);
    EXPECTF(round_trips(gpt2, s, n / 2, &nids) && nids < n / 2 / 2, "%zu ids", nids);
    memset(s, ' ', n / 2); /* GPT-2 has no token of two spaces: one id each */
    EXPECTF(round_trips(gpt2, s, n / 2, &nids) && nids == n / 2, "%zu ids", nids);
    for (size_t i = 0; i < n / 2; i++) s[i] = (char)('0' + i * 7 % 10); /* one \p{N}+ piece */
    EXPECTF(round_trips(gpt2, s, n / 2, &nids) && nids < n / 2 / 2, "%zu ids", nids);
    free(s);
}

int main(void) {
    char err[512];
    gpt2 = tl_tok_gpt2_load_dir(GPT2_DIR, err, sizeof err);
    RUN(empty_text_and_empty_files);
    RUN(invalid_utf8_everywhere);
    RUN(blank_vocab_lines_regression);
    if (gpt2) RUN(long_line_and_long_pieces);
    else case_skip("long_line_and_long_pieces", GPT2_DIR " is absent");
    tl_tok_free(gpt2);
    return check_done();
}
