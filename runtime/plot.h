/* plot.h — SVG line plots of training curves (train and validation loss against step),
 * written atomically (fsutil.h) so a viewer never sees half a file.
 *
 *   TlPlotSeries s[] = {{"train", xs, ys, n}, {"val", vx, vy, vn}};
 *   TlPlotOpts o = {.title = "loss", .xlabel = "step", .ylabel = "loss", .log_y = 1};
 *   tl_plot_svg("run/loss.svg", &o, s, 2, err, sizeof err);
 *
 * The plot has axes with "nice" ticks (1, 2, 5 x 10^k; powers of ten on a log axis) and
 * their labels, a title, axis labels, a legend, one polyline per series (class "series",
 * data-name set to the series name). Points that are not finite (or not positive on a log
 * axis) break the line instead of ending the plot. Text is XML-escaped. */
#ifndef TL_PLOT_H
#define TL_PLOT_H
#include <stddef.h>

typedef struct TlPlotSeries {
    const char *name;
    const double *x;
    const double *y;
    int n;
} TlPlotSeries;

typedef struct TlPlotOpts {
    const char *title;  /* may be NULL */
    const char *xlabel;
    const char *ylabel;
    int log_x, log_y;   /* logarithmic axes */
    int width, height;  /* pixels; 0 gives 720 x 440 */
} TlPlotOpts;

/* 0, or -1 with a message naming the file (also when no series has a plottable point). */
int tl_plot_svg(const char *path, const TlPlotOpts *opts, const TlPlotSeries *series, int n,
                char *err, size_t errlen);

#endif
