/* loops_print.c — the text form of Loop IR (--emit=loops); see docs/loops.md. */
#include <stdlib.h>

#include "loops.h"

static const char *op_name[TL_LOP_COUNT] = {
    "neg", "exp", "log", "sqrt", "rsqrt", "tanh", "erf", "sin", "cos", "abs",
    "+", "-", "*", "/", "pow", "max", "min", "/", "%", "&&", "||",
    "==", "!=", "<", "<=", ">", ">=",
};

static const char *buf_kind[] = {"temp", "input", "param", "const", "alias", "state"};

static int is_call(TlLOp op) { return op <= TL_LOP_ABS || op == TL_LOP_POW || op == TL_LOP_MAX || op == TL_LOP_MIN; }

void tl_loops_print_expr(FILE *f, const TlLProgram *p, int e) {
    const TlLExpr *x = &p->ex[e];
    switch (x->kind) {
    case TL_LE_INT: fprintf(f, "%lld", (long long)x->ival); break;
    case TL_LE_FLT: fprintf(f, "%.9g%s", x->fval, x->type == TL_LT_F32 ? "f" : ""); break;
    case TL_LE_VAR: fprintf(f, "i%d", x->var); break;
    case TL_LE_SYM: fprintf(f, "%s", p->syms[x->sym]); break;
    case TL_LE_LOCAL: fprintf(f, "acc%d", x->var); break;
    case TL_LE_LOAD:
        fprintf(f, "b%d[", x->buf);
        tl_loops_print_expr(f, p, x->a);
        fputc(']', f);
        break;
    case TL_LE_UN:
        fprintf(f, "%s(", op_name[x->op]);
        tl_loops_print_expr(f, p, x->a);
        fputc(')', f);
        break;
    case TL_LE_BIN:
        if (is_call(x->op)) {
            fprintf(f, "%s(", op_name[x->op]);
            tl_loops_print_expr(f, p, x->a);
            fputs(", ", f);
            tl_loops_print_expr(f, p, x->b);
            fputc(')', f);
        } else {
            fputc('(', f);
            tl_loops_print_expr(f, p, x->a);
            fprintf(f, " %s ", op_name[x->op]);
            tl_loops_print_expr(f, p, x->b);
            fputc(')', f);
        }
        break;
    case TL_LE_SELECT:
        fputs("select(", f);
        tl_loops_print_expr(f, p, x->a);
        fputs(", ", f);
        tl_loops_print_expr(f, p, x->b);
        fputs(", ", f);
        tl_loops_print_expr(f, p, x->c);
        fputc(')', f);
        break;
    case TL_LE_CAST:
        fprintf(f, "%s(", tl_ltype_name(x->type));
        tl_loops_print_expr(f, p, x->a);
        fputc(')', f);
        break;
    case TL_LE_ROUND:
        fprintf(f, "round_%s(", tl_dtype_name(x->dtype));
        tl_loops_print_expr(f, p, x->a);
        fputc(')', f);
        break;
    case TL_LE_RANDOM:
        fprintf(f, "philox_%s(seed=", x->dist == TL_RANDOM_NORMAL ? "normal" : "uniform");
        tl_loops_print_expr(f, p, x->b);
        fprintf(f, ", offset=%llu, ", (unsigned long long)x->offset);
        tl_loops_print_expr(f, p, x->a);
        fputc(')', f);
        break;
    }
}

static void indent(FILE *f, int d) { fprintf(f, "%*s", 2 * d, ""); }

