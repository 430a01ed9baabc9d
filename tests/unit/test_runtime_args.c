/* test_runtime_args.c — flag parsing: every accepted syntax and every error path. */
#include "args.h"
#include "check.h"

#include <stdlib.h>

static char err[512];

static TlArgs *make(void) {
    TlArgs *a = tl_args_new("gpt", "Train a GPT.");
    int rc = 0;
    rc |= tl_args_add(a, "steps", TL_ARG_INT, "5000", "optimizer steps", err, sizeof err);
    rc |= tl_args_add(a, "lr", TL_ARG_FLOAT, "3e-4", "learning rate", err, sizeof err);
    rc |= tl_args_add(a, "name", TL_ARG_STRING, "run", "run name", err, sizeof err);
    rc |= tl_args_add(a, "data", TL_ARG_PATH, "/usr/share/games/fortunes", "corpus", err,
                      sizeof err);
    rc |= tl_args_add(a, "compile", TL_ARG_BOOL, "true", "compile kernels", err, sizeof err);
    rc |= tl_args_add(a, "batch_size", TL_ARG_INT, "16", "batch size", err, sizeof err);
    rc |= tl_args_set_range(a, "batch_size", 1, 4096, err, sizeof err);
    if (rc) printf("  setup failed: %s\n", err);
    return a;
}

/* Parse a NULL-terminated list of words; returns the status. */
static int parse(TlArgs *a, const char *w0, ...) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = "gpt";
    va_list ap;
    va_start(ap, w0);
    for (const char *w = w0; w && argc < 31; w = va_arg(ap, const char *)) argv[argc++] = (char *)w;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = 0;
    FILE *devnull = fopen("/dev/null", "w");
    int rc = tl_args_parse(a, argc, argv, devnull, err, sizeof err);
    fclose(devnull);
    return rc;
}

TEST(defaults) {
    TlArgs *a = make();
    EXPECT(parse(a, NULL) == TL_ARGS_OK);
    EXPECT(tl_args_int(a, "steps") == 5000);
    EXPECT(tl_args_float(a, "lr") == 3e-4);
    EXPECT(strcmp(tl_args_string(a, "name"), "run") == 0);
    EXPECT(strcmp(tl_args_string(a, "data"), "/usr/share/games/fortunes") == 0);
    EXPECT(tl_args_bool(a, "compile") == 1);
    EXPECT(!tl_args_was_set(a, "steps"));
    tl_args_free(a);
}

TEST(both_value_syntaxes) {
    TlArgs *a = make();
    EXPECT(parse(a, "--steps", "20", "--lr=1e-3", "--name", "-x", "--data=/tmp", NULL) ==
           TL_ARGS_OK);
    EXPECT(tl_args_int(a, "steps") == 20);
    EXPECT(tl_args_float(a, "lr") == 1e-3);
    EXPECT(strcmp(tl_args_string(a, "name"), "-x") == 0);
    EXPECT(strcmp(tl_args_string(a, "data"), "/tmp") == 0);
    EXPECT(tl_args_was_set(a, "steps") && tl_args_was_set(a, "lr"));
    /* last one wins; '-' and '_' are the same in names */
    EXPECT(parse(a, "--steps=1", "--steps=2", "--batch-size", "32", NULL) == TL_ARGS_OK);
    EXPECT(tl_args_int(a, "steps") == 2);
    EXPECT(tl_args_int(a, "batch_size") == 32);
    EXPECT(tl_args_int(a, "steps") == 2);
    EXPECT(parse(a, "--steps", "-5", NULL) == TL_ARGS_OK && tl_args_int(a, "steps") == -5);
    EXPECT(parse(a, "--", NULL) == TL_ARGS_OK);
    tl_args_free(a);
}

TEST(bools) {
    TlArgs *a = make();
    EXPECT(parse(a, "--no-compile", NULL) == TL_ARGS_OK && tl_args_bool(a, "compile") == 0);
    EXPECT(parse(a, "--compile", NULL) == TL_ARGS_OK && tl_args_bool(a, "compile") == 1);
    EXPECT(parse(a, "--compile=off", NULL) == TL_ARGS_OK && tl_args_bool(a, "compile") == 0);
    EXPECT(parse(a, "--compile=YES", NULL) == TL_ARGS_OK && tl_args_bool(a, "compile") == 1);
    EXPECT(parse(a, "--compile=maybe", NULL) == TL_ARGS_ERROR);
    EXPECTF(strstr(err, "--compile") && strstr(err, "'maybe'"), "%s", err);
    EXPECT(parse(a, "--no-compile=1", NULL) == TL_ARGS_ERROR);
    EXPECT(parse(a, "--no-steps", NULL) == TL_ARGS_ERROR);
    EXPECTF(strstr(err, "not a boolean"), "%s", err);
    /* a bool never eats the next word */
    EXPECT(parse(a, "--compile", "false", NULL) == TL_ARGS_ERROR);
    EXPECTF(strstr(err, "unexpected argument 'false'"), "%s", err);
    tl_args_free(a);
}

