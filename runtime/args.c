/* args.c — flag registry, parser, usage and "did you mean" suggestions. */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct Arg {
    char *name;
    TlArgKind kind;
    char *def_text; /* as registered, for the usage */
    char *help;
    int has_range;
    double lo, hi;
    int set;
    int64_t i;
    double f;
    int b;
    char *s;
} Arg;

struct TlArgs {
    char *prog;
    char *summary;
    Arg *args;
    int n, cap;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *kind_name(TlArgKind k) {
    switch (k) {
    case TL_ARG_INT: return "int";
    case TL_ARG_FLOAT: return "float";
    case TL_ARG_STRING: return "string";
    case TL_ARG_BOOL: return "bool";
    case TL_ARG_PATH: return "path";
    }
    return "?";
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

TlArgs *tl_args_new(const char *prog, const char *summary) {
    TlArgs *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->prog = strdup(prog ? prog : "program");
    a->summary = dup_or_null(summary);
    if (!a->prog || (summary && !a->summary)) {
        tl_args_free(a);
        return NULL;
    }
    return a;
}

void tl_args_free(TlArgs *a) {
    if (!a) return;
    for (int i = 0; i < a->n; i++) {
        free(a->args[i].name);
        free(a->args[i].def_text);
        free(a->args[i].help);
        free(a->args[i].s);
    }
    free(a->args);
    free(a->prog);
    free(a->summary);
    free(a);
}

/* Names compare with '-' and '_' equal. len is the length of s to use (-1: all). */
static int name_eq(const char *name, const char *s, size_t len) {
    size_t i = 0;
    for (; i < len && s[i]; i++) {
        char x = name[i], y = s[i];
        if (x == '_') x = '-';
        if (y == '_') y = '-';
        if (!x || x != y) return 0;
    }
    return name[i] == 0 && (i == len || s[i] == 0);
}

static Arg *find(const TlArgs *a, const char *s, size_t len) {
    for (int i = 0; i < a->n; i++)
        if (name_eq(a->args[i].name, s, len)) return &a->args[i];
    return NULL;
}

static int check_range(const Arg *g, double v, const char *text, char *err, size_t errlen) {
    if (g->has_range && !(v >= g->lo && v <= g->hi)) {
        set_err(err, errlen, "error: invalid value '%s' for --%s: out of range [%.17g, %.17g]",
                text, g->name, g->lo, g->hi);
        return -1;
    }
    return 0;
}

/* Parse text as g's kind into g. 0 or -1 with the one-line message. */
static int parse_value(Arg *g, const char *text, char *err, size_t errlen) {
    char *end;
    switch (g->kind) {
    case TL_ARG_INT: {
        const char *p = text;
        while (isspace((unsigned char)*p)) p++;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || *end || p != text) {
            set_err(err, errlen, "error: invalid value '%s' for --%s: expected an integer",
                    text, g->name);
            return -1;
        }
        if (errno == ERANGE) {
            set_err(err, errlen, "error: invalid value '%s' for --%s: integer out of range",
                    text, g->name);
            return -1;
        }
        if (check_range(g, (double)v, text, err, errlen)) return -1;
        g->i = v;
        return 0;
    }
    case TL_ARG_FLOAT: {
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end || isspace((unsigned char)*text)) {
            set_err(err, errlen, "error: invalid value '%s' for --%s: expected a number",
                    text, g->name);
            return -1;
        }
        if (!isfinite(v) || (errno == ERANGE && fabs(v) > 1.0)) {
            set_err(err, errlen,
                    "error: invalid value '%s' for --%s: expected a finite number", text,
                    g->name);
            return -1;
        }
        if (check_range(g, v, text, err, errlen)) return -1;
        g->f = v;
        return 0;
    }
    case TL_ARG_BOOL: {
        static const char *yes[] = {"true", "1", "yes", "on"};
        static const char *no[] = {"false", "0", "no", "off"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(text, yes[i]) == 0) { g->b = 1; return 0; }
            if (strcasecmp(text, no[i]) == 0) { g->b = 0; return 0; }
        }
        set_err(err, errlen,
                "error: invalid value '%s' for --%s: expected true or false", text, g->name);
        return -1;
    }
    case TL_ARG_STRING:
    case TL_ARG_PATH: {
        if (g->kind == TL_ARG_PATH && !*text) {
            set_err(err, errlen, "error: invalid value '' for --%s: expected a path",
                    g->name);
            return -1;
        }
        char *s = strdup(text);
        if (!s) {
            set_err(err, errlen, "error: --%s: out of memory", g->name);
            return -1;
        }
        free(g->s);
        g->s = s;
        return 0;
    }
    }
    return -1;
}

