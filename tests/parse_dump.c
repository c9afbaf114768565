/* parse_dump.c - test driver: parses each file given, prints its AST dump on
 * stdout (diagnostics go to stderr) and exits 1 if any error was reported.
 * Several files are parsed in one process on purpose: the parser must be
 * reusable. */
#include <stdio.h>

#include "frontend/ast.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE.nnd...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		arena *a = arena_new();
		ast_file *f = ast_parse_file(a, argv[i]);
		if (f)
			ast_print(f, stdout);
		arena_free(a);
	}
	fflush(stdout);
	return diag_count() > 0 ? 1 : 0;
}
