/* tune_space.c — a kernel's schedule as data (tune.h): the default point, checking and
 * applying a schedule to Loop IR, text and JSON forms, and the structural kernel hash. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tune.h"

const char *tl_sched_source_name(TlSchedSource s) {
    return s == TL_SCHED_CACHE ? "cache" : s == TL_SCHED_SOURCE ? "source" : "default";
}

static int kernel_loops(const TlLProgram *p, int k, int *loops) {
    return tl_loops_kernel_loops(p, k, loops, TL_KSCHED_MAX_LOOPS);
}

void tl_ksched_default(const TlLProgram *p, int k, TlKSched *s) {
    memset(s, 0, sizeof *s);
    int loops[TL_KSCHED_MAX_LOOPS];
    s->nloops = kernel_loops(p, k, loops);
    const TlLGemm *g = &p->kern[k].gemm;
    if (g->on)
        s->gemm = (TlKGemmSched){1, g->mr, g->nr, g->kc, g->mc, g->nc, g->ku, g->prefetch, g->nsplit > 1 ? g->nsplit : 1};
    s->gpu_block = p->kern[k].gpu_block;
}

static int norm_unroll(int u) { return u <= 1 ? 0 : u; }

int tl_ksched_equal(const TlKSched *a, const TlKSched *b) {
    if (a->serial != b->serial || a->gpu_block != b->gpu_block) return 0;
    int n = a->nloops > b->nloops ? a->nloops : b->nloops;
    for (int i = 0; i < n; i++) {
        TlKLoopSched x = i < a->nloops ? a->loop[i] : (TlKLoopSched){0, 0, 0};
        TlKLoopSched y = i < b->nloops ? b->loop[i] : (TlKLoopSched){0, 0, 0};
        if (x.vec != y.vec || norm_unroll(x.unroll) != norm_unroll(y.unroll) || x.tile != y.tile) return 0;
    }
    if (a->gemm.on != b->gemm.on) return 0;
    return !a->gemm.on || memcmp(&a->gemm, &b->gemm, sizeof a->gemm) == 0;
}

static int fail(char *err, int errn, const char *msg, int i) {
    if (err) snprintf(err, (size_t)errn, msg, i);
    return -1;
}

/* The GEMM generator's limits (targets/cpu/gemm.c: tl_cpu_gemm_supported) plus a bound on
 * its stack buffers (packed B: (kc+16) x nc floats; packed A: (kc+16) x mr), which live
 * on the stack of every pool thread. */
static int gemm_ok(const TlKGemmSched *g, TlDType dt) {
    if (!(g->mr >= 1 && g->mr <= 16 && g->nr >= 16 && g->nr <= 64 && g->nr % 16 == 0 &&
          g->mr * (g->nr / 16) <= 28 && g->kc >= 1 && g->nc >= g->nr && g->nc % g->nr == 0 &&
          g->mc >= g->mr && g->ku >= 1 && g->ku <= 16 && g->prefetch >= 0 && g->prefetch <= 64 &&
          g->nsplit >= 1 && g->nsplit <= 64))
        return 0;
    /* bf16 (gemm_bf16.c) packs k in pairs: half the words per k */
    int64_t kw = dt == TL_BF16 ? ((int64_t)g->kc + 1) / 2 + 8 : (int64_t)g->kc + 16;
    int64_t words = kw * g->nc + kw * g->mr;
    return words * 4 <= ((int64_t)3 << 20);
}