static int valid_name(const char *name) {
    if (!name || !*name || !isalnum((unsigned char)name[0])) return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') return 0;
    if (name_eq("help", name, (size_t)-1)) return 0;
    if (strncmp(name, "no-", 3) == 0 || strncmp(name, "no_", 3) == 0) return 0;
    return 1;
}

int tl_args_add(TlArgs *a, const char *name, TlArgKind kind, const char *def,
                const char *help, char *err, size_t errlen) {
    if (!valid_name(name)) {
        set_err(err, errlen, "error: arg '%s': not a valid flag name", name ? name : "");
        return -1;
    }
    if (find(a, name, (size_t)-1)) {
        set_err(err, errlen, "error: arg '%s' is registered twice", name);
        return -1;
    }
    if ((unsigned)kind > TL_ARG_PATH) {
        set_err(err, errlen, "error: arg '%s': unknown kind", name);
        return -1;
    }
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 16;
        Arg *na = realloc(a->args, (size_t)cap * sizeof *na);
        if (!na) {
            set_err(err, errlen, "error: arg '%s': out of memory", name);
            return -1;
        }
        a->args = na;
        a->cap = cap;
    }
    Arg g = {0};
    g.kind = kind;
    g.name = strdup(name);
    if (!def) def = kind == TL_ARG_INT ? "0" : kind == TL_ARG_FLOAT ? "0" :
                    kind == TL_ARG_BOOL ? "false" : "";
    g.def_text = strdup(def);
    g.help = dup_or_null(help);
    if (!g.name || !g.def_text || (help && !g.help)) {
        free(g.name); free(g.def_text); free(g.help);
        set_err(err, errlen, "error: arg '%s': out of memory", name);
        return -1;
    }
    /* A default is parsed by the same rules as the command line (an empty path is a
     * legal "no default"). */
    int rc = (kind == TL_ARG_PATH && !*def) ? ((g.s = strdup("")) ? 0 : -1)
                                            : parse_value(&g, def, err, errlen);
    if (rc) {
        set_err(err, errlen, "error: default of arg '%s' ('%s') is not a valid %s", name,
                def, kind_name(kind));
        free(g.name); free(g.def_text); free(g.help); free(g.s);
        return -1;
    }
    a->args[a->n++] = g;
    return 0;
}

int tl_args_set_range(TlArgs *a, const char *name, double lo, double hi, char *err,
                      size_t errlen) {
    Arg *g = find(a, name, (size_t)-1);
    if (!g || (g->kind != TL_ARG_INT && g->kind != TL_ARG_FLOAT) || !(lo <= hi)) {
        set_err(err, errlen, "error: arg '%s': a range needs an int or float arg and lo <= hi",
                name);
        return -1;
    }
    double v = g->kind == TL_ARG_INT ? (double)g->i : g->f;
    if (!(v >= lo && v <= hi)) {
        set_err(err, errlen, "error: default of arg '%s' (%s) is outside [%.17g, %.17g]", name,
                g->def_text, lo, hi);
        return -1;
    }
    g->has_range = 1;
    g->lo = lo;
    g->hi = hi;
    return 0;
}

