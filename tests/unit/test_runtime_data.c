/* test_runtime_data.c — corpus loading, byte tokens, split, batch samplers. */
#include "check.h"
#include "data.h"
#include "philox.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[512];
static char tmpdir[] = "/tmp/tl_data_test.XXXXXX";

static void write_file(const char *rel, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static char *path(const char *rel) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    return p;
}

TEST(single_file) {
    const char *text = "hello world\n";
    write_file("one.txt", text, strlen(text));
    TlCorpus *c;
    EXPECT(tl_data_load(path("one.txt"), &c, err, sizeof err) == 0);
    EXPECT(c->n == strlen(text) && memcmp(c->bytes, text, c->n) == 0 && c->nfiles == 1);
    TlTokens t;
    EXPECT(tl_data_tokens_bytes(c, &t, err, sizeof err) == 0);
    EXPECT(t.n == (int64_t)strlen(text) && t.ids[0] == 'h' && t.ids[11] == '\n');
    tl_data_tokens_free(&t);
    tl_data_free(c);
    /* non-ASCII bytes map to 128..255, never negative */
    unsigned char hi[] = {0xC3, 0xA9, 'x'};
    write_file("hi.txt", hi, 3);
    EXPECT(tl_data_load(path("hi.txt"), &c, err, sizeof err) == 0);
    EXPECT(tl_data_tokens_bytes(c, &t, err, sizeof err) == 0 && t.ids[0] == 0xC3 && t.ids[1] == 0xA9);
    tl_data_tokens_free(&t);
    tl_data_free(c);
}

TEST(directory_order_binary_links) {
    char d[600];
    snprintf(d, sizeof d, "%s/tree", tmpdir);
    mkdir(d, 0755);
    mkdir(path("tree/sub"), 0755);
    write_file("tree/b.txt", "BBB", 3);
    write_file("tree/a.txt", "AAA", 3);
    write_file("tree/sub/c", "CCC", 3);
    write_file("tree/.hidden", "HHH", 3);
    unsigned char bin[] = {0, 0, 0, 2, 'x'};
    write_file("tree/a.dat", bin, sizeof bin);
    write_file("tree/empty", "", 0);
    char target[600];
    snprintf(target, sizeof target, "%s/tree/a.txt", tmpdir);
    symlink(target, path("tree/a.u8"));          /* link to an included file: skipped */
    symlink("sub", path("tree/loop"));           /* link to a directory: skipped */
    symlink("/nonexistent/x", path("tree/dangling"));
    write_file("outside.txt", "OOO", 3);
    snprintf(target, sizeof target, "%s/outside.txt", tmpdir);
    symlink(target, path("tree/z.link"));        /* link to a file outside: included */
    TlCorpus *c;
    snprintf(d, sizeof d, "%s/tree/", tmpdir);
    EXPECTF(tl_data_load(d, &c, err, sizeof err) == 0, "%s", err);
    EXPECTF(c->n == 12 && memcmp(c->bytes, "AAABBBCCCOOO", 12) == 0, "n=%zu '%.*s'", c->n,
            (int)c->n, (const char *)c->bytes);
    EXPECT(c->nfiles == 4 && strstr(c->files[0], "tree/a.txt") && c->offsets[2] == 6);
    EXPECT(strstr(c->files[3], "z.link"));
    tl_data_free(c);
}

