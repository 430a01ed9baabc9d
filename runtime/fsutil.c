/* fsutil.c — atomic file replacement: temp file, fsync, rename, fsync the directory. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_err(char *err, size_t errlen, const char *path, const char *what, int e) {
    if (err && errlen) snprintf(err, errlen, "%s: error: %s: %s", path, what, strerror(e));
}

/* The directory part of path ("." when there is none), newly allocated. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int tl_fs_atomic_begin(TlAtomicFile *a, const char *path, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    char *dir = dir_of(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!dir || !*base) {
        free(dir);
        set_err(err, errlen, path, "not a file name", EINVAL);
        return -1;
    }
    size_t n = strlen(dir) + strlen(base) + 32;
    char *tmp = malloc(n);
    if (!tmp) {
        free(dir);
        set_err(err, errlen, path, "out of memory", ENOMEM);
        return -1;
    }
    snprintf(tmp, n, "%s/.%s.tmp.XXXXXX", dir, base);
    free(dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, errlen, path, "cannot create a temporary file beside it", errno);
        free(tmp);
        return -1;
    }
    /* mkstemp makes the file 0600; a written file should look like any other output. */
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        set_err(err, errlen, path, "fdopen", errno);
        close(fd);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    a->f = f;
    a->tmp = tmp;
    a->path = strdup(path);
    if (!a->path) {
        tl_fs_atomic_abort(a);
        set_err(err, errlen, path, "out of memory", ENOMEM);
        return -1;
    }
    return 0;
}

void tl_fs_atomic_abort(TlAtomicFile *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

int tl_fs_atomic_commit(TlAtomicFile *a, char *err, size_t errlen) {
    const char *path = a->path ? a->path : "(null)";
    if (ferror(a->f) || fflush(a->f) != 0) {
        set_err(err, errlen, path, "write failed", errno ? errno : EIO);
        goto fail;
    }
    if (fsync(fileno(a->f)) != 0) {
        set_err(err, errlen, path, "fsync failed", errno);
        goto fail;
    }
    int rc = fclose(a->f);
    a->f = NULL;
    if (rc != 0) {
        set_err(err, errlen, path, "close failed", errno);
        goto fail;
    }
    if (rename(a->tmp, a->path) != 0) {
        set_err(err, errlen, path, "rename failed", errno);
        goto fail;
    }
    free(a->tmp);
    a->tmp = NULL; /* the temp name is now the target: abort must not unlink it */
    /* Persist the rename: fsync the directory entry. Some file systems refuse to fsync a
     * directory (EINVAL); the data is already durable there, so that is not an error. */
    char *dir = dir_of(a->path);
    int ret = 0;
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
                set_err(err, errlen, path, "fsync of the directory failed", errno);
                ret = -1;
            }
            close(dfd);
        }
        free(dir);
    }
    tl_fs_atomic_abort(a);
    return ret;
fail:
    tl_fs_atomic_abort(a);
    return -1;
}
