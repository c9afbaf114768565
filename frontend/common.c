/* common.c - arena, checked allocation, file reading and diagnostics. */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- ICE -- */

_Noreturn void nnd_ice(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("nndc: internal error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

void *xmalloc(size_t n)
{
	/* malloc(0) may return NULL legitimately; never hand that out */
	void *p = malloc(n ? n : 1);
	if (!p)
		nnd_ice("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		nnd_ice("out of memory (%zu x %zu bytes)", n, m);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		nnd_ice("out of memory (%zu bytes)", n);
	return q;
}

/* -------------------------------------------------------------- arena -- */

#define ARENA_ALIGN 16
#define ARENA_CHUNK ((size_t)64 * 1024)

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t size;        /* usable bytes after the aligned start */
	size_t used;
	unsigned char *base; /* first 16-aligned byte inside the allocation */
} arena_chunk;

struct arena {
	arena_chunk *head;   /* current chunk first; older ones follow */
};

static arena_chunk *arena_chunk_new(size_t need)
{
	size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
	/* calloc gives zeroed memory, and a bump allocator never reuses bytes,
	 * so every allocation comes back zeroed without a memset */
	if (size > SIZE_MAX - sizeof(arena_chunk) - ARENA_ALIGN)
		nnd_ice("arena allocation too large (%zu bytes)", need);
	arena_chunk *c = xcalloc(1, sizeof(arena_chunk) + ARENA_ALIGN + size);
	uintptr_t p = (uintptr_t)(c + 1);
	p = (p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
	c->base = (unsigned char *)p;
	c->size = size;
	return c;
}

arena *arena_new(void)
{
	arena *a = xcalloc(1, sizeof *a);
	a->head = arena_chunk_new(ARENA_CHUNK);
	return a;
}

void arena_free(arena *a)
{
	if (!a)
		return;
	arena_chunk *c = a->head;
	while (c) {
		arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	free(a);
}

void *arena_alloc(arena *a, size_t n)
{
	if (n > SIZE_MAX - 2 * ARENA_ALIGN)
		nnd_ice("arena allocation too large (%zu bytes)", n);
	/* round up so the next allocation stays aligned; n == 0 still gets a
	 * distinct pointer */
	size_t sz = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (sz == 0)
		sz = ARENA_ALIGN;
	arena_chunk *c = a->head;
	if (c->size - c->used < sz) {
		arena_chunk *nc = arena_chunk_new(sz);
		if (sz >= ARENA_CHUNK / 4 && c->size - c->used >= ARENA_ALIGN) {
			/* a big block gets its own chunk behind the current one, so
			 * the remaining space of the current chunk is not wasted */
			nc->next = c->next;
			c->next = nc;
			nc->used = sz;
			return nc->base;
		}
		nc->next = c;
		a->head = c = nc;
	}
	void *p = c->base + c->used;
	c->used += sz;
	return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
	char *d = arena_alloc(a, n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *arena_strdup(arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *arena_printf(arena *a, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		nnd_ice("arena_printf: bad format \"%s\"", fmt);
	char *s = arena_alloc(a, (size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return s;
}

void ptrvec_push(arena *a, ptrvec *pv, void *p)
{
	if (pv->n == pv->cap) {
		int cap = pv->cap ? pv->cap * 2 : 8;
		void **v = arena_alloc(a, (size_t)cap * sizeof *v);
		if (pv->n)
			memcpy(v, pv->v, (size_t)pv->n * sizeof *v);
		pv->v = v;
		pv->cap = cap;
	}
	pv->v[pv->n++] = p;
}

/* ---------------------------------------------------------- read_file -- */

static void set_err(char *err, size_t errlen, const char *what,
		    const char *path, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
}

char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		set_err(err, errlen, "cannot open", path, errno);
		return NULL;
	}
	/* read in a loop rather than trusting fseek/ftell, so pipes and
	 * /dev/stdin work too */
	size_t cap = 4096, n = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (cap - n < 2) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				int e = errno ? errno : EIO;
				set_err(err, errlen, "cannot read", path, e);
				fclose(f);
				free(buf);
				return NULL;
			}
			break;
		}
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* -------------------------------------------------------- diagnostics -- */

/* Texts are copied: the caller's copy usually lives in an arena that may be
 * freed before the last diagnostic about that file is printed. */
typedef struct diag_src {
	char *file;
	char *text;
} diag_src;

static diag_src *diag_srcs;
static int diag_nsrcs, diag_capsrcs;
static int diag_errors;

static char *diag_strdup(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

void diag_set_source(const char *file, const char *text)
{
	if (!file)
		return;
	for (int i = 0; i < diag_nsrcs; i++) {
		if (strcmp(diag_srcs[i].file, file) == 0) {
			free(diag_srcs[i].text);
			diag_srcs[i].text = diag_strdup(text);
			return;
		}
	}
	if (diag_nsrcs == diag_capsrcs) {
		diag_capsrcs = diag_capsrcs ? diag_capsrcs * 2 : 8;
		diag_srcs = xrealloc(diag_srcs,
				     (size_t)diag_capsrcs * sizeof *diag_srcs);
	}
	diag_src *s = &diag_srcs[diag_nsrcs++];
	s->file = diag_strdup(file);
	s->text = diag_strdup(text);
}

static const char *diag_text_of(const char *file)
{
	if (!file)
		return NULL;
	for (int i = 0; i < diag_nsrcs; i++)
		if (strcmp(diag_srcs[i].file, file) == 0)
			return diag_srcs[i].text;
	return NULL;
}

/* Prints the quoted source line and the caret.  Positions outside the text
 * (line past the end, column past the end of the line) are clamped rather
 * than trusted, since they can come from any pass. */
static void diag_quote(src_loc loc)
{
	const char *text = diag_text_of(loc.file);
	if (!text || loc.line < 1)
		return;
	const char *p = text;
	for (int l = 1; l < loc.line; l++) {
		p = strchr(p, '\n');
		if (!p)
			return;
		p++;
	}
	size_t n = strcspn(p, "\n");
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (*p == '\0' && loc.line > 1)
		return;  /* the empty "line" after a final newline */
	fwrite(p, 1, n, stderr);
	fputc('\n', stderr);
	size_t col = loc.col < 1 ? 1 : (size_t)loc.col;
	if (col > n + 1)
		col = n + 1;
	for (size_t i = 0; i + 1 < col; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\t')
			fputc('\t', stderr);
		else if ((c & 0xC0) == 0x80)
			continue;  /* UTF-8 continuation: one glyph, one column */
		else
			fputc(' ', stderr);
	}
	fputs("^\n", stderr);
}

static void diag_emit(src_loc loc, const char *kind, const char *fmt,
		      va_list ap)
{
	/* results on stdout and diagnostics on stderr may share a terminal;
	 * keep them in order */
	fflush(stdout);
	if (!loc.file)
		fprintf(stderr, "nndc: %s: ", kind);
	else if (loc.line < 1)
		fprintf(stderr, "%s: %s: ", loc.file, kind);
	else
		fprintf(stderr, "%s:%d:%d: %s: ", loc.file, loc.line,
			loc.col < 1 ? 1 : loc.col, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (loc.file && loc.line >= 1)
		diag_quote(loc);
}

/* A def called several times is lowered once per call, and a mistake in
 * its body would be found once per call: an error identical to one already
 * reported (same place, same text) is counted but not printed again, nor
 * are the notes that follow it. */
static uint64_t *diag_seen;
static size_t diag_nseen, diag_capseen;
static bool diag_muted;

static uint64_t diag_hash(src_loc loc, const char *msg)
{
	uint64_t h = 1469598103934665603ULL;
	const char *parts[2] = { loc.file ? loc.file : "", msg };
	for (int p = 0; p < 2; p++) {
		for (const char *s = parts[p]; *s; s++)
			h = (h ^ (uint8_t)*s) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h ^ ((uint64_t)(uint32_t)loc.line << 32) ^ (uint64_t)(uint32_t)loc.col;
}

static void diag_vemit(src_loc loc, const char *kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_emit(loc, kind, fmt, ap);
	va_end(ap);
}

void diag_error(src_loc loc, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	diag_errors++;
	uint64_t h = diag_hash(loc, msg);
	for (size_t i = 0; i < diag_nseen; i++)
		if (diag_seen[i] == h) {
			diag_muted = true;
			return;
		}
	if (diag_nseen == diag_capseen) {
		diag_capseen = diag_capseen ? diag_capseen * 2 : 64;
		diag_seen = xrealloc(diag_seen, diag_capseen * sizeof *diag_seen);
	}
	diag_seen[diag_nseen++] = h;
	diag_muted = false;
	diag_vemit(loc, "error", "%s", msg);
}

void diag_note(src_loc loc, const char *fmt, ...)
{
	if (diag_muted)
		return;
	va_list ap;
	va_start(ap, fmt);
	diag_emit(loc, "note", fmt, ap);
	va_end(ap);
}

int diag_count(void)
{
	return diag_errors;
}

/* Only the count: registered sources stay so later diagnostics about an
 * already parsed file can still quote it. */
void diag_reset(void)
{
	diag_errors = 0;
}
