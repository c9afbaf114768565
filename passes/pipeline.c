/* pipeline.c - the compiler as a straight list of passes, with the IR
 * verifier between every two.  nndc and the test tools all compile
 * through here, so they run exactly the same passes. */
#include <string.h>
#include "passes.h"
#include "../runtime/rt.h"

typedef int prog_pass(arena *a, ir_program *p, const pass_options *o);
static int run_shape(arena *a, ir_program *p, const pass_options *o) { (void)a; (void)o; return pass_shape(p); }
static int run_autodiff(arena *a, ir_program *p, const pass_options *o) { (void)o; return pass_autodiff(a, p); }
static int run_optimizer(arena *a, ir_program *p, const pass_options *o) { (void)o; return pass_optimizer(a, p); }
static int run_plans(arena *a, ir_program *p, const pass_options *o) { (void)a; return pass_plans(p, o); }
static int run_rng(arena *a, ir_program *p, const pass_options *o) { (void)o; return pass_rng(a, p); }
static int run_fuse(arena *a, ir_program *p, const pass_options *o) { (void)a; return pass_fuse(p, o); }
static int run_memplan(arena *a, ir_program *p, const pass_options *o) { (void)a; (void)o; return pass_memplan(p); }

static const struct { const char *name; prog_pass *run; } pipeline[] = {
	{ "shape", run_shape },          /* re-check the types lowering inferred */
	{ "autodiff", run_autodiff },    /* backward graph of the loss */
	{ "optimizer", run_optimizer },  /* in-place parameter updates */
	{ "shape", run_shape },          /* the backward graph is well typed */
	{ "plans", run_plans },          /* a reduction plan on every reduction */
	{ "rng", run_rng },              /* a stream on every random op */
	{ "fuse", run_fuse },            /* elementwise chains share one kernel */
	{ "memplan", run_memplan },      /* every value gets its place */
};
enum { NPASSES = sizeof pipeline / sizeof pipeline[0] };

const char *pass_names(void)
{
	/* built once from the table, so that a pass added there is listed */
	static char buf[256];
	if (!buf[0]) {
		size_t len = (size_t)snprintf(buf, sizeof buf, "lower");
		for (int i = 0; i < NPASSES && len < sizeof buf; i++) {
			bool dup = false;
			for (int j = 0; j < i; j++)
				dup = dup || !strcmp(pipeline[j].name, pipeline[i].name);
			if (!dup)
				len += (size_t)snprintf(buf + len, sizeof buf - len, ", %s", pipeline[i].name);
		}
	}
	return buf;
}

bool pass_known(const char *name)
{
	if (!strcmp(name, "lower"))
		return true;
	for (int i = 0; i < NPASSES; i++)
		if (!strcmp(pipeline[i].name, name))
			return true;
	return false;
}

ir_module *pass_compile(arena *a, const char *path, const pass_options *o, const char *stop,
                        ast_file **ast_out, int *status)
{
	*status = 0;
	ast_file *f = ast_parse_file(a, path);
	if (!f || diag_count()) {
		*status = 1;
		return NULL;
	}
	if (ast_out)
		*ast_out = f;
	if (stop && !strcmp(stop, "ast"))
		return NULL;
	/* the defs lowering will not instantiate (check.c); its errors do
	 * not stop lowering, which reports its own too */
	pass_check_uncalled_defs(f);
	ir_module *m = pass_lower(a, f);
	if (diag_count()) {
		*status = 1;
		return NULL;
	}
	uint8_t dig[32];
	nnd_sha256(f->text, strlen(f->text), dig);
	for (int i = 0; i < m->nprogs; i++) {
		nnd_sha256_hex(dig, m->progs[i]->source_sha256);
		if (ir_verify_program(m->progs[i], "lower")) {
			*status = 2;
			return NULL;
		}
	}
	if (stop && !strcmp(stop, "lower"))
		return m;
	for (int k = 0; k < NPASSES; k++) {
		/* a pass runs over every program before the driver stops, so
		 * that each train block's errors are reported in one run */
		int failed = 0;
		for (int i = 0; i < m->nprogs; i++) {
			if (pipeline[k].run(a, m->progs[i], o) || diag_count()) {
				failed = diag_count() ? 1 : 2;
				if (failed == 2)
					break;
				continue;
			}
			if (ir_verify_program(m->progs[i], pipeline[k].name)) {
				*status = 2;
				return NULL;
			}
		}
		if (failed || diag_count()) {
			*status = diag_count() ? 1 : 2;
			return NULL;
		}
		if (stop && !strcmp(stop, pipeline[k].name))
			return m;     /* the first time a pass of that name has run */
	}
	return m;
}