static void print_stmts(FILE *f, const TlLProgram *p, int s, int d) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        indent(f, d);
        switch (t->kind) {
        case TL_LS_LOOP:
            fprintf(f, "%sfor i%d in [", t->sched.parallel ? "parallel " : "", t->var);
            tl_loops_print_expr(f, p, t->lo);
            fputs(", ", f);
            tl_loops_print_expr(f, p, t->hi);
            fputs(")", f);
            if (t->sched.vectorize == 1) fputs(" vectorize", f);
            if (t->sched.vectorize > 1) fprintf(f, " vectorize(%d)", t->sched.vectorize);
            if (t->sched.vectorize > 1 && t->sched.interleave > 0) fprintf(f, " interleave(%d)", t->sched.interleave);
            if (t->sched.unroll > 1) fprintf(f, " unroll(%d)", t->sched.unroll);
            if (t->sched.tile) fprintf(f, " tile(%lld)", (long long)t->sched.tile);
            if (t->sched.gpu) /* for the NVPTX back end only (TlLKernel.gpu_sched) */
                fputs(t->sched.gpu == TL_LGPU_BLOCKS ? " gpu:blocks" : t->sched.gpu == TL_LGPU_THREADS ? " gpu:threads" : " gpu:threads(reduce)", f);
            fputs(" {\n", f);
            print_stmts(f, p, t->body, d + 1);
            indent(f, d);
            fputs("}\n", f);
            break;
        case TL_LS_STORE:
            fprintf(f, "b%d[", t->buf);
            tl_loops_print_expr(f, p, t->index);
            fputs("] = ", f);
            tl_loops_print_expr(f, p, t->value);
            fputc('\n', f);
            break;
        case TL_LS_SET:
            fprintf(f, "acc%d = ", t->var);
            tl_loops_print_expr(f, p, t->value);
            fputc('\n', f);
            break;
        case TL_LS_IF:
            fputs("if ", f);
            tl_loops_print_expr(f, p, t->cond);
            fputs(" {\n", f);
            print_stmts(f, p, t->body, d + 1);
            if (t->els >= 0) {
                indent(f, d);
                fputs("} else {\n", f);
                print_stmts(f, p, t->els, d + 1);
            }
            indent(f, d);
            fputs("}\n", f);
            break;
        }
    }
}

static void print_host(FILE *f, const TlLProgram *p, int h, int d) {
    for (; h >= 0; h = p->host[h].next) {
        const TlLHost *o = &p->host[h];
        indent(f, d);
        switch (o->kind) {
        case TL_LH_KERNEL:
            fprintf(f, "run %s", p->kern[o->kernel].name);
            if (p->kern[o->kernel].par_extent >= 0) {
                fputs(" over ", f);
                tl_loops_print_expr(f, p, p->kern[o->kernel].par_extent);
            }
            fputc('\n', f);
            break;
        case TL_LH_COPY:
            fprintf(f, "copy b%d+", o->dst);
            tl_loops_print_expr(f, p, o->dst_off);
            fprintf(f, " <- b%d+", o->src);
            tl_loops_print_expr(f, p, o->src_off);
            fputs(", bytes ", f);
            tl_loops_print_expr(f, p, o->nbytes);
            fputc('\n', f);
            break;
        case TL_LH_ALIAS:
            fprintf(f, "alias b%d = b%d+", o->dst, o->src);
            tl_loops_print_expr(f, p, o->src_off);
            fputc('\n', f);
            break;
        case TL_LH_LOOP:
            fprintf(f, "loop i%d in [0, ", o->var);
            tl_loops_print_expr(f, p, o->count);
            fprintf(f, ")%s {\n", o->reverse ? " reverse" : "");
            print_host(f, p, o->body, d + 1);
            indent(f, d);
            fputs("}\n", f);
            break;
        }
    }
}

/* "gemm C=b2 A=b0 B=b1 batch 1 m M n N k K strides ... block 14x32 kc 288 mc .. nc .." */
static void print_gemm(FILE *f, const TlLProgram *p, const TlLGemm *g) {
    fprintf(f, "  gemm b%d[b, i, j] = sum(k) b%d[b, i, k] * b%d[b, k, j]:", g->c, g->a, g->b);
    if (g->dtype != TL_F32) fprintf(f, " %s operands, f32 accumulation, %s result;", tl_dtype_name(g->dtype), tl_dtype_name(g->dtype));
    const char *nm[] = {"batch", "m", "n", "k", "A strides", "", "", "B strides", "", "", "C strides", ""};
    int e[] = {g->batch, g->m, g->n, g->k, g->sa_b, g->sa_m, g->sa_k, g->sb_b, g->sb_k, g->sb_n, g->sc_b, g->sc_m};
    for (int i = 0; i < 12; i++) {
        fprintf(f, nm[i][0] ? " %s " : ",", nm[i]);
        tl_loops_print_expr(f, p, e[i]);
    }
    fprintf(f, "\n  gemm schedule: block %dx%d kc %d mc %d nc %d unroll %d prefetch %d nsplit %d\n", g->mr, g->nr, g->kc, g->mc,
            g->nc, g->ku, g->prefetch, g->nsplit);
    if (g->has_epi) {
        fprintf(f, "  gemm epilogue: b%d[b, i, j] = ", g->c);
        tl_loops_print_expr(f, p, g->epi);
        fprintf(f, "  (acc = l%d, b = v%d, i = v%d, j = v%d)\n", g->epi_acc, g->ev_b, g->ev_i, g->ev_j);
    }
}

