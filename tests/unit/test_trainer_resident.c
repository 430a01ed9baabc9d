/* test_trainer_resident.c — the trainer's contract with a resident backend (the GPU's,
 * runtime/gputrain.h), checked on the CPU with a fake backend that keeps its own copy of
 * the params and state and ignores the trainer's arrays: load() is called once, before the
 * first step, with the initialized (or resumed) values; store() before every checkpoint;
 * checkpoints hold what store() wrote, so a resume hands load() the values of the step it
 * resumes at; step() and eval() never need the arrays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ckpt.h"
#include "trainer.h"

enum { N = 6 };
typedef struct Fake {
    float dev_p[N], dev_s[N]; /* "on the device" */
    int loads, stores, steps, step_before_load;
    float loaded_p0;          /* params[0][0] as load() saw it */
} Fake;

static int f_load(void *ctx, float **params, float **states, char *err, size_t n) {
    (void)err, (void)n;
    Fake *f = ctx;
    memcpy(f->dev_p, params[0], sizeof f->dev_p);
    memcpy(f->dev_s, states[0], sizeof f->dev_s);
    f->loaded_p0 = params[0][0];
    f->loads++;
    return 0;
}

static int f_store(void *ctx, float **params, float **states, char *err, size_t n) {
    (void)err, (void)n;
    Fake *f = ctx;
    memcpy(params[0], f->dev_p, sizeof f->dev_p);
    memcpy(states[0], f->dev_s, sizeof f->dev_s);
    f->stores++;
    return 0;
}

/* p += 1, s += 2 each step, on the private copy only; the trainer's arrays are scribbled
 * on, so a checkpoint that took them instead of store()'s values would be wrong */
static int f_step(void *ctx, const int32_t *x, const int32_t *y, int64_t step, int64_t seed, double lr, float **params,
                  float **states, double *loss, double *lr_used, char *err, size_t n) {
    (void)x, (void)y, (void)step, (void)seed, (void)err, (void)n;
    Fake *f = ctx;
    if (!f->loads) f->step_before_load = 1;
    for (int i = 0; i < N; i++) f->dev_p[i] += 1, f->dev_s[i] += 2, params[0][i] = -999, states[0][i] = -999;
    f->steps++;
    *loss = 1.0 / (double)f->steps;
    *lr_used = lr;
    return 0;
}

static int f_eval(void *ctx, const int32_t *x, const int32_t *y, float **params, double *loss, char *err, size_t n) {
    (void)x, (void)y, (void)params, (void)err, (void)n;
    Fake *f = ctx;
    *loss = f->dev_p[0];
    return 0;
}

static char dir[] = "/tmp/tl_trainer_resXXXXXX";

static int train(Fake *f, int64_t steps, const char *resume) {
    static const TlTrainerTensor params[] = {{"w", 2, {2, 3}, TL_TINIT_ONES, 0, 0, 0, 0}};
    static const TlTrainerTensor states[] = {{"opt.m.w", 2, {2, 3}, TL_TINIT_ZEROS, 0, 0, 0, 0}};
    char data[600], out[600], err[256];
    snprintf(data, sizeof data, "%s/data.txt", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    TlTrainerSpec s = {.name = "fake", .backend = "fake", .steps = steps, .log_every = 1, .eval_every = 2,
                       .checkpoint_every = 2, .seed = 1, .lr = 0.1, .out = out, .data_path = data, .val_frac = 0.5,
                       .B = 2, .T = 4, .params = params, .nparams = 1, .states = states, .nstates = 1};
    TlArgs *a = tl_args_new("fake", NULL);
    tl_trainer_add_flags(a, err, sizeof err);
    char *argv[] = {"fake", "--resume", (char *)(resume ? resume : ""), NULL};
    tl_args_parse(a, 3, argv, stdout, err, sizeof err);
    TlTrainerBackend be = {.ctx = f, .step = f_step, .eval = f_eval, .load = f_load, .store = f_store};
    int status = tl_trainer_run(&s, &be, a);
    tl_args_free(a);
    return status;
}

static int read_ckpt(const char *name, int64_t *step, float *p, float *st) {
    char path[700], err[256];
    snprintf(path, sizeof path, "%s/out/ckpt/%s", dir, name);
    TlCkpt *c = NULL;
    if (tl_ckpt_open(path, &c, err, sizeof err)) return -1;
    int64_t shape[2] = {2, 3};
    int rc = tl_ckpt_read(c, "w", 2, shape, p, err, sizeof err) || tl_ckpt_read(c, "opt.m.w", 2, shape, st, err, sizeof err);
    *step = (int64_t)tl_ckpt_info(c).step;
    tl_ckpt_close(c);
    return rc ? -1 : 0;
}

TEST(resident_backend_checkpoints_and_resumes) {
    char path[600];
    snprintf(path, sizeof path, "%s/data.txt", dir);
    FILE *d = fopen(path, "w");
    for (int i = 0; i < 200; i++) fputs("resident training keeps the params on the device\n", d);
    fclose(d);
    Fake f = {0};
    EXPECT(train(&f, 4, NULL) == 0);
    EXPECTF(f.loads == 1 && !f.step_before_load && f.loaded_p0 == 1.0f, "loads %d, loaded w[0] = %g", f.loads, f.loaded_p0);
    EXPECTF(f.stores == 2 && f.steps == 4, "stores %d (checkpoints at 2 and 4), steps %d", f.stores, f.steps);
    int64_t step = 0;
    float p[N], st[N];
    EXPECT(read_ckpt("ckpt-4.safetensors", &step, p, st) == 0);
    EXPECTF(step == 4 && p[0] == 5.0f && p[5] == 5.0f && st[0] == 8.0f, "step %lld: w %g, m %g (want 5, 8)", (long long)step, p[0], st[0]);
    EXPECT(read_ckpt("ckpt-2.safetensors", &step, p, st) == 0);
    EXPECTF(step == 2 && p[0] == 3.0f && st[0] == 4.0f, "step %lld: w %g, m %g (want 3, 4)", (long long)step, p[0], st[0]);
    /* resume from step 2: load() gets the checkpoint's values, two more steps run */
    char ck[700];
    snprintf(ck, sizeof ck, "%s/out/ckpt/ckpt-4.safetensors", dir);
    remove(ck);
    Fake g = {0};
    snprintf(path, sizeof path, "%s/out", dir);
    EXPECT(train(&g, 4, path) == 0);
    EXPECTF(g.loads == 1 && g.loaded_p0 == 3.0f && g.steps == 2, "loads %d, loaded w[0] = %g, steps %d", g.loads, g.loaded_p0, g.steps);
    EXPECT(read_ckpt("ckpt-4.safetensors", &step, p, st) == 0);
    EXPECTF(p[0] == 5.0f && st[0] == 8.0f, "resumed: w %g, m %g (want 5, 8)", p[0], st[0]);
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    RUN(resident_backend_checkpoints_and_resumes);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_done();
}
