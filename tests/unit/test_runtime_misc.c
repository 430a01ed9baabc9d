/* test_runtime_misc.c — progress lines and bar, JSONL metrics, SVG plots. (mem.h is
 * tested in test_runtime_pool.c.) */
#include "check.h"
#include "metrics.h"
#include "plot.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char err[512];
static char root[] = "/tmp/tl_misc_test.XXXXXX";

static char *sub(const char *name) {
    static char p[2][512];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", root, name);
    return p[k];
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

TEST(progress_plain) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    setenv("TL_PROGRESS", "plain", 1);
    TlProgress p;
    tl_progress_init(&p, m, 2000, 1000, 40);
    EXPECT(p.bar == 0);
    for (int s = 1; s <= 120; s++) tl_progress_update_at(&p, s, 2.3412, 3e-4, p.t0 + s * 0.1);
    tl_progress_note(&p, "eval loss %.3f", 2.5);
    tl_progress_update_at(&p, 2000, 1.5, 1e-5, p.t0 + 200);
    tl_progress_finish(&p);
    fclose(m);
    EXPECTF(strstr(buf, "step 120/2000 loss 2.3412 lr 3.0e-04 tok/s 10000\n"), "%s", buf);
    EXPECT(count(buf, "step ") == 4); /* 40, 80, 120 and the last */
    EXPECT(strstr(buf, "eval loss 2.500\n"));
    EXPECT(strstr(buf, "step 2000/2000 loss 1.5000 lr 1.0e-05"));
    EXPECT(!strchr(buf, '\r'));
    free(buf);
}

TEST(progress_bar) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    setenv("TL_PROGRESS", "bar", 1);
    TlProgress p;
    tl_progress_init(&p, m, 1000, 512, 1);
    EXPECT(p.bar == 1);
    /* 1000 updates over 5 seconds: about 10 redraws a second, plus the last */
    for (int s = 1; s <= 1000; s++) tl_progress_update_at(&p, s, 3.0, 1e-3, p.t0 + s * 0.005);
    tl_progress_finish(&p);
    fclose(m);
    int draws = count(buf, "\r");
    EXPECTF(draws >= 45 && draws <= 55, "draws=%d", draws);
    EXPECT(strstr(buf, "step 1000/1000 [########################] 100% loss 3.0000"));
    EXPECTF(strstr(buf, "102.4k tok/s 00:05<00:00"), "%s", buf + len - 100);
    EXPECT(buf[len - 1] == '\n');
    free(buf);
    unsetenv("TL_PROGRESS");
}

TEST(metrics_format) {
    char b[512];
    TlMetric f[] = {TL_METRIC_NUM("step", 120), TL_METRIC_NUM("loss", 2.34119987f),
                    TL_METRIC_NUM("nan", NAN), TL_METRIC_NUM("inf", -INFINITY),
                    TL_METRIC_STR("s", "a\"b\\c\n\x01\xc3\xa9"),
                    TL_METRIC_NUM("big", 12345678901234.0), TL_METRIC_NUM("tiny", 1e-30)};
    size_t n = tl_metrics_format(b, sizeof b, f, 7);
    EXPECT(n == strlen(b));
    EXPECTF(strcmp(b, "{\"step\":120,\"loss\":2.34119987,\"nan\":null,\"inf\":null,"
                      "\"s\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",\"big\":12345678901234,"
                      "\"tiny\":1e-30}\n") == 0, "%s", b);
    /* a too-small buffer reports the length it needs */
    char small[4];
    EXPECT(tl_metrics_format(small, sizeof small, f, 7) == n && strcmp(small, "{\"s") == 0);
    cJSON *j = cJSON_Parse(b);
    EXPECT(j && cJSON_IsNull(cJSON_GetObjectItem(j, "nan")));
    EXPECT(j && strcmp(cJSON_GetObjectItem(j, "s")->valuestring, "a\"b\\c\n\x01\xc3\xa9") == 0);
    EXPECT(j && (float)cJSON_GetObjectItem(j, "loss")->valuedouble == 2.34119987f);
    cJSON_Delete(j);
}

