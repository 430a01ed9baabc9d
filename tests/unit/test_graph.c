/* test_graph.c — Graph IR builder: shape inference, symbolic dims, errors, printing, dot. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "graph.h"
#include "source.h"

static const TlLoc L0 = {0, 0, 0, 0, 0};

static int dim_is(TlGraph *g, TlGDim d, const char *want) {
    char buf[128];
    tl_gdim_str(g, d, buf, sizeof buf);
    if (strcmp(buf, want) == 0) return 1;
    printf("    dim prints as \"%s\", expected \"%s\"\n", buf, want);
    return 0;
}

static int shape_is(TlGraph *g, int node, const char *want) {
    char buf[256];
    if (node < 0) {
        printf("    node is -1: %s\n", tl_graph_error(g) ? tl_graph_error(g) : "");
        return 0;
    }
    tl_gshape_str(g, g->nodes[node].dtype, g->nodes[node].shape, buf, sizeof buf);
    if (strcmp(buf, want) == 0) return 1;
    printf("    shape is \"%s\", expected \"%s\"\n", buf, want);
    return 0;
}

TEST(dims_hash_consed) {
    TlGraph *g = tl_graph_new();
    TlGDim B = tl_gdim_sym(g, "B"), T = tl_gdim_sym(g, "T"), C = tl_gdim_sym(g, "C");
    TlGDim k256 = tl_gdim_const(g, 256);
    EXPECT(tl_gdim_sym(g, "B") == B);
    EXPECT(tl_gdim_const(g, 256) == k256);
    TlGDim a = tl_gdim_mul(g, tl_gdim_mul(g, B, T), k256);
    TlGDim b = tl_gdim_mul(g, B, tl_gdim_mul(g, T, k256));
    TlGDim c = tl_gdim_mul(g, k256, tl_gdim_mul(g, T, B));
    EXPECT(a == b && b == c);
    EXPECT(tl_gdim_add(g, B, tl_gdim_const(g, 0)) == B);
    EXPECT(tl_gdim_mul(g, B, tl_gdim_const(g, 1)) == B);
    EXPECT(tl_gdim_add(g, tl_gdim_sub(g, C, T), T) == C);                    /* (C - T) + T */
    EXPECT(tl_gdim_div(g, tl_gdim_mul(g, tl_gdim_const(g, 2), B), tl_gdim_const(g, 2)) == B);
    EXPECT(tl_gdim_add(g, T, T) == tl_gdim_mul(g, tl_gdim_const(g, 2), T));    /* T + T = 2*T */
    EXPECT(tl_gdim_mul(g, tl_gdim_const(g, 3), tl_gdim_const(g, 4)) == tl_gdim_const(g, 12));
    EXPECT(tl_gdim_div(g, tl_gdim_const(g, 7), tl_gdim_const(g, 2)) == tl_gdim_const(g, 3));
    EXPECT(tl_gdim_div(g, tl_gdim_const(g, -7), tl_gdim_const(g, 2)) == tl_gdim_const(g, -4)); /* floor */
    /* distributivity: B*(T+1) == B*T + B */
    EXPECT(tl_gdim_mul(g, B, tl_gdim_add(g, T, tl_gdim_const(g, 1))) == tl_gdim_add(g, tl_gdim_mul(g, B, T), B));
    EXPECT(a != tl_gdim_mul(g, B, T));
    int64_t v;
    EXPECT(tl_gdim_is_const(g, tl_gdim_sub(g, B, B), &v) && v == 0);
    EXPECT(!tl_gdim_is_const(g, B, NULL));
    EXPECT(dim_is(g, a, "B*T*256") || dim_is(g, a, "256*B*T"));
    EXPECT(dim_is(g, tl_gdim_sub(g, C, T), "C - T"));
    EXPECT(dim_is(g, tl_gdim_add(g, T, tl_gdim_const(g, 1)), "T + 1"));
    EXPECT(dim_is(g, tl_gdim_div(g, tl_gdim_add(g, T, tl_gdim_const(g, 1)), tl_gdim_const(g, 2)), "(T + 1)/2"));
    TlGDimBinding bind[2] = {{"B", 4}, {"T", 7}};
    EXPECT(tl_gdim_eval(g, a, bind, 2, &v) == 0 && v == 4 * 7 * 256);
    EXPECT(tl_gdim_eval(g, C, bind, 2, &v) == -1); /* unbound */
    EXPECT(tl_gdim_eval(g, tl_gdim_div(g, tl_gdim_add(g, T, tl_gdim_const(g, 1)), tl_gdim_const(g, 2)), bind, 2, &v) == 0 && v == 4);
    tl_graph_free(g);
}