int tl_ksched_check(const TlLProgram *p, int k, const TlKSched *s, char *err, int errn) {
    if (k < 0 || k >= p->nkern) return fail(err, errn, "no kernel %d", k);
    const TlLKernel *K = &p->kern[k];
    int loops[TL_KSCHED_MAX_LOOPS];
    int n = kernel_loops(p, k, loops);
    if (s->nloops < 0 || s->nloops > n) return fail(err, errn, "the schedule names %d loops; the kernel has fewer", s->nloops);
    for (int i = 0; i < s->nloops; i++) {
        const TlKLoopSched *l = &s->loop[i];
        if (l->vec != 0 && l->vec != 1 && l->vec != 2 && l->vec != 4 && l->vec != 8 && l->vec != 16)
            return fail(err, errn, "loop %d: vector width must be 0, 2, 4, 8 or 16", i);
        if (l->unroll < 0 || l->unroll > 16) return fail(err, errn, "loop %d: unroll must be 0..16", i);
        if (l->tile < 0 || l->tile == 1 || l->tile > ((int64_t)1 << 40)) return fail(err, errn, "loop %d: bad tile size", i);
    }
    if (s->serial && (K->par_extent < 0 || K->gemm.on)) return fail(err, errn, "serial: kernel %d has no parallel loop to drop", k);
    if (s->gpu_block && (s->gpu_block < 32 || s->gpu_block > 256 || (s->gpu_block & (s->gpu_block - 1))))
        return fail(err, errn, "GPU block of kernel %d must be a power of two from 32 to 256", k);
    if (s->gemm.on) {
        if (!K->gemm.on) return fail(err, errn, "kernel %d is not a GEMM", k);
        if (!gemm_ok(&s->gemm, K->gemm.dtype)) return fail(err, errn, "GEMM blocking out of range for kernel %d", k);
    }
    return 0;
}

int tl_ksched_apply(TlLProgram *p, int k, const TlKSched *s, char *err, int errn) {
    if (tl_ksched_check(p, k, s, err, errn)) return -1;
    TlLKernel *K = &p->kern[k];
    int loops[TL_KSCHED_MAX_LOOPS];
    kernel_loops(p, k, loops);
    if (s->gemm.on) {
        TlLGemm *g = &K->gemm;
        int old_mr = g->mr, old_ns = g->nsplit;
        g->mr = s->gemm.mr, g->nr = s->gemm.nr, g->kc = s->gemm.kc, g->mc = s->gemm.mc;
        g->nc = s->gemm.nc, g->ku = s->gemm.ku, g->prefetch = s->gemm.prefetch, g->nsplit = s->gemm.nsplit;
        /* items are mr-row panels of every strip of every batch */
        if (g->mr != old_mr || g->nsplit != old_ns) g->par_extent = tl_loops_gemm_extent(p, g);
    }
    K->gpu_block = s->gpu_block;
    if (s->serial) {
        int all[TL_KSCHED_MAX_LOOPS];
        int n = kernel_loops(p, k, all);
        for (int i = 0; i < n; i++) p->st[all[i]].sched.parallel = 0;
        p->kern[k].par_extent = -1;
    }
    for (int i = 0; i < s->nloops; i++) {
        TlLSched *ls = &p->st[loops[i]].sched;
        if (s->loop[i].vec) ls->vectorize = s->loop[i].vec;
        if (s->loop[i].unroll > 1) ls->unroll = s->loop[i].unroll;
    }
    for (int i = 0; i < s->nloops; i++)
        if (s->loop[i].tile > 1 && tl_loops_tile(p, k, loops[i], s->loop[i].tile))
            return fail(err, errn, "cannot tile loop %d", i);
    return 0;
}

void tl_ksched_format(const TlKSched *s, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
#define PUT(...) do { if (o < n) o += (size_t)snprintf(buf + o, n - o, __VA_ARGS__); } while (0)
    if (s->serial) PUT("serial ");
    for (int i = 0; i < s->nloops; i++) {
        const TlKLoopSched *l = &s->loop[i];
        if (!l->vec && l->unroll <= 1 && !l->tile) continue;
        PUT("L%d:", i);
        const char *sep = "";
        if (l->tile) { PUT("%stile=%lld", sep, (long long)l->tile); sep = ","; }
        if (l->vec) { PUT("%svec=%d", sep, l->vec); sep = ","; }
        if (l->unroll > 1) PUT("%sunroll=%d", sep, l->unroll);
        PUT(" ");
    }
    if (s->gemm.on)
        PUT("gemm %dx%d mc=%d kc=%d nc=%d ku=%d pf=%d ", s->gemm.mr, s->gemm.nr, s->gemm.mc, s->gemm.kc,
            s->gemm.nc, s->gemm.ku, s->gemm.prefetch);
    if (s->gemm.on && s->gemm.nsplit > 1) PUT("nsplit=%d ", s->gemm.nsplit);
    if (s->gpu_block) PUT("gpu_block=%d ", s->gpu_block);
#undef PUT
    if (o > n - 1) o = n - 1;
    while (o > 0 && buf[o - 1] == ' ') buf[--o] = 0;
    if (!buf[0]) snprintf(buf, n, "default");
}

