/* rng.c - pins one random stream to every random op and initializer
 * (determinism.md section 3).  A stream is named by the op's instance path
 * and keyed at run time by (seed, SHA-256 of the path), so editing one part
 * of a model never moves another part's random numbers.  A backward op
 * (dropout_bwd) shares its forward op's path and so its stream: it
 * regenerates the same mask instead of storing it. */
#include <string.h>
#include "passes.h"
#include "../runtime/rt.h"

static int stream_of(arena *a, ir_program *p, const char *path)
{
	for (int i = 0; i < p->nstreams; i++)
		if (!strcmp(p->streams[i].path, path))
			return i;
	ir_stream *ns = arena_alloc(a, (size_t)(p->nstreams + 1) * sizeof *ns);
	if (p->nstreams)
		memcpy(ns, p->streams, (size_t)p->nstreams * sizeof *ns);
	ns[p->nstreams].path = path;
	ns[p->nstreams].path_hash = nnd_path_hash(path);
	p->streams = ns;
	return p->nstreams++;
}

static int rng_graph(arena *a, ir_program *p, ir_graph *g)
{
	int bad = 0;
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		if (!(ir_ops[n->op].flags & IR_F_RANDOM))
			continue;
		if (!n->path) {
			fprintf(stderr, "nndc: internal error: random op %%%d (%s) has no instance path\n",
			        n->id, ir_ops[n->op].name);
			bad++;
			continue;
		}
		n->stream = stream_of(a, p, n->path);
	}
	return bad;
}

int pass_rng(arena *a, ir_program *p)
{
	int bad = 0;
	/* initializers first, in parameter order, so stream numbers read well */
	for (int i = 0; i < p->nparams; i++)
		p->params[i].stream = stream_of(a, p, p->params[i].path);
	for (int i = 0; i < p->nstates; i++)
		p->states[i].stream = stream_of(a, p, p->states[i].path);
	ir_graph *gs[3];
	for (int i = 0, n = ir_graphs(p, gs); i < n; i++)
		bad += rng_graph(a, p, gs[i]);
	p->streamed = true;
	return bad;
}