TEST(builder_shapes) {
    TlGraph *g = tl_graph_new();
    TlGDim B = tl_gdim_sym(g, "B"), T = tl_gdim_sym(g, "T"), D = tl_gdim_const(g, 256);
    TlGShape sbtd = tl_gshape_dims(3, (TlGDim[]){B, T, D});
    int x = tl_g_input(g, "x", TL_F32, sbtd, L0);
    int w = tl_g_param(g, "w", TL_F32, tl_gshape_make(g, 2, (int64_t[]){256, 64}), L0);
    EXPECT(shape_is(g, tl_g_add(g, x, x, L0), "f32[B, T, 256]"));
    EXPECT(shape_is(g, tl_g_binary(g, TL_GOP_LT, x, x, L0), "bool[B, T, 256]"));
    EXPECT(shape_is(g, tl_g_contract(g, "btd,de->bte", x, w, L0), "f32[B, T, 64]"));
    EXPECT(shape_is(g, tl_g_reduce(g, TL_GOP_SUM, x, 2, 0, L0), "f32[B, 256]"));
    EXPECT(shape_is(g, tl_g_reduce(g, TL_GOP_RMAX, x, 5, 1, L0), "f32[1, T, 1]"));
    EXPECT(shape_is(g, tl_g_reshape(g, x, tl_gshape_dims(2, (TlGDim[]){tl_gdim_mul(g, B, T), D}), L0), "f32[B*T, 256]"));
    EXPECT(shape_is(g, tl_g_permute(g, x, (int[]){2, 0, 1}, L0), "f32[256, B, T]"));
    int bias = tl_g_param(g, "b", TL_F32, tl_gshape_make(g, 1, (int64_t[]){256}), L0);
    int n0 = g->nnodes;
    int s = tl_g_broadcast_binary(g, TL_GOP_ADD, x, bias, L0);
    EXPECT(shape_is(g, s, "f32[B, T, 256]"));
    EXPECT(g->nnodes == n0 + 2 && g->nodes[n0].op == TL_GOP_BROADCAST); /* one explicit broadcast */
    /* slicing a position table by a symbolic length */
    TlGDim C = tl_gdim_sym(g, "C");
    int wpe = tl_g_param(g, "wpe", TL_F32, tl_gshape_dims(2, (TlGDim[]){C, D}), L0);
    EXPECT(shape_is(g, tl_g_slice_axis(g, wpe, 0, tl_gdim_const(g, 0), T, 1, L0), "f32[T, 256]"));
    EXPECT(shape_is(g, tl_g_slice_axis(g, wpe, 1, tl_gdim_const(g, 1), D, 2, L0), "f32[C, 128]"));
    int cat[2] = {x, x};
    EXPECT(shape_is(g, tl_g_concat(g, 2, cat, 1, L0), "f32[B, T*2, 256]"));
    int idx = tl_g_input(g, "idx", TL_I32, tl_gshape_dims(2, (TlGDim[]){B, T}), L0);
    int V = tl_g_param(g, "wte", TL_F32, tl_gshape_dims(2, (TlGDim[]){tl_gdim_sym(g, "V"), D}), L0);
    int emb = tl_g_gather(g, V, idx, 0, L0);
    EXPECT(shape_is(g, emb, "f32[B, T, 256]"));
    EXPECT(shape_is(g, tl_g_scatter_add(g, emb, idx, 0, tl_gdim_sym(g, "V"), L0), "f32[V, 256]"));
    EXPECT(shape_is(g, tl_g_pad(g, w, (TlGDim[]){tl_gdim_const(g, 1), tl_gdim_const(g, 0)},
                                (TlGDim[]){tl_gdim_const(g, 2), tl_gdim_const(g, 3)}, (int64_t[]){0, 1}, 0, L0),
                    "f32[259, 130]"));
    EXPECT(shape_is(g, tl_g_cast(g, idx, TL_F32, L0), "f32[B, T]"));
    EXPECT(shape_is(g, tl_g_random(g, TL_RANDOM_NORMAL, -1, 1, 2, TL_F32, sbtd, L0), "f32[B, T, 256]"));
    EXPECT(tl_graph_error(g) == NULL);
    EXPECT(tl_graph_find(g, TL_GOP_PARAM, "wpe") == wpe);
    tl_graph_free(g);
}

