/* verify_test.c - the IR verifier's storage checks must catch a broken
 * fusion or memory plan.  Compiles tests/ir/tiny_mlp.nnd, checks that the
 * real plan verifies clean, then breaks it in the ways a buggy pass could
 * and expects the verifier to name each one:
 *   - a region moved onto another that is live at the same time
 *   - a value fused although it has two readers
 *   - a value fused into a node that does not read it
 *   - a reshape moved out of its input's region */
#include <stdio.h>
#include <string.h>
#include "../../passes/passes.h"

static int failures;

static void expect(bool want_bad, int got, const char *what)
{
	if ((got != 0) != want_bad) {
		printf("FAIL %s: verifier reported %d problem(s)\n", what, got);
		failures++;
	} else {
		printf("ok %s (%d)\n", what, got);
	}
}

static ir_program *compile(arena *a, const char *path)
{
	pass_options o = { 0 };
	int st;
	ir_module *m = pass_compile(a, path, &o, NULL, NULL, &st);
	if (!m || st) {
		printf("FAIL: %s does not compile (%d)\n", path, st);
		return NULL;
	}
	return m->progs[0];
}

/* the first two activation regions of g live at the same time (a node and
 * its elementwise or matmul reader), both batch-scaled */
static bool live_pair(ir_graph *g, ir_node **x, ir_node **y)
{
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		if (n->blk != IR_BLK_ACT || !ir_type_numel(&n->type).sym || n->op == IR_RESHAPE)
			continue;
		for (int k = 0; k < n->nin; k++) {
			ir_node *in = g->nodes[n->in[k]];
			if (in->blk == IR_BLK_ACT && ir_type_numel(&in->type).sym && in->op != IR_RESHAPE) {
				*x = in;
				*y = n;
				return true;
			}
		}
	}
	return false;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: verify_test tests/ir/tiny_mlp.nnd\n");
		return 2;
	}
	arena *a = arena_new();
	ir_program *p = compile(a, argv[1]);
	if (!p) {
		arena_free(a);
		return 1;
	}
	expect(false, ir_verify_program(p, "test"), "the real plan");
	ir_graph *g = p->train;
	ir_node *x, *y;
	if (!live_pair(g, &x, &y)) {
		printf("FAIL: no pair of live regions in %s\n", argv[1]);
		arena_free(a);
		return 1;
	}
	int64_t saved = y->off_b;
	y->off_b = x->off_b;
	expect(true, ir_verify_program(p, "test"), "reader's result on its input's region");
	y->off_b = saved;
	expect(false, ir_verify_program(p, "test"), "restored");

	/* a forward value read twice (by its forward reader and the backward) */
	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		int readers = 0, reader = -1;
		for (int j = i + 1; j < g->nnodes; j++)
			for (int k = 0; k < g->nodes[j]->nin; k++)
				if (g->nodes[j]->in[k] == i) {
					readers++;
					if (reader < 0)
						reader = j;
				}
		if (readers < 2 || n->blk != IR_BLK_ACT || !(ir_ops[n->op].flags & IR_F_ELEM) ||
		    !(ir_ops[g->nodes[reader]->op].flags & IR_F_ELEM))
			continue;
		ir_block b = n->blk;
		int64_t c = n->off_c;
		n->blk = IR_BLK_FUSED;
		n->off_c = reader;
		expect(true, ir_verify_program(p, "test"), "fused value with two readers");
		n->off_c = g->nnodes - 1;
		expect(true, ir_verify_program(p, "test"), "fused into a node that does not read it");
		n->blk = b;
		n->off_c = c;
		break;
	}
	expect(false, ir_verify_program(p, "test"), "restored");

	for (int i = 0; i < g->nnodes; i++) {
		ir_node *n = g->nodes[i];
		if (n->op == IR_RESHAPE && n->blk == IR_BLK_ACT) {
			n->off_c += 64;
			expect(true, ir_verify_program(p, "test"), "reshape outside its input's region");
			n->off_c -= 64;
			break;
		}
	}
	printf("%d failures\n", failures);
	arena_free(a);
	return failures ? 1 : 0;
}
