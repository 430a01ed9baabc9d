/* test_nvptx.c — PTX generation, checked without a GPU.
 *
 * Every primitive forward and backward, scans, the GPU schedules, 30 random graphs and a
 * transformer Block's training step (gpu_cases.h) are compiled to PTX for sm_80 and sm_90;
 * each must be accepted by `ptxas -arch=sm_80` / `-arch=sm_90` (CUDA's assembler; the
 * checks are SKIPped when it is absent), and every Loop IR kernel must come out as one
 * `.visible .entry`. Structural checks: the SGEMM kernel uses shared memory within the
 * 48 KiB static limit with no spills and no stack frame (from `ptxas -v`), row reductions
 * use shfl.sync, libdevice's exp is inlined (no calls left), the random op has Philox's
 * multipliers, and a GPU program without a GPU fails with one clear line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cuda.h"
#include "loops.h"
#include "nvptx/nvptx.h"

#include "gpu_cases.h"

static char ptxas[512];
static int nptx, nassembled;

static void find_ptxas(void) {
    snprintf(ptxas, sizeof ptxas, "%s/bin/ptxas", tl_nvptx_cuda_root());
    if (access(ptxas, X_OK) == 0) return;
    ptxas[0] = 0;
}

/* Runs ptxas on text for arch; 0 when it assembles. With info, its -v output (malloc'd). */
static int assemble(const char *text, const char *arch, char **info, char *why, int whyn) {
    char src[] = "/tmp/tl_ptxXXXXXX";
    int fd = mkstemp(src);
    if (fd < 0) { snprintf(why, (size_t)whyn, "cannot create a temporary file"); return -1; }
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    char cmd[1200], log[] = "/tmp/tl_ptxlogXXXXXX";
    int lfd = mkstemp(log);
    if (lfd >= 0) close(lfd);
    snprintf(cmd, sizeof cmd, "'%s' %s -arch=%s -o /dev/null '%s' >'%s' 2>&1", ptxas, info ? "-v" : "", arch, src, log);
    int rc = system(cmd);
    FILE *lf = fopen(log, "r");
    char *out = calloc(1, 1 << 20);
    size_t n = lf ? fread(out, 1, (1 << 20) - 1, lf) : 0;
    out[n] = 0;
    if (lf) fclose(lf);
    if (rc != 0) {
        char *nl = strchr(out, '\n');
        if (nl) *nl = 0;
        snprintf(why, (size_t)whyn, "ptxas -arch=%s: %.400s", arch, out);
    }
    if (info) *info = out;
    else free(out);
    remove(src), remove(log);
    return rc == 0 ? 0 : -1;
}

static int count(const char *s, const char *pat) {
    int n = 0;
    for (const char *q = s; (q = strstr(q, pat)); q += strlen(pat)) n++;
    return n;
}

static void graph_case_run(const char *name, int exact) {
    (void)exact;
    case_begin("ptx: %s", name);
    char err[512];
    TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
    EXPECTF(lp != NULL, "lowering: %s", err);
    if (!lp) { case_end(); return; }
    static const char *arch[2] = {"sm_80", "sm_90"};
    for (int a = 0; a < 2; a++) {
        TlNvptxOptions o = {.arch = arch[a], .opt_level = 3};
        char *ptx = tl_nvptx_emit_ptx_loops(lp, &o, err, sizeof err);
        EXPECTF(ptx != NULL, "%s: %s", arch[a], err);
        if (!ptx) continue;
        nptx++;
        /* one entry per kernel, and a `<name>_pack` companion per packed tensor-core GEMM */
        int npack = 0, nhalf = 0;
        for (int k = 0; k < lp->nkern; k++) {
            char pat[300];
            snprintf(pat, sizeof pat, ".entry %s_pack(", lp->kern[k].name);
            int has = strstr(ptx, pat) != NULL;
            npack += has;
            nhalf += lp->kern[k].gemm.on && lp->kern[k].gemm.dtype != TL_F32;
            EXPECTF(!has || (lp->kern[k].gemm.on && lp->kern[k].gemm.dtype != TL_F32), "%s: a pack kernel, not a bf16/f16 GEMM", lp->kern[k].name);
        }
        EXPECTF(!mma_strict || npack >= 1, "no pack kernel for %d bf16/f16 GEMMs", nhalf);
        EXPECTF(count(ptx, ".entry") == lp->nkern + npack && count(ptx, ".visible .entry") == lp->nkern + npack,
                "%d kernels + %d pack, %d entries, %d visible", lp->nkern, npack, count(ptx, ".entry"), count(ptx, ".visible .entry"));
        char want[32];
        snprintf(want, sizeof want, ".target %s", arch[a]);
        EXPECTF(strstr(ptx, want) != NULL, "no '%s'", want);
        EXPECTF(!mma_strict || strstr(ptx, "mma.sync.aligned.m16n8k16") != NULL, "a bf16/f16 matmul without mma.sync");
        if (ptxas[0]) {
            char why[512];
            int rc = assemble(ptx, arch[a], NULL, why, sizeof why);
            EXPECTF(rc == 0, "%s", why);
            nassembled += rc == 0;
        }
        free(ptx);
    }
    tl_loops_free(lp);
    case_end();
}