TEST(help) {
    TlArgs *a = make();
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char *argv[] = {"gpt", "--steps", "3", "--help", NULL};
    EXPECT(tl_args_parse(a, 4, argv, m, err, sizeof err) == TL_ARGS_HELP);
    fclose(m);
    EXPECT(strstr(buf, "usage: gpt"));
    EXPECT(strstr(buf, "--steps <int>") && strstr(buf, "default: 5000"));
    EXPECT(strstr(buf, "--lr <float>") && strstr(buf, "default: 3e-4"));
    EXPECT(strstr(buf, "--data <path>") && strstr(buf, "/usr/share/games/fortunes"));
    EXPECT(strstr(buf, "--name <string>"));
    EXPECT(strstr(buf, "--[no-]compile") && strstr(buf, "default: true"));
    EXPECT(strstr(buf, "range: 1..4096"));
    EXPECT(strstr(buf, "--help"));
    free(buf);
    EXPECT(parse(a, "-h", NULL) == TL_ARGS_HELP);
    tl_args_free(a);
}

/* One error case: parse fails and the message mentions every needle. */
static void bad(TlArgs *a, const char *w1, const char *w2, const char *n1, const char *n2) {
    case_begin("error %s %s", w1, w2 ? w2 : "");
    EXPECT(parse(a, w1, w2, NULL) == TL_ARGS_ERROR);
    EXPECTF(strstr(err, n1) && (!n2 || strstr(err, n2)), "message: %s", err);
    EXPECTF(!strchr(err, '\n'), "one line: %s", err);
    case_end();
}

static void error_paths(void) {
    TlArgs *a = make();
    bad(a, "--stpes", "3", "'--stpes'", "did you mean --steps?");
    bad(a, "--setps=3", NULL, "'--setps'", "did you mean --steps?");
    bad(a, "--step", "3", "did you mean --steps?", NULL);
    bad(a, "--no-compiel", NULL, "did you mean --compile?", NULL);
    bad(a, "--zzzzzzzz", NULL, "unknown flag '--zzzzzzzz'", "--help");
    bad(a, "--steps", "abc", "--steps", "'abc'");
    bad(a, "--steps", "1e3", "--steps", "'1e3'");
    bad(a, "--steps", "12x", "--steps", "'12x'");
    bad(a, "--steps", "", "--steps", "expected an integer");
    bad(a, "--steps", "99999999999999999999", "--steps", "out of range");
    bad(a, "--batch_size", "0", "--batch_size", "out of range");
    bad(a, "--batch-size", "5000", "'5000'", "out of range");
    bad(a, "--lr", "1e-3x", "--lr", "'1e-3x'");
    bad(a, "--lr", "nan", "--lr", "finite");
    bad(a, "--lr", "1e999", "--lr", "finite");
    bad(a, "--lr", "", "--lr", "expected a number");
    bad(a, "--data=", NULL, "--data", "path");
    bad(a, "--steps", NULL, "--steps", "expects a value");
    bad(a, "positional", NULL, "unexpected argument 'positional'", NULL);
    bad(a, "-s", NULL, "unknown flag '-s'", NULL);
    bad(a, "--", "x", "unexpected argument 'x'", NULL);
    tl_args_free(a);
}

TEST(registration_errors) {
    TlArgs *a = make();
    EXPECT(tl_args_add(a, "steps", TL_ARG_INT, "1", NULL, err, sizeof err) == -1);
    EXPECT(strstr(err, "twice"));
    EXPECT(tl_args_add(a, "batch-size", TL_ARG_INT, "1", NULL, err, sizeof err) == -1);
    EXPECT(tl_args_add(a, "help", TL_ARG_BOOL, NULL, NULL, err, sizeof err) == -1);
    EXPECT(tl_args_add(a, "no-cache", TL_ARG_BOOL, NULL, NULL, err, sizeof err) == -1);
    EXPECT(tl_args_add(a, "a b", TL_ARG_INT, NULL, NULL, err, sizeof err) == -1);
    EXPECT(tl_args_add(a, "k", TL_ARG_INT, "ten", NULL, err, sizeof err) == -1);
    EXPECTF(strstr(err, "'k'") && strstr(err, "ten"), "%s", err);
    EXPECT(tl_args_add(a, "x", TL_ARG_FLOAT, NULL, NULL, err, sizeof err) == 0);
    EXPECT(tl_args_float(a, "x") == 0.0);
    EXPECT(tl_args_set_range(a, "steps", 0, 10, err, sizeof err) == -1); /* default 5000 */
    EXPECT(tl_args_set_range(a, "name", 0, 10, err, sizeof err) == -1);
    /* wrong-kind and unknown getters are harmless */
    EXPECT(tl_args_int(a, "lr") == 0 && tl_args_string(a, "steps") == NULL);
    EXPECT(tl_args_bool(a, "nothing") == 0);
    tl_args_free(a);
}

int main(void) {
    RUN(defaults);
    RUN(both_value_syntaxes);
    RUN(bools);
    RUN(help);
    error_paths();
    RUN(registration_errors);
    return check_done();
}
