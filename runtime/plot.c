/* plot.c — axes, ticks, legend and polylines as SVG. */
#include "plot.h"

#include "fsutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const COLORS[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                     "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
enum { NCOLORS = 8, MAX_TICKS = 64 };

static void xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* Control characters are not allowed in XML 1.0. */
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n') fputc(*s, f);
        }
    }
}

typedef struct Axis {
    int log;
    double lo, hi;       /* data range, in axis units (log10 when log) */
    double ticks[MAX_TICKS];
    int nticks;
} Axis;

static int usable(double v, int log) { return isfinite(v) && (!log || v > 0); }
static double to_axis(double v, int log) { return log ? log10(v) : v; }

/* Ticks at 1, 2 or 5 x 10^k covering [lo, hi] with about 6 intervals; widens the range
 * to the outer ticks. */
static void nice_ticks(Axis *a) {
    if (a->hi - a->lo < 1e-12 * (fabs(a->lo) + 1)) {
        a->lo -= 0.5 * (fabs(a->lo) + 1e-3);
        a->hi += 0.5 * (fabs(a->hi) + 1e-3);
    }
    if (a->log) {
        double lo = floor(a->lo), hi = ceil(a->hi);
        if (hi == lo) hi = lo + 1;
        double step = ceil((hi - lo) / 8);
        a->lo = lo;
        a->hi = hi;
        a->nticks = 0;
        for (double t = lo; t <= hi + 1e-9 && a->nticks < MAX_TICKS; t += step)
            a->ticks[a->nticks++] = t;
        return;
    }
    double raw = (a->hi - a->lo) / 6;
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag, step = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
    a->lo = floor(a->lo / step) * step;
    a->hi = ceil(a->hi / step) * step;
    a->nticks = 0;
    for (int i = 0; a->nticks < MAX_TICKS; i++) {
        double t = a->lo + i * step;
        if (t > a->hi + step * 1e-6) break;
        a->ticks[a->nticks++] = fabs(t) < step * 1e-9 ? 0 : t;
    }
}

static void tick_label(char *buf, size_t n, double t, int log) {
    if (log)
        snprintf(buf, n, "1e%d", (int)lround(t));
    else
        snprintf(buf, n, "%g", t);
}

int tl_plot_svg(const char *path, const TlPlotOpts *opts, const TlPlotSeries *series, int n,
                char *err, size_t errlen) {
    TlPlotOpts o = opts ? *opts : (TlPlotOpts){0};
    int W = o.width > 0 ? o.width : 720, H = o.height > 0 ? o.height : 440;
    Axis ax = {.log = o.log_x, .lo = INFINITY, .hi = -INFINITY};
    Axis ay = {.log = o.log_y, .lo = INFINITY, .hi = -INFINITY};
    int points = 0;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!usable(x, ax.log) || !usable(y, ay.log)) continue;
            x = to_axis(x, ax.log);
            y = to_axis(y, ay.log);
            ax.lo = fmin(ax.lo, x); ax.hi = fmax(ax.hi, x);
            ay.lo = fmin(ay.lo, y); ay.hi = fmax(ay.hi, y);
            points++;
        }
    if (points == 0) {
        snprintf(err, errlen, "%s: error: nothing to plot (no finite%s points)", path,
                 o.log_x || o.log_y ? ", positive" : "");
        return -1;
    }
    nice_ticks(&ax);
    nice_ticks(&ay);

    /* The plot area, leaving room for tick labels, axis labels, the title and a legend. */
    double L = 70, R = W - 140.0, T = 40, B = H - 55.0;
    #define PX(v) (L + ((v) - ax.lo) / (ax.hi - ax.lo) * (R - L))
    #define PY(v) (B - ((v) - ay.lo) / (ay.hi - ay.lo) * (B - T))

    TlAtomicFile af;
    if (tl_fs_atomic_begin(&af, path, err, errlen)) return -1;
    FILE *f = af.f;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    if (o.title) {
        fprintf(f, "<text class=\"title\" x=\"%.1f\" y=\"22\" text-anchor=\"middle\" "
                   "font-size=\"15\">", (L + R) / 2);
        xml_text(f, o.title);
        fprintf(f, "</text>\n");
    }
    /* grid and ticks */
    fprintf(f, "<g class=\"axes\" stroke=\"#ccc\" stroke-width=\"1\">\n");
    for (int i = 0; i < ax.nticks; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(ax.ticks[i]), T,
                PX(ax.ticks[i]), B);
    for (int i = 0; i < ay.nticks; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, PY(ay.ticks[i]),
                R, PY(ay.ticks[i]));
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"black\"/>\n</g>\n", L, T, R - L, B - T);
    fprintf(f, "<g class=\"ticks\">\n");
    char lab[64];
    for (int i = 0; i < ax.nticks; i++) {
        tick_label(lab, sizeof lab, ax.ticks[i], ax.log);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                PX(ax.ticks[i]), B + 16, lab);
    }
    for (int i = 0; i < ay.nticks; i++) {
        tick_label(lab, sizeof lab, ay.ticks[i], ay.log);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6,
                PY(ay.ticks[i]) + 4, lab);
    }
    fprintf(f, "</g>\n");
    if (o.xlabel) {
        fprintf(f, "<text class=\"xlabel\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">",
                (L + R) / 2, H - 15);
        xml_text(f, o.xlabel);
        fprintf(f, "</text>\n");
    }
    if (o.ylabel) {
        fprintf(f, "<text class=\"ylabel\" transform=\"translate(18 %.1f) rotate(-90)\" "
                   "text-anchor=\"middle\">", (T + B) / 2);
        xml_text(f, o.ylabel);
        fprintf(f, "</text>\n");
    }
    /* series: a polyline per unbroken run of usable points */
    for (int s = 0; s < n; s++) {
        const char *color = COLORS[s % NCOLORS];
        fprintf(f, "<g class=\"series\" data-name=\"");
        xml_text(f, series[s].name ? series[s].name : "");
        fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\">\n", color);
        int open = 0;
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!usable(x, ax.log) || !usable(y, ay.log)) {
                if (open) fprintf(f, "\"/>\n");
                open = 0;
                continue;
            }
            if (!open) fprintf(f, "<polyline points=\"");
            fprintf(f, "%s%.2f,%.2f", open ? " " : "", PX(to_axis(x, ax.log)),
                    PY(to_axis(y, ay.log)));
            open = 1;
        }
        if (open) fprintf(f, "\"/>\n");
        fprintf(f, "</g>\n");
    }
    /* legend */
    fprintf(f, "<g class=\"legend\">\n");
    for (int s = 0; s < n; s++) {
        double y = T + 10 + 18.0 * s;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"/>\n", R + 12, y, R + 32, y, COLORS[s % NCOLORS]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", R + 38, y + 4);
        xml_text(f, series[s].name ? series[s].name : "");
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n</svg>\n");
    #undef PX
    #undef PY
    if (ferror(f)) {
        tl_fs_atomic_abort(&af);
        snprintf(err, errlen, "%s: error: write failed", path);
        return -1;
    }
    return tl_fs_atomic_commit(&af, err, errlen);
}
