/* test_runtime_ckpt.c — checkpoints: round trip, shape checks, corrupt/truncated newest
 * file falls back, keep-K pruning, and SIGKILL at random moments while saving never leaves
 * a directory whose newest valid checkpoint is incomplete. */
#include "check.h"
#include "ckpt.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char err[1024];
static char root[] = "/tmp/tl_ckpt_test.XXXXXX";

static char *sub(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", root, name);
    return p[k];
}

/* The model state at a step: values are a function of (step, tensor, index), so a loaded
 * checkpoint can be checked for completeness. */
enum { NW = 3000, NB = 7 };
static float w[NW], b[NB], m[NW], v[NW];

static void fill(int64_t step) {
    for (int i = 0; i < NW; i++) {
        w[i] = (float)step + (float)i * 1e-3f;
        m[i] = -(float)step - (float)i;
        v[i] = (float)(step * 7 + i);
    }
    for (int i = 0; i < NB; i++) b[i] = (float)step * 0.5f + (float)i;
}

static int check_state(const TlCkpt *c, int64_t step) {
    static float w2[NW], b2[NB], m2[NW], v2[NW];
    TlCkptTensor t[] = {
        {"blocks.0.w", 2, {30, 100}, w2},
        {"blocks.0.b", 1, {NB}, b2},
        {"opt.m.blocks.0.w", 2, {30, 100}, m2},
        {"opt.v.blocks.0.w", 2, {30, 100}, v2},
    };
    if (tl_ckpt_load(c, t, 4, err, sizeof err)) return 0;
    fill(step);
    return memcmp(w, w2, sizeof w) == 0 && memcmp(b, b2, sizeof b) == 0 &&
           memcmp(m, m2, sizeof m) == 0 && memcmp(v, v2, sizeof v) == 0;
}

static int save(const char *dir, int64_t step, int keep) {
    fill(step);
    TlCkptTensor t[] = {
        {"blocks.0.w", 2, {30, 100}, w},
        {"opt.v.blocks.0.w", 2, {30, 100}, v},
        {"blocks.0.b", 1, {NB}, b},
        {"opt.m.blocks.0.w", 2, {30, 100}, m},
    };
    TlStMeta user[] = {{"run", "test"}, {"note", "quote \" and \\ ok"}};
    TlCkptInfo info = {step, 42, (uint64_t)step * 3, (uint64_t)step * 11};
    return tl_ckpt_save(dir, &info, t, 4, user, 2, keep, err, sizeof err);
}

TEST(round_trip) {
    const char *dir = sub("rt/nested");
    EXPECTF(save(dir, 100, 0) == 0, "%s", err);
    TlCkpt *c;
    EXPECTF(tl_ckpt_open_latest(dir, &c, stderr, err, sizeof err) == 0, "%s", err);
    if (!c) return;
    TlCkptInfo in = tl_ckpt_info(c);
    EXPECT(in.step == 100 && in.seed == 42 && in.data_pos == 300 && in.rng_counter == 1100);
    EXPECT(strcmp(tl_ckpt_meta(c, "run"), "test") == 0);
    EXPECT(strcmp(tl_ckpt_meta(c, "note"), "quote \" and \\ ok") == 0);
    EXPECT(strcmp(tl_ckpt_meta(c, "tl.format"), "1") == 0);
    EXPECT(strstr(tl_ckpt_path(c), "ckpt-100.safetensors"));
    EXPECT(tl_ckpt_count(c) == 4 && strcmp(tl_ckpt_tensor(c, 0)->name, "blocks.0.b") == 0);
    EXPECT(check_state(c, 100));
    /* errors naming the tensor */
    float dst[NW];
    int64_t bad[2] = {100, 30};
    EXPECT(tl_ckpt_read(c, "blocks.0.w", 2, bad, dst, err, sizeof err) == -1);
    EXPECTF(strstr(err, "'blocks.0.w'") && strstr(err, "[30, 100]") && strstr(err, "[100, 30]"),
            "%s", err);
    EXPECT(tl_ckpt_read(c, "blocks.1.w", 2, bad, dst, err, sizeof err) == -1);
    EXPECTF(strstr(err, "'blocks.1.w'") && strstr(err, "missing"), "%s", err);
    int64_t r1[2] = {NB, 1}; /* rank 2 asked, rank 1 stored */
    EXPECT(tl_ckpt_read(c, "blocks.0.b", 2, r1, dst, err, sizeof err) == -1);
    tl_ckpt_close(c);
    /* no checkpoint at all: 1, not an error */
    EXPECT(tl_ckpt_open_latest(sub("none"), &c, NULL, err, sizeof err) == 1 && !c);
    mkdir(sub("emptydir"), 0755);
    EXPECT(tl_ckpt_open_latest(sub("emptydir"), &c, NULL, err, sizeof err) == 1);
}