TEST(builder_errors) {
    TlGraph *g = tl_graph_new();
    TlLoc loc = {0, 12, 9, 0, 0};
    int a = tl_g_input(g, "a", TL_F32, tl_gshape_make(g, 2, (int64_t[]){2, 3}), loc);
    int b = tl_g_input(g, "b", TL_F32, tl_gshape_make(g, 2, (int64_t[]){3, 2}), loc);
    EXPECT(tl_g_add(g, a, b, loc) == -1);
    const char *e = tl_graph_error(g);
    EXPECTF(e && strstr(e, "12:9") && strstr(e, "different shapes"), "error: %s", e ? e : "(none)");
    EXPECT(tl_g_exp(g, -1, loc) == -1); /* -1 propagates quietly */
    TlGraph *h = tl_graph_new();
    int c = tl_g_input(h, "c", TL_F32, tl_gshape_make(h, 2, (int64_t[]){2, 3}), loc);
    int d = tl_g_input(h, "d", TL_F32, tl_gshape_make(h, 2, (int64_t[]){4, 3}), loc);
    EXPECT(tl_g_contract(h, "ij,jk->ik", c, d, loc) == -1 && strstr(tl_graph_error(h), "axis 'j'"));
    tl_graph_free(h);
    h = tl_graph_new();
    c = tl_g_input(h, "c", TL_F32, tl_gshape_make(h, 2, (int64_t[]){2, 3}), loc);
    EXPECT(tl_g_reshape(h, c, tl_gshape_make(h, 1, (int64_t[]){5}), loc) == -1);
    tl_graph_free(h);
    h = tl_graph_new();
    c = tl_g_input(h, "c", TL_F32, tl_gshape_make(h, 2, (int64_t[]){2, 3}), loc);
    EXPECT(tl_g_broadcast(h, c, tl_gshape_make(h, 2, (int64_t[]){2, 4}), loc) == -1);
    tl_graph_free(h);
    h = tl_graph_new();
    c = tl_g_input(h, "c", TL_F32, tl_gshape_make(h, 2, (int64_t[]){2, 3}), loc);
    EXPECT(tl_g_slice_axis(h, c, 1, tl_gdim_const(h, 1), tl_gdim_const(h, 4), 1, loc) == -1);
    tl_graph_free(h);
    TlContractSpec cs;
    EXPECT(tl_contract_parse("ij,jk->ik", &cs, NULL, 0) == 0 && cs.nin == 2 && cs.out_rank == 2);
    EXPECT(tl_contract_parse("ii->i", &cs, NULL, 0) == -1);
    EXPECT(tl_contract_parse("ij,jk->iz", &cs, NULL, 0) == -1);
    EXPECT(tl_contract_parse("ij,jk", &cs, NULL, 0) == -1);
    tl_graph_free(g);
}

