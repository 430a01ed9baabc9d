/* test_tokenizer_decl.c — `tokenizer NAME = ...` declarations built by compiler/tokdecl.c,
 * and `tlc tokenizer encode|decode --tokenizer FILE.tl:NAME`.
 *
 * Each case writes a .tl file into a fresh temporary directory (with a link gpt2 -> the
 * shared GPT-2 files, so that relative paths are exercised) and checks the tokenizer it
 * declares against the one the runtime builds directly. GPT-2 cases SKIP when
 * ../shared/data/gpt2 is absent. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "diag.h"
#include "sema.h"
#include "source.h"
#include "tok.h"
#include "tokdecl.h"

#define GPT2_DIR "../shared/data/gpt2"

static char tmp[PATH_MAX];
static int have_gpt2;

static const char sample[] =
    "Hello world, <|endoftext|> it's 2024!\n  indented\ttabs   and   spaces\n"
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xff\xfe bytes";

static void write_file(const char *name, const char *text) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Checks src as <tmp>/t.tl and builds tokenizer name; err gets the message on failure. */
static TlTokenizer *build(const char *src, const char *name, char *err, size_t errlen,
                          int *sema_errors) {
    write_file("t.tl", src);
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s/t.tl", tmp);
    tl_diag_reset();
    TlSemaOptions o = {.stdlib_dir = "stdlib"};
    TlProgram *prog = tl_sema_check_file(p, &o);
    *sema_errors = tl_diag_error_count();
    TlTokenizer *t = *sema_errors ? NULL : tl_tokdecl_build(prog, name, err, errlen);
    tl_program_free(prog);
    return t;
}

static int same_ids(TlTokenizer *a, TlTokenizer *b, const char *text, size_t n) {
    char e[512];
    TlTokIds x = {0}, y = {0};
    int ok = tl_tok_encode(a, text, n, &x, e, sizeof e) == 0 &&
             tl_tok_encode(b, text, n, &y, e, sizeof e) == 0 && x.n == y.n && x.n > 0 &&
             memcmp(x.v, y.v, x.n * sizeof *x.v) == 0;
    tl_tok_ids_free(&x);
    tl_tok_ids_free(&y);
    return ok;
}

TEST(decl_gpt2_files_relative_paths) {
    char e[1024];
    int se;
    TlTokenizer *t = build("tokenizer g = bpe(merges = \"gpt2/vocab.bpe\", vocab = "
                           "\"gpt2/encoder.json\",\n    split = \"gpt2\", special = "
                           "[\"<|endoftext|>\"])\n", "g", e, sizeof e, &se);
    TlTokenizer *ref = tl_tok_gpt2_load_dir(GPT2_DIR, e, sizeof e);
    EXPECTF(t && ref && se == 0, "%s", e);
    if (t && ref) {
        EXPECT(tl_tok_vocab_size(t) == 50257);
        EXPECT(same_ids(t, ref, sample, sizeof sample - 1));
        /* the whole unicode torture file too */
        FILE *f = fopen("tests/ref/tok_unicode.txt", "rb");
        static char buf[1 << 20];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        EXPECT(n > 0 && same_ids(t, ref, buf, n));
    }
    tl_tok_free(t);
    tl_tok_free(ref);
}