TEST(errors) {
    TlCorpus *c = (TlCorpus *)1;
    EXPECT(tl_data_load(path("missing"), &c, err, sizeof err) == -1 && c == NULL);
    EXPECTF(strstr(err, "missing") && strstr(err, "No such file"), "%s", err);
    write_file("empty.txt", "", 0);
    EXPECT(tl_data_load(path("empty.txt"), &c, err, sizeof err) == -1);
    EXPECTF(strstr(err, "empty.txt") && strstr(err, "empty corpus"), "%s", err);
    mkdir(path("emptydir"), 0755);
    write_file("emptydir/x.bin", "\0\1\2", 3);
    EXPECT(tl_data_load(path("emptydir"), &c, err, sizeof err) == -1);
    EXPECTF(strstr(err, "emptydir") && strstr(err, "empty corpus"), "%s", err);
    EXPECT(tl_data_load(path("emptydir/x.bin"), &c, err, sizeof err) == -1);
    EXPECTF(strstr(err, "binary"), "%s", err);
    EXPECT(tl_data_load("/dev/null", &c, err, sizeof err) == -1);
    EXPECT(tl_data_load("", &c, err, sizeof err) == -1);
    /* too short for T+1 */
    int32_t ids[10] = {0};
    TlTokens t = {ids, 10, NULL};
    TlBatcher b;
    EXPECT(tl_data_batcher_init(&b, &t, 2, 10, 1, "train split of x.txt", err, sizeof err) == -1);
    EXPECTF(strstr(err, "train split of x.txt") && strstr(err, "10 tokens") && strstr(err, "11"),
            "%s", err);
    EXPECT(tl_data_batcher_init(&b, &t, 2, 9, 1, "t", err, sizeof err) == 0);
    EXPECT(tl_data_batcher_init(&b, &t, 0, 4, 1, "t", err, sizeof err) == -1);
    TlTokens tr, va;
    EXPECT(tl_data_split(&t, 1.0, &tr, &va, err, sizeof err) == -1);
    EXPECT(tl_data_split(&t, -0.1, &tr, &va, err, sizeof err) == -1);
}

static int32_t *ramp(int64_t n) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)i;
    return ids;
}

TEST(split) {
    int32_t *ids = ramp(1000);
    TlTokens all = {ids, 1000, NULL}, tr, va;
    EXPECT(tl_data_split(&all, 0.1, &tr, &va, err, sizeof err) == 0);
    EXPECT(tr.n == 900 && va.n == 100 && tr.ids == ids && va.ids[0] == 900);
    EXPECT(tl_data_split(&all, 0.0, &tr, &va, err, sizeof err) == 0 && va.n == 0 && tr.n == 1000);
    free(ids);
}

