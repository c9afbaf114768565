/* profile.c - `train --profile`: where a step's time goes, node by node.
 *
 * With bit 2 of args.debug set, generated code calls nnd_rt_node_time after
 * every node of a graph; the time since the previous call (or since
 * rt_prof_step_begin, for a graph's first node) is that node's.  Kernels
 * run to completion before the step function moves on (the pool joins), so
 * the time between two calls is the node's whole parallel kernel.  The
 * report sums over steps and prints the nodes that took the most time, with
 * their op, instance path and -- for dot products, whose flop count the
 * compiler passes -- GFLOP/s.  Profiling never changes a bit: it only
 * reads the clock. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "rt_internal.h"

typedef struct prof_node { double s; int64_t calls; double flops; } prof_node;
typedef struct prof_graph { prof_node *v; int64_t n; } prof_graph;

static prof_graph graphs[3];
static double last;
static bool on;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void rt_prof_enable(bool enable) { on = enable; }
bool rt_prof_enabled(void) { return on; }
void rt_prof_step_begin(void) { last = now_s(); }

void nnd_rt_node_time(nnd_step_args *a, int32_t graph, int32_t node, int64_t flops)
{
	double t = now_s();
	if (!a || !on || graph < 0 || graph > 2 || node < 0) {
		last = t;
		return;
	}
	prof_graph *g = &graphs[graph];
	if (node >= g->n) {
		int64_t nn = node + 64;
		prof_node *nv = realloc(g->v, (size_t)nn * sizeof *g->v);
		if (!nv) rt_die(2, "--profile: out of memory");
		g->v = nv;
		memset(g->v + g->n, 0, (size_t)(nn - g->n) * sizeof *g->v);
		g->n = nn;
	}
	g->v[node].s += t - last;
	g->v[node].calls++;
	g->v[node].flops += (double)flops;
	last = now_s();   /* the bookkeeping above is not the next node's */
}

typedef struct prof_row { int graph; int64_t node; prof_node p; } prof_row;

static int by_time(const void *x, const void *y)
{
	const prof_row *a = x, *b = y;
	return a->p.s < b->p.s ? 1 : a->p.s > b->p.s ? -1 : 0;
}

void rt_prof_report(const rt_program *p, FILE *out, int top)
{
	static const char *gname[3] = { "train", "eval", "infer" };
	int64_t n = 0;
	for (int g = 0; g < 3; g++) n += graphs[g].n;
	prof_row *rows = rt_xcalloc((size_t)(n ? n : 1), sizeof *rows);
	int64_t k = 0;
	double tot[3] = { 0 };
	for (int g = 0; g < 3; g++)
		for (int64_t i = 0; i < graphs[g].n; i++)
			if (graphs[g].v[i].calls) {
				rows[k++] = (prof_row){ g, i, graphs[g].v[i] };
				tot[g] += graphs[g].v[i].s;
			}
	qsort(rows, (size_t)k, sizeof *rows, by_time);
	/* NND_PROFILE_TOP=N: more (or fewer) rows, e.g. for bench/bench.py */
	const char *env = getenv("NND_PROFILE_TOP");
	if (env && atoi(env) > 0)
		top = atoi(env);
	fprintf(out, "profile: train steps %.3f s, eval %.3f s, infer %.3f s in kernels\n", tot[0], tot[1], tot[2]);
	fprintf(out, "%-6s %5s %-20s %-34s %9s %6s %8s %9s\n", "graph", "node", "op", "path", "total_s", "%",
	        "calls", "GFLOP/s");
	for (int64_t i = 0; i < k && i < top; i++) {
		const prof_row *r = &rows[i];
		const rt_node *nd = rt_find_node(p, r->graph, r->node);
		double share = tot[r->graph] > 0 ? 100.0 * r->p.s / tot[r->graph] : 0.0;
		char gf[32] = "-";
		if (r->p.flops > 0 && r->p.s > 0)
			snprintf(gf, sizeof gf, "%.1f", r->p.flops / r->p.s * 1e-9);
		fprintf(out, "%-6s %5" PRId64 " %-20s %-34s %9.4f %6.1f %8" PRId64 " %9s\n", gname[r->graph], r->node,
		        nd ? nd->op : "?", nd ? nd->path : "?", r->p.s, share, r->p.calls, gf);
	}
	free(rows);
}
