/* common.h - what every compiler module shares: source locations,
 * diagnostics, and the arena allocator that owns AST and IR memory.
 *
 * Diagnostics follow cli.md: "FILE:LINE:COL: error: MESSAGE", then the
 * source line and a caret under the column.  A pass reports every error it
 * finds (diag_error returns, except past the error limit below); the
 * driver checks diag_count() between passes and stops there. */
#ifndef NND_COMMON_H
#define NND_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

typedef struct src_loc {
	const char *file;   /* as given on the command line */
	int line, col;      /* 1-based; line 0 = no location */
} src_loc;

/* ---- arena: one allocator for AST and IR (freed all at once) ---- */
typedef struct arena arena;
arena *arena_new(void);
void   arena_free(arena *a);
void  *arena_alloc(arena *a, size_t n);          /* zeroed, 16-aligned */
char  *arena_strdup(arena *a, const char *s);
char  *arena_strndup(arena *a, const char *s, size_t n);
char  *arena_printf(arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* growable array of pointers allocated in an arena */
typedef struct ptrvec { void **v; int n, cap; } ptrvec;
void ptrvec_push(arena *a, ptrvec *pv, void *p);

/* ---- diagnostics ---- */
/* Registers the text of a source file so diagnostics can quote its lines
 * (control characters and malformed UTF-8 are printed escaped, \x1b).
 * The _n form takes a length: the text may contain NUL bytes. */
void diag_set_source(const char *file, const char *text);
void diag_set_source_n(const char *file, const char *text, size_t len);
/* diag_error stops the process (exit 1, "too many errors, stopping") at
 * the 51st distinct error since the last diag_reset. */
void diag_error(src_loc loc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A warning: printed like an error, not counted (compilation goes on). */
void diag_warning(src_loc loc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void diag_note(src_loc loc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int  diag_count(void);                 /* errors reported so far */
void diag_reset(void);

/* Fatal internal error: message on stderr, exit status 2 (cli.md). */
_Noreturn void nnd_ice(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
