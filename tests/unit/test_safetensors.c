/* test_safetensors.c — runtime/safetensors: round trip of every dtype, deterministic and
 * atomic writes, an error (naming the file and tensor) for every kind of corruption, a
 * fuzz-like loop of random mutations that must never crash, and interop with Python's
 * safetensors package when one is available. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"

static char tmpdir[256];
static char errbuf[1024];

static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static int write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* ---- a sample of every dtype ----------------------------------------------------------- */

static double f64s[6] = {1.5, -2.25, 3e300, -0.0, 1e-300, 42};
static float f32s[2][3] = {{1, -2, 3.5f}, {1e-30f, -1e30f, 0.1f}};
static uint16_t bf16s[4], f16s[4];
static int64_t i64s[3] = {INT64_MIN, -1, INT64_MAX};
static int32_t i32s[5] = {INT32_MIN, -7, 0, 7, INT32_MAX};
static uint8_t u8s[4] = {0, 1, 128, 255};
static uint8_t bools[3] = {1, 0, 1};
static float scalar = 2.5f;

static int sample(TlStTensor *ts) {
    const float hv[4] = {1.0f, -0.5f, 3.140625f, 65504.0f};
    for (int i = 0; i < 4; i++) {
        bf16s[i] = tl_st_f32_to_bf16(hv[i]);
        f16s[i] = tl_st_f32_to_f16(hv[i]);
    }
    int n = 0;
    ts[n++] = (TlStTensor){.name = "w.f64", .dtype = TL_ST_F64, .rank = 2, .shape = {3, 2}, .data = f64s};
    ts[n++] = (TlStTensor){.name = "a.f32", .dtype = TL_ST_F32, .rank = 2, .shape = {2, 3}, .data = f32s};
    ts[n++] = (TlStTensor){.name = "h.bf16", .dtype = TL_ST_BF16, .rank = 1, .shape = {4}, .data = bf16s};
    ts[n++] = (TlStTensor){.name = "h.f16", .dtype = TL_ST_F16, .rank = 1, .shape = {4}, .data = f16s};
    ts[n++] = (TlStTensor){.name = "i.64", .dtype = TL_ST_I64, .rank = 1, .shape = {3}, .data = i64s};
    ts[n++] = (TlStTensor){.name = "i.32", .dtype = TL_ST_I32, .rank = 1, .shape = {5}, .data = i32s};
    ts[n++] = (TlStTensor){.name = "u.8", .dtype = TL_ST_U8, .rank = 2, .shape = {2, 2}, .data = u8s};
    ts[n++] = (TlStTensor){.name = "mask", .dtype = TL_ST_BOOL, .rank = 1, .shape = {3}, .data = bools};
    ts[n++] = (TlStTensor){.name = "loss", .dtype = TL_ST_F32, .rank = 0, .data = &scalar};
    ts[n++] = (TlStTensor){.name = "empty", .dtype = TL_ST_F32, .rank = 2, .shape = {4, 0}, .data = NULL};
    ts[n++] = (TlStTensor){.name = "quote\"and\\slash\tname", .dtype = TL_ST_U8, .rank = 1, .shape = {1}, .data = u8s};
    return n;
}

static const TlStMeta sample_meta[] = {
    {"format", "pt"}, {"tl.step", "17"}, {"note", "a \"quoted\"\nline"},
};

