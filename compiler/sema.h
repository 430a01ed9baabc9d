/* sema.h — semantic analysis: from parsed files to a checked, shape-typed program.
 *
 * Loads the main file and everything it imports (stdlib modules from the stdlib directory,
 * local files relative to the importer), resolves names across modules, infers and checks
 * types and symbolic shapes, and reports every problem through dsl/diag.h with the places
 * involved. The result keeps the ASTs, annotated (node->type, node->sema), for lowering. */
#ifndef TL_SEMA_H
#define TL_SEMA_H
#include "ast.h"

typedef struct TlSemaOptions {
    const char *stdlib_dir; /* where `import nn` finds nn.tl; NULL: $TL_STDLIB, else the
                               stdlib/ directory next to the tlc executable's ../ */
    int warn_unused;        /* warn on unused local names, parameters and imports (default on) */
} TlSemaOptions;

typedef struct TlModule {
    const char *name; /* "nn", or the file path for local files and the main file */
    const char *path;
    TlAst *ast;
} TlModule;

typedef struct TlProgram {
    TlModule **modules; /* modules[0] is the main file */
    int nmodules;
    void *priv;         /* sema's scopes and symbol tables */
} TlProgram;

/* Never returns NULL: even a program with errors comes back (for --emit=ast); errors were
 * reported and counted in tl_diag_error_count(). */
TlProgram *tl_sema_check_file(const char *path, const TlSemaOptions *opt);
/* Same for text already in memory (tests and the fuzzer). */
TlProgram *tl_sema_check_text(const char *name, const char *text, size_t len,
                              const TlSemaOptions *opt);
void tl_program_free(TlProgram *prog);

#endif
