/* metrics.h — a JSONL metrics log: one JSON object per line, e.g.
 *     {"step":120,"loss":2.34119987,"lr":0.000300000014,"split":"train"}
 *
 * Each line is formatted in memory and handed to the kernel with one write(2) on a file
 * opened O_APPEND, so a kill loses at most the line being written and never interleaves
 * two lines. Numbers: integral values below 2^53 print as integers, others with %.9g
 * (every f32 round-trips); NaN and infinities print as null. Keys and strings are escaped
 * per RFC 8259 (quote, backslash, control characters as \uXXXX; UTF-8 passes through).
 *
 * The reader (for tests and tl_plot) returns the complete lines as cJSON objects; a final
 * line without its newline (cut off by a kill) is ignored. */
#ifndef TL_METRICS_H
#define TL_METRICS_H
#include <stddef.h>

struct cJSON;

typedef struct TlMetrics {
    int fd;
    char *path;
    char *buf; /* the line being formatted */
    size_t cap;
} TlMetrics;

/* One field: a number (str == NULL) or a string. */
typedef struct TlMetric {
    const char *key;
    double num;
    const char *str;
} TlMetric;
#define TL_METRIC_NUM(k, v) ((TlMetric){(k), (double)(v), NULL})
#define TL_METRIC_STR(k, s) ((TlMetric){(k), 0.0, (s)})

/* Open path for appending (append = 1) or truncate it (append = 0); creates the parent
 * directory if it is missing. 0 or -1 with a message naming the file. */
int tl_metrics_open(TlMetrics *m, const char *path, int append, char *err, size_t errlen);
/* Append one line with n fields in the order given. */
int tl_metrics_write(TlMetrics *m, const TlMetric *fields, int n, char *err, size_t errlen);
void tl_metrics_close(TlMetrics *m);

/* Format one line (with its '\n') into buf, NUL-terminated when cap > 0; returns the
 * length of the whole line without the NUL, like snprintf (it fit when the result < cap).
 * The writer's formatter, exposed for tests. */
size_t tl_metrics_format(char *buf, size_t cap, const TlMetric *fields, int n);

/* Every complete line of path as a cJSON array of objects (free with cJSON_Delete); NULL
 * with a message naming the file and line on a read error or a malformed line. */
struct cJSON *tl_metrics_read(const char *path, char *err, size_t errlen);
/* The (x, y) pairs of the lines holding numbers under both keys (and, when split_key is not
 * NULL, the string split_value under split_key), in file order. *xs and *ys are malloc'd. */
int tl_metrics_series(const char *path, const char *xkey, const char *ykey,
                      const char *split_key, const char *split_value, double **xs,
                      double **ys, int *n, char *err, size_t errlen);

#endif
