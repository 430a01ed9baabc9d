/* arena.h — bump allocation for one compilation stage; everything is freed at once. */
#ifndef TL_ARENA_H
#define TL_ARENA_H
#include <stddef.h>

typedef struct TlArena TlArena;

TlArena *tl_arena_new(void);
void tl_arena_free(TlArena *a);
void *tl_arena_alloc(TlArena *a, size_t size); /* zeroed, 16-byte aligned; aborts on OOM */
char *tl_arena_strndup(TlArena *a, const char *s, size_t n);
char *tl_arena_strdup(TlArena *a, const char *s);
char *tl_arena_printf(TlArena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Grows an arena array of elements of size elem from *cap to hold at least n. */
void *tl_arena_grow(TlArena *a, void *ptr, int *cap, int n, size_t elem);

#endif
