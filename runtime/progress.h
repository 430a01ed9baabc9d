/* progress.h — training progress on stderr: a redrawn bar on a terminal, plain log lines
 * otherwise (a file, a pipe, CI).
 *
 *   TlProgress p;
 *   tl_progress_init(&p, stderr, steps, B * T, log_every);
 *   for (step = 1; step <= steps; step++) { ...; tl_progress_update(&p, step, loss, lr); }
 *   tl_progress_finish(&p);
 *
 * Bar mode (out is a terminal, or TL_PROGRESS=bar): one line redrawn with '\r', at most
 * about 10 times a second (and always at the last step):
 *     step 120/2000 [###.....................] 6% loss 2.3412 15.2k tok/s 00:12<03:05
 * Plain mode (otherwise, or TL_PROGRESS=plain): one line every log_every steps and at the
 * last step:
 *     step 120/2000 loss 2.3412 lr 3.0e-04 tok/s 15234
 * tl_progress_note prints a message line (an eval result, a checkpoint saved) without
 * garbling the bar. Nothing here allocates. */
#ifndef TL_PROGRESS_H
#define TL_PROGRESS_H
#include <stdint.h>
#include <stdio.h>

typedef struct TlProgress {
    FILE *out;
    int bar;                 /* 1: bar mode, 0: plain lines */
    int64_t total;           /* the last step */
    int64_t tokens_per_step; /* for tok/s; 0 to leave it out */
    int64_t log_every;       /* plain mode: a line every this many steps (>= 1) */
    int64_t start_step;      /* steps done before this run (a resume); rates count from it */
    double t0;               /* clock at init, seconds */
    double last_draw;        /* clock of the last bar redraw; < 0: never */
    int on_screen;           /* a bar line is drawn and not yet ended by '\n' */
} TlProgress;

/* The mode: TL_PROGRESS=plain|bar when set, else bar iff out is a terminal. */
void tl_progress_init(TlProgress *p, FILE *out, int64_t total, int64_t tokens_per_step,
                      int64_t log_every);
/* Report step (1-based; done steps) with its loss and learning rate (NaN: not shown). */
void tl_progress_update(TlProgress *p, int64_t step, double loss, double lr);
/* The same with an explicit clock (seconds, monotonic): for tests. */
void tl_progress_update_at(TlProgress *p, int64_t step, double loss, double lr, double now);
/* Print one line of text (no trailing newline needed) above the bar. */
void tl_progress_note(TlProgress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* End the bar line, if one is drawn. */
void tl_progress_finish(TlProgress *p);
/* Monotonic seconds (the clock used by tl_progress_update). */
double tl_progress_now(void);

#endif
