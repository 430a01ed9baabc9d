#include "arena.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Chunk {
    struct Chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Chunk;

struct TlArena {
    Chunk *head;
};

TlArena *tl_arena_new(void) {
    TlArena *a = calloc(1, sizeof *a);
    if (!a) abort();
    return a;
}

void tl_arena_free(TlArena *a) {
    if (!a) return;
    for (Chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(a);
}

void *tl_arena_alloc(TlArena *a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    Chunk *c = a->head;
    if (!c || c->used + size > c->size) {
        size_t csize = size > 65536 ? size : 65536;
        c = malloc(sizeof *c + csize);
        if (!c) {
            fputs("tlc: out of memory\n", stderr);
            abort();
        }
        c->size = csize;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

char *tl_arena_strndup(TlArena *a, const char *s, size_t n) {
    char *p = tl_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *tl_arena_strdup(TlArena *a, const char *s) { return tl_arena_strndup(a, s, strlen(s)); }

char *tl_arena_printf(TlArena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = tl_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *tl_arena_grow(TlArena *a, void *ptr, int *cap, int n, size_t elem) {
    if (n <= *cap) return ptr;
    int ncap = *cap ? *cap * 2 : 4;
    while (ncap < n) ncap *= 2;
    void *p = tl_arena_alloc(a, (size_t)ncap * elem);
    if (ptr) memcpy(p, ptr, (size_t)*cap * elem);
    *cap = ncap;
    return p;
}