char *tl_ksched_to_json(const TlKSched *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "serial", s->serial);
    cJSON *loops = cJSON_AddArrayToObject(j, "loops");
    for (int i = 0; i < s->nloops; i++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "vec", s->loop[i].vec);
        cJSON_AddNumberToObject(l, "unroll", s->loop[i].unroll);
        cJSON_AddNumberToObject(l, "tile", (double)s->loop[i].tile);
        cJSON_AddItemToArray(loops, l);
    }
    if (s->gemm.on) {
        cJSON *g = cJSON_AddObjectToObject(j, "gemm");
        cJSON_AddNumberToObject(g, "mr", s->gemm.mr);
        cJSON_AddNumberToObject(g, "nr", s->gemm.nr);
        cJSON_AddNumberToObject(g, "mc", s->gemm.mc);
        cJSON_AddNumberToObject(g, "kc", s->gemm.kc);
        cJSON_AddNumberToObject(g, "nc", s->gemm.nc);
        cJSON_AddNumberToObject(g, "ku", s->gemm.ku);
        cJSON_AddNumberToObject(g, "prefetch", s->gemm.prefetch);
        cJSON_AddNumberToObject(g, "nsplit", s->gemm.nsplit);
    }
    if (s->gpu_block) cJSON_AddNumberToObject(j, "gpu_block", s->gpu_block);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

/* An integer member of o in [lo, hi]; -1 when missing or not such a number. */
static int get_int(const cJSON *o, const char *name, double lo, double hi, int64_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(x) || x->valuedouble < lo || x->valuedouble > hi || x->valuedouble != (double)(int64_t)x->valuedouble)
        return -1;
    *v = (int64_t)x->valuedouble;
    return 0;
}

static int sched_from_cjson(const cJSON *j, TlKSched *s) {
    memset(s, 0, sizeof *s);
    int64_t v;
    if (!cJSON_IsObject(j) || get_int(j, "serial", 0, 1, &v)) return -1;
    s->serial = (int)v;
    const cJSON *loops = cJSON_GetObjectItemCaseSensitive(j, "loops");
    if (!cJSON_IsArray(loops) || cJSON_GetArraySize(loops) > TL_KSCHED_MAX_LOOPS) return -1;
    const cJSON *l;
    cJSON_ArrayForEach(l, loops) {
        TlKLoopSched *ls = &s->loop[s->nloops++];
        if (get_int(l, "vec", 0, 64, &v)) return -1;
        ls->vec = (int)v;
        if (get_int(l, "unroll", 0, 64, &v)) return -1;
        ls->unroll = (int)v;
        if (get_int(l, "tile", 0, 1e12, &ls->tile)) return -1;
    }
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "gemm");
    if (g) {
        static const char *names[] = {"mr", "nr", "mc", "kc", "nc", "ku", "prefetch"};
        int *dst[] = {&s->gemm.mr, &s->gemm.nr, &s->gemm.mc, &s->gemm.kc, &s->gemm.nc, &s->gemm.ku, &s->gemm.prefetch};
        for (int i = 0; i < 7; i++) {
            if (get_int(g, names[i], 0, 1 << 20, &v)) return -1;
            *dst[i] = (int)v;
        }
        /* caches written before the column strips: one strip, as they were measured */
        s->gemm.nsplit = 1;
        if (cJSON_GetObjectItemCaseSensitive(g, "nsplit")) {
            if (get_int(g, "nsplit", 1, 64, &v)) return -1;
            s->gemm.nsplit = (int)v;
        }
        s->gemm.on = 1;
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "gpu_block")) {
        if (get_int(j, "gpu_block", 0, 1024, &v)) return -1;
        s->gpu_block = (int)v;
    }
    return 0;
}

int tl_ksched_from_json(const char *text, TlKSched *s) {
    cJSON *j = cJSON_Parse(text);
    int r = j ? sched_from_cjson(j, s) : -1;
    cJSON_Delete(j);
    return r;
}

/* cJSON object -> schedule, for schedule_cache.c */
int tl_ksched_from_cjson(const void *j, TlKSched *s);
int tl_ksched_from_cjson(const void *j, TlKSched *s) { return sched_from_cjson((const cJSON *)j, s); }

/* ---- the structural hash ---- */