TEST(decl_gpt2_split_regex_equals_scanner) {
    /* GPT-2's pattern written out as a regex runs on PCRE2: same ids as the scanner */
    char src[2048], e[1024];
    snprintf(src, sizeof src, "tokenizer g = bpe(merges = \"gpt2/vocab.bpe\", vocab = "
             "\"gpt2/encoder.json\", split = r\"%s\")\n",
             "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
    int se;
    TlTokenizer *t = build(src, "g", e, sizeof e, &se);
    TlTokenizer *ref = tl_tok_gpt2_load_dir(GPT2_DIR, e, sizeof e);
    EXPECTF(t && ref, "%s", e);
    const char text[] = "it's   a test\n\n  of 123 numbers!!";
    if (t && ref) EXPECT(same_ids(t, ref, text, sizeof text - 1));
    tl_tok_free(t);
    tl_tok_free(ref);
}

/* Runs the tlc next to this test binary ($BUILD/tests/.. /tlc) on the CLI. */
static int run_tlc(const char *args, char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *s = strrchr(exe, '/');
    if (!s) return -1;
    *s = 0;
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cd %s && TL_STDLIB=%s/stdlib %s/../tlc %s 2>&1", tmp,
             getcwd((char[PATH_MAX]){0}, PATH_MAX), exe, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t k = fread(out, 1, cap - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(cli_tokenizer_flag_matches_gpt2_flag) {
    write_file("t.tl", "tokenizer g = bpe(merges = \"gpt2/vocab.bpe\", vocab = "
               "\"gpt2/encoder.json\")\n");
    write_file("in.txt", sample);
    static char a[1 << 16], b[1 << 16], c[1 << 16];
    int ra = run_tlc("tokenizer encode --tokenizer t.tl:g in.txt", a, sizeof a);
    int rb = run_tlc("tokenizer encode --gpt2 gpt2 in.txt", b, sizeof b);
    EXPECTF(ra == 0 && rb == 0, "%d %d: %s %s", ra, rb, a, b);
    EXPECT(strcmp(a, b) == 0 && strlen(a) > 20);
    /* decode through the declaration gives the text back */
    char cmd[64];
    snprintf(cmd, sizeof cmd, "tokenizer decode --tokenizer t.tl:g ids.txt");
    write_file("ids.txt", a);
    int rd = run_tlc(cmd, c, sizeof c);
    EXPECTF(rd == 0 && strcmp(c, sample) == 0, "rc %d: %s", rd, c);
    int rn = run_tlc("tokenizer encode --tokenizer t.tl:nope in.txt", c, sizeof c);
    EXPECTF(rn == 1 && strstr(c, "no tokenizer named 'nope'"), "rc %d: %s", rn, c);
    int rm = run_tlc("tokenizer encode --tokenizer t.tl in.txt", c, sizeof c);
    EXPECTF(rm == 2 && strstr(c, "FILE.tl:NAME"), "rc %d: %s", rm, c);
}

TEST(decl_bytes_and_chars) {
    char e[1024];
    int se;
    TlTokenizer *t = build("tokenizer b = bytes()\n", "b", e, sizeof e, &se);
    EXPECTF(t && tl_tok_kind(t) == TL_TOK_BYTES && tl_tok_vocab_size(t) == 256, "%s", e);
    tl_tok_free(t);
    t = build("tokenizer c = chars(\"hello \")\n", "c", e, sizeof e, &se);
    EXPECTF(t && tl_tok_kind(t) == TL_TOK_CHARS && tl_tok_vocab_size(t) == 5, "%s", e);
    tl_tok_free(t);
    t = build("tokenizer c = chars(alphabet = \"ab\xc3\xa9\")\n", "c", e, sizeof e, &se);
    EXPECTF(t && tl_tok_vocab_size(t) == 3, "%s", e);
    TlTokIds ids = {0};
    if (t) EXPECT(tl_tok_encode(t, "b\xc3\xa9" "a", 4, &ids, e, sizeof e) == 0 && ids.n == 3 &&
                  ids.v[0] == 1 && ids.v[1] == 2 && ids.v[2] == 0);
    tl_tok_ids_free(&ids);
    tl_tok_free(t);
}

TEST(decl_bpe_train_equals_trainer) {
    /* a small corpus directory; the declaration trains on every file below it */
    char d[PATH_MAX + 16];
    snprintf(d, sizeof d, "%s/corpus", tmp);
    mkdir(d, 0755);
    write_file("corpus/a.txt", "the cat sat on the mat; the cat ate the rat. <eos>\n");
    write_file("corpus/b.txt", "that hat is the best hat that the cat has <eos>\n");
    char e[1024];
    int se;
    TlTokenizer *t = build("tokenizer t = bpe(train = \"corpus\", vocab_size = 280,\n"
                           "    split = \"gpt2\", special = [\"<eos>\"])\n", "t", e, sizeof e, &se);
    EXPECTF(t, "%s", e);
    const char *sp[] = {"<eos>", NULL};
    TlBpeTrainOpts o = {.vocab_size = 280, .specials = sp};
    TlBpeTrainer *tr = tl_bpe_trainer_new(&o, e, sizeof e);
    const char *a = "the cat sat on the mat; the cat ate the rat. <eos>\n";
    const char *b = "that hat is the best hat that the cat has <eos>\n";
    tl_bpe_trainer_feed(tr, a, strlen(a), e, sizeof e);
    tl_bpe_trainer_feed(tr, b, strlen(b), e, sizeof e);
    TlTokenizer *ref = tl_bpe_trainer_finish(tr, e, sizeof e);
    tl_bpe_trainer_free(tr);
    EXPECT(ref && t && tl_tok_vocab_size(t) == tl_tok_vocab_size(ref));
    if (t && ref) {
        for (size_t i = 0; i < tl_tok_vocab_size(t); i++) {
            size_t la, lb;
            const uint8_t *x = tl_tok_token(t, (int32_t)i, &la), *y = tl_tok_token(ref, (int32_t)i, &lb);
            if (la != lb || memcmp(x, y, la)) {
                EXPECTF(0, "token %zu differs", i);
                break;
            }
        }
        EXPECT(same_ids(t, ref, "the cat <eos> that hat", 22));
    }
    tl_tok_free(t);
    tl_tok_free(ref);
}

TEST(decl_wordpiece_small_vocab) {
    write_file("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##s\nworld\n,\ncafe\n");
    char e[1024];
    int se;
    TlTokenizer *t = build("tokenizer w = wordpiece(vocab = \"vocab.txt\", lowercase = true, "
                           "strip_accents = true)\n", "w", e, sizeof e, &se);
    EXPECTF(t && tl_tok_kind(t) == TL_TOK_WORDPIECE, "%s", e);
    TlTokIds ids = {0};
    const char text[] = "Hellos, WORLD caf\xc3\xa9 [SEP] xyz";
    if (t) EXPECT(tl_tok_encode(t, text, sizeof text - 1, &ids, e, sizeof e) == 0);
    int want[] = {5, 6, 8, 7, 9, 3, 1};
    EXPECTF(ids.n == 7 && memcmp(ids.v, want, sizeof want) == 0, "n=%zu", ids.n);
    tl_tok_ids_free(&ids);
    tl_tok_free(t);
}

/* Bad declarations: NULL, an error reported at the declaration, err says what. */
static void bad(const char *src, const char *name, const char *want, int line, int col) {
    char e[1024] = "";
    int se;
    static FILE *null;
    if (!null) null = fopen("/dev/null", "w");
    if (null) tl_diag_set_output(null);
    TlTokenizer *t = build(src, name, e, sizeof e, &se);
    case_begin("decl_error %s", want);
    EXPECT(!t);
    EXPECTF(se == 0 && strstr(e, want), "sema errors %d, err: %s", se, e);
    char at[32];
    snprintf(at, sizeof at, "t.tl:%d:%d: error:", line, col);
    if (line) EXPECTF(strstr(e, at) && tl_diag_error_count() == 1, "want %s in %s", at, e);
    case_end();
    tl_tok_free(t);
    tl_diag_set_output(stderr);
}

static void bad_declarations(void) {
    bad("tokenizer g = bpe(merges = \"gpt2/nope.bpe\", vocab = \"gpt2/encoder.json\")\n", "g",
        "gpt2/nope.bpe: cannot open", 1, 28);
    bad("tokenizer g = bpe(merges = \"gpt2/vocab.bpe\", vocab = \"missing.json\")\n", "g",
        "missing.json: cannot open", 1, 54);
    bad("tokenizer g = bpe(vocab = \"gpt2/encoder.json\")\n", "g", "needs merges", 1, 15);
    bad("tokenizer g = bpe(merges = \"a\", vocab = \"b\", vocab_size = 5)\n", "g",
        "vocab_size goes with train", 1, 59);
    bad("tokenizer g = bpe(merges = 3, vocab = \"b\")\n", "g", "merges = ...: expected a string", 1,
        28);
    bad("tokenizer g = bpe(merges = \"gpt2/vocab.bpe\", vocab = \"gpt2/encoder.json\", split = "
        "r\"(\")\n", "g", "missing closing parenthesis", 1, 83);
    bad("tokenizer g = bpe(merges = \"gpt2/vocab.bpe\", vocab = \"gpt2/encoder.json\", special = "
        "[\"\"])\n", "g", "non-empty string", 1, 86);
    bad("tokenizer t = bpe(train = \"corpus-missing\")\n", "t", "needs vocab_size", 1, 15);
    bad("tokenizer t = bpe(train = \"corpus-missing\", vocab_size = 300)\n", "t",
        "corpus-missing", 1, 27);
    bad("tokenizer t = bpe(train = \"x\", vocab_size = 10)\n", "t", "expected 256", 1, 45);
    bad("tokenizer t = bpe(train = \"x\", merges = \"m\", vocab_size = 300)\n", "t",
        "learns its merges", 1, 41);
    bad("tokenizer w = wordpiece(lowercase = true)\n", "w", "needs vocab", 1, 15);
    bad("tokenizer w = wordpiece(vocab = \"nope.txt\")\n", "w", "nope.txt", 1, 33);
    bad("tokenizer w = wordpiece(vocab = \"v.txt\", lowercase = 1)\n", "w",
        "expected true or false", 1, 54);
    bad("tokenizer w = wordpiece(vocab = \"v.txt\", lowercase = true, strip_accents = false)\n",
        "w", "not supported", 1, 76);
    bad("tokenizer c = chars()\n", "c", "needs the alphabet", 1, 15);
    bad("tokenizer c = chars(\"ab\", unk = \"a\")\n", "c", "not supported", 1, 33);
    bad("tokenizer b = bytes()\n", "zz", "no tokenizer named 'zz'", 0, 0);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/tl-tokdecl-XXXXXX");
    if (!mkdtemp(tmp)) {
        printf("FAIL: tokdecl: cannot create a temporary directory\n");
        return 1;
    }
    char gpt2[PATH_MAX], link[PATH_MAX + 8];
    have_gpt2 = realpath(GPT2_DIR, gpt2) != NULL;
    snprintf(link, sizeof link, "%s/gpt2", tmp);
    if (have_gpt2 && symlink(gpt2, link) != 0) have_gpt2 = 0;
    if (have_gpt2) {
        RUN(decl_gpt2_files_relative_paths);
        RUN(decl_gpt2_split_regex_equals_scanner);
        RUN(cli_tokenizer_flag_matches_gpt2_flag);
    } else {
        case_skip("decl_gpt2", GPT2_DIR " is absent");
    }
    RUN(decl_bytes_and_chars);
    RUN(decl_bpe_train_equals_trainer);
    RUN(decl_wordpiece_small_vocab);
    if (have_gpt2) bad_declarations();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("  (could not remove %s)\n", tmp);
    return check_done();
}