/* ---- structure ---- */

/* The ptxas -v facts of one function: registers, smem bytes, spill stores, stack frame. */
static int ptxas_info(const char *log, const char *fn, int *regs, int *smem, int *spills, int *stack) {
    char pat[160];
    snprintf(pat, sizeof pat, "Function properties for %s\n", fn);
    const char *s = strstr(log, pat);
    if (!s) return -1;
    s += strlen(pat);
    if (sscanf(s, " %d bytes stack frame, %d bytes spill stores", stack, spills) != 2) return -1;
    const char *u = strstr(s, "Used ");
    if (!u || sscanf(u, "Used %d registers", regs) != 1) return -1;
    const char *eol = strchr(u, '\n');
    const char *sm = strstr(u, "bytes smem");
    *smem = 0;
    if (sm && (!eol || sm < eol)) {
        while (sm > u && sm[-1] == ' ') sm--;
        while (sm > u && sm[-1] >= '0' && sm[-1] <= '9') sm--;
        *smem = atoi(sm);
    }
    return 0;
}

static void gemm_structure(void) {
    static const char *arch[2] = {"sm_80", "sm_90"};
    for (int a = 0; a < 2; a++) {
        case_begin("SGEMM kernel (%s): shared memory <= 48 KiB, no spills, no stack frame", arch[a]);
        begin();
        bind("N", 512);
        TlGDim d[2] = {tl_gdim_sym(G, "N"), tl_gdim_sym(G, "N")};
        int x = input(TL_F32, tl_gshape_dims(2, d), -1, 1), y = input(TL_F32, tl_gshape_dims(2, d), -1, 1);
        tl_graph_add_output(G, tl_g_contract(G, "ij,jk->ik", x, y, L));
        char err[512];
        TlNvptxOptions o = {.arch = arch[a], .opt_level = 3};
        char *ptx = tl_nvptx_emit_ptx(G, &o, NULL, err, sizeof err);
        EXPECTF(ptx != NULL, "%s", err);
        TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
        const char *kname = lp && lp->nkern ? lp->kern[lp->nkern - 1].name : "?";
        EXPECTF(lp && lp->kern[lp->nkern - 1].gemm.on, "the matmul has no TlLGemm");
        if (ptx) {
            EXPECT(strstr(ptx, ".shared") != NULL && strstr(ptx, "bar.sync") != NULL);
            EXPECT(strstr(ptx, "ld.shared.v4.f32") != NULL);
            EXPECT(strstr(ptx, "fma.rn.f32") != NULL);
        }
        if (ptx && ptxas[0]) {
            char *log = NULL, why[512];
            EXPECTF(assemble(ptx, arch[a], &log, why, sizeof why) == 0, "%s", why);
            int regs = -1, smem = -1, spills = -1, stack = -1;
            EXPECTF(log && ptxas_info(log, kname, &regs, &smem, &spills, &stack) == 0, "no ptxas -v facts for %s in:\n%s", kname, log ? log : "");
            EXPECTF(smem > 0 && smem <= 48 * 1024, "smem %d bytes", smem);
            EXPECTF(spills == 0, "%d bytes spill stores", spills);
            EXPECTF(stack == 0, "%d bytes stack frame", stack);
            EXPECTF(regs > 0 && regs <= 255, "%d registers", regs);
            printf("    %s %s: %d registers, %d bytes smem, %d spill stores, %d stack\n", kname, arch[a], regs, smem, spills, stack);
            free(log);
        } else if (!ptxas[0]) {
            case_skip("ptxas -v of the SGEMM kernel", "no ptxas under the CUDA toolkit root");
        }
        tl_loops_free(lp);
        free(ptx);
        tl_graph_free(G);
        case_end();
    }
}

/* The fused attention kernels (nvptx_attn.c) of attn and attn_grad at the largest head
 * they take (K = 64) and an odd one: TL_GPU_LAUNCH_ATTN, shared memory and barriers in the
 * PTX, and ptxas -v: <= 48 KiB static shared memory, no spills, no stack frame. With
 * no_attn (the reference) and at K = 65 (beyond the fused kernels) the loop nests. */