typedef struct Hasher {
    const TlLProgram *p;
    uint64_t h;
    int *var, *local, *buf, *sym; /* first-use numbering, -1 = not seen */
    int nvar, nlocal, nbuf, nsym;
    int *symorder;                /* sym ids in first-use order */
} Hasher;

static void mix(Hasher *H, uint64_t v) {
    H->h ^= v + 0x9e3779b97f4a7c15ull + (H->h << 6) + (H->h >> 2);
    H->h *= 0xff51afd7ed558ccdull;
    H->h ^= H->h >> 33;
}

static void hash_expr(Hasher *H, int e);

static int number(int *map, int *count, int id) {
    if (map[id] < 0) map[id] = (*count)++;
    return map[id];
}

static void hash_sym(Hasher *H, int s) {
    if (H->sym[s] < 0) H->symorder[H->nsym] = s;
    mix(H, 0x5000 + (uint64_t)number(H->sym, &H->nsym, s));
}

static void hash_buf(Hasher *H, int b) {
    int first = H->buf[b] < 0;
    mix(H, 0x6000 + (uint64_t)number(H->buf, &H->nbuf, b));
    if (first) {
        const TlLBuf *B = &H->p->buf[b];
        mix(H, (uint64_t)B->elem * 131 + (uint64_t)B->dtype);
        hash_expr(H, B->numel);
    }
}

static void hash_expr(Hasher *H, int e) {
    if (e < 0) { mix(H, 0xdead); return; }
    const TlLExpr *x = &H->p->ex[e];
    mix(H, (uint64_t)x->kind << 16 | (uint64_t)x->type << 8 | (uint64_t)x->op);
    switch (x->kind) {
    case TL_LE_INT: mix(H, (uint64_t)x->ival); break;
    case TL_LE_FLT: { uint64_t b; memcpy(&b, &x->fval, 8); mix(H, b); break; }
    case TL_LE_VAR: mix(H, (uint64_t)number(H->var, &H->nvar, x->var)); break;
    case TL_LE_SYM: hash_sym(H, x->sym); break;
    case TL_LE_LOCAL: mix(H, (uint64_t)number(H->local, &H->nlocal, x->var)); break;
    case TL_LE_LOAD: hash_buf(H, x->buf); hash_expr(H, x->a); break;
    case TL_LE_ROUND: mix(H, (uint64_t)x->dtype); hash_expr(H, x->a); break;
    case TL_LE_RANDOM: mix(H, (uint64_t)x->dist), mix(H, x->offset); hash_expr(H, x->a), hash_expr(H, x->b); break;
    default:
        hash_expr(H, x->a);
        if (x->kind == TL_LE_BIN || x->kind == TL_LE_SELECT) hash_expr(H, x->b);
        if (x->kind == TL_LE_SELECT) hash_expr(H, x->c);
        break;
    }
}

static void hash_stmts(Hasher *H, int s) {
    for (; s >= 0; s = H->p->st[s].next) {
        const TlLStmt *t = &H->p->st[s];
        mix(H, 0x7000 + (uint64_t)t->kind);
        switch (t->kind) {
        case TL_LS_LOOP:
            mix(H, (uint64_t)number(H->var, &H->nvar, t->var) << 1 | (uint64_t)(t->sched.parallel != 0));
            hash_expr(H, t->lo), hash_expr(H, t->hi);
            hash_stmts(H, t->body);
            break;
        case TL_LS_STORE: hash_buf(H, t->buf); hash_expr(H, t->index), hash_expr(H, t->value); break;
        case TL_LS_SET: mix(H, (uint64_t)number(H->local, &H->nlocal, t->var)); hash_expr(H, t->value); break;
        case TL_LS_IF: hash_expr(H, t->cond); hash_stmts(H, t->body); mix(H, 0xe15e); hash_stmts(H, t->els); break;
        }
        mix(H, 0x7fff);
    }
}

