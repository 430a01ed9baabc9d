/* test_loops.c — Loop IR: the lowering's structure (kernels, buffers, schedules, host
 * program), the printer (--emit=loops), evaluation of size expressions, and tiling.
 * Values are checked by test_cpu_diff (compiled vs interpreter). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "graph.h"
#include "loops.h"

static const TlLoc L = {0, 1, 1, 0, 0};

static char *print_program(const TlLProgram *p) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    tl_loops_print(f, p);
    fclose(f);
    return buf;
}

TEST(elementwise_and_reduction_kernels) {
    TlGraph *g = tl_graph_new();
    TlGDim d[2] = {tl_gdim_sym(g, "B"), tl_gdim_const(g, 8)};
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(2, d), L);
    int s = tl_g_sum(g, tl_g_exp(g, x, L), 2, 0, L);
    tl_graph_add_output(g, s);
    char err[256];
    TlLoopsOptions unfused = {0}; /* one kernel per op (fusion is tested by test_fuse) */
    TlLProgram *p = tl_loops_lower_opts(g, &unfused, err, sizeof err);
    EXPECTF(p != NULL, "%s", err);
    if (!p) return;
    EXPECT(p->nkern == 2);
    EXPECT(p->nsyms == 1 && strcmp(p->syms[0], "B") == 0);
    int64_t syms[1] = {3};
    EXPECT(tl_loops_eval(p, p->buf[p->node_buf[x]].numel, syms) == 24);
    EXPECT(p->buf[p->node_buf[x]].kind == TL_LB_INPUT);
    EXPECT(p->kern[1].nlocals == 1 && p->kern[1].local_type[0] == TL_LT_F64); /* f64 accumulator */
    int loops[8];
    EXPECT(tl_loops_kernel_loops(p, 0, loops, 8) == 2);
    EXPECT(p->st[loops[0]].sched.parallel && p->st[loops[1]].sched.vectorize);
    EXPECT(tl_loops_eval(p, p->kern[0].par_extent, syms) == 3);
    char *text = print_program(p);
    EXPECTF(strstr(text, "parallel for") && strstr(text, "exp(") && strstr(text, "run tl_k0_exp over B"), "%s", text);
    free(text);
    /* tiling the parallel loop keeps it parallel and changes the extent to the tile count */
    EXPECT(tl_loops_tile(p, 0, loops[0], 2) == 0);
    EXPECT(tl_loops_eval(p, p->kern[0].par_extent, syms) == 2);
    EXPECT(tl_loops_kernel_loops(p, 0, loops, 8) == 3);
    EXPECT(p->st[loops[0]].sched.tile == 2 && p->st[loops[0]].sched.parallel);
    EXPECT(tl_loops_tile(p, 1, loops[0], 2) == -1); /* a loop of another kernel */
    tl_loops_free(p);
    tl_graph_free(g);
}

TEST(scan_becomes_a_host_loop) {
    TlGraph *g = tl_graph_new();
    int h0 = tl_g_input(g, "h0", TL_F32, tl_gshape_make(g, 1, (int64_t[]){4}), L);
    TlGDim d[2] = {tl_gdim_sym(g, "T"), tl_gdim_const(g, 4)};
    int xs = tl_g_input(g, "xs", TL_F32, tl_gshape_dims(2, d), L);
    TlGraph *b = tl_graph_new_body(g);
    int h = tl_g_input(b, "h", TL_F32, tl_gshape_make(b, 1, (int64_t[]){4}), L);
    int x = tl_g_input(b, "x", TL_F32, tl_gshape_make(b, 1, (int64_t[]){4}), L);
    tl_graph_add_output(b, tl_g_tanh(b, tl_g_add(b, h, x, L), L));
    int res[1];
    tl_g_scan(g, b, 1, &h0, 1, &xs, 0, NULL, 1, res, L);
    tl_graph_add_output(g, res[0]);
    char err[256];
    TlLProgram *p = tl_loops_lower(g, err, sizeof err);
    EXPECTF(p != NULL, "%s", err);
    if (!p) return;
    int nloop = 0, nalias = 0;
    for (int i = 0; i < p->nhost; i++) {
        nloop += p->host[i].kind == TL_LH_LOOP && p->host[i].reverse;
        nalias += p->host[i].kind == TL_LH_ALIAS;
    }
    EXPECT(nloop == 1 && nalias == 1);
    char *text = print_program(p);
    EXPECTF(strstr(text, "loop i") && strstr(text, "reverse") && strstr(text, "alias b"), "%s", text);
    free(text);
    tl_loops_free(p);
    tl_graph_free(g);
}

TEST(every_op_lowers) {
    /* one graph touching each op family; the lowering must not refuse any */
    TlGraph *g = tl_graph_new();
    int a = tl_g_input(g, "a", TL_F32, tl_gshape_make(g, 2, (int64_t[]){3, 4}), L);
    int i = tl_g_input(g, "i", TL_I32, tl_gshape_make(g, 1, (int64_t[]){2}), L);
    int v = tl_g_contract(g, "ij,kj->ik", a, a, L);
    v = tl_g_pad(g, v, (TlGDim[]){tl_gdim_const(g, 1), tl_gdim_const(g, 0)}, (TlGDim[]){tl_gdim_const(g, 0), tl_gdim_const(g, 1)}, (int64_t[]){1, 0}, 0, L);
    v = tl_g_gather(g, v, i, 0, L);
    v = tl_g_scatter_add(g, v, i, 0, tl_gdim_const(g, 3), L);
    int c[2] = {v, tl_g_iota(g, TL_F32, g->nodes[v].shape, 1, L)};
    v = tl_g_concat(g, 2, c, 1, L);
    v = tl_g_add(g, v, tl_g_random(g, TL_RANDOM_NORMAL, -1, 1, 2, TL_F32, g->nodes[v].shape, L), L);
    v = tl_g_reduce(g, TL_GOP_RMAX, tl_g_permute(g, v, (int[]){1, 0}, L), 1, 1, L);
    tl_graph_add_output(g, tl_g_cast(g, tl_g_slice_axis(g, v, 1, tl_gdim_const(g, 0), tl_gdim_const(g, 3), 2, L), TL_BF16, L));
    EXPECTF(!tl_graph_error(g), "%s", tl_graph_error(g));
    char err[256];
    TlLProgram *p = tl_loops_lower(g, err, sizeof err);
    EXPECTF(p != NULL, "%s", err);
    tl_loops_free(p);
    tl_graph_free(g);
}

int main(void) {
    RUN(elementwise_and_reduction_kernels);
    RUN(scan_becomes_a_host_loop);
    RUN(every_op_lowers);
    return check_done();
}
