/* loc.h — a place in a .tl source file. Shared by every stage so that Graph IR nodes,
 * kernels and diagnostics can all point back at the line they came from. */
#ifndef TL_LOC_H
#define TL_LOC_H

typedef struct TlLoc {
    int file;             /* index into the source table (dsl/source.h); 0 = no location */
    int line, col;        /* 1-based; col counts bytes */
    int end_line, end_col;/* inclusive end, for underlining; 0 when unknown */
} TlLoc;

#endif