static void attn_structure(void) {
    static const char *arch[2] = {"sm_80", "sm_90"};
    static const int64_t heads[2] = {64, 33};
    for (int a = 0; a < 2; a++)
        for (int h = 0; h < 2; h++) {
            case_begin("fused attention kernels (%s, K = %lld): shared memory <= 48 KiB, no spills, no stack frame", arch[a],
                       (long long)heads[h]);
            begin();
            TlGShape s = S(4, 128, heads[h]);
            int q = input(TL_F32, s, -1, 1), k = input(TL_F32, s, -1, 1), v = input(TL_F32, s, -1, 1);
            int o = tl_g_attn(G, q, k, v, 0.125, L);
            int gy = input(TL_F32, G->nodes[o].shape, -1, 1);
            tl_graph_add_output(G, o);
            tl_graph_add_output(G, tl_g_attn_grad(G, q, k, v, o, gy, 0.125, L));
            char err[512];
            TlNvptxOptions opt = {.arch = arch[a], .opt_level = 3};
            char *ptx = tl_nvptx_emit_ptx(G, &opt, NULL, err, sizeof err);
            EXPECTF(ptx != NULL, "%s", err);
            TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
            EXPECTF(lp != NULL, "%s", err);
            TlGpuDesc *d = lp ? tl_nvptx_describe(lp, &opt, "attn", err, sizeof err) : NULL;
            TlGpuDesc *dref = lp ? tl_nvptx_describe(lp, &(TlNvptxOptions){.arch = arch[a], .opt_level = 3, .no_attn = 1}, "ref", err,
                                                     sizeof err) : NULL;
            EXPECTF(d && dref, "describe: %s", err);
            int nattn = 0;
            for (int kk = 0; d && dref && kk < lp->nkern; kk++) {
                if (!lp->kern[kk].attn.on) continue;
                nattn++;
                const char *kname = lp->kern[kk].name;
                EXPECTF(d->kern[kk].launch == TL_GPL_ATTN && d->kern[kk].gemm_n >= 0 &&
                        tl_gpudesc_eval(d, d->kern[kk].gemm_n, NULL, NULL) == (lp->kern[kk].attn.grad ? 2 : 1),
                        "%s: not an attention launch", kname);
                EXPECTF(dref->kern[kk].launch == TL_GPL_FLAT, "%s: no_attn is not the loop nest", kname);
                EXPECTF(!strstr(dref->ptx, "tl.attn."), "the reference has fused attention's shared arrays");
                char pat[200];
                snprintf(pat, sizeof pat, ".entry %s(", kname);
                const char *body = ptx ? strstr(ptx, pat) : NULL;
                EXPECTF(body != NULL, "no entry %s", kname);
                if (body) {
                    const char *end = strstr(body + 1, ".entry");
                    size_t len = end ? (size_t)(end - body) : strlen(body);
                    char *b = strndup(body, len);
                    EXPECTF(strstr(b, "bar.sync") != NULL && strstr(b, "ld.shared.f32") != NULL && strstr(b, "st.shared.f32") != NULL,
                            "%s: no barrier / shared loads and stores", kname);
                    EXPECTF(strstr(b, ".maxntid 64, 1, 1") != NULL, "%s: no .maxntid 64", kname);
                    EXPECTF(count(b, "fma.rn.f32") >= 2 * 16 * (int)heads[h], "%s: %d fma", kname, count(b, "fma.rn.f32"));
                    free(b);
                }
                if (ptx && ptxas[0]) {
                    char *log = NULL, why[512];
                    EXPECTF(assemble(ptx, arch[a], &log, why, sizeof why) == 0, "%s", why);
                    int regs = -1, smem = -1, spills = -1, stack = -1;
                    EXPECTF(log && ptxas_info(log, kname, &regs, &smem, &spills, &stack) == 0, "no ptxas -v facts for %s", kname);
                    EXPECTF(smem > 0 && smem <= 48 * 1024, "smem %d bytes", smem);
                    EXPECTF(spills == 0, "%d bytes spill stores", spills);
                    EXPECTF(stack == 0, "%d bytes stack frame", stack);
                    printf("    %s %s: %d registers, %d bytes smem, %d spill stores, %d stack\n", kname, arch[a], regs, smem, spills, stack);
                    free(log);
                }
            }
            EXPECTF(nattn == 2, "%d attention kernels", nattn);
            if (d) tl_gpudesc_free(d);
            if (dref) tl_gpudesc_free(dref);
            tl_loops_free(lp);
            free(ptx);
            tl_graph_free(G);
            case_end();
        }
    /* a head of 65: beyond the fused kernels' registers and shared memory, the loop nest */
    case_begin("attention with K = 65: the reference loop nest");
    begin();
    TlGShape s = S(2, 16, 65);
    int q = input(TL_F32, s, -1, 1);
    tl_graph_add_output(G, tl_g_attn(G, q, q, q, 0.1, L));
    char err[512];
    TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
    TlGpuDesc *d = lp ? tl_nvptx_describe(lp, &(TlNvptxOptions){.arch = "sm_80", .opt_level = 3}, "k65", err, sizeof err) : NULL;
    EXPECTF(d != NULL, "%s", err);
    for (int kk = 0; d && kk < lp->nkern; kk++)
        if (lp->kern[kk].attn.on) EXPECT(d->kern[kk].launch != TL_GPL_ATTN);
    if (d) tl_gpudesc_free(d);
    tl_loops_free(lp);
    tl_graph_free(G);
    case_end();
}

