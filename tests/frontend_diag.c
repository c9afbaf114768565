/* frontend_diag.c - unit test of frontend/common.c: the arena, ptrvec,
 * read_file, and diagnostics at odd positions (which must never crash).
 * The diagnostics go to stderr and are compared with
 * parse/err/diag_positions.stderr; the other checks abort on failure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/common.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", \
	__FILE__, __LINE__, #c); abort(); } } while (0)

static void test_arena(void)
{
	arena *a = arena_new();
	for (size_t n = 0; n < 300000; n += n / 2 + 1) {
		unsigned char *p = arena_alloc(a, n);
		CHECK(((uintptr_t)p & 15) == 0);
		for (size_t i = 0; i < n; i++)
			CHECK(p[i] == 0);
		memset(p, 0xAB, n);
	}
	char *s = arena_printf(a, "%s-%d", "x", 42);
	CHECK(strcmp(s, "x-42") == 0);
	CHECK(strcmp(arena_strndup(a, "hello", 3), "hel") == 0);
	CHECK(strcmp(arena_strdup(a, ""), "") == 0);
	ptrvec pv = { 0 };
	for (intptr_t i = 0; i < 1000; i++)
		ptrvec_push(a, &pv, (void *)i);
	CHECK(pv.n == 1000);
	for (intptr_t i = 0; i < 1000; i++)
		CHECK(pv.v[i] == (void *)i);
	arena_free(a);
	arena_free(NULL);
}

static void test_read_file(void)
{
	char err[256] = "";
	size_t len = 99;
	CHECK(read_file("/nonexistent/x.nnd", &len, err, sizeof err) == NULL);
	CHECK(strncmp(err, "cannot open /nonexistent/x.nnd: ", 32) == 0);
	char *t = read_file("/dev/null", &len, err, sizeof err);
	CHECK(t && len == 0 && t[0] == '\0');
	free(t);
}

int main(void)
{
	test_arena();
	test_read_file();
	CHECK(diag_count() == 0);

	diag_set_source("t.nnd", "line one\n\tx = a\t+ b;\nthird line\r\nlast");
	src_loc l = { "t.nnd", 2, 9 };
	diag_error(l, "tab before the caret");
	l.col = 200;
	diag_error(l, "column past the end of the line");
	l.col = 0;
	diag_error(l, "column zero");
	l.line = 3; l.col = 11;
	diag_error(l, "column at the carriage return");
	l.line = 4; l.col = 5;
	diag_note(l, "a note at the end of the last line");
	l.line = 40;
	diag_error(l, "line past the end of the file");
	l.line = 0;
	diag_error(l, "no line");
	l.line = -3;
	diag_error(l, "negative line");
	diag_error((src_loc){ NULL, 3, 4 }, "no file");
	diag_error((src_loc){ "unknown.nnd", 1, 1 }, "file never registered");
	/* replacing the text of an already registered file */
	diag_set_source("t.nnd", "new text\n");
	diag_error((src_loc){ "t.nnd", 1, 5 }, "after re-registering: %d", 7);
	diag_error((src_loc){ "t.nnd", 2, 1 }, "the empty line after the last newline");
	CHECK(diag_count() == 11);
	diag_reset();
	CHECK(diag_count() == 0);
	diag_error((src_loc){ "t.nnd", 1, 1 }, "after reset");
	return diag_count() == 1 ? 1 : 3;
}