static void print_buf(FILE *f, const TlLProgram *p, int i) {
    const TlLBuf *b = &p->buf[i];
    fprintf(f, "b%d %s %s[", i, buf_kind[b->kind], tl_dtype_name(b->dtype));
    tl_loops_print_expr(f, p, b->numel);
    fputc(']', f);
    if (b->node >= 0) fprintf(f, "  %s%%%d", b->depth ? "body " : "", b->node);
    if (b->name) fprintf(f, " \"%s\"", b->name);
    fputc('\n', f);
}

static void print_kernel(FILE *f, const TlLProgram *p, int k) {
    const TlLKernel *kn = &p->kern[k];
    fprintf(f, "\nkernel %s", kn->name);
    if (kn->node >= 0) fprintf(f, "  # %%%d", kn->node);
    fputs(" {\n", f);
    if (kn->sched) fprintf(f, "  # schedule from the source: %s\n", kn->sched_text);
    if (kn->sched_gpu[0]) fprintf(f, "  # on the GPU (--target=cuda): %s\n", kn->sched_gpu);
    for (int l = 0; l < kn->nlocals; l++) fprintf(f, "  local acc%d: %s\n", l, tl_ltype_name(kn->local_type[l]));
    if (kn->gemm.on) print_gemm(f, p, &kn->gemm);
    print_stmts(f, p, kn->body, 1);
    fputs("}\n", f);
}

/* marks the buffers expression e and statements s touch */
static void mark_expr(const TlLProgram *p, int e, char *used) {
    if (e < 0) return;
    const TlLExpr *x = &p->ex[e];
    if (x->kind == TL_LE_LOAD) used[x->buf] = 1;
    mark_expr(p, x->a, used), mark_expr(p, x->b, used), mark_expr(p, x->c, used);
}

static void mark_stmts(const TlLProgram *p, int s, char *used) {
    for (; s >= 0; s = p->st[s].next) {
        const TlLStmt *t = &p->st[s];
        if (t->kind == TL_LS_STORE) used[t->buf] = 1;
        mark_expr(p, t->index, used), mark_expr(p, t->value, used), mark_expr(p, t->cond, used);
        mark_expr(p, t->lo, used), mark_expr(p, t->hi, used);
        mark_stmts(p, t->body, used), mark_stmts(p, t->els, used);
    }
}

void tl_loops_print_kernel(FILE *f, const TlLProgram *p, int k) {
    char *used = calloc((size_t)p->nbuf + 1, 1);
    if (!used) abort();
    mark_stmts(p, p->kern[k].body, used);
    const TlLGemm *g = &p->kern[k].gemm;
    if (g->on) used[g->a] = used[g->b] = used[g->c] = 1;
    fputs("# buffers\n", f);
    for (int i = 0; i < p->nbuf; i++)
        if (used[i]) print_buf(f, p, i);
    free(used);
    print_kernel(f, p, k);
}

void tl_loops_print(FILE *f, const TlLProgram *p) {
    fputs("# buffers\n", f);
    for (int i = 0; i < p->nbuf; i++) print_buf(f, p, i);
    for (int k = 0; k < p->nkern; k++) print_kernel(f, p, k);
    fputs("\nhost {\n", f);
    print_host(f, p, p->entry, 1);
    fputs("}\n", f);
}
