/* progress.c — the bar and the plain lines. */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BAR_WIDTH = 24 };
static const double REDRAW_SECONDS = 0.1;

double tl_progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tl_progress_init(TlProgress *p, FILE *out, int64_t total, int64_t tokens_per_step,
                      int64_t log_every) {
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    p->total = total;
    p->tokens_per_step = tokens_per_step;
    p->log_every = log_every >= 1 ? log_every : 1;
    const char *mode = getenv("TL_PROGRESS");
    if (mode && strcmp(mode, "bar") == 0)
        p->bar = 1;
    else if (mode && strcmp(mode, "plain") == 0)
        p->bar = 0;
    else
        p->bar = isatty(fileno(p->out));
    p->t0 = tl_progress_now();
    p->last_draw = -1;
}

/* "mm:ss", or "h:mm:ss" past an hour; "--:--" when unknown. */
static void fmt_time(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0 || s > 360000000.0) { /* beyond ~11 years: unknown */
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

/* 15234 -> "15.2k", 3.1e6 -> "3.1M". */
static void fmt_rate(char *buf, size_t n, double r) {
    if (r >= 1e9) snprintf(buf, n, "%.1fG", r / 1e9);
    else if (r >= 1e6) snprintf(buf, n, "%.1fM", r / 1e6);
    else if (r >= 1e4) snprintf(buf, n, "%.1fk", r / 1e3);
    else snprintf(buf, n, "%.0f", r);
}

static void draw_bar(TlProgress *p, int64_t step, double loss, double elapsed) {
    double frac = p->total > 0 ? (double)step / (double)p->total : 0.0;
    if (frac > 1) frac = 1;
    if (frac < 0) frac = 0;
    char bar[BAR_WIDTH + 1];
    int fill = (int)(frac * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = 0;
    int64_t done = step - p->start_step;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char el[32], eta[32], tok[32];
    fmt_time(el, sizeof el, elapsed);
    fmt_time(eta, sizeof eta, done > 0 && rate > 0 ? (double)(p->total - step) / rate : NAN);
    fprintf(p->out, "\rstep %lld/%lld [%s] %3d%%", (long long)step, (long long)p->total, bar,
            (int)(frac * 100));
    if (!isnan(loss)) fprintf(p->out, " loss %.4f", loss);
    if (p->tokens_per_step > 0) {
        fmt_rate(tok, sizeof tok, rate * (double)p->tokens_per_step);
        fprintf(p->out, " %s tok/s", tok);
    }
    fprintf(p->out, " %s<%s\x1b[K", el, eta);
    fflush(p->out);
    p->on_screen = 1;
}

void tl_progress_update_at(TlProgress *p, int64_t step, double loss, double lr, double now) {
    double elapsed = now - p->t0;
    int last = step >= p->total;
    if (p->bar) {
        if (last || p->last_draw < 0 || now - p->last_draw >= REDRAW_SECONDS) {
            draw_bar(p, step, loss, elapsed);
            p->last_draw = now;
        }
        return;
    }
    if (step % p->log_every != 0 && !last) return;
    fprintf(p->out, "step %lld/%lld", (long long)step, (long long)p->total);
    if (!isnan(loss)) fprintf(p->out, " loss %.4f", loss);
    if (!isnan(lr)) fprintf(p->out, " lr %.1e", lr);
    if (p->tokens_per_step > 0 && elapsed > 0)
        fprintf(p->out, " tok/s %.0f",
                (double)(step - p->start_step) * (double)p->tokens_per_step / elapsed);
    fputc('\n', p->out);
    fflush(p->out);
}

void tl_progress_update(TlProgress *p, int64_t step, double loss, double lr) {
    tl_progress_update_at(p, step, loss, lr, tl_progress_now());
}

void tl_progress_note(TlProgress *p, const char *fmt, ...) {
    if (p->on_screen) fputs("\r\x1b[K", p->out); /* clear the bar; the next update redraws */
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    size_t n = strlen(fmt);
    if (n == 0 || fmt[n - 1] != '\n') fputc('\n', p->out);
    fflush(p->out);
    p->on_screen = 0;
    p->last_draw = -1; /* redraw at the next update */
}

void tl_progress_finish(TlProgress *p) {
    if (p->on_screen) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    p->on_screen = 0;
}