TEST(metrics_write_read) {
    TlMetrics m;
    const char *path = sub("run/metrics.jsonl");
    EXPECTF(tl_metrics_open(&m, path, 0, err, sizeof err) == 0, "%s", err);
    for (int s = 1; s <= 10; s++) {
        TlMetric f[] = {TL_METRIC_NUM("step", s), TL_METRIC_NUM("loss", 10.0 / s),
                        TL_METRIC_STR("split", s % 5 ? "train" : "val")};
        EXPECT(tl_metrics_write(&m, f, 3, err, sizeof err) == 0);
    }
    /* a long line grows the buffer */
    char longs[2000];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    TlMetric lf[] = {TL_METRIC_STR("note", longs)};
    EXPECT(tl_metrics_write(&m, lf, 1, err, sizeof err) == 0);
    tl_metrics_close(&m);
    /* a half-written line at the end (a kill) is ignored by the reader */
    FILE *f = fopen(path, "a");
    fputs("{\"step\":11,\"lo", f);
    fclose(f);
    cJSON *arr = tl_metrics_read(path, err, sizeof err);
    EXPECTF(arr && cJSON_GetArraySize(arr) == 11, "%s", err);
    cJSON_Delete(arr);
    double *xs, *ys;
    int n;
    EXPECT(tl_metrics_series(path, "step", "loss", "split", "val", &xs, &ys, &n, err,
                             sizeof err) == 0);
    EXPECT(n == 2 && xs[0] == 5 && ys[1] == 1.0);
    free(xs);
    free(ys);
    /* append mode keeps what is there */
    EXPECT(tl_metrics_open(&m, path, 1, err, sizeof err) == 0);
    tl_metrics_close(&m);
    EXPECT(tl_metrics_series(path, "step", "loss", NULL, NULL, &xs, &ys, &n, err, sizeof err) == 0);
    EXPECT(n == 10);
    free(xs);
    free(ys);
    /* errors name the file */
    EXPECT(tl_metrics_read(sub("nope.jsonl"), err, sizeof err) == NULL && strstr(err, "nope.jsonl"));
    f = fopen(sub("bad.jsonl"), "w");
    fputs("{\"a\":1}\nnot json\n", f);
    fclose(f);
    EXPECT(tl_metrics_read(sub("bad.jsonl"), err, sizeof err) == NULL);
    EXPECTF(strstr(err, "bad.jsonl:2:"), "%s", err);
    EXPECT(tl_metrics_open(&m, "/nonexistent/dir/x/m.jsonl", 0, err, sizeof err) == -1);
}

static int have_python(void) { return system("python3 -c 'import xml.etree' >/dev/null 2>&1") == 0; }

TEST(plot_svg) {
    enum { N = 200 };
    double x[N], y[N], vx[5], vy[5];
    for (int i = 0; i < N; i++) {
        x[i] = i * 10;
        y[i] = 5.0 * exp(-i / 50.0) + 0.5;
    }
    y[17] = NAN; /* breaks the line */
    for (int i = 0; i < 5; i++) {
        vx[i] = i * 500;
        vy[i] = 5.5 * exp(-i * 0.8) + 0.6;
    }
    TlPlotSeries s[] = {{"train <loss>", x, y, N}, {"val & co", vx, vy, 5}};
    for (int log = 0; log < 2; log++) {
        const char *path = sub(log ? "loss_log.svg" : "loss.svg");
        TlPlotOpts o = {.title = "GPT loss", .xlabel = "step", .ylabel = "loss", .log_y = log};
        EXPECTF(tl_plot_svg(path, &o, s, 2, err, sizeof err) == 0, "%s", err);
        FILE *f = fopen(path, "r");
        char buf[65536];
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        EXPECT(strstr(buf, "data-name=\"train &lt;loss&gt;\""));
        EXPECT(strstr(buf, "data-name=\"val &amp; co\""));
        EXPECT(count(buf, "<polyline") == 3); /* train broken in two + val */
        EXPECT(strstr(buf, ">step</text>") && strstr(buf, ">GPT loss</text>"));
        EXPECT(log ? strstr(buf, ">1e0</text>") != NULL : strstr(buf, ">1000</text>") != NULL);
        if (have_python()) {
            char cmd[800];
            snprintf(cmd, sizeof cmd,
                     "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1])"
                     ".getroot(); ns = '{http://www.w3.org/2000/svg}'; "
                     "g = [e.get('data-name') for e in r.iter(ns + 'g') if e.get('class') == 'series']; "
                     "sys.exit(0 if g == ['train <loss>', 'val & co'] else 1)\" %s",
                     path);
            EXPECTF(system(cmd) == 0, "%s does not parse as the expected SVG", path);
        }
    }
    if (!have_python()) case_skip("plot_svg_xml_parse", "python3 is not available");
    /* nothing plottable */
    double bad[2] = {NAN, -1};
    TlPlotSeries sb[] = {{"b", bad, bad, 2}};
    TlPlotOpts o = {.log_y = 1};
    EXPECT(tl_plot_svg(sub("bad.svg"), &o, sb, 1, err, sizeof err) == -1 && strstr(err, "bad.svg"));
    EXPECT(access(sub("bad.svg"), F_OK) != 0);
    /* a flat single point still gets a range */
    double one = 3;
    TlPlotSeries s1[] = {{"one", &one, &one, 1}};
    EXPECT(tl_plot_svg(sub("one.svg"), NULL, s1, 1, err, sizeof err) == 0);
    EXPECT(tl_plot_svg("/nonexistent/x/p.svg", NULL, s1, 1, err, sizeof err) == -1);
}

int main(void) {
    if (!mkdtemp(root)) return 1;
    RUN(progress_plain);
    RUN(progress_bar);
    RUN(metrics_format);
    RUN(metrics_write_read);
    RUN(plot_svg);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) printf("  could not remove %s\n", root);
    return check_done();
}