/* Stats of the one kernel of G stored into (the kernel named like `suffix`), or NULL. */
static const TlGpuKernelStat *stat_of(TlGpuKernelStat *st, const TlLProgram *lp, const char *suffix) {
    for (int k = 0; k < lp->nkern; k++)
        if (strstr(lp->kern[k].name, suffix)) return &st[k];
    return NULL;
}

/* The launch planning of kernels with long loops and the report (`tlc kernels
 * --gpu-report`) that counts their work: exact numbers for known shapes. */
static void spread_cases(void) {
    char err[512];
    TlNvptxOptions plain = {.opt_level = 3, .no_collapse = 1}, dflt = {.opt_level = 3};
    TlGpuKernelStat st[16];

    case_begin("elementwise [16, 128, 256]: one thread per element (collapsed), 16 x 32768 without");
    begin();
    tl_graph_add_output(G, tl_g_tanh(G, input(TL_F32, S(16, 128, 256), -1, 1), L));
    TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
    EXPECTF(lp && lp->nkern == 1, "%s", err);
    if (lp && lp->nkern == 1) {
        tl_nvptx_kernel_stats(lp, &dflt, NULL, st);
        EXPECTF(st[0].launch == TL_GPU_LAUNCH_FLAT && st[0].collapsed == 3 && st[0].items == 524288 && st[0].threads == 524288 &&
                st[0].work == 1, "flat %d, %d loops, %.0f items, %.0f threads, work %.0f", st[0].launch == TL_GPU_LAUNCH_FLAT,
                st[0].collapsed, st[0].items, st[0].threads, st[0].work);
        tl_nvptx_kernel_stats(lp, &plain, NULL, st);
        EXPECTF(st[0].collapsed == 1 && st[0].items == 16 && st[0].work == 32768, "%d loops, %.0f items, work %.0f", st[0].collapsed,
                st[0].items, st[0].work);
        TlGpuDesc *d = tl_nvptx_describe(lp, &dflt, "t", err, sizeof err);
        EXPECTF(d && tl_gpudesc_eval(d, d->kern[0].par_extent, NULL, NULL) == 524288, "%s", d ? "launch extent" : err);
        tl_gpudesc_free(d);
    }
    tl_loops_free(lp);
    tl_graph_free(G);
    case_end();

    case_begin("full sum of [1500, 2000]: one block of 256 threads, bar.sync and shuffles");
    begin();
    tl_graph_add_output(G, tl_g_sum(G, input(TL_F32, S(1500, 2000), -1, 1), 3, 0, L));
    lp = tl_loops_lower(G, err, sizeof err);
    EXPECTF(lp && lp->nkern == 1, "%s", err);
    if (lp && lp->nkern == 1) {
        tl_nvptx_kernel_stats(lp, &dflt, NULL, st);
        /* 3e6 / 256 iterations, 12 for the two butterflies and the shared step, the
         * init and the store */
        EXPECTF(st[0].launch == TL_GPU_LAUNCH_BLOCK && st[0].threads == 256 && st[0].work == 11719 + 12 + 2,
                "block %d, %.0f threads, work %.0f", st[0].launch == TL_GPU_LAUNCH_BLOCK, st[0].threads, st[0].work);
        TlNvptxOptions nowarp = {.opt_level = 3, .no_warp_reduce = 1};
        tl_nvptx_kernel_stats(lp, &nowarp, NULL, st);
        EXPECTF(st[0].serial && st[0].threads == 1 && st[0].work == 3000002, "serial %d, work %.0f", st[0].serial, st[0].work);
    }
    char *ptx = tl_nvptx_emit_ptx(G, NULL, NULL, err, sizeof err);
    EXPECTF(ptx && strstr(ptx, "bar.sync") && count(ptx, "shfl.sync.bfly") >= 20 && strstr(ptx, ".shared"), "%s",
            ptx ? "no bar.sync / 2 f64 butterflies / shared slots" : err);
    free(ptx);
    tl_loops_free(lp);
    tl_graph_free(G);
    case_end();

    case_begin("column sums over [16, 128] of [16, 128, 256]: a warp per column over the nest");
    begin();
    tl_graph_add_output(G, tl_g_sum(G, input(TL_F32, S(16, 128, 256), -1, 1), 3, 0, L));
    lp = tl_loops_lower(G, err, sizeof err);
    if (lp && lp->nkern == 1) {
        tl_nvptx_kernel_stats(lp, &dflt, NULL, st);
        EXPECTF(st[0].launch == TL_GPU_LAUNCH_WARP && st[0].items == 256 && st[0].threads == 8192 && st[0].work == 64 + 5 + 2,
                "warp %d, %.0f items, %.0f threads, work %.0f", st[0].launch == TL_GPU_LAUNCH_WARP, st[0].items, st[0].threads, st[0].work);
    } else {
        EXPECTF(0, "%s", err);
    }
    tl_loops_free(lp);
    tl_graph_free(G);
    case_end();

    case_begin("embedding gradient (scatter_add of [16, 128] ids into [256, 256]): threads over the 256 columns");
    begin();
    int tab = param(TL_F32, S(256, 256), -1, 1);
    int g = tl_g_gather(G, tab, input(TL_I32, S(16, 128), 0, 40), 0, L);
    int w = input(TL_F32, S(16, 128, 256), -1, 1);
    int loss = tl_g_sum(G, tl_g_mul(G, g, w, L), 7, 0, L), grad;
    EXPECT(tl_grad(G, loss, 1, &tab, &grad) == 0);
    tl_graph_add_output(G, grad);
    lp = tl_loops_lower(G, err, sizeof err);
    const TlGpuKernelStat *sa = NULL;
    if (lp && lp->nkern <= 16) {
        tl_nvptx_kernel_stats(lp, &dflt, NULL, st);
        sa = stat_of(st, lp, "scatter_add");
        EXPECTF(sa && sa->launch == TL_GPU_LAUNCH_FLAT && !sa->serial && sa->threads == 256 && sa->work == 2048,
                "%s: %.0f threads, work %.0f", sa ? sa->name : "no scatter_add kernel", sa ? sa->threads : 0, sa ? sa->work : 0);
        tl_nvptx_kernel_stats(lp, &plain, NULL, st);
        sa = stat_of(st, lp, "scatter_add");
        EXPECTF(sa && sa->serial && sa->work == 524288, "plain: work %.0f", sa ? sa->work : 0);
        TlGpuDesc *d = tl_nvptx_describe(lp, &dflt, "t", err, sizeof err);
        int k = d ? (int)(stat_of(st, lp, "scatter_add") - st) : -1;
        EXPECTF(d && k >= 0 && tl_gpudesc_eval(d, d->kern[k].par_extent, NULL, NULL) == 256, "%s", d ? "launch extent" : err);
        tl_gpudesc_free(d);
    } else {
        EXPECTF(0, "%s", lp ? "too many kernels" : err);
    }
    tl_loops_free(lp);
    tl_graph_free(G);
    case_end();

    case_begin("the report: header, rows by work per thread, summary");
    TlGpuKernelStat rs[3] = {{"k_a", TL_GPU_LAUNCH_FLAT, 0, 2, 100, 100, 7}, {"k_b", TL_GPU_LAUNCH_BLOCK, 0, 0, 1, 256, 900},
                             {"k_c", TL_GPU_LAUNCH_FLAT, 1, 0, 1, 1, 93}};
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    tl_nvptx_report_print(f, rs, 3, 2);
    fclose(f);
    const char *b = buf ? strstr(buf, "k_b") : NULL, *c = buf ? strstr(buf, "k_c") : NULL;
    EXPECTF(buf && strncmp(buf, "rank", 4) == 0 && b && c && b < c && !strstr(buf, "k_a") && strstr(buf, "block") &&
                strstr(buf, "serial") && strstr(buf, "90.0%") && strstr(buf, "... 1 more") && strstr(buf, "max 900, sum over kernels 1000"),
            "%s", buf ? buf : "");
    free(buf);
    case_end();
}