TEST(random_batches_pure_function) {
    int64_t n = 5000;
    int32_t *ids = ramp(n);
    TlTokens t = {ids, n, NULL};
    TlBatcher b, b2, other;
    enum { B = 4, T = 16 };
    EXPECT(tl_data_batcher_init(&b, &t, B, T, 1234, "t", err, sizeof err) == 0);
    EXPECT(tl_data_batcher_init(&b2, &t, B, T, 1234, "t", err, sizeof err) == 0);
    EXPECT(tl_data_batcher_init(&other, &t, B, T, 1235, "t", err, sizeof err) == 0);
    int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    int ok_shift = 1, ok_range = 1, differ = 0;
    for (uint64_t i = 0; i < 200; i++) {
        tl_data_batch(&b, i, x, y);
        for (int r = 0; r < B; r++)
            for (int k = 0; k < T; k++) {
                ok_shift &= y[r * T + k] == x[r * T + k] + 1;      /* y = x shifted by one */
                ok_shift &= k == 0 || x[r * T + k] == x[r * T + k - 1] + 1;
                ok_range &= x[r * T + k] >= 0 && y[r * T + k] < n;
            }
        tl_data_batch(&other, i, x2, y2);
        differ |= memcmp(x, x2, sizeof x) != 0;
    }
    EXPECT(ok_shift && ok_range && differ);
    /* resume: batch 137 computed cold equals batch 137 computed after others */
    tl_data_batch(&b, 137, x, y);
    tl_data_batch(&b2, 5, x2, y2);
    tl_data_batch(&b2, 137, x2, y2);
    EXPECT(memcmp(x, x2, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0);
    /* golden: pins the formula (Philox counter layout) so it cannot drift silently */
    {
        uint64_t idx = 0x100000007ull, seed = 1234;
        uint32_t ctr[4] = {7, 1, 3, 0x64617461u}, key[2] = {(uint32_t)seed, 0}, r[4];
        tl_philox4x32_10(ctr, key, r);
        int64_t want = (int64_t)((((uint64_t)r[1] << 32) | r[0]) % (uint64_t)(n - T));
        EXPECTF(tl_data_batch_offset(&b, idx, 3) == want, "%lld vs %lld",
                (long long)tl_data_batch_offset(&b, idx, 3), (long long)want);
    }
    /* offsets cover the whole range [0, n - T): both ends are reachable */
    int64_t mn = n, mx = 0;
    TlTokens small = {ids, T + 3, NULL};
    TlBatcher s;
    EXPECT(tl_data_batcher_init(&s, &small, 1, T, 9, "t", err, sizeof err) == 0);
    for (uint64_t i = 0; i < 200; i++) {
        int64_t o = tl_data_batch_offset(&s, i, 0);
        if (o < mn) mn = o;
        if (o > mx) mx = o;
    }
    EXPECT(mn == 0 && mx == 2);
    free(ids);
}

TEST(sequential_covers_in_order) {
    int64_t n = 103;
    int32_t *ids = ramp(n);
    TlTokens t = {ids, n, NULL};
    TlBatcher b;
    enum { B = 3, T = 10 };
    EXPECT(tl_data_batcher_init(&b, &t, B, T, 0, "val", err, sizeof err) == 0);
    /* windows = 102 / 10 = 10 -> 4 batches, the last one with 1 row */
    EXPECT(tl_data_seq_batches(&b) == 4);
    int32_t x[B * T], y[B * T];
    int32_t expect = 0;
    int ok = 1;
    for (int64_t j = 0; j < 4; j++) {
        int rows = tl_data_seq_batch(&b, j, x, y);
        EXPECT(rows == (j < 3 ? 3 : 1));
        for (int k = 0; k < rows * T; k++) {
            ok &= x[k] == expect && y[k] == expect + 1;
            expect++;
        }
        for (int k = rows * T; k < B * T; k++) ok &= x[k] == 0 && y[k] == 0;
    }
    EXPECT(ok && expect == 100);
    EXPECT(tl_data_seq_batch(&b, 4, x, y) == 0 && tl_data_seq_batch(&b, -1, x, y) == 0);
    free(ids);
}

static void fortunes(void) {
    const char *dir = "/usr/share/games/fortunes";
    if (access(dir, R_OK) != 0) {
        case_skip("fortunes_corpus", "/usr/share/games/fortunes is absent");
        return;
    }
    case_begin("fortunes_corpus");
    TlCorpus *c;
    EXPECTF(tl_data_load(dir, &c, err, sizeof err) == 0, "%s", err);
    if (c) {
        int ok = 1;
        for (int i = 0; i < c->nfiles; i++) {
            size_t len = strlen(c->files[i]);
            ok &= !(len > 4 && strcmp(c->files[i] + len - 4, ".dat") == 0);
            ok &= !(len > 3 && strcmp(c->files[i] + len - 3, ".u8") == 0);
        }
        EXPECT(ok);
        EXPECT(memchr(c->bytes, 0, c->n) == NULL);
        EXPECT(c->n > 100000);
        printf("  fortunes: %d files, %zu bytes\n", c->nfiles, c->n);
        TlTokens t, tr, va;
        TlBatcher b;
        EXPECT(tl_data_tokens_bytes(c, &t, err, sizeof err) == 0);
        EXPECT(tl_data_split(&t, 0.1, &tr, &va, err, sizeof err) == 0);
        EXPECT(tl_data_batcher_init(&b, &tr, 16, 128, 42, "train", err, sizeof err) == 0);
        int32_t x[16 * 128], y[16 * 128];
        tl_data_batch(&b, 0, x, y);
        EXPECT(x[1] == y[0]);
        tl_data_tokens_free(&t);
        tl_data_free(c);
    }
    case_end();
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    RUN(single_file);
    RUN(directory_order_binary_links);
    RUN(errors);
    RUN(split);
    RUN(random_batches_pure_function);
    RUN(sequential_covers_in_order);
    fortunes();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("  could not remove %s\n", tmpdir);
    return check_done();
}
