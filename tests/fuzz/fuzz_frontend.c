/* fuzz_frontend.c — libFuzzer over the front end: lex + parse (+ sema when it is built in,
 * TL_FUZZ_SEMA=1, which the Makefile sets when compiler/sema.c exists) + the AST printer.
 * Any input must give diagnostics, never a crash, a hang or a leak.
 *
 *   make fuzz && build/fuzz/fuzz_frontend tests/fuzz/corpus      (tests/fuzz/suite.sh)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ast.h"
#include "diag.h"
#include "source.h"
#if TL_FUZZ_SEMA
#include "sema.h"
#endif

#ifndef TL_FUZZ_STDLIB
#define TL_FUZZ_STDLIB "stdlib"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull;
    if (!devnull) devnull = fopen("/dev/null", "w");
    tl_diag_set_output(devnull);
    tl_diag_set_max_errors(50);
    tl_diag_reset();
#if TL_FUZZ_SEMA
    TlSemaOptions opt = {.stdlib_dir = TL_FUZZ_STDLIB, .warn_unused = 1};
    TlProgram *prog = tl_sema_check_text("fuzz.tl", (const char *)data, size, &opt);
    if (prog && prog->nmodules > 0 && prog->modules[0]->ast)
        tl_ast_print(devnull, prog->modules[0]->ast->root);
    tl_program_free(prog);
#else
    int file = tl_source_add("fuzz.tl", (const char *)data, size);
    TlAst *ast = tl_parse(file);
    tl_ast_print(devnull, ast->root);
    tl_ast_free(ast);
#endif
    tl_source_reset();
    tl_diag_reset();
    return 0;
}