static void structure_cases(void) {
    char err[512];
    case_begin("row reductions over a wide axis use warp shuffles; short ones do not");
    begin();
    int x = input(TL_F32, S(64, 256), -1, 1);
    tl_graph_add_output(G, tl_g_reduce(G, TL_GOP_SUM, x, 2, 0, L));
    char *ptx = tl_nvptx_emit_ptx(G, NULL, NULL, err, sizeof err);
    EXPECTF(ptx && strstr(ptx, "shfl.sync.bfly"), "%s", ptx ? "no shfl.sync.bfly" : err);
    free(ptx);
    TlNvptxOptions nowarp = {.no_warp_reduce = 1, .opt_level = 3};
    ptx = tl_nvptx_emit_ptx(G, &nowarp, NULL, err, sizeof err);
    EXPECT(ptx && !strstr(ptx, "shfl.sync"));
    free(ptx);
    tl_graph_free(G);
    begin();
    tl_graph_add_output(G, tl_g_reduce(G, TL_GOP_SUM, input(TL_F32, S(64, 5), -1, 1), 2, 0, L));
    ptx = tl_nvptx_emit_ptx(G, NULL, NULL, err, sizeof err);
    EXPECT(ptx && !strstr(ptx, "shfl.sync"));
    free(ptx);
    tl_graph_free(G);
    case_end();

    case_begin("fused softmax rows: both reductions (max with NaN, sum) are warp shuffles");
    begin();
    x = input(TL_F32, S(37, 300), -1, 1);
    int m = tl_g_reduce(G, TL_GOP_RMAX, x, 2, 1, L);
    int e = tl_g_exp(G, tl_g_broadcast_binary(G, TL_GOP_SUB, x, m, L), L);
    tl_graph_add_output(G, tl_g_broadcast_binary(G, TL_GOP_DIV, e, tl_g_reduce(G, TL_GOP_SUM, e, 2, 1, L), L));
    ptx = tl_nvptx_emit_ptx(G, NULL, NULL, err, sizeof err);
    EXPECTF(ptx && count(ptx, "shfl.sync.bfly") >= 20, "%d shuffles (two f64 butterflies: 20)", ptx ? count(ptx, "shfl.sync.bfly") : -1);
    free(ptx);
    tl_graph_free(G);
    case_end();

    case_begin("libdevice: exp and tanh are inlined (no calls), kernels use ex2");
    begin();
    x = input(TL_F32, S(4, 4), -1, 1);
    tl_graph_add_output(G, tl_g_tanh(G, tl_g_exp(G, x, L), L));
    ptx = tl_nvptx_emit_ptx(G, NULL, NULL, err, sizeof err);
    EXPECTF(ptx != NULL, "%s", err);
    EXPECT(ptx && !strstr(ptx, "call") && !strstr(ptx, "__nv_") && strstr(ptx, "ex2.approx"));
    free(ptx);
    case_end();
    case_begin("emit one kernel; emit llvm; an unknown kernel or arch is an error");
    TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
    const char *k0 = lp && lp->nkern ? lp->kern[0].name : "?";
    char want[96];
    snprintf(want, sizeof want, ".visible .entry %s(", k0);
    ptx = tl_nvptx_emit_ptx(G, NULL, k0, err, sizeof err);
    EXPECTF(ptx && strstr(ptx, want) && count(ptx, ".entry") == 1 && strstr(ptx, ".version"), "%s", ptx ? ptx : err);
    free(ptx);
    char *ir = tl_nvptx_emit_llvm(G, NULL, NULL, err, sizeof err);
    snprintf(want, sizeof want, "ptx_kernel void @%s(", k0);
    EXPECTF(ir && strstr(ir, want) && strstr(ir, "nvptx64-nvidia-cuda"), "%s", ir ? "no ptx_kernel" : err);
    free(ir);
    tl_loops_free(lp);
    EXPECT(tl_nvptx_emit_ptx(G, NULL, "no_such_kernel", err, sizeof err) == NULL && strstr(err, "no_such_kernel"));
    TlNvptxOptions bad = {.arch = "gfx90a"};
    EXPECT(tl_nvptx_emit_ptx(G, &bad, NULL, err, sizeof err) == NULL && strstr(err, "gfx90a"));
    case_end();
    case_begin("without a GPU, tl_gpu_compile fails with one clear line");
    if (tl_cuda_available()) {
        case_skip("no-GPU error message", "a GPU is present");
    } else {
        TlGpuProgram *p = tl_gpu_compile(G, NULL, err, sizeof err);
        EXPECT(p == NULL);
        EXPECTF(strcmp(err, "no CUDA driver (libcuda.so.1 not found)") == 0 || strcmp(err, "no GPU found") == 0 ||
                    strstr(err, "CUDA"), "'%s'", err);
        EXPECT(!strchr(err, '\n'));
        tl_gpu_free(p);
    }
    case_end();
    tl_graph_free(G);

    case_begin("random: Philox multipliers in the kernel");
    begin();
    tl_graph_add_output(G, tl_g_random(G, TL_RANDOM_NORMAL, -1, 5, 0, TL_F32, S(8), L));
    ptx = tl_nvptx_emit_ptx(G, NULL, NULL, err, sizeof err);
    EXPECTF(ptx && (strstr(ptx, "-766435501") || strstr(ptx, "3528531795")), "%s", ptx ? "no 0xD2511F53" : err);
    free(ptx);
    tl_graph_free(G);
    case_end();
}