TEST(round_trip_every_dtype) {
    TlStTensor ts[16];
    int n = sample(ts);
    const char *path = tmp_path("rt.safetensors");
    EXPECTF(tl_st_write(path, ts, n, sample_meta, 3, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    TlSafetensors *f = NULL;
    EXPECTF(tl_st_open(path, &f, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    if (!f) return;
    EXPECT(f->ntensors == n);
    for (int i = 0; i < n; i++) {
        const TlStTensor *t = tl_st_find(f, ts[i].name);
        EXPECTF(t != NULL, "missing %s", ts[i].name);
        if (!t) continue;
        EXPECT(t->dtype == ts[i].dtype);
        EXPECT(t->rank == ts[i].rank);
        for (int d = 0; d < t->rank; d++) EXPECT(t->shape[d] == ts[i].shape[d]);
        size_t nb = (size_t)tl_st_numel(t) * tl_st_dtype_size(t->dtype);
        EXPECT(t->nbytes == nb);
        EXPECTF(nb == 0 || memcmp(t->data, ts[i].data, nb) == 0, "data of %s", ts[i].name);
        /* The writer lays data out so every tensor is aligned to its element size. */
        EXPECTF(((uintptr_t)t->data) % tl_st_dtype_size(t->dtype) == 0, "%s unaligned", t->name);
    }
    EXPECT(tl_st_find(f, "nope") == NULL);
    EXPECT(f->nmeta == 3);
    EXPECT(tl_st_meta(f, "tl.step") && strcmp(tl_st_meta(f, "tl.step"), "17") == 0);
    EXPECT(tl_st_meta(f, "note") && strcmp(tl_st_meta(f, "note"), "a \"quoted\"\nline") == 0);
    EXPECT(tl_st_meta(f, "absent") == NULL);
    double v[6];
    tl_st_to_f64(tl_st_find(f, "h.bf16"), v);
    EXPECT(v[0] == 1.0 && v[1] == -0.5 && v[2] == 3.140625 && v[3] == 65536.0); /* bf16 rounds */
    tl_st_to_f64(tl_st_find(f, "h.f16"), v);
    EXPECT(v[0] == 1.0 && v[1] == -0.5 && v[2] == 3.140625 && v[3] == 65504.0);
    tl_st_to_f64(tl_st_find(f, "i.32"), v);
    EXPECT(v[0] == (double)INT32_MIN && v[4] == (double)INT32_MAX);
    tl_st_to_f64(tl_st_find(f, "loss"), v);
    EXPECT(v[0] == 2.5);
    tl_st_close(f);

    /* The header is padded so the data starts at a multiple of 8. */
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | b[i];
    EXPECT((8 + hn) % 8 == 0);
    EXPECT(b[8] == '{');
    free(b);
}

TEST(writes_are_deterministic) {
    TlStTensor ts[16], rev[16];
    int n = sample(ts);
    for (int i = 0; i < n; i++) rev[i] = ts[n - 1 - i];
    TlStMeta mrev[3] = {sample_meta[2], sample_meta[1], sample_meta[0]};
    const char *p1 = tmp_path("det1.safetensors"), *p2 = tmp_path("det2.safetensors");
    EXPECT(tl_st_write(p1, ts, n, sample_meta, 3, errbuf, sizeof errbuf) == 0);
    EXPECT(tl_st_write(p2, rev, n, mrev, 3, errbuf, sizeof errbuf) == 0);
    size_t n1, n2;
    unsigned char *b1 = read_bytes(p1, &n1), *b2 = read_bytes(p2, &n2);
    EXPECT(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
}

TEST(half_conversions) {
    EXPECT(tl_st_f32_to_f16(1.0f) == 0x3c00);
    EXPECT(tl_st_f32_to_f16(-2.0f) == 0xc000);
    EXPECT(tl_st_f32_to_f16(65504.0f) == 0x7bff);
    EXPECT(tl_st_f32_to_f16(65520.0f) == 0x7c00);         /* ties to even: infinity */
    EXPECT(tl_st_f32_to_f16(ldexpf(1, -24)) == 0x0001);   /* smallest subnormal */
    EXPECT(tl_st_f32_to_f16(ldexpf(1, -26)) == 0x0000);   /* underflows */
    EXPECT(tl_st_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie to even, down */
    EXPECT(tl_st_f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02); /* tie to even, up */
    EXPECT(isnan(tl_st_f16_to_f32(tl_st_f32_to_f16(NAN))));
    EXPECT(tl_st_f16_to_f32(0x0001) == ldexpf(1, -24));
    EXPECT(tl_st_f16_to_f32(0xfc00) == -INFINITY);
    EXPECT(tl_st_f32_to_bf16(1.0f) == 0x3f80);
    EXPECT(tl_st_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80); /* tie to even */
    EXPECT(tl_st_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82);
    EXPECT(isnan(tl_st_bf16_to_f32(tl_st_f32_to_bf16(NAN))));
    /* Every f16 survives the trip through f32. */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = tl_st_f16_to_f32((uint16_t)h);
        if (!isnan(f) && tl_st_f32_to_f16(f) != h) bad++;
    }
    EXPECTF(bad == 0, "%d f16 values changed", bad);
}

static int count_tmp_leftovers(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

TEST(bad_writes_leave_the_target_alone) {
    TlStTensor ts[16];
    int n = sample(ts);
    const char *path = tmp_path("keep.safetensors");
    EXPECT(tl_st_write(path, ts, n, NULL, 0, errbuf, sizeof errbuf) == 0);
    size_t n0, n1;
    unsigned char *before = read_bytes(path, &n0);

    TlStTensor dup[2] = {ts[0], ts[0]};
    EXPECT(tl_st_write(path, dup, 2, NULL, 0, errbuf, sizeof errbuf) == -1);
    EXPECTF(strstr(errbuf, path) && strstr(errbuf, "w.f64") && strstr(errbuf, "twice"), "%s", errbuf);
    TlStTensor res = ts[0];
    res.name = "__metadata__";
    EXPECT(tl_st_write(path, &res, 1, NULL, 0, errbuf, sizeof errbuf) == -1);
    TlStTensor nodata = ts[1];
    nodata.data = NULL;
    EXPECT(tl_st_write(path, &nodata, 1, NULL, 0, errbuf, sizeof errbuf) == -1);
    EXPECTF(strstr(errbuf, "a.f32") != NULL, "%s", errbuf);
    TlStTensor neg = ts[1];
    neg.shape[0] = -1;
    EXPECT(tl_st_write(path, &neg, 1, NULL, 0, errbuf, sizeof errbuf) == -1);
    TlStMeta dm[2] = {{"k", "1"}, {"k", "2"}};
    EXPECT(tl_st_write(path, ts, 1, dm, 2, errbuf, sizeof errbuf) == -1);
    EXPECT(tl_st_write("/nonexistent-dir/x.safetensors", ts, 1, NULL, 0, errbuf, sizeof errbuf) == -1);
    EXPECTF(strstr(errbuf, "/nonexistent-dir/x.safetensors") != NULL, "%s", errbuf);

    unsigned char *after = read_bytes(path, &n1);
    EXPECT(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    EXPECT(count_tmp_leftovers() == 0);
    free(before);
    free(after);

    /* An empty file (no tensors, no metadata) is valid. */
    EXPECT(tl_st_write(tmp_path("none.safetensors"), NULL, 0, NULL, 0, errbuf, sizeof errbuf) == 0);
    TlSafetensors *f = NULL;
    EXPECTF(tl_st_open(tmp_path("none.safetensors"), &f, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    if (f) EXPECT(f->ntensors == 0 && f->nmeta == 0);
    tl_st_close(f);
}

/* ---- corruption ------------------------------------------------------------------------ */

/* A file image: 8-byte length, the header text as given, then ndata bytes. */
static unsigned char *image(const char *hdr, size_t ndata, size_t *len) {
    size_t hn = strlen(hdr);
    *len = 8 + hn + ndata;
    unsigned char *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(b + 8, hdr, hn);
    return b;
}

/* Writes the image to a file, opens it, and expects an error mentioning `want`. */
static void expect_bad(const char *what, const unsigned char *b, size_t len, const char *want) {
    case_begin("corrupt: %s", what);
    const char *path = tmp_path("bad.safetensors");
    write_bytes(path, b, len);
    TlSafetensors *f = NULL;
    errbuf[0] = 0;
    int rc = tl_st_open(path, &f, errbuf, sizeof errbuf);
    EXPECT(rc == -1 && f == NULL);
    EXPECTF(strncmp(errbuf, path, strlen(path)) == 0, "message does not name the file: %s", errbuf);
    EXPECTF(!want || strstr(errbuf, want), "message lacks '%s': %s", want, errbuf);
    if (rc == -1 && check_case_failed == 0) printf("  (%s)\n", errbuf);
    tl_st_close(f);
    case_end();
}

static void expect_bad_hdr(const char *what, const char *hdr, size_t ndata, const char *want) {
    size_t len;
    unsigned char *b = image(hdr, ndata, &len);
    expect_bad(what, b, len, want);
    free(b);
}

static void corruption_cases(void) {
    expect_bad("empty file", (const unsigned char *)"", 0, "too short");
    expect_bad("7 bytes", (const unsigned char *)"\x02\0\0\0\0\0\0", 7, "too short");
    size_t len;
    unsigned char *b = image("{}", 0, &len);
    b[0] = 200;
    expect_bad("header length past the end", b, len, "past the end");
    memset(b, 0xff, 8);
    expect_bad("header length absurd", b, len, "past the end");
    free(b);
    /* a 100 MB+1 header length inside a file that really is that long is refused too */
    const char *big = tmp_path("big.safetensors");
    FILE *f = fopen(big, "wb");
    uint64_t hn = 100000001;
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(hn >> (8 * i));
    fwrite(l8, 1, 8, f);
    fclose(f);
    if (truncate(big, (off_t)(hn + 8)) == 0) {
        case_begin("corrupt: header length over 100 MB");
        TlSafetensors *sf = NULL;
        EXPECT(tl_st_open(big, &sf, errbuf, sizeof errbuf) == -1);
        EXPECTF(strstr(errbuf, "100 MB") != NULL, "%s", errbuf);
        case_end();
        unlink(big);
    }

    expect_bad_hdr("header not JSON", "{\"a\": {\"dtype\": ", 0, "not valid JSON");
    expect_bad_hdr("header garbage", "\x01\x02\x03garbage", 0, "not a JSON object");
    expect_bad_hdr("header is an array", "[1, 2]", 0, "not a JSON object");
    expect_bad_hdr("junk after the object", "{} x", 0, "after its JSON object");
    b = image("{}   ", 0, &len);
    b[10] = 0;
    expect_bad("NUL after the object", b, len, "after its JSON object");
    b[9] = 0;
    expect_bad("NUL inside the object", b, len, "not valid JSON");
    free(b);
    expect_bad_hdr("entry not an object", "{\"a\": 3}", 0, "'a'");
    expect_bad_hdr("missing dtype", "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'a': missing \"dtype\"");
    expect_bad_hdr("dtype not a string", "{\"a\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'a'");
    expect_bad_hdr("unknown dtype", "{\"a\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "unsupported dtype \"Q4\"");
    expect_bad_hdr("missing shape", "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "'a': missing \"shape\"");
    expect_bad_hdr("shape not an array", "{\"a\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4, "'a'");
    expect_bad_hdr("shape negative", "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, "'a': shape[0]");
    expect_bad_hdr("shape fractional", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, "'a': shape[0]");
    expect_bad_hdr("shape string", "{\"a\": {\"dtype\": \"F32\", \"shape\": [\"1\"], \"data_offsets\": [0, 4]}}", 4, "'a': shape[0]");
    expect_bad_hdr("rank 17", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4, "rank 17");
    expect_bad_hdr("shape overflows", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 4]}}", 4, "too large");
    expect_bad_hdr("missing data_offsets", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "'a': missing \"data_offsets\"");
    expect_bad_hdr("data_offsets one number", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "'a'");
    expect_bad_hdr("data_offsets not numbers", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", 4]}}", 4, "'a'");
    expect_bad_hdr("data_offsets reversed", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, "'a'");
    expect_bad_hdr("data_offsets past the data", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 3, "'a': data_offsets [0, 4] go past");
    expect_bad_hdr("size mismatch", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4, "'a': data_offsets [0, 4] hold 4 bytes but shape x F32 needs 8");
    expect_bad_hdr("overlap", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, "'a' and 'b' overlap");
    expect_bad_hdr("hole", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12, "'b': 4 bytes before");
    expect_bad_hdr("trailing data", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8, "last 4 bytes");
    expect_bad_hdr("duplicate names", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8, "'a' appears twice");
    expect_bad_hdr("__metadata__ not an object", "{\"__metadata__\": [1]}", 0, "__metadata__");
    expect_bad_hdr("__metadata__ value not a string", "{\"__metadata__\": {\"step\": 3}}", 0, "'step'");
    expect_bad_hdr("__metadata__ twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "twice");
    expect_bad_hdr("metadata key twice", "{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", 0, "'k' appears twice");

    case_begin("corrupt: not a regular file, missing file");
    TlSafetensors *sf = NULL;
    EXPECT(tl_st_open(tmpdir, &sf, errbuf, sizeof errbuf) == -1);
    EXPECTF(strstr(errbuf, "not a regular file") != NULL, "%s", errbuf);
    EXPECT(tl_st_open(tmp_path("missing.safetensors"), &sf, errbuf, sizeof errbuf) == -1);
    EXPECTF(strstr(errbuf, "missing.safetensors: error: cannot open") != NULL, "%s", errbuf);
    case_end();

    case_begin("valid: spaces after the header, zero-size tensors, no metadata");
    size_t n;
    unsigned char *ok = image("{\"z\": {\"dtype\": \"I64\", \"shape\": [0, 3], \"data_offsets\": [0, 0]}, "
                              "\"s\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}   ", 4, &n);
    EXPECTF(tl_st_parse(ok, n, "mem", &sf, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    if (sf) EXPECT(sf->ntensors == 2 && tl_st_find(sf, "s")->rank == 0 && tl_st_find(sf, "z")->nbytes == 0);
    tl_st_close(sf);
    free(ok);
    case_end();
}

/* ---- fuzzing --------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Mutates b (len bytes, capacity cap) in place; returns the new length. */
static size_t mutate(unsigned char *b, size_t len, size_t cap, size_t hdr_end) {
    int kinds = 1 + (int)(next_rand() % 3);
    for (int k = 0; k < kinds; k++) {
        switch (next_rand() % 6) {
        case 0: /* flip bits anywhere */
            if (len) b[next_rand() % len] ^= (unsigned char)(1u << (next_rand() % 8));
            break;
        case 1: /* a random byte inside the header, where the structure is */
            if (hdr_end > 8 && len > 8) b[8 + next_rand() % (hdr_end - 8 < len - 8 ? hdr_end - 8 : len - 8)] = (unsigned char)next_rand();
            break;
        case 2: /* truncate */
            len = len ? next_rand() % len : 0;
            break;
        case 3: /* change the header length */
            if (len >= 8) b[next_rand() % 8] = (unsigned char)next_rand();
            break;
        case 4: /* replace a header byte with a JSON-significant character */
            if (hdr_end > 8 && len > hdr_end) b[8 + next_rand() % (hdr_end - 8)] = (unsigned char)"{}[]\":,0123456789-. e"[next_rand() % 21];
            break;
        case 5: /* grow by a few bytes */
            if (len + 8 <= cap) {
                for (int i = 0; i < 8; i++) b[len + (size_t)i] = (unsigned char)next_rand();
                len += 1 + next_rand() % 8;
            }
            break;
        }
    }
    return len;
}

TEST(fuzz_mutations_never_crash) {
    TlStTensor ts[16];
    int n = sample(ts);
    const char *path = tmp_path("fuzz_seed.safetensors");
    EXPECT(tl_st_write(path, ts, n, sample_meta, 3, errbuf, sizeof errbuf) == 0);
    size_t len0;
    unsigned char *seed = read_bytes(path, &len0);
    if (!seed) return;
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | seed[i];
    size_t hdr_end = 8 + (size_t)hn;
    int iters = getenv("TL_TEST_LONG") ? 200000 : 4000;
    int accepted = 0, rejected = 0, bad_msgs = 0, bad_bounds = 0;
    const char *fpath = tmp_path("fuzz.safetensors");
    for (int it = 0; it < iters; it++) {
        size_t cap = len0 + 64;
        unsigned char *b = malloc(cap);
        memcpy(b, seed, len0);
        size_t len = mutate(b, len0, cap, hdr_end);
        /* An exact-size copy, so a sanitizer sees any read past the end. */
        unsigned char *exact = malloc(len ? len : 1);
        memcpy(exact, b, len);
        TlSafetensors *f = NULL;
        errbuf[0] = 0;
        int rc;
        if (it % 16 == 0) { /* through a real file and mmap now and then */
            write_bytes(fpath, exact, len);
            rc = tl_st_open(fpath, &f, errbuf, sizeof errbuf);
        } else {
            rc = tl_st_parse(exact, len, "fuzz", &f, errbuf, sizeof errbuf);
        }
        if (rc == 0) {
            accepted++;
            const unsigned char *base = f->map_ ? f->map_ : exact;
            size_t blen = f->map_ ? f->map_size_ : len;
            for (int i = 0; i < f->ntensors; i++) {
                const TlStTensor *t = &f->tensors[i];
                const unsigned char *d = t->data;
                if (d < base || d + t->nbytes > base + blen ||
                    t->nbytes != (size_t)tl_st_numel(t) * tl_st_dtype_size(t->dtype))
                    bad_bounds++;
                double sum = 0, tmp[64];
                if (tl_st_numel(t) <= 64) {
                    tl_st_to_f64(t, tmp);
                    for (int64_t j = 0; j < tl_st_numel(t); j++) sum += tmp[j];
                }
                (void)sum;
                if (tl_st_find(f, t->name) != t) bad_bounds++;
            }
        } else {
            rejected++;
            if (!strstr(errbuf, ": error: ")) bad_msgs++;
        }
        tl_st_close(f);
        free(exact);
        free(b);
    }
    free(seed);
    EXPECTF(bad_msgs == 0, "%d rejections without a proper message", bad_msgs);
    EXPECTF(bad_bounds == 0, "%d accepted files with tensors out of bounds", bad_bounds);
    EXPECTF(accepted > 0 && rejected > iters / 2, "accepted %d rejected %d", accepted, rejected);
    printf("  %d mutations: %d accepted, %d rejected\n", iters, accepted, rejected);
}

/* ---- interop with Python's safetensors ---------------------------------------------------- */

static const char *py_write =
    "import sys, numpy as np\n"
    "from safetensors.numpy import save_file\n"
    "t = {'f32': (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),\n"
    "     'f64': np.array([1e-300, -3.25, 7.0]), 'f16': np.array([0.5, -2, 65504], np.float16),\n"
    "     'i32': np.array([[-5, 2**31 - 1]], np.int32), 'i64': np.array([-(2**62), 3], np.int64),\n"
    "     'u8': np.array([0, 200, 255], np.uint8), 'bool': np.array([True, False, True]),\n"
    "     'scalar': np.array(4.5, np.float32), 'nothing': np.zeros((2, 0), np.float32)}\n"
    "save_file(t, sys.argv[1], metadata={'from': 'python'})\n";

static const char *py_read =
    "import sys, numpy as np\n"
    "from safetensors import safe_open\n"
    "with safe_open(sys.argv[1], framework='np') as f:\n"
    "    assert f.metadata() == {'format': 'pt', 'tl.step': '17', 'note': 'a \"quoted\"\\nline'}, f.metadata()\n"
    "    t = {k: f.get_tensor(k) for k in f.keys() if k not in ('h.bf16',)}\n"
    "    assert set(f.keys()) == {'w.f64', 'a.f32', 'h.bf16', 'h.f16', 'i.64', 'i.32', 'u.8', 'mask',\n"
    "                             'loss', 'empty', 'quote\"and\\\\slash\\tname'}, f.keys()\n"
    "assert t['w.f64'].dtype == np.float64 and t['w.f64'].shape == (3, 2) and t['w.f64'][1, 0] == 3e300\n"
    "assert (t['a.f32'] == np.array([[1, -2, 3.5], [1e-30, -1e30, 0.1]], np.float32)).all()\n"
    "assert (t['h.f16'] == np.array([1, -0.5, 3.140625, 65504], np.float16)).all()\n"
    "assert (t['i.64'] == np.array([-2**63, -1, 2**63 - 1])).all()\n"
    "assert (t['i.32'] == np.array([-2**31, -7, 0, 7, 2**31 - 1])).all() and t['i.32'].dtype == np.int32\n"
    "assert (t['u.8'] == np.array([[0, 1], [128, 255]])).all() and t['mask'].tolist() == [True, False, True]\n"
    "assert t['loss'].shape == () and t['loss'] == 2.5 and t['empty'].shape == (4, 0)\n"
    "try:\n"
    "    import torch\n"
    "    from safetensors.torch import load_file\n"
    "    b = load_file(sys.argv[1])['h.bf16']\n"
    "    assert b.dtype == torch.bfloat16 and b.float().tolist() == [1, -0.5, 3.140625, 65536], b\n"
    "except ImportError:\n"
    "    pass\n"
    "print('python read ok')\n";

static const char *find_python(void) {
    const char *env = getenv("TL_PYTHON");
    if (env && *env) return env;
    if (access("bench/.venv/bin/python", X_OK) == 0) return "bench/.venv/bin/python";
    return "python3";
}

TEST(interop_with_python) {
    const char *py = find_python();
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import safetensors.numpy, numpy' >/dev/null 2>&1", py);
    if (system(cmd) != 0) {
        char why[512];
        snprintf(why, sizeof why, "%s cannot import safetensors and numpy (set TL_PYTHON or "
                 "create bench/.venv)", py);
        case_skip("interop_with_python", why);
        return;
    }
    /* Python writes, C reads. */
    const char *wpy = tmp_path("write.py"), *rpy = tmp_path("read.py");
    write_bytes(wpy, py_write, strlen(py_write));
    write_bytes(rpy, py_read, strlen(py_read));
    const char *pyfile = tmp_path("from_python.safetensors");
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", py, wpy, pyfile);
    EXPECT(system(cmd) == 0);
    TlSafetensors *f = NULL;
    EXPECTF(tl_st_open(pyfile, &f, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    if (f) {
        double v[8];
        const TlStTensor *t;
        EXPECT(tl_st_meta(f, "from") && strcmp(tl_st_meta(f, "from"), "python") == 0);
        EXPECT((t = tl_st_find(f, "f32")) && t->dtype == TL_ST_F32 && t->rank == 2 && t->shape[1] == 3);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[0] == -1 && v[5] == 1.5); }
        EXPECT((t = tl_st_find(f, "f64")) && t->dtype == TL_ST_F64);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[0] == 1e-300 && v[1] == -3.25); }
        EXPECT((t = tl_st_find(f, "f16")) && t->dtype == TL_ST_F16);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[0] == 0.5 && v[1] == -2 && v[2] == 65504); }
        EXPECT((t = tl_st_find(f, "i32")) && t->dtype == TL_ST_I32 && t->rank == 2);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[0] == -5 && v[1] == 2147483647.0); }
        EXPECT((t = tl_st_find(f, "i64")) && t->dtype == TL_ST_I64);
        if (t) { int64_t x; memcpy(&x, t->data, 8); EXPECT(x == -((int64_t)1 << 62)); }
        EXPECT((t = tl_st_find(f, "u8")) && t->dtype == TL_ST_U8);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[1] == 200 && v[2] == 255); }
        EXPECT((t = tl_st_find(f, "bool")) && t->dtype == TL_ST_BOOL);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[0] == 1 && v[1] == 0 && v[2] == 1); }
        EXPECT((t = tl_st_find(f, "scalar")) && t->rank == 0);
        if (t) { tl_st_to_f64(t, v); EXPECT(v[0] == 4.5); }
        EXPECT((t = tl_st_find(f, "nothing")) && t->nbytes == 0 && t->shape[0] == 2);
        tl_st_close(f);
    }
    /* C writes, Python reads. */
    TlStTensor ts[16];
    int n = sample(ts);
    const char *cfile = tmp_path("from_c.safetensors");
    EXPECT(tl_st_write(cfile, ts, n, sample_meta, 3, errbuf, sizeof errbuf) == 0);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", py, rpy, cfile);
    EXPECTF(system(cmd) == 0, "python failed to read %s", cfile);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tl_test_safetensors_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("FAIL: mkdtemp\n");
        return 1;
    }
    RUN(round_trip_every_dtype);
    RUN(writes_are_deterministic);
    RUN(half_conversions);
    RUN(bad_writes_leave_the_target_alone);
    corruption_cases();
    RUN(fuzz_mutations_never_crash);
    RUN(interop_with_python);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("  could not remove %s\n", tmpdir);
    return check_done();
}
