/* optimizer.c - lowers the train block's optimizer to in-place update
 * nodes appended to the train graph, one per parameter, after every
 * gradient has been computed.  Optimizer state lives in the opt block;
 * each parameter gets its slots here (ir_tensor.opt_slot). */
#include <string.h>
#include "passes.h"

static int slot(arena *a, ir_graph *g, int64_t off, const ir_type *t)
{
	ir_node *n = ir_add(a, g, IR_OPT_SLOT, 0, NULL, t);
	n->ia[0] = off;
	return n->id;
}

int pass_optimizer(arena *a, ir_program *p)
{
	ir_graph *g = p->train;
	if (!g || !p->param_grad)
		return 0;
	int bad = 0;
	int per = p->opt == IR_OPT_SGD ? (p->momentum != 0 ? 1 : 0) : 2;
	p->opt_floats = 0;
	int *param_node = arena_alloc(a, (size_t)(p->nparams + 1) * sizeof *param_node);
	for (int i = 0; i < p->nparams; i++)
		param_node[i] = -1;
	for (int i = 0; i < g->nnodes; i++)
		if (g->nodes[i]->op == IR_PARAM)
			param_node[g->nodes[i]->ia[0]] = i;
	for (int i = 0; i < p->nparams; i++) {
		ir_tensor *t = &p->params[i];
		int64_t numel = ir_type_numel(&t->type).c;
		t->opt_slot = p->opt_floats;
		p->opt_floats += per * numel;
		int gr = p->param_grad[i];
		if (gr < 0 || param_node[i] < 0) {
			/* a parameter the loss does not reach keeps its initial value */
			fprintf(stderr, "%s: warning: parameter '%s' does not affect the loss of '%s'; "
			        "it is never updated\n", p->source_path, t->path, p->train_name);
			continue;
		}
		ir_node *u;
		if (p->opt == IR_OPT_SGD) {
			int mom = per ? slot(a, g, t->opt_slot, &t->type) : gr;
			int in[3] = { param_node[i], gr, mom };
			u = ir_add(a, g, IR_SGD_UPDATE, 3, in, &t->type);
			u->fa[0] = (float)p->momentum;
			u->fa[1] = (float)p->weight_decay;
			u->ia[0] = p->nesterov;
			u->ia[1] = per;
		} else {
			int m = slot(a, g, t->opt_slot, &t->type);
			int v = slot(a, g, t->opt_slot + numel, &t->type);
			int in[4] = { param_node[i], gr, m, v };
			u = ir_add(a, g, IR_ADAM_UPDATE, 4, in, &t->type);
			u->fa[0] = (float)p->beta1;
			u->fa[1] = (float)p->beta2;
			u->fa[2] = (float)p->eps;
			u->fa[3] = (float)p->weight_decay;
			u->ia[0] = p->opt == IR_OPT_ADAMW;
		}
		u->path = t->path;
		u->loc = t->loc;
	}
	return bad;
}
