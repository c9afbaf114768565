/* plans.c - gives every reduction its reduction plan (determinism.md
 * section 2).  A plan is a function of the op and its logical shape only,
 * never of thread counts, devices or tiling, so every backend and every
 * thread count adds in the same order.
 *
 * Families:
 *   seq          acc = +0, then acc = acc + x[k] for k = 0, 1, ...
 *   blocked:N    consecutive blocks of N terms, each summed seq from +0;
 *                the block sums then summed seq from +0
 *   tree:F       the terms in index order are summed in groups of F
 *                consecutive ones (each group seq from its first term);
 *                the group sums form the next level, until one remains
 *
 * Dot products (ops flagged IR_F_DOT: matmul) may be fused, "+fma": each
 * term a*b is accumulated as acc = fma(a, b, acc), one rounding instead of
 * two, with seq or blocked:N (a tree adds sums of terms, which has no
 * fused form).  fma is a correctly rounded primitive on every backend
 * (x86 FMA3/AVX-512, CUDA fma.rn), so a fused plan is as exact a contract
 * as an unfused one -- and twice as fast on CPUs and GPUs, whose
 * multiply-add units do a*b+c in one instruction.
 *
 * The default is seq+fma for dot products and seq for every other
 * reduction.  `--plan` overrides it, for
 * every reduction or for those whose instance path matches a pattern:
 *   --plan blocked:64
 *   --plan 'mlp.h1*=tree:2,loss=seq'
 * Patterns are shell globs (fnmatch) over the node's instance path; the
 * first pattern that matches wins.  With NND_TEST_RACY=1 in the
 * environment, the test-only family `racy` is accepted too (see ir.h). */
#include <string.h>
#include <stdlib.h>
#include <fnmatch.h>
#include <inttypes.h>
#include "passes.h"

typedef struct rule { char *pattern; ir_plan plan; } rule;

/* "seq" | "blocked:N" | "tree:F" (also "blocked(N)", "tree(F)"), each
 * optionally followed by "+fma" */
static bool parse_family(const char *s, size_t n, ir_plan *out, char *err, size_t errlen)
{
	char buf[64];
	bool fused = false;
	if (n > 4 && !memcmp(s + n - 4, "+fma", 4)) {
		fused = true;
		n -= 4;
	}
	if (n == 0 || n >= sizeof buf) {
		snprintf(err, errlen, "empty or overlong plan '%.*s'", (int)n, s);
		return false;
	}
	memcpy(buf, s, n);
	buf[n] = 0;
	char *arg = strpbrk(buf, ":(");
	if (arg) {
		char close = *arg == '(' ? ')' : 0;
		*arg++ = 0;
		if (close) {
			char *e = strchr(arg, ')');
			if (!e || e[1]) {
				snprintf(err, errlen, "plan '%.*s': expected a closing ')'", (int)n, s);
				return false;
			}
			*e = 0;
		}
	}
	memset(out, 0, sizeof *out);
	out->fused = fused;
	if (!strcmp(buf, "seq") && !arg) {
		out->family = IR_PLAN_SEQ;
		return true;
	}
	if (fused && strcmp(buf, "blocked")) {
		snprintf(err, errlen, "plan '%s+fma': only seq and blocked:N can be fused", buf);
		return false;
	}
	/* the planted nondeterminism of the verify tests, never for real use */
	if (!strcmp(buf, "racy") && !arg && getenv("NND_TEST_RACY")) {
		out->family = IR_PLAN_RACY;
		return true;
	}
	if (strcmp(buf, "blocked") && strcmp(buf, "tree")) {
		snprintf(err, errlen, "unknown plan '%s' (expected seq, blocked:N or tree:F, "
		         "seq and blocked optionally +fma)", buf);
		return false;
	}
	char *end;
	long long v = arg ? strtoll(arg, &end, 10) : 0;
	if (!arg || !*arg || *end || v < 2 || v > (1 << 20)) {
		snprintf(err, errlen, "plan '%s' needs a size from 2 to 1048576, as in %s:%d", buf, buf,
		         strcmp(buf, "tree") ? 64 : 2);
		return false;
	}
	if (!strcmp(buf, "blocked")) {
		out->family = IR_PLAN_BLOCKED;
		out->block = v;
	} else {
		out->family = IR_PLAN_TREE;
		out->fanin = (int)v;
	}
	return true;
}

/* Parses the whole --plan value into rules; a bare family is the rule "*". */
static int parse_rules(const char *spec, rule **out, char *err, size_t errlen)
{
	int n = 0;
	rule *r = NULL;
	const char *s = spec;
	while (*s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		rule nr;
		if (eq) {
			nr.pattern = strndup(s, (size_t)(eq - s));
			if (!parse_family(eq + 1, len - (size_t)(eq - s) - 1, &nr.plan, err, errlen)) {
				free(nr.pattern);
				goto fail;
			}
		} else {
			nr.pattern = strdup("*");
			if (!parse_family(s, len, &nr.plan, err, errlen)) {
				free(nr.pattern);
				goto fail;
			}
		}
		r = xrealloc(r, (size_t)(n + 1) * sizeof *r);
		r[n++] = nr;
		s += len;
		if (*s == ',')
			s++;
	}
	*out = r;
	return n;
fail:
	for (int i = 0; i < n; i++)
		free(r[i].pattern);
	free(r);
	return -1;
}

bool pass_plan_valid(const char *spec, char *err, size_t errlen)
{
	rule *r;
	int n = parse_rules(spec, &r, err, errlen);
	if (n < 0)
		return false;
	for (int i = 0; i < n; i++)
		free(r[i].pattern);
	free(r);
	return true;
}

static void plan_graph(ir_graph *g, const rule *rules, int nrules)
{
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		if (!(ir_ops[n->op].flags & IR_F_REDUCE))
			continue;
		bool dot = ir_ops[n->op].flags & IR_F_DOT;
		n->plan = (ir_plan){ IR_PLAN_SEQ, 0, 0, dot };
		for (int k = 0; k < nrules; k++)
			if (!fnmatch(rules[k].pattern, n->path ? n->path : "", 0)) {
				n->plan = rules[k].plan;
				/* a pattern may cover sums too: +fma only means
				 * something for dot products */
				n->plan.fused = n->plan.fused && dot;
				break;
			}
	}
}

int pass_plans(ir_program *p, const pass_options *o)
{
	rule *rules = NULL;
	int nrules = 0;
	if (o && o->plan_override) {
		char err[256];
		nrules = parse_rules(o->plan_override, &rules, err, sizeof err);
		if (nrules < 0) {
			diag_error((src_loc){ 0 }, "--plan: %s", err);
			return 1;
		}
	}
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		plan_graph(gs[i], rules, nrules);
	for (int i = 0; i < nrules; i++)
		free(rules[i].pattern);
	free(rules);
	p->planned = true;
	return 0;
}