/* The text of PTX entry `name` (up to the next entry), malloc'd, or NULL. */
static char *entry_text(const char *ptx, const char *name) {
    char pat[300];
    snprintf(pat, sizeof pat, ".entry %s(", name);
    const char *s = strstr(ptx, pat);
    if (!s) return NULL;
    const char *e = strstr(s + strlen(pat), ".entry ");
    size_t n = e ? (size_t)(e - s) : strlen(s);
    char *r = malloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* The tensor-core GEMM of a bf16 / f16 matmul (A @ B, A @ B^T, A^T @ B, batched; sizes
 * on and off the 128-tile), both paths: mma.sync m16n8k16 with f32 accumulation, ldmatrix,
 * the operand conversions, and ptxas -v: <= 48 KiB static shared memory, no spills, no
 * stack. The packed path (default): <= 128 registers (2 blocks per SM); `<name>_pack` converts (cvt, 16-byte stores), the
 * main kernel reads global memory only through cp.async (no ld.global, no cvt) into the
 * 3-stage ring (48 KiB) and uses non-transposed ldmatrix only. The register-staged path
 * (mma_regs): conversions while staging, v4 loads where the strides allow them.
 * Before sm_80 (no bf16 mma) the matmul is a plain loop nest. */
static void mma_structure(void) {
    static const struct { TlDType dt; const char *spec; int64_t b, m, n, k; const char *mma, *cvt; } cs[] = {
        {TL_BF16, "ij,jk->ik", 0, 512, 512, 512, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", "cvt.rn.bf16x2.f32"},
        {TL_F16, "ij,jk->ik", 0, 512, 512, 512, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", "cvt.rn.f16x2.f32"},
        {TL_BF16, "ij,kj->ik", 0, 150, 77, 70, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", "cvt.rn.bf16x2.f32"},
        {TL_F16, "ji,jk->ik", 0, 33, 129, 17, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", "cvt.rn.f16x2.f32"},
        {TL_BF16, "bij,bjk->bik", 3, 33, 40, 129, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", "cvt.rn.bf16x2.f32"},
        {TL_BF16, "ij,kj->ik", 0, 256, 128, 64, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", "cvt.rn.bf16x2.f32"},
        {TL_F16, "ji,jk->ik", 0, 128, 256, 96, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", "cvt.rn.f16x2.f32"},
    };
    static const char *arch[2] = {"sm_80", "sm_90"};
    for (int regs_path = 0; regs_path < 2; regs_path++)
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++)
        for (int a = 0; a < 2; a++) {
            case_begin("MMA kernel (%s) %s %s [%lld,%lld,%lld] (%s): mma.sync, ldmatrix, smem <= 48 KiB, no spills",
                       regs_path ? "register-staged" : "packed, cp.async", tl_dtype_name(cs[ci].dt), cs[ci].spec, (long long)cs[ci].m,
                       (long long)cs[ci].n, (long long)cs[ci].k, arch[a]);
            begin();
            int tA = cs[ci].spec[1] == 'i' && cs[ci].spec[0] == 'j', tB = cs[ci].spec[3] == 'k' && cs[ci].spec[4] == 'j';
            int64_t m = cs[ci].m, n = cs[ci].n, k = cs[ci].k, b = cs[ci].b;
            TlGShape sa = b ? S(b, m, k) : tA ? S(k, m) : S(m, k), sb = b ? S(b, k, n) : tB ? S(n, k) : S(k, n);
            int x = input(TL_F32, sa, -1, 1), y = input(TL_F32, sb, -1, 1);
            tl_graph_add_output(G, tl_g_contract(G, cs[ci].spec, tl_g_cast(G, x, cs[ci].dt, L), tl_g_cast(G, y, cs[ci].dt, L), L));
            char err[512];
            TlLProgram *lp = tl_loops_lower(G, err, sizeof err);
            const TlLKernel *kn = lp && lp->nkern ? &lp->kern[lp->nkern - 1] : NULL;
            EXPECTF(kn && kn->gemm.on && kn->gemm.dtype == cs[ci].dt, "the matmul has no %s TlLGemm", tl_dtype_name(cs[ci].dt));
            TlNvptxOptions o = {.arch = arch[a], .opt_level = 3, .mma_regs = regs_path};
            char *ptx = lp ? tl_nvptx_emit_ptx_loops(lp, &o, err, sizeof err) : NULL;
            EXPECTF(ptx != NULL, "%s", err);
            char pname[300];
            snprintf(pname, sizeof pname, "%s_pack", kn ? kn->name : "");
            char *body = ptx && kn ? entry_text(ptx, kn->name) : NULL, *pack = ptx && kn ? entry_text(ptx, pname) : NULL;
            EXPECTF(body != NULL, "no entry %s", kn ? kn->name : "");
            EXPECTF((pack != NULL) == !regs_path, "entry %s %s", pname, pack ? "present" : "missing");
            if (body) {
                /* 2 k16 steps x 16 tiles in the k loop (a constant M under 48 lets LLVM drop
                 * the m16 tiles whose rows are never stored) */
                int nmma = count(body, "mma.sync"), nld = count(body, "ldmatrix.sync.aligned.m8n8.x4");
                EXPECTF(count(body, cs[ci].mma) == nmma, "%d x %s of %d", count(body, cs[ci].mma), cs[ci].mma, nmma);
                if (regs_path) {
                    EXPECTF(m >= 64 ? nmma == 32 : nmma >= 8 && nmma <= 32, "%d mma.sync", nmma);
                    EXPECTF(nld == 12, "%d ldmatrix", nld);
                } else { /* LLVM unrolls the 3-stage loop (3 copies, or all of a constant K's slices) */
                    EXPECTF(m >= 64 ? nmma % 32 == 0 && nmma >= 32 && nld * 32 == nmma * 12 : nmma >= 8 && nld >= 4, "%d mma.sync, %d ldmatrix", nmma, nld);
                }
                EXPECT(strstr(body, "bar.sync") != NULL);
                EXPECT(strstr(body, "fma.rn.f32") == NULL); /* not the SGEMM */
                if (regs_path) {
                    EXPECT(strstr(body, cs[ci].cvt) != NULL);
                    EXPECT(strstr(body, "cp.async") == NULL);
                    /* 16-byte global loads where the strides allow them (constant sizes fold the test) */
                    int aligned = m % 4 == 0 && n % 4 == 0 && k % 4 == 0;
                    EXPECTF((strstr(body, "ld.global.v4.f32") != NULL) == aligned, "ld.global.v4.f32 %s", aligned ? "missing" : "with unaligned strides");
                } else {
                    int ncp = count(body, "cp.async.cg.shared.global");
                    EXPECTF(ncp >= 4 && ncp % 4 == 0, "%d cp.async.cg.shared.global", ncp);
                    EXPECT(strstr(body, "cp.async.commit_group") != NULL);
                    EXPECT(strstr(body, "cp.async.wait_group 1") != NULL);
                    EXPECT(strstr(body, "ldmatrix.sync.aligned.m8n8.x4.trans") == NULL);
                    EXPECT(strstr(body, "ld.global") == NULL && strstr(body, cs[ci].cvt) == NULL);
                }
            }
            if (pack) {
                EXPECT(strstr(pack, cs[ci].cvt) != NULL);
                EXPECT(strstr(pack, "st.global.v4") != NULL);
                EXPECT(strstr(pack, "mma.sync") == NULL && strstr(pack, "bar.sync") == NULL);
            }
            if (ptx && kn && ptxas[0]) {
                char *log = NULL, why[512];
                EXPECTF(assemble(ptx, arch[a], &log, why, sizeof why) == 0, "%s", why);
                for (int f = 0; f < 2 - regs_path; f++) {
                    const char *fn = f ? pname : kn->name;
                    int regs = -1, smem = -1, spills = -1, stack = -1;
                    EXPECTF(log && ptxas_info(log, fn, &regs, &smem, &spills, &stack) == 0, "no ptxas -v facts for %s in:\n%s", fn, log ? log : "");
                    if (!f) EXPECTF(smem > 0 && smem <= 48 * 1024, "smem %d bytes", smem);
                    /* the packed kernel runs 2 blocks per SM (minctasm 2): <= 128 registers */
                    if (!f && !regs_path) EXPECTF(regs <= 128, "%d registers: not 2 blocks per SM", regs);
                    EXPECTF(spills == 0, "%d bytes spill stores", spills);
                    EXPECTF(stack == 0, "%d bytes stack frame", stack);
                    EXPECTF(regs > 0 && regs <= 255, "%d registers", regs);
                    printf("    %s %s: %d registers, %d bytes smem, %d spill stores, %d stack\n", fn, arch[a], regs, smem, spills, stack);
                }
                free(log);
            }
            free(body), free(pack);
            free(ptx);
            if (a == 0 && ci == 0 && !regs_path) { /* sm_75 has no bf16 m16n8k16: the loop nest */
                TlNvptxOptions o75 = {.arch = "sm_75", .opt_level = 3};
                char *p75 = lp ? tl_nvptx_emit_ptx_loops(lp, &o75, err, sizeof err) : NULL;
                EXPECTF(p75 && !strstr(p75, "mma.sync") && !strstr(p75, "bar.sync") && !strstr(p75, "_pack"), "%s",
                        p75 ? "sm_75 PTX has mma/bar/a pack kernel" : err);
                free(p75);
            }
            if (lp) tl_loops_free(lp);
            tl_graph_free(G);
            case_end();
        }
}

static void block_case(void) {
    char err[256];
    if (gpu_block_step(err, sizeof err)) {
        case_begin("ptx: transformer Block(D=16, H=4) training step");
        EXPECTF(0, "%s", err);
        case_end();
    } else {
        graph_case_run("transformer Block(D=16, H=4) training step (forward + every param gradient)", 0);
    }
    gpu_block_free();
}

int main(int argc, char **argv) {
    tl_diag_set_output(stdout);
    find_ptxas();
    if (!ptxas[0]) case_skip("ptxas checks", "no ptxas under the CUDA toolkit root ($CUDA_HOME or /usr/local/cuda)");
    int nrandom = argc > 1 ? atoi(argv[1]) : 30;
    structure_cases();
    spread_cases();
    gemm_structure();
    mma_structure();
    attn_structure();
    unary_cases();
    binary_cases();
    cast_cases();
    reduce_cases();
    contract_cases();
    movement_cases();
    source_cases();
    attention_cases();
    scan_cases();
    gpu_schedule_cases();
    gpu_source_schedule_cases();
    gpu_mma_cases();
    block_case();
    for (int s = 0; s < nrandom; s++) random_graph_case(s);
    printf("# %d PTX modules generated, %d assembled by ptxas\n", nptx, nassembled);
    return check_done();
}