static Hasher hasher_new(const TlLProgram *p) {
    Hasher H = {p, 0x243f6a8885a308d3ull, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL};
    int nloc = 1;
    for (int k = 0; k < p->nkern; k++) if (p->kern[k].nlocals > nloc) nloc = p->kern[k].nlocals;
    H.var = malloc(sizeof(int) * (size_t)(p->nvars + 1));
    H.local = malloc(sizeof(int) * (size_t)nloc);
    H.buf = malloc(sizeof(int) * (size_t)(p->nbuf + 1));
    H.sym = malloc(sizeof(int) * (size_t)(p->nsyms + 1));
    H.symorder = malloc(sizeof(int) * (size_t)(p->nsyms + 1));
    if (!H.var || !H.local || !H.buf || !H.sym || !H.symorder) abort();
    memset(H.var, -1, sizeof(int) * (size_t)(p->nvars + 1));
    memset(H.local, -1, sizeof(int) * (size_t)nloc);
    memset(H.buf, -1, sizeof(int) * (size_t)(p->nbuf + 1));
    memset(H.sym, -1, sizeof(int) * (size_t)(p->nsyms + 1));
    return H;
}

static void hasher_free(Hasher *H) { free(H->var), free(H->local), free(H->buf), free(H->sym), free(H->symorder); }

static void hash_kernel(Hasher *H, int k) {
    const TlLKernel *K = &H->p->kern[k];
    for (int i = 0; i < K->nlocals; i++) mix(H, (uint64_t)K->local_type[i]);
    hash_stmts(H, K->body);
    mix(H, K->par_extent >= 0);
    const TlLGemm *g = &K->gemm;
    mix(H, (uint64_t)g->on);
    if (g->on) {
        hash_buf(H, g->a), hash_buf(H, g->b), hash_buf(H, g->c);
        const int ex[] = {g->batch, g->m, g->n, g->k, g->sa_b, g->sa_m, g->sa_k, g->sb_b, g->sb_k, g->sb_n, g->sc_b, g->sc_m};
        for (int i = 0; i < 12; i++) hash_expr(H, ex[i]);
    }
}

uint64_t tl_kernel_hash(const TlLProgram *p, int k) {
    Hasher H = hasher_new(p);
    hash_kernel(&H, k);
    uint64_t h = H.h;
    hasher_free(&H);
    return h;
}

void tl_kernel_shape_key(const TlLProgram *p, int k, const int64_t *syms, char *buf, size_t n) {
    Hasher H = hasher_new(p);
    hash_kernel(&H, k);
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < H.nsym && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "," : "", syms ? (long long)syms[H.symorder[i]] : -1LL);
    hasher_free(&H);
}

/* ---- which kernels can be measured alone ---- */

static int host_top(const TlLProgram *p, int h, int k, int depth, int *inloop) {
    int found = 0;
    for (; h >= 0; h = p->host[h].next) {
        const TlLHost *o = &p->host[h];
        if (o->kind == TL_LH_KERNEL && o->kernel == k) {
            found = 1;
            if (depth) *inloop = 1;
        }
        if (o->kind == TL_LH_LOOP) found |= host_top(p, o->body, k, depth + 1, inloop);
    }
    return found;
}

static int bufs_ok(const TlLProgram *p, int b) {
    const TlLBuf *B = &p->buf[b];
    return B->depth == 0 && B->kind != TL_LB_STATE && B->kind != TL_LB_ALIAS;
}

static int exprs_ok(const TlLProgram *p, int e) {
    if (e < 0) return 1;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOAD && !bufs_ok(p, x->buf)) return 0;
    return exprs_ok(p, x->a) && exprs_ok(p, x->b) && exprs_ok(p, x->c);
}

static int stmts_ok(const TlLProgram *p, int s) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE) {
            const TlLBuf *B = &p->buf[t->buf];
            if (!bufs_ok(p, t->buf) || B->node < 0 || !p->node_buf || p->node_buf[B->node] != t->buf) return 0;
            if (!exprs_ok(p, t->index) || !exprs_ok(p, t->value)) return 0;
        }
        if (t->kind == TL_LS_SET && !exprs_ok(p, t->value)) return 0;
        if (t->kind == TL_LS_LOOP && (!exprs_ok(p, t->lo) || !exprs_ok(p, t->hi))) return 0;
        if (t->kind == TL_LS_IF && !exprs_ok(p, t->cond)) return 0;
        if (!stmts_ok(p, t->body) || !stmts_ok(p, t->els)) return 0;
    }
    return 1;
}

int tl_kernel_tunable(const TlLProgram *p, int k) {
    int inloop = 0;
    if (!host_top(p, p->entry, k, 0, &inloop) || inloop) return 0;
    return stmts_ok(p, p->kern[k].body);
}
