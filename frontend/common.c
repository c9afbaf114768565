/* common.c - arena, checked allocation, file reading and diagnostics. */
#include "common.h"
#include "../runtime/rt.h"

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
 * freed before the last diagnostic about that file is printed.  The text
 * may hold NUL bytes (a binary file given by mistake), hence the length.
 * `lines` (the byte offset where each line starts) is built on the first
 * quote, so finding a line costs the same at line 1 and at line 200000:
 * quoting every error of a big file stays linear. */
typedef struct diag_src {
	char *file;
	char *text;
	size_t len;
	size_t *lines;
	size_t nlines;
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

static void diag_src_fill(diag_src *s, const char *text, size_t len)
{
	s->text = xmalloc(len + 1);
	if (len)
		memcpy(s->text, text, len);
	s->text[len] = '\0';
	s->len = len;
	s->lines = NULL;
	s->nlines = 0;
}

void diag_set_source_n(const char *file, const char *text, size_t len)
{
	if (!file)
		return;
	if (!text)
		len = 0;
	for (int i = 0; i < diag_nsrcs; i++) {
		if (strcmp(diag_srcs[i].file, file) == 0) {
			free(diag_srcs[i].text);
			free(diag_srcs[i].lines);
			diag_src_fill(&diag_srcs[i], text, len);
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
	diag_src_fill(s, text, len);
}

void diag_set_source(const char *file, const char *text)
{
	diag_set_source_n(file, text, text ? strlen(text) : 0);
}

static diag_src *diag_src_of(const char *file)
{
	if (!file)
		return NULL;
	for (int i = 0; i < diag_nsrcs; i++)
		if (strcmp(diag_srcs[i].file, file) == 0)
			return &diag_srcs[i];
	return NULL;
}

static void diag_index_lines(diag_src *s)
{
	size_t n = 1;
	for (size_t i = 0; i < s->len; i++)
		if (s->text[i] == '\n')
			n++;
	s->lines = xmalloc(n * sizeof *s->lines);
	s->lines[0] = 0;
	s->nlines = 1;
	for (size_t i = 0; i < s->len; i++)
		if (s->text[i] == '\n')
			s->lines[s->nlines++] = i + 1;
}

/* One glyph of a quoted line: how many bytes of the source it covers, and
 * what is printed for it (at most 4 bytes: one UTF-8 character, or "\xHH"
 * for a control character or a stray byte, so that no byte of the file can
 * drive the terminal).  *width is the number of caret-line columns. */
static size_t diag_glyph(const unsigned char *p, size_t n, char out[8],
			 size_t *outlen, int *width)
{
	unsigned char c = p[0];
	if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
		out[0] = (char)c;
		*outlen = 1;
		*width = 1;
		return 1;
	}
	size_t k = c >= 0x80 ? nnd_utf8_len(p, n) : 0;
	if (k == 2 && c == 0xC2 && p[1] <= 0x9F)
		k = 0;   /* C1 controls (U+0080..U+009F): some terminals obey them like ESC */
	if (k) {
		memcpy(out, p, k);
		*outlen = k;
		*width = 1;
		return k;
	}
	snprintf(out, 8, "\\x%02x", c);
	*outlen = 4;
	*width = 4;
	return 1;
}

/* Longer lines are quoted as a window around the caret, so a minified or
 * binary file cannot flood the terminal. */
#define DIAG_QUOTE_MAX 200

static void diag_put_line(const unsigned char *p, size_t n, size_t caret)
{
	size_t lo = 0, hi = n;
	if (n > DIAG_QUOTE_MAX) {
		lo = caret > DIAG_QUOTE_MAX / 2 ? caret - DIAG_QUOTE_MAX / 2 : 0;
		while (lo > 0 && (p[lo] & 0xC0) == 0x80)
			lo--;  /* start on a character, not inside one */
		hi = lo + DIAG_QUOTE_MAX < n ? lo + DIAG_QUOTE_MAX : n;
	}
	char g[8];
	size_t glen;
	int w;
	if (lo > 0)
		fputs("...", stderr);
	for (size_t i = lo; i < hi;) {
		size_t k = diag_glyph(p + i, hi - i, g, &glen, &w);
		fwrite(g, 1, glen, stderr);
		i += k;
	}
	if (hi < n)
		fputs("...", stderr);
	fputc('\n', stderr);
	/* the caret line: the same glyphs as blanks (tabs stay tabs) */
	if (lo > 0)
		fputs("   ", stderr);
	for (size_t i = lo; i < caret && i < hi;) {
		size_t k = diag_glyph(p + i, hi - i, g, &glen, &w);
		if (i + k > caret)
			break;  /* the caret is inside this glyph: point at it */
		if (g[0] == '\t')
			fputc('\t', stderr);
		else
			fprintf(stderr, "%*s", w, "");
		i += k;
	}
	fputs("^\n", stderr);
}

/* Prints the quoted source line and the caret.  Positions outside the text
 * (line past the end, column past the end of the line) are clamped rather
 * than trusted, since they can come from any pass. */
static void diag_quote(src_loc loc)
{
	diag_src *s = diag_src_of(loc.file);
	if (!s || loc.line < 1)
		return;
	if (!s->lines)
		diag_index_lines(s);
	if ((size_t)loc.line > s->nlines)
		return;
	size_t off = s->lines[loc.line - 1];
	if (off == s->len && loc.line > 1)
		return;  /* the empty "line" after a final newline */
	const unsigned char *p = (const unsigned char *)s->text + off;
	const unsigned char *nl = memchr(p, '\n', s->len - off);
	size_t n = nl ? (size_t)(nl - p) : s->len - off;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	size_t col = loc.col < 1 ? 1 : (size_t)loc.col;
	if (col > n + 1)
		col = n + 1;
	diag_put_line(p, n, col - 1);
}

/* Messages quote user text too (names, paths from string literals):
 * control characters and stray bytes are escaped like in quoted lines. */
static void diag_put_msg(const char *msg)
{
	const unsigned char *p = (const unsigned char *)msg;
	size_t n = strlen(msg);
	char g[8];
	size_t glen;
	int w;
	for (size_t i = 0; i < n;) {
		size_t k = diag_glyph(p + i, n - i, g, &glen, &w);
		fwrite(g, 1, glen, stderr);
		i += k;
	}
}

static void diag_emit(src_loc loc, const char *kind, const char *fmt,
		      va_list ap)
{
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
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
	diag_put_msg(msg);
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

/* Past this many errors the rest is noise (and a binary file given by
 * mistake would print megabytes): like cc, stop. */
#define DIAG_MAX_ERRORS 50
static int diag_shown;  /* errors printed since the last reset */

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
	if (diag_shown >= DIAG_MAX_ERRORS) {
		fflush(stdout);
		fprintf(stderr, "nndc: too many errors, stopping (the first %d are shown)\n",
			DIAG_MAX_ERRORS);
		exit(1);
	}
	if (diag_nseen == diag_capseen) {
		diag_capseen = diag_capseen ? diag_capseen * 2 : 64;
		diag_seen = xrealloc(diag_seen, diag_capseen * sizeof *diag_seen);
	}
	diag_seen[diag_nseen++] = h;
	diag_muted = false;
	diag_shown++;
	diag_vemit(loc, "error", "%s", msg);
}

void diag_warning(src_loc loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_emit(loc, "warning", fmt, ap);
	va_end(ap);
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

/* Only the counts: registered sources stay so later diagnostics about an
 * already parsed file can still quote it. */
void diag_reset(void)
{
	diag_errors = 0;
	diag_shown = 0;
}
