/* fsutil.h — atomic file replacement for checkpoints and other outputs that must never be
 * seen half-written.
 *
 *   TlAtomicFile a;
 *   if (tl_fs_atomic_begin(&a, "ckpt/model.safetensors", err, sizeof err)) return -1;
 *   fwrite(..., a.f);                       // write everything through a.f
 *   if (tl_fs_atomic_commit(&a, err, sizeof err)) return -1;   // or tl_fs_atomic_abort(&a)
 *
 * begin creates a temporary file in the target's directory (same file system, so the
 * rename is atomic); commit flushes it, fsyncs it, renames it over the target and fsyncs
 * the directory so the rename itself survives a power cut. A crash or kill at any point
 * leaves either the old target or the new one, plus at worst a stray ".NAME.tmp.XXXXXX".
 * Errors are written to err as one line naming the file; nothing here exits. */
#ifndef TL_FSUTIL_H
#define TL_FSUTIL_H
#include <stddef.h>
#include <stdio.h>

typedef struct TlAtomicFile {
    FILE *f;    /* write the contents here */
    char *path; /* the target */
    char *tmp;  /* the temporary file beside it */
} TlAtomicFile;

/* 0 on success; -1 with a message in err (a may then be discarded without abort). */
int tl_fs_atomic_begin(TlAtomicFile *a, const char *path, char *err, size_t errlen);
/* Flush, fsync, rename over the target, fsync the directory. On failure the temporary
 * file is removed and the target is untouched. Frees a's resources either way. */
int tl_fs_atomic_commit(TlAtomicFile *a, char *err, size_t errlen);
/* Close and remove the temporary file; the target is untouched. */
void tl_fs_atomic_abort(TlAtomicFile *a);

#endif