static int build_rnn(TlGraph *g, int *res) {
    TlGDim T = tl_gdim_sym(g, "T"), Hd = tl_gdim_const(g, 4);
    int x = tl_g_input(g, "x", TL_F32, tl_gshape_dims(2, (TlGDim[]){T, Hd}), L0);
    int h0 = tl_g_param(g, "h0", TL_F32, tl_gshape_dims(1, &Hd), L0);
    TlGraph *b = tl_graph_new_body(g);
    int h = tl_g_input(b, "h", TL_F32, tl_gshape_dims(1, &Hd), L0);
    int xt = tl_g_input(b, "xt", TL_F32, tl_gshape_dims(1, &Hd), L0);
    int hn = tl_g_tanh(b, tl_g_add(b, h, xt, L0), L0);
    tl_graph_add_output(b, hn);
    tl_graph_add_output(b, hn);
    return tl_g_scan(g, b, 1, &h0, 1, &x, 0, NULL, 0, res, L0);
}

TEST(scan_shapes) {
    TlGraph *g = tl_graph_new();
    int res[2];
    int s = build_rnn(g, res);
    EXPECT(s >= 0 && g->nodes[s].op == TL_GOP_SCAN && g->nodes[s].body->noutputs == 2);
    EXPECT(shape_is(g, res[0], "f32[4]"));
    EXPECT(shape_is(g, res[1], "f32[T, 4]"));
    tl_graph_free(g);
}

TEST(print_format) {
    TlGraph *g = tl_graph_new();
    const char *text = "x = a + b\n";
    int file = tl_source_add("model.tl", text, strlen(text));
    TlLoc loc = {file, 12, 9, 0, 0};
    TlGShape s = tl_gshape_dims(3, (TlGDim[]){tl_gdim_sym(g, "B"), tl_gdim_sym(g, "T"), tl_gdim_const(g, 256)});
    int a = tl_g_input(g, "a", TL_F32, s, L0);
    int b = tl_g_param(g, "b", TL_F32, s, L0);
    int c = tl_g_add(g, a, b, loc);
    tl_graph_add_output(g, c);
    int res[2];
    build_rnn(g, res);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tl_graph_print(f, g);
    fclose(f);
    EXPECTF(strstr(buf, "%2 = add %0, %1 : f32[B, T, 256]   # model.tl:12:9\n"), "got:\n%s", buf);
    EXPECT(strstr(buf, "%0 = input \"a\" : f32[B, T, 256]\n"));
    EXPECT(strstr(buf, "= scan %") && strstr(buf, "{ncarry=1, nseq=1}") && strstr(buf, "    %2 = add %0, %1 : f32[4]"));
    EXPECTF(strstr(buf, "%7 = proj %5 {1} : f32[T, 4]"), "got:\n%s", buf);
    free(buf);
    int *uses = tl_graph_use_counts(g);
    EXPECT(uses[a] == 1 && uses[c] == 1);
    free(uses);
    tl_graph_free(g);
}

TEST(dot_renders) {
    TlGraph *g = tl_graph_new();
    TlGShape s = tl_gshape_make(g, 2, (int64_t[]){2, 3});
    int a = tl_g_input(g, "a", TL_F32, s, L0);
    int w = tl_g_param(g, "w", TL_F32, tl_gshape_make(g, 2, (int64_t[]){3, 4}), L0);
    tl_graph_add_output(g, tl_g_contract(g, "ij,jk->ik", a, w, L0));
    int res[2];
    build_rnn(g, res);
    tl_graph_add_output(g, res[1]);
    char path[] = "/tmp/tl_graph_dotXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    tl_graph_dot(f, g);
    fclose(f);
    tl_graph_free(g);
    if (system("command -v dot >/dev/null 2>&1") != 0) {
        check_case_failed = 0;
        unlink(path);
        printf("SKIP: dot_renders_svg: graphviz `dot` is not installed\n");
        return;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "dot -Tsvg %s -o %s.svg 2>&1 && grep -q '<svg' %s.svg", path, path, path);
    EXPECTF(system(cmd) == 0, "dot -Tsvg failed on %s", path);
    snprintf(cmd, sizeof cmd, "%s.svg", path);
    unlink(cmd);
    unlink(path);
}

int main(void) {
    RUN(dims_hash_consed);
    RUN(builder_shapes);
    RUN(builder_errors);
    RUN(scan_shapes);
    RUN(print_format);
    RUN(dot_renders);
    return check_done();
}