TEST(save_errors) {
    TlCkptTensor dup[] = {{"a", 1, {2}, w}, {"a", 1, {2}, w}};
    TlCkptInfo info = {1, 0, 0, 0};
    EXPECT(tl_ckpt_save(sub("e"), &info, dup, 2, NULL, 0, 0, err, sizeof err) == -1);
    EXPECTF(strstr(err, "'a'"), "%s", err);
    TlStMeta reserved[] = {{"tl.step", "5"}};
    EXPECT(tl_ckpt_save(sub("e"), &info, dup, 1, reserved, 1, 0, err, sizeof err) == -1);
    info.step = -1;
    EXPECT(tl_ckpt_save(sub("e"), &info, dup, 1, NULL, 0, 0, err, sizeof err) == -1);
    /* a file where the directory should be */
    FILE *f = fopen(sub("afile"), "w");
    fclose(f);
    info.step = 1;
    EXPECT(tl_ckpt_save(sub("afile"), &info, dup, 1, NULL, 0, 0, err, sizeof err) == -1);
    EXPECTF(strstr(err, "afile"), "%s", err);
}

static void corrupt_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    fseek(f, at, at < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

TEST(corrupt_newest_falls_back) {
    const char *dir = sub("fb");
    for (int s = 10; s <= 30; s += 10) EXPECT(save(dir, s, 0) == 0);
    char p30[600], p20[600];
    snprintf(p30, sizeof p30, "%s/ckpt-30.safetensors", dir);
    snprintf(p20, sizeof p20, "%s/ckpt-20.safetensors", dir);
    corrupt_byte(p30, -5);                 /* a flipped data byte: only the checksum sees it */
    EXPECT(truncate(p20, 200) == 0);       /* truncated */
    char *buf = NULL;
    size_t len = 0;
    FILE *warn = open_memstream(&buf, &len);
    TlCkpt *c;
    EXPECT(tl_ckpt_open_latest(dir, &c, warn, err, sizeof err) == 0);
    fclose(warn);
    EXPECT(c && tl_ckpt_info(c).step == 10 && check_state(c, 10));
    EXPECTF(strstr(buf, "ckpt-30.safetensors") && strstr(buf, "checksum"), "%s", buf);
    EXPECTF(strstr(buf, "ckpt-20.safetensors"), "%s", buf);
    free(buf);
    tl_ckpt_close(c);
    /* a stray non-checkpoint and a misnamed copy are not taken */
    FILE *f = fopen(sub("fb/ckpt-99.safetensors"), "w");
    fputs("garbage", f);
    fclose(f);
    snprintf(p30, sizeof p30, "%s/ckpt-50.safetensors", dir);
    char p10[600];
    snprintf(p10, sizeof p10, "%s/ckpt-10.safetensors", dir);
    EXPECT(link(p10, p30) == 0);           /* tl.step 10 under the name 50 */
    EXPECT(tl_ckpt_open_latest(dir, &c, NULL, err, sizeof err) == 0);
    EXPECT(c && tl_ckpt_info(c).step == 10 && strstr(tl_ckpt_path(c), "ckpt-10."));
    tl_ckpt_close(c);
    /* every file corrupt: 1 with a message */
    unlink(p10);
    unlink(p30);
    EXPECT(tl_ckpt_open_latest(dir, &c, NULL, err, sizeof err) == 1 && !c);
}

TEST(keep_last_k) {
    const char *dir = sub("keep");
    for (int s = 1; s <= 6; s++) EXPECT(save(dir, s * 100, 3) == 0);
    int64_t *steps;
    int n;
    EXPECT(tl_ckpt_list(dir, &steps, &n, err, sizeof err) == 0);
    EXPECT(n == 3 && steps[0] == 600 && steps[1] == 500 && steps[2] == 400);
    free(steps);
    /* a stray temp file from a killed writer is removed by the next save */
    FILE *f = fopen(sub("keep/.ckpt-700.safetensors.tmp.abcdef"), "w");
    fclose(f);
    EXPECT(save(dir, 700, 2) == 0);
    EXPECT(access(sub("keep/.ckpt-700.safetensors.tmp.abcdef"), F_OK) != 0);
    EXPECT(tl_ckpt_list(dir, &steps, &n, err, sizeof err) == 0);
    EXPECT(n == 2 && steps[0] == 700 && steps[1] == 600);
    free(steps);
    /* a newer (say, abandoned) checkpoint is never deleted by saving an older step */
    EXPECT(save(dir, 650, 1) == 0);
    EXPECT(tl_ckpt_list(dir, &steps, &n, err, sizeof err) == 0);
    EXPECT(n == 2 && steps[0] == 700 && steps[1] == 650);
    free(steps);
}

/* The child: resume from the latest checkpoint and save steps in a loop until killed. */
static void writer(const char *dir) {
    TlCkpt *c;
    int64_t step = 0;
    if (tl_ckpt_open_latest(dir, &c, NULL, err, sizeof err) == 0) {
        step = tl_ckpt_info(c).step;
        tl_ckpt_close(c);
    }
    for (;;)
        if (save(dir, ++step, 3)) _exit(3);
}

static void kill_loop(void) {
    case_begin("sigkill_while_saving");
    const char *dir = sub("kill");
    int iters = getenv("TL_TEST_LONG") ? 400 : 40;
    unsigned seed = 12345; /* the delays are reproducible; the kill moments are not */
    int64_t last = 0;
    int found = 0;
    for (int it = 0; it < iters && !check_case_failed; it++) {
        pid_t pid = fork();
        if (pid == 0) writer(dir);
        seed = seed * 1103515245u + 12345u;
        struct timespec d = {0, (long)((seed >> 8) % 15000) * 1000}; /* 0 .. 15 ms */
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        EXPECTF(WIFSIGNALED(status), "child exited with %d (%s)", WEXITSTATUS(status), err);
        /* Every file under a checkpoint's name is complete ... */
        int64_t *steps;
        int n;
        EXPECT(tl_ckpt_list(dir, &steps, &n, err, sizeof err) == 0);
        for (int i = 0; i < n; i++) {
            char p[600];
            snprintf(p, sizeof p, "%s/ckpt-%lld.safetensors", dir, (long long)steps[i]);
            TlCkpt *c;
            EXPECTF(tl_ckpt_open(p, &c, err, sizeof err) == 0, "iteration %d: %s", it, err);
            tl_ckpt_close(c);
        }
        free(steps);
        /* ... and the loader finds the newest one, with its full state. */
        TlCkpt *c;
        int rc = tl_ckpt_open_latest(dir, &c, stdout, err, sizeof err);
        EXPECT(rc == 0 || (rc == 1 && n == 0));
        if (rc == 0) {
            int64_t s = tl_ckpt_info(c).step;
            EXPECTF(s >= last, "step went back from %lld to %lld", (long long)last, (long long)s);
            EXPECT(check_state(c, s) && tl_ckpt_info(c).data_pos == (uint64_t)s * 3);
            last = s;
            found++;
            tl_ckpt_close(c);
        }
    }
    printf("  %d kills, newest complete checkpoint: step %lld\n", iters, (long long)last);
    EXPECT(found > 0 && last > 0);
    case_end();
}

int main(void) {
    if (!mkdtemp(root)) return 1;
    RUN(round_trip);
    RUN(save_errors);
    RUN(corrupt_newest_falls_back);
    RUN(keep_last_k);
    kill_loop();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) printf("  could not remove %s\n", root);
    return check_done();
}