/* Levenshtein distance with '-' == '_', capped work: names are short. */
static int edit_distance(const char *x, size_t nx, const char *y) {
    size_t ny = strlen(y);
    if (nx > 64 || ny > 64) return 1000;
    int d[65][65];
    for (size_t i = 0; i <= nx; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= ny; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= nx; i++)
        for (size_t j = 1; j <= ny; j++) {
            char cx = x[i - 1] == '_' ? '-' : x[i - 1], cy = y[j - 1] == '_' ? '-' : y[j - 1];
            int best = d[i - 1][j - 1] + (cx != cy);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            /* A swap of two neighbours counts as one edit (--setps). */
            if (i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[nx][ny];
}

static const char *suggest(const TlArgs *a, const char *s, size_t len) {
    const char *best = NULL;
    int bestd = 1000;
    for (int i = 0; i < a->n; i++) {
        int d = edit_distance(s, len, a->args[i].name);
        if (d < bestd) {
            bestd = d;
            best = a->args[i].name;
        }
    }
    if (!best) return NULL;
    size_t n = strlen(best);
    int limit = n <= 3 ? 1 : n <= 6 ? 2 : 3;
    /* A prefix of a registered name (--step for --steps) is a good guess too. */
    if (bestd <= limit) return best;
    for (int i = 0; i < a->n; i++)
        if (len >= 2 && strncmp(a->args[i].name, s, len) == 0) return a->args[i].name;
    return NULL;
}

static void unknown_flag(const TlArgs *a, const char *arg, const char *name, size_t len,
                         char *err, size_t errlen) {
    const char *s = suggest(a, name, len);
    if (!s && len > 3 && (strncmp(name, "no-", 3) == 0 || strncmp(name, "no_", 3) == 0))
        s = suggest(a, name + 3, len - 3);
    if (s)
        set_err(err, errlen, "error: unknown flag '%.*s' (did you mean --%s?)",
                (int)(strchr(arg, '=') ? (size_t)(strchr(arg, '=') - arg) : strlen(arg)), arg,
                s);
    else
        set_err(err, errlen, "error: unknown flag '%.*s' (see --help)",
                (int)(strchr(arg, '=') ? (size_t)(strchr(arg, '=') - arg) : strlen(arg)), arg);
}

int tl_args_parse(TlArgs *a, int argc, char **argv, FILE *help_out, char *err,
                  size_t errlen) {
    for (int i = 0; i < a->n; i++) a->args[i].set = 0;
    for (int k = 1; k < argc; k++) {
        const char *arg = argv[k];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            tl_args_usage(a, help_out ? help_out : stdout);
            return TL_ARGS_HELP;
        }
        if (strcmp(arg, "--") == 0) {
            if (k + 1 < argc) {
                set_err(err, errlen, "error: unexpected argument '%s' (this program takes "
                        "only --flags)", argv[k + 1]);
                return TL_ARGS_ERROR;
            }
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == 0) {
            if (arg[0] == '-' && arg[1] && arg[1] != '-')
                set_err(err, errlen, "error: unknown flag '%s' (flags are written --name)",
                        arg);
            else
                set_err(err, errlen, "error: unexpected argument '%s' (this program takes "
                        "only --flags)", arg);
            return TL_ARGS_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        Arg *g = find(a, name, len);
        if (!g && len > 3 && (strncmp(name, "no-", 3) == 0 || strncmp(name, "no_", 3) == 0)) {
            Arg *b = find(a, name + 3, len - 3);
            if (b && b->kind == TL_ARG_BOOL) {
                if (eq) {
                    set_err(err, errlen, "error: --%.*s takes no value (got '%s')", (int)len,
                            name, eq + 1);
                    return TL_ARGS_ERROR;
                }
                b->b = 0;
                b->set = 1;
                continue;
            }
            if (b) {
                set_err(err, errlen, "error: unknown flag '--%.*s': --%s is not a boolean",
                        (int)len, name, b->name);
                return TL_ARGS_ERROR;
            }
        }
        if (!g) {
            unknown_flag(a, arg, name, len, err, errlen);
            return TL_ARGS_ERROR;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (g->kind == TL_ARG_BOOL) {
            value = "true";
        } else if (k + 1 < argc) {
            value = argv[++k];
        } else {
            set_err(err, errlen, "error: --%s expects a value (%s)", g->name,
                    kind_name(g->kind));
            return TL_ARGS_ERROR;
        }
        if (parse_value(g, value, err, errlen)) return TL_ARGS_ERROR;
        g->set = 1;
    }
    return TL_ARGS_OK;
}

void tl_args_usage(const TlArgs *a, FILE *out) {
    fprintf(out, "usage: %s [options]\n", a->prog);
    if (a->summary) fprintf(out, "%s\n", a->summary);
    fprintf(out, "\noptions:\n");
    for (int i = 0; i < a->n; i++) {
        const Arg *g = &a->args[i];
        char left[160];
        if (g->kind == TL_ARG_BOOL)
            snprintf(left, sizeof left, "--[no-]%s", g->name);
        else
            snprintf(left, sizeof left, "--%s <%s>", g->name, kind_name(g->kind));
        fprintf(out, "  %-28s %s", left, g->help ? g->help : "");
        const char *sep = g->help && *g->help ? " " : "";
        if (g->kind == TL_ARG_STRING || g->kind == TL_ARG_PATH)
            fprintf(out, "%s(%s, default: \"%s\"", sep, kind_name(g->kind), g->def_text);
        else
            fprintf(out, "%s(%s, default: %s", sep, kind_name(g->kind), g->def_text);
        if (g->has_range) fprintf(out, ", range: %.17g..%.17g", g->lo, g->hi);
        fprintf(out, ")\n");
    }
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help and exit");
}

static const Arg *get(const TlArgs *a, const char *name) {
    return a ? find(a, name, (size_t)-1) : NULL;
}

int64_t tl_args_int(const TlArgs *a, const char *name) {
    const Arg *g = get(a, name);
    return g && g->kind == TL_ARG_INT ? g->i : 0;
}

double tl_args_float(const TlArgs *a, const char *name) {
    const Arg *g = get(a, name);
    if (!g) return 0.0;
    if (g->kind == TL_ARG_FLOAT) return g->f;
    if (g->kind == TL_ARG_INT) return (double)g->i;
    return 0.0;
}

const char *tl_args_string(const TlArgs *a, const char *name) {
    const Arg *g = get(a, name);
    return g && (g->kind == TL_ARG_STRING || g->kind == TL_ARG_PATH) ? g->s : NULL;
}

int tl_args_bool(const TlArgs *a, const char *name) {
    const Arg *g = get(a, name);
    return g && g->kind == TL_ARG_BOOL ? g->b : 0;
}

int tl_args_was_set(const TlArgs *a, const char *name) {
    const Arg *g = get(a, name);
    return g ? g->set : 0;
}

/* ---- iteration (for tools that re-emit a program's flags, e.g. tlc build) ---- */

int tl_args_count(const TlArgs *a) { return a ? a->n : 0; }
const char *tl_args_name_at(const TlArgs *a, int i) { return a && i >= 0 && i < a->n ? a->args[i].name : NULL; }
TlArgKind tl_args_kind_at(const TlArgs *a, int i) { return a && i >= 0 && i < a->n ? a->args[i].kind : TL_ARG_STRING; }

int tl_args_value_text(const TlArgs *a, int i, char *buf, size_t n) {
    if (!a || i < 0 || i >= a->n || !n) return -1;
    const Arg *g = &a->args[i];
    switch (g->kind) {
    case TL_ARG_INT: snprintf(buf, n, "%lld", (long long)g->i); break;
    case TL_ARG_FLOAT: snprintf(buf, n, "%.17g", g->f); break;
    case TL_ARG_BOOL: snprintf(buf, n, "%s", g->b ? "true" : "false"); break;
    default: snprintf(buf, n, "%s", g->s ? g->s : ""); break;
    }
    return 0;
}
