/* cg_test.c - the LLVM backend's kernels against plain C references.
 *
 * Each case builds a small train graph by hand (ir_add, no parser), JITs it
 * with cg_build + cg_jit_lookup, runs nnd_train_0 on fixed inputs and
 * compares every result BIT-EXACTLY with a reference written below from the
 * semantics in ir/ops.def.  This file is compiled with -ffp-contract=off, so
 * the references' float operations are exactly the ones written.  The
 * transcendental functions are the runtime's own (the same process copy the
 * JIT resolves), so both sides call the same bits.
 *
 * Besides the kernels' sequential semantics: every reduction plan family
 * (blocked:N, tree:F) against references written from passes/plans.c,
 * the same bits at 1..4 threads with every kernel split down to single
 * units (NND_CG_GRAIN1), node digests (args.debug) and the infer graph.
 *
 * Usage: nnd_cg_test [--aot-dir DIR]   (exit 0 ok, 1 failures;
 *        NND_CG_TEST_ONLY=TEXT runs only the cases whose name contains TEXT)
 *        nnd_cg_test --sgemm [M K N [ta tb [reps]]]   (timing only, see bench_sgemm;
 *                    NND_CG_THREADS=T runs it on T threads) */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/codegen.h"
#include "ir/ir.h"
#include "passes/passes.h"   /* conv2d_lower, shape_prepare */
#include "runtime/rt.h"
#include "runtime/rt_internal.h"   /* rt_digests: what nnd_rt_node_digest recorded */

/* The runtime may not define this yet; a strong definition there wins. */
__attribute__((weak)) void nnd_rt_bad_label(int64_t row, int64_t label, int64_t classes)
{
	fprintf(stderr, "bad label %" PRId64 " in row %" PRId64 " (classes %" PRId64 ")\n", row, label, classes);
	exit(1);
}

static int failures, checks;

/* the plan tb_op gives new reduction nodes */
static ir_plan cur_plan = { IR_PLAN_SEQ, 0, 0, false };

#define MAXIN 64
#define BREG 262144    /* bytes per row of B reserved for B-sized activations */

/* a test bench: one program, one train graph, buffers for the arena */
typedef struct tb {
	arena *a;
	ir_program *p;
	ir_graph *g;
	const void *inputs[MAXIN];
	int ninputs;
	int64_t used_c, used_b;
	int64_t B, Bmax;
	uint8_t *acts;
	float params[4096], grads[4096], opt[8192], state[64], outputs[8];
	int64_t sample_idx[64];
	uint32_t keys[8];
	float lr, bc1, bc2;
	int64_t epoch, step;
	const char *name;
} tb;

/* dims: n >= 0 constant n; n < 0 means (-n) * B */
static ir_type ty(ir_dtype dt, int rank, ...)
{
	ir_type t;
	va_list ap;
	memset(&t, 0, sizeof t);
	t.dt = dt;
	t.rank = rank;
	va_start(ap, rank);
	for (int i = 0; i < rank; i++) {
		int v = va_arg(ap, int);
		t.d[i].c = v < 0 ? -v : v;
		t.d[i].sym = v < 0;
	}
	va_end(ap);
	return t;
}

static int64_t numel(const tb *t, const ir_type *ty_)
{
	return ir_dim_eval(ir_type_numel(ty_), t->B);
}

static void tb_init(tb *t, const char *name, int64_t B, int64_t Bmax)
{
	memset(t, 0, sizeof *t);
	t->name = name;
	t->a = arena_new();
	t->p = arena_alloc(t->a, sizeof *t->p);
	t->g = ir_graph_new(t->a, "train");
	t->p->train = t->g;
	t->p->nstreams = 2;
	t->p->streams = arena_alloc(t->a, 2 * sizeof *t->p->streams);
	t->B = B;
	t->Bmax = Bmax;
	t->acts = aligned_alloc(64, (size_t)(BREG * Bmax + 65536));
	memset(t->acts, 0xA5, (size_t)(BREG * Bmax + 65536));   /* garbage: kernels must initialise */
	for (int i = 0; i < 64; i++)
		t->sample_idx[i] = 1000 + 7 * i;
	t->keys[0] = 0x12345678u; t->keys[1] = 0x9abcdef0u;
	t->keys[2] = 0x0badf00du; t->keys[3] = 0xfeedbeefu;
	t->lr = 0.05f;
	t->bc1 = 0.1f;
	t->bc2 = 0.001f;
	t->epoch = 3;
	t->step = 1;
}

static void tb_done(tb *t)
{
	free(t->acts);
	arena_free(t->a);
}

static int tb_input(tb *t, ir_type type, const void *data)
{
	ir_node *n = ir_add(t->a, t->g, IR_INPUT, 0, NULL, &type);
	n->ia[0] = t->ninputs;
	n->blk = IR_BLK_INPUT;
	t->inputs[t->ninputs++] = data;
	return n->id;
}

static int tb_block(tb *t, ir_opcode op, ir_type type, ir_block blk, int64_t off)
{
	ir_node *n = ir_add(t->a, t->g, op, 0, NULL, &type);
	n->blk = blk;
	n->off_c = off;
	return n->id;
}

/* a computed node with a slot in the activation arena */
static ir_node *tb_opv(tb *t, ir_opcode op, ir_type type, int nin, const int *in)
{
	ir_node *n = ir_add(t->a, t->g, op, nin, in, &type);
	if (ir_ops[op].flags & IR_F_REDUCE)
		n->plan = cur_plan;
	if (ir_ops[op].flags & IR_F_UPDATE)
		return n;
	ir_dim ne = ir_type_numel(&type);
	int64_t bytes = (ne.c * ir_dtype_size(type.dt) + 63) / 64 * 64;
	n->blk = IR_BLK_ACT;
	if (ne.sym) {
		n->off_b = t->used_b;
		t->used_b += bytes;
		if (t->used_b > BREG) {
			fprintf(stderr, "test bench: B region full\n");
			exit(2);
		}
	} else {
		n->off_c = BREG * t->Bmax + t->used_c;
		t->used_c += bytes;
		if (t->used_c > 65536) {
			fprintf(stderr, "test bench: const region full\n");
			exit(2);
		}
	}
	return n;
}

static ir_node *tb_op(tb *t, ir_opcode op, ir_type type, int nin, ...)
{
	int in[4];
	va_list ap;
	va_start(ap, nin);
	for (int i = 0; i < nin; i++)
		in[i] = va_arg(ap, int);
	va_end(ap);
	return tb_opv(t, op, type, nin, in);
}

/* a node typed by its shape rule (preset: the result type of ops that
 * take it as an attribute), with attributes ia; -1 and a failure if the
 * rule refuses it */
static int tb_emit(void *ctx, ir_opcode op, int nin, const int *in, const ir_type *preset, const int64_t *ia)
{
	tb *t = ctx;
	ir_node tmp;
	char err[256];
	if (shape_prepare(t->g, &tmp, op, nin, in, preset, ia, NULL, err, sizeof err)) {
		printf("FAIL %s: %s: %s\n", t->name, ir_ops[op].name, err);
		failures++;
		return -1;
	}
	ir_node *n = tb_opv(t, op, tmp.type, nin, in);
	memcpy(n->ia, tmp.ia, sizeof n->ia);
	return n->id;
}

static void *res(tb *t, int id)
{
	const ir_node *n = t->g->nodes[id];
	return t->acts + n->off_c + n->off_b * t->Bmax;
}

/* the step function's arguments for t's buffers */
static void tb_args(tb *t, nnd_step_args *a)
{
	memset(a, 0, sizeof *a);
	a->params = t->params;
	a->grads = t->grads;
	a->opt = t->opt;
	a->state = t->state;
	a->acts = t->acts;
	a->inputs = t->inputs;
	a->sample_idx = t->sample_idx;
	a->keys = t->keys;
	a->outputs = t->outputs;
	a->B = t->B;
	a->Bmax = t->Bmax;
	a->step = t->step;
	a->epoch = t->epoch;
	a->lr = t->lr;
	a->bc1 = t->bc1;
	a->bc2 = t->bc2;
}

/* build and JIT the program; *fn = its symbol `sym` (NULL: nnd_train_0) */
static cg_module *tb_build(tb *t, int opt, const char *sym, nnd_step_fn *fn)
{
	ir_module m;
	memset(&m, 0, sizeof m);
	m.source_path = t->name;
	m.progs = &t->p;
	m.nprogs = 1;
	cg_module *cm = cg_build(&m, "nnd-manifest 1\n", NULL, opt, false);
	if (!cm) {
		printf("FAIL %s: cg_build\n", t->name);
		failures++;
		return NULL;
	}
	if (getenv("NND_CG_TEST_DUMP") && strstr(t->name, getenv("NND_CG_TEST_DUMP")))
		cg_print_llvm(cm, stdout);   /* debugging aid: the optimised IR of matching cases */
	void *p = cg_jit_lookup(cm, sym ? sym : "nnd_train_0");
	memcpy(fn, &p, sizeof *fn);   /* object -> function pointer, as dlsym users do */
	if (!*fn) {
		printf("FAIL %s: lookup\n", t->name);
		failures++;
		cg_free(cm);
		return NULL;
	}
	return cm;
}

/* build, JIT and run the graph once; returns 0 on success */
static int tb_run_opt(tb *t, int opt)
{
	const char *only = getenv("NND_CG_TEST_ONLY");   /* debugging aid: run matching cases only */
	if (only && !strstr(t->name, only))
		return -1;
	nnd_step_fn fn;
	cg_module *cm = tb_build(t, opt, NULL, &fn);
	if (!cm)
		return -1;
	nnd_step_args a;
	tb_args(t, &a);
	fn(&a);
	cg_free(cm);
	return 0;
}
static int tb_run(tb *t) { return tb_run_opt(t, 2); }

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void cmp_f32(tb *t, const char *what, const float *got, const float *want, int64_t n)
{
	checks++;
	for (int64_t i = 0; i < n; i++)
		if (bits(got[i]) != bits(want[i])) {
			printf("FAIL %s %s: element %" PRId64 " of %" PRId64 ": got %a (0x%08x), want %a (0x%08x)\n",
			       t->name, what, i, n, (double)got[i], bits(got[i]), (double)want[i], bits(want[i]));
			failures++;
			return;
		}
}

/* as cmp_f32, but any NaN matches any NaN: where two NaNs (or a NaN and
 * inf - inf) meet in one fadd, which payload and sign come out is not
 * fixed by LLVM's semantics (fadd/fmul commute) nor by x86, so the
 * kernels with special operands promise "a NaN", not its bits */
static void cmp_f32_nan(tb *t, const char *what, const float *got, const float *want, int64_t n)
{
	checks++;
	for (int64_t i = 0; i < n; i++)
		if (bits(got[i]) != bits(want[i]) && !(got[i] != got[i] && want[i] != want[i])) {
			printf("FAIL %s %s: element %" PRId64 " of %" PRId64 ": got %a (0x%08x), want %a (0x%08x)\n",
			       t->name, what, i, n, (double)got[i], bits(got[i]), (double)want[i], bits(want[i]));
			failures++;
			return;
		}
}

static void cmp_i32(tb *t, const char *what, const int32_t *got, const int32_t *want, int64_t n)
{
	checks++;
	for (int64_t i = 0; i < n; i++)
		if (got[i] != want[i]) {
			printf("FAIL %s %s: element %" PRId64 ": got %d, want %d\n", t->name, what, i, got[i], want[i]);
			failures++;
			return;
		}
}

/* deterministic test data: values in [-2, 2) with a few specials */
static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}
static float rndf(void) { return (float)(rnd() % 4000000) / 1000000.0f - 2.0f; }
static float *fill(int64_t n, bool specials)
{
	float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
	for (int64_t i = 0; i < n; i++)
		p[i] = rndf();
	if (specials && n >= 8) {
		p[1] = -0.0f;
		p[2] = 0.0f;
		p[3] = NAN;
		p[4] = INFINITY;
		p[5] = -INFINITY;
		p[6] = 1e-40f;    /* subnormal */
		p[7] = -1e-40f;
	}
	return p;
}

/* ---- reference helpers ---- */

static void strides(const ir_type *t, int64_t B, int64_t *s)
{
	int64_t acc = 1;
	for (int k = t->rank - 1; k >= 0; k--) {
		s[k] = acc;
		acc *= ir_dim_eval(t->d[k], B);
	}
}

/* index of element `lin` of shape `out` in broadcast operand `in` */
static int64_t bidx(const ir_type *out, const ir_type *in, int64_t B, int64_t lin)
{
	int64_t so[IR_MAX_RANK], si[IR_MAX_RANK], r = 0;
	strides(out, B, so);
	strides(in, B, si);
	for (int k = 0; k < out->rank; k++) {
		int64_t ik = lin / so[k];
		lin %= so[k];
		int j = k - (out->rank - in->rank);
		if (j >= 0 && !(in->d[j].c == 1 && in->d[j].sym == 0))
			r += ik * si[j];
	}
	return r;
}

static float ref_maximum(float a, float b)
{
	if (a != a) return a;
	if (b != b) return b;
	if (a > b) return a;
	if (a < b) return b;
	uint32_t u = bits(a) & bits(b);
	memcpy(&a, &u, 4);
	return a;
}

static float ref_minimum(float a, float b)
{
	if (a != a) return a;
	if (b != b) return b;
	if (a < b) return a;
	if (a > b) return b;
	uint32_t u = bits(a) | bits(b);
	memcpy(&a, &u, 4);
	return a;
}

/* ---------------------------------------------------------------- */

static void test_matmul(int M, int K, int N, bool ta, bool tb_, int64_t B, int sym)
{
	/* sym: 0 none, 1 M = B*M, 2 K = B*K */
	tb t;
	char name[96];
	snprintf(name, sizeof name, "matmul %dx%dx%d ta=%d tb=%d sym=%d", M, K, N, ta, tb_, sym);
	tb_init(&t, name, B, B + 3);
	int Md = sym == 1 ? -M : M, Kd = sym == 2 ? -K : K;
	int64_t m = sym == 1 ? M * B : M, k = sym == 2 ? K * B : K;
	float *a = fill(m * k, false), *b = fill(k * N, false);
	int ia = tb_input(&t, ta ? ty(IR_F32, 2, Kd, Md) : ty(IR_F32, 2, Md, Kd), a);
	int ib = tb_input(&t, tb_ ? ty(IR_F32, 2, N, Kd) : ty(IR_F32, 2, Kd, N), b);
	ir_node *c = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, Md, N), 2, ia, ib);
	c->ia[0] = ta;
	c->ia[1] = tb_;
	if (!tb_run(&t)) {
		float *want = malloc((size_t)(m * N) * sizeof *want);
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < N; j++) {
				float acc = 0.0f;
				for (int64_t q = 0; q < k; q++) {
					float x = ta ? a[q * m + i] : a[i * k + q];
					float y = tb_ ? b[j * k + q] : b[q * N + j];
					float pr = x * y;
					acc = acc + pr;
				}
				want[i * N + j] = acc;
			}
		cmp_f32(&t, "c", res(&t, c->id), want, m * N);
		free(want);
	}
	free(a);
	free(b);
	tb_done(&t);
}

/* many matmuls in one graph (one JIT build per graph): every (M, K, N) of
 * the given sets, for one transpose combination.  The sizes cover full
 * register blocks and every row/column remainder of the LLVM kernel's
 * tiling, whatever vector width it picks; a few operands hold specials
 * (NaN, inf, -0, subnormals). */
typedef struct mm_case {
	int M, K, N;
	float *a, *b;
	int id;
} mm_case;

static void mm_ref(const float *a, const float *b, float *want, int64_t nb, int64_t m, int64_t k, int64_t n,
                   bool ta, bool tb_, bool a3, bool b3)
{
	for (int64_t bt = 0; bt < nb; bt++) {
		const float *ab = a + (a3 ? bt * m * k : 0), *bb = b + (b3 ? bt * k * n : 0);
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < n; j++) {
				float acc = 0.0f;
				for (int64_t q = 0; q < k; q++) {
					float x = ta ? ab[q * m + i] : ab[i * k + q];
					float y = tb_ ? bb[j * k + q] : bb[q * n + j];
					float pr = x * y;
					acc = acc + pr;
				}
				want[bt * m * n + i * n + j] = acc;
			}
	}
}

static void mm_grid_run(tb *t, mm_case *cs, int ncs, bool ta, bool tb_)
{
	if (!tb_run(t))
		for (int q = 0; q < ncs; q++) {
			mm_case *x = &cs[q];
			float *want = malloc((size_t)x->M * (size_t)x->N * sizeof *want);
			char what[64];
			mm_ref(x->a, x->b, want, 1, x->M, x->K, x->N, ta, tb_, false, false);
			snprintf(what, sizeof what, "%dx%dx%d", x->M, x->K, x->N);
			cmp_f32_nan(t, what, res(t, x->id), want, (int64_t)x->M * x->N);
			free(want);
		}
	for (int q = 0; q < ncs; q++) {
		free(cs[q].a);
		free(cs[q].b);
	}
	tb_done(t);
}

static void test_matmul_grid(bool ta, bool tb_, const int *Ms, int nM, const int *Ks, int nK, const int *Ns, int nN)
{
	enum { MAXCS = MAXIN / 2 };
	mm_case cs[MAXCS];
	int ncs = 0, graphs = 0;
	tb t;
	char name[96];
	/* every (M, N); K cycles through Ks, so that each K meets many (M, N) */
	for (int im = 0; im < nM; im++)
		for (int in = 0; in < nN; in++) {
			int M = Ms[im], K = Ks[(im * 3 + in) % nK], N = Ns[in];
			int64_t bytes = ((int64_t)M * N * 4 + 63) / 64 * 64;
			if (ncs && (ncs == MAXCS || t.used_c + bytes > 65536)) {
				mm_grid_run(&t, cs, ncs, ta, tb_);
				ncs = 0;
			}
			if (!ncs) {
				snprintf(name, sizeof name, "matmul grid ta=%d tb=%d #%d", ta, tb_, graphs++);
				tb_init(&t, name, 1, 1);
			}
			mm_case *x = &cs[ncs++];
			x->M = M;
			x->K = K;
			x->N = N;
			x->a = fill((int64_t)M * K, (M * K) % 5 == 0);
			x->b = fill((int64_t)K * N, (K * N) % 7 == 0);
			int ia = tb_input(&t, ta ? ty(IR_F32, 2, K, M) : ty(IR_F32, 2, M, K), x->a);
			int ib = tb_input(&t, tb_ ? ty(IR_F32, 2, N, K) : ty(IR_F32, 2, K, N), x->b);
			ir_node *c = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, M, N), 2, ia, ib);
			c->ia[0] = ta;
			c->ia[1] = tb_;
			x->id = c->id;
		}
	if (ncs)
		mm_grid_run(&t, cs, ncs, ta, tb_);
}

/* leading (batch) dims: a and/or b of rank 3, any transposes */
static void test_batched_matmul(int nb, int M, int K, int N, bool ta, bool tb_, bool a3, bool b3)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "matmul batched %d x %dx%dx%d ta=%d tb=%d a3=%d b3=%d",
	         nb, M, K, N, ta, tb_, a3, b3);
	tb_init(&t, name, 4, 4);
	int64_t na = (int64_t)M * K * (a3 ? nb : 1), nbv = (int64_t)K * N * (b3 ? nb : 1);
	float *a = fill(na, false), *b = fill(nbv, false);
	ir_type at = ta ? ty(IR_F32, 3, nb, K, M) : ty(IR_F32, 3, nb, M, K);
	ir_type bt = tb_ ? ty(IR_F32, 3, nb, N, K) : ty(IR_F32, 3, nb, K, N);
	if (!a3) {
		at.rank = 2;
		at.d[0] = at.d[1];
		at.d[1] = at.d[2];
	}
	if (!b3) {
		bt.rank = 2;
		bt.d[0] = bt.d[1];
		bt.d[1] = bt.d[2];
	}
	int ia = tb_input(&t, at, a);
	int ib = tb_input(&t, bt, b);
	ir_node *c = tb_op(&t, IR_MATMUL, ty(IR_F32, 3, nb, M, N), 2, ia, ib);
	c->ia[0] = ta;
	c->ia[1] = tb_;
	if (!tb_run(&t)) {
		float *want = malloc((size_t)(nb * M * N) * sizeof *want);
		mm_ref(a, b, want, nb, M, K, N, ta, tb_, a3, b3);
		cmp_f32(&t, "c", res(&t, c->id), want, (int64_t)nb * M * N);
		free(want);
	}
	free(a);
	free(b);
	tb_done(&t);
}

/* ---- elementwise ---- */

static float ref_unary(ir_opcode op, float x)
{
	switch (op) {
	case IR_NEG: return -x;
	case IR_EXP: return nnd_rt_expf(x);
	case IR_LOG: return nnd_rt_logf(x);
	case IR_SQRT: return sqrtf(x);
	case IR_TANH: return nnd_rt_tanhf(x);
	case IR_SIGMOID: return nnd_rt_sigmoidf(x);
	case IR_RELU: return x > 0 ? x : (x != x ? x : +0.0f);
	case IR_GELU: return nnd_rt_geluf(x);
	default: return 0;
	}
}

static void test_unary(ir_opcode op)
{
	tb t;
	char name[64];
	snprintf(name, sizeof name, "unary %s", ir_ops[op].name);
	tb_init(&t, name, 5, 6);
	ir_type ty_ = ty(IR_F32, 2, -1, 9);
	int64_t n = 5 * 9;
	float *x = fill(n, true);
	if (op == IR_LOG || op == IR_SQRT)
		for (int64_t i = 8; i < n; i++)
			x[i] = fabsf(x[i]);
	int ix = tb_input(&t, ty_, x);
	ir_node *y = tb_op(&t, op, ty_, 1, ix);
	if (!tb_run(&t)) {
		float *want = malloc((size_t)n * sizeof *want);
		for (int64_t i = 0; i < n; i++)
			want[i] = ref_unary(op, x[i]);
		cmp_f32(&t, "y", res(&t, y->id), want, n);
		free(want);
	}
	free(x);
	tb_done(&t);
}

static float ref_binary(ir_opcode op, float a, float b)
{
	switch (op) {
	case IR_ADD: return a + b;
	case IR_SUB: return a - b;
	case IR_MUL: return a * b;
	case IR_DIV: return a / b;
	case IR_POW: return nnd_rt_powf(a, b);
	case IR_MAXIMUM: return ref_maximum(a, b);
	case IR_MINIMUM: return ref_minimum(a, b);
	case IR_GE: return a >= b ? 1.0f : +0.0f;
	case IR_RELU_BWD: return b > 0 ? a : +0.0f;
	case IR_TANH_BWD: return a * (1.0f - b * b);
	case IR_SIGMOID_BWD: return a * (b * (1.0f - b));
	case IR_GELU_BWD: return a * nnd_rt_gelu_gradf(b);
	default: return 0;
	}
}

/* shapes as dim lists (negative: times B) */
typedef struct shp { int rank; int d[4]; } shp;
static ir_type ty_of(shp s)
{
	ir_type t = ty(IR_F32, 0);
	t.rank = s.rank;
	for (int i = 0; i < s.rank; i++) {
		t.d[i].c = s.d[i] < 0 ? -s.d[i] : s.d[i];
		t.d[i].sym = s.d[i] < 0;
	}
	return t;
}

static void test_binary(ir_opcode op, shp sa, shp sb, shp so)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "binary %s rank %d,%d->%d", ir_ops[op].name, sa.rank, sb.rank, so.rank);
	tb_init(&t, name, 3, 5);
	ir_type ta = ty_of(sa), tbb = ty_of(sb), to = ty_of(so);
	int64_t na = numel(&t, &ta), nb = numel(&t, &tbb), no = numel(&t, &to);
	float *a = fill(na, true), *b = fill(nb, true);
	if (op == IR_POW)
		for (int64_t i = 0; i < na; i++)
			a[i] = fabsf(a[i]);
	if (nb > 3)   /* equal pairs and -0/+0 pairs for max/min/ge */
		b[nb - 1] = a[0], b[0] = a[0];
	int ia = tb_input(&t, ta, a), ib = tb_input(&t, tbb, b);
	ir_node *y = tb_op(&t, op, to, 2, ia, ib);
	if (!tb_run(&t)) {
		float *want = malloc((size_t)no * sizeof *want);
		for (int64_t i = 0; i < no; i++)
			want[i] = ref_binary(op, a[bidx(&to, &ta, t.B, i)], b[bidx(&to, &tbb, t.B, i)]);
		cmp_f32(&t, "y", res(&t, y->id), want, no);
		free(want);
	}
	free(a);
	free(b);
	tb_done(&t);
}

static void test_maxmin_zeros(void)
{
	tb t;
	tb_init(&t, "maximum/minimum signed zeros and NaN", 1, 1);
	float a[6] = { -0.0f, 0.0f, -0.0f, NAN, 1.0f, 2.0f };
	float b[6] = { 0.0f, -0.0f, -0.0f, 1.0f, NAN, 2.0f };
	int ia = tb_input(&t, ty(IR_F32, 1, 6), a), ib = tb_input(&t, ty(IR_F32, 1, 6), b);
	ir_node *mx = tb_op(&t, IR_MAXIMUM, ty(IR_F32, 1, 6), 2, ia, ib);
	ir_node *mn = tb_op(&t, IR_MINIMUM, ty(IR_F32, 1, 6), 2, ia, ib);
	if (!tb_run(&t)) {
		const float *x = res(&t, mx->id), *y = res(&t, mn->id);
		checks++;
		if (bits(x[0]) != 0 || bits(x[1]) != 0 || bits(y[0]) != 0x80000000u || bits(y[1]) != 0x80000000u ||
		    x[3] == x[3] || x[4] == x[4] || y[3] == y[3] || x[5] != 2.0f) {
			printf("FAIL %s\n", t.name);
			failures++;
		}
	}
	tb_done(&t);
}

static void test_where(void)
{
	tb t;
	tb_init(&t, "where (f32 cond broadcast, i32 cond)", 4, 4);
	float cond[4] = { 0.0f, -0.0f, NAN, 2.0f };
	int32_t icond[3] = { 0, 5, -1 };
	float *a = fill(4 * 4 * 3, true), *b = fill(3, true);
	int ic = tb_input(&t, ty(IR_F32, 3, -1, 1, 1), cond);
	int ii = tb_input(&t, ty(IR_I32, 1, 3), icond);
	int ia = tb_input(&t, ty(IR_F32, 3, -1, 4, 3), a);
	int ib = tb_input(&t, ty(IR_F32, 1, 3), b);
	ir_node *y = tb_op(&t, IR_WHERE, ty(IR_F32, 3, -1, 4, 3), 3, ic, ia, ib);
	ir_node *z = tb_op(&t, IR_WHERE, ty(IR_F32, 3, -1, 4, 3), 3, ii, ia, ib);
	if (!tb_run(&t)) {
		float want[48], want2[48];
		for (int i = 0; i < 48; i++) {
			want[i] = cond[i / 12] != 0 ? a[i] : b[i % 3];
			want2[i] = icond[i % 3] != 0 ? a[i] : b[i % 3];
		}
		cmp_f32(&t, "f32 cond", res(&t, y->id), want, 48);
		cmp_f32(&t, "i32 cond", res(&t, z->id), want2, 48);
	}
	free(a);
	free(b);
	tb_done(&t);
}

static void test_cast(void)
{
	tb t;
	tb_init(&t, "cast", 2, 3);
	uint8_t u[2 * 5] = { 0, 1, 127, 128, 255, 3, 4, 5, 200, 9 };
	int32_t s[2 * 5] = { 0, -1, 16777217, -2147483647 - 1, 2147483647, 5, -7, 33554435, 1, 2 };
	float f[2 * 5] = { 0.5f, -0.5f, 1.99f, -1.99f, 1e9f, -2.5f, 2.5f, -0.0f, 3.0f, 16777216.0f };
	int iu = tb_input(&t, ty(IR_U8, 2, -1, 5), u);
	int is = tb_input(&t, ty(IR_I32, 2, -1, 5), s);
	int iff = tb_input(&t, ty(IR_F32, 2, -1, 5), f);
	ir_node *a = tb_op(&t, IR_CAST, ty(IR_F32, 2, -1, 5), 1, iu);
	ir_node *b = tb_op(&t, IR_CAST, ty(IR_F32, 2, -1, 5), 1, is);
	ir_node *c = tb_op(&t, IR_CAST, ty(IR_I32, 2, -1, 5), 1, iff);
	if (!tb_run(&t)) {
		float wa[10], wb[10];
		int32_t wc[10];
		for (int i = 0; i < 10; i++) {
			wa[i] = (float)u[i];
			wb[i] = (float)s[i];
			wc[i] = (int32_t)f[i];
		}
		cmp_f32(&t, "u8->f32", res(&t, a->id), wa, 10);
		cmp_f32(&t, "i32->f32", res(&t, b->id), wb, 10);
		cmp_i32(&t, "f32->i32", res(&t, c->id), wc, 10);
	}
	tb_done(&t);
}

static void test_shape_ops(void)
{
	tb t;
	tb_init(&t, "reshape/transpose/broadcast/const/numel", 3, 4);
	float *x = fill(3 * 2 * 5, true), *v = fill(5, false);
	int ix = tb_input(&t, ty(IR_F32, 3, -1, 2, 5), x);
	int iv = tb_input(&t, ty(IR_F32, 2, 1, 5), v);
	ir_node *r = tb_op(&t, IR_RESHAPE, ty(IR_F32, 2, -2, 5), 1, ix);
	ir_node *tr = tb_op(&t, IR_TRANSPOSE, ty(IR_F32, 3, 5, 2, -1), 1, ix);
	tr->ia[0] = 210;   /* perm [2, 1, 0]: axes 0 and 2 swapped */
	ir_node *bc = tb_op(&t, IR_BROADCAST, ty(IR_F32, 3, -1, 2, 5), 1, iv);
	ir_node *k = tb_op(&t, IR_CONST, ty(IR_F32, 2, 2, 3), 0);
	k->fa[0] = -0.0f;
	ir_node *k2 = ir_add(t.a, t.g, IR_CONST, 0, NULL, &(ir_type){ .dt = IR_F32 });   /* no storage */
	k2->fa[0] = 2.5f;
	ir_node *add = tb_op(&t, IR_ADD, ty(IR_F32, 3, -1, 2, 5), 2, ix, k2->id);
	ir_node *nm = tb_op(&t, IR_NUMEL, ty(IR_F32, 0), 0);
	nm->ia[0] = 7;
	nm->ia[1] = 1;
	ir_node *nm2 = ir_add(t.a, t.g, IR_NUMEL, 0, NULL, &(ir_type){ .dt = IR_F32 });
	nm2->ia[0] = 3;
	nm2->ia[1] = 1;
	ir_node *dv = tb_op(&t, IR_DIV, ty(IR_F32, 3, -1, 2, 5), 2, ix, nm2->id);
	if (!tb_run(&t)) {
		float wt[30], wb[30], wk[6], wa[30], wd[30];
		for (int b = 0; b < 3; b++)
			for (int i = 0; i < 2; i++)
				for (int j = 0; j < 5; j++) {
					wt[j * 6 + i * 3 + b] = x[b * 10 + i * 5 + j];
					wb[b * 10 + i * 5 + j] = v[j];
					wa[b * 10 + i * 5 + j] = x[b * 10 + i * 5 + j] + 2.5f;
					wd[b * 10 + i * 5 + j] = x[b * 10 + i * 5 + j] / 9.0f;
				}
		for (int i = 0; i < 6; i++)
			wk[i] = -0.0f;
		float wn = 21.0f;
		cmp_f32(&t, "reshape", res(&t, r->id), x, 30);
		cmp_f32(&t, "transpose", res(&t, tr->id), wt, 30);
		cmp_f32(&t, "broadcast", res(&t, bc->id), wb, 30);
		cmp_f32(&t, "const", res(&t, k->id), wk, 6);
		cmp_f32(&t, "const operand", res(&t, add->id), wa, 30);
		cmp_f32(&t, "numel", res(&t, nm->id), &wn, 1);
		cmp_f32(&t, "numel operand", res(&t, dv->id), wd, 30);
	}
	free(x);
	free(v);
	tb_done(&t);
}

/* ---- reductions ---- */

static void test_axis_reduce(ir_opcode op, int axis, bool keep, bool specials)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "%s axis %d keep %d%s", ir_ops[op].name, axis, keep, specials ? " specials" : "");
	tb_init(&t, name, 4, 6);
	int d[3] = { -1, 3, 7 };
	int64_t dv[3] = { 4, 3, 7 };
	float *x = fill(4 * 3 * 7, specials);
	if (specials) {   /* ties and a NaN late in a row */
		x[10] = x[17] = 100.0f;
		x[30] = NAN;
		x[40] = -0.0f, x[41] = 0.0f;
	}
	int ix = tb_input(&t, ty(IR_F32, 3, d[0], d[1], d[2]), x);
	ir_type ot = ty(op == IR_ARGMAX ? IR_I32 : IR_F32, 0);
	for (int k = 0; k < 3; k++) {
		if (k == axis && !keep)
			continue;
		ot.d[ot.rank].c = k == axis ? 1 : (d[k] < 0 ? -d[k] : d[k]);
		ot.d[ot.rank].sym = k == axis ? 0 : d[k] < 0;
		ot.rank++;
	}
	ir_node *y = tb_op(&t, op, ot, 1, ix);
	y->ia[0] = axis;
	y->ia[1] = keep;
	if (!tb_run(&t)) {
		int64_t pre = 1, post = 1, len = dv[axis];
		for (int k = 0; k < axis; k++) pre *= dv[k];
		for (int k = axis + 1; k < 3; k++) post *= dv[k];
		float *w = malloc((size_t)(pre * post) * sizeof *w);
		int32_t *wi = malloc((size_t)(pre * post) * sizeof *wi);
		for (int64_t p = 0; p < pre; p++)
			for (int64_t q = 0; q < post; q++) {
				float acc = op == IR_MAX ? -INFINITY : 0.0f;
				float best = -INFINITY;
				int32_t bi = 0;
				for (int64_t k = 0; k < len; k++) {
					float v = x[(p * len + k) * post + q];
					if (op == IR_MAX)
						acc = ref_maximum(acc, v);
					else
						acc = acc + v;
					if (v > best || (v != v && best == best)) {
						best = v;
						bi = (int32_t)k;
					}
				}
				if (op == IR_MEAN)
					acc = acc / (float)len;
				w[p * post + q] = acc;
				wi[p * post + q] = bi;
			}
		if (op == IR_ARGMAX)
			cmp_i32(&t, "y", res(&t, y->id), wi, pre * post);
		else
			cmp_f32(&t, "y", res(&t, y->id), w, pre * post);
		free(w);
		free(wi);
	}
	free(x);
	tb_done(&t);
}

static void test_sum_to(shp target)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "sum_to rank %d [%d %d %d]", target.rank, target.d[0], target.d[1], target.d[2]);
	tb_init(&t, name, 5, 5);
	ir_type xt = ty(IR_F32, 3, -1, 3, 4), ot = ty_of(target);
	int64_t nx = 5 * 3 * 4, no = numel(&t, &ot);
	float *x = fill(nx, false);
	int ix = tb_input(&t, xt, x);
	ir_node *y = tb_op(&t, IR_SUM_TO, ot, 1, ix);
	if (!tb_run(&t)) {
		float *w = calloc((size_t)(no ? no : 1), sizeof *w);
		for (int64_t i = 0; i < no; i++)
			w[i] = 0.0f;
		for (int64_t i = 0; i < nx; i++) {
			int64_t j = bidx(&xt, &ot, t.B, i);
			w[j] = w[j] + x[i];
		}
		cmp_f32(&t, "y", res(&t, y->id), w, no);
		free(w);
	}
	free(x);
	tb_done(&t);
}

/* ---- softmax family ---- */

static void ref_softmax_row(const float *x, float *y, int C, bool logsm)
{
	float m = -INFINITY, s = 0.0f;
	for (int k = 0; k < C; k++)
		m = ref_maximum(m, x[k]);
	for (int k = 0; k < C; k++)
		s = s + nnd_rt_expf(x[k] - m);
	for (int k = 0; k < C; k++)
		y[k] = logsm ? (x[k] - m) - nnd_rt_logf(s) : nnd_rt_expf(x[k] - m) / s;
}

static void test_softmax(void)
{
	tb t;
	tb_init(&t, "softmax family", 6, 8);
	int C = 10;
	int64_t n = 6 * C;
	float *x = fill(n, false), *dy = fill(n, false);
	for (int64_t i = 0; i < n; i++)
		x[i] *= 8.0f;
	x[15] = -INFINITY;
	ir_type tt = ty(IR_F32, 2, -1, C);
	int ix = tb_input(&t, tt, x), idy = tb_input(&t, tt, dy);
	ir_node *sm = tb_op(&t, IR_SOFTMAX, tt, 1, ix);
	ir_node *ls = tb_op(&t, IR_LOG_SOFTMAX, tt, 1, ix);
	ir_node *smb = tb_op(&t, IR_SOFTMAX_BWD, tt, 2, idy, sm->id);
	ir_node *lsb = tb_op(&t, IR_LOG_SOFTMAX_BWD, tt, 2, idy, ls->id);
	if (!tb_run(&t)) {
		float *w1 = malloc((size_t)n * 4), *w2 = malloc((size_t)n * 4), *w3 = malloc((size_t)n * 4), *w4 = malloc((size_t)n * 4);
		for (int r = 0; r < 6; r++) {
			const float *xr = x + r * C, *dr = dy + r * C;
			float *y1 = w1 + r * C, *y2 = w2 + r * C;
			ref_softmax_row(xr, y1, C, false);
			ref_softmax_row(xr, y2, C, true);
			float s1 = 0.0f, s2 = 0.0f;
			for (int k = 0; k < C; k++) {
				s1 = s1 + dr[k] * y1[k];
				s2 = s2 + dr[k];
			}
			for (int k = 0; k < C; k++) {
				w3[r * C + k] = y1[k] * (dr[k] - s1);
				w4[r * C + k] = dr[k] - nnd_rt_expf(y2[k]) * s2;
			}
		}
		cmp_f32(&t, "softmax", res(&t, sm->id), w1, n);
		cmp_f32(&t, "log_softmax", res(&t, ls->id), w2, n);
		cmp_f32(&t, "softmax_bwd", res(&t, smb->id), w3, n);
		cmp_f32(&t, "log_softmax_bwd", res(&t, lsb->id), w4, n);
		free(w1); free(w2); free(w3); free(w4);
	}
	free(x);
	free(dy);
	tb_done(&t);
}

static void test_losses(ir_dtype ldt)
{
	tb t;
	tb_init(&t, ldt == IR_U8 ? "losses u8 labels" : "losses i32 labels", 7, 9);
	int C = 10, B = 7;
	float *x = fill(B * C, false), *tg = fill(B * C, false);
	for (int i = 0; i < B * C; i++)
		x[i] *= 5.0f;
	uint8_t lu[7] = { 0, 9, 3, 3, 5, 7, 1 };
	int32_t li[7] = { 0, 9, 3, 3, 5, 7, 1 };
	x[0 * C + 0] = 50.0f;   /* rows 0, 1, 2 predicted right, the others not */
	x[3 * C + 1] = 50.0f;
	x[6 * C + 8] = 50.0f;
	x[1 * C + 9] = 50.0f;   /* some rows predicted right */
	x[2 * C + 3] = 50.0f;
	x[4 * C + 2] = 50.0f;
	x[5 * C + 4] = x[5 * C + 7] = 60.0f;   /* tie: lowest index (4) wins, label 7: miss */
	float dl = 0.75f;
	ir_type xt = ty(IR_F32, 2, -1, C);
	int ix = tb_input(&t, xt, x);
	int il = tb_input(&t, ty(ldt, 1, -1), ldt == IR_U8 ? (void *)lu : (void *)li);
	int idl = tb_input(&t, ty(IR_F32, 0), &dl);
	int it = tb_input(&t, xt, tg);
	ir_node *ce = tb_op(&t, IR_CROSS_ENTROPY, ty(IR_F32, 0), 2, ix, il);
	ir_node *ceb = tb_op(&t, IR_CROSS_ENTROPY_BWD, xt, 3, ix, il, idl);
	ir_node *acc = tb_op(&t, IR_ACCURACY, ty(IR_F32, 0), 2, ix, il);
	ir_node *mse = tb_op(&t, IR_MSE, ty(IR_F32, 0), 2, ix, it);
	int outs[3] = { ce->id, acc->id, mse->id };
	t.g->outputs = outs;
	t.g->noutputs = 3;
	if (!tb_run(&t)) {
		float tot = 0.0f, g = dl / (float)B, w2[70], se = 0.0f;
		int cnt = 0;
		for (int i = 0; i < B; i++) {
			const float *xr = x + i * C;
			float m = -INFINITY, s = 0.0f, best = -INFINITY;
			int bi = 0;
			for (int k = 0; k < C; k++) {
				m = ref_maximum(m, xr[k]);
				if (xr[k] > best) best = xr[k], bi = k;
			}
			for (int k = 0; k < C; k++)
				s = s + nnd_rt_expf(xr[k] - m);
			float l = (m + nnd_rt_logf(s)) - xr[li[i]];
			tot = tot + l;
			for (int k = 0; k < C; k++)
				w2[i * C + k] = (nnd_rt_expf(xr[k] - m) / s - (k == li[i] ? 1.0f : 0.0f)) * g;
			cnt += bi == li[i];
		}
		for (int i = 0; i < B * C; i++) {
			float d = x[i] - tg[i];
			se = se + d * d;
		}
		float wce = tot / (float)B, wacc = (float)cnt / (float)B, wmse = se / (float)(B * C);
		cmp_f32(&t, "cross_entropy", res(&t, ce->id), &wce, 1);
		cmp_f32(&t, "cross_entropy_bwd", res(&t, ceb->id), w2, B * C);
		cmp_f32(&t, "accuracy", res(&t, acc->id), &wacc, 1);
		cmp_f32(&t, "mse", res(&t, mse->id), &wmse, 1);
		float wo[3] = { wce, wacc, wmse };
		cmp_f32(&t, "graph outputs", t.outputs, wo, 3);
		checks++;
		if (wacc != 3.0f / 7.0f) {
			printf("FAIL %s: accuracy %g, expected 3/7\n", t.name, (double)wacc);
			failures++;
		}
	}
	free(x);
	free(tg);
	tb_done(&t);
}

/* a bad label must stop the program with status 1 (in a child process) */
static void test_bad_label(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		tb t;
		tb_init(&t, "bad label", 2, 2);
		float x[6] = { 0 };
		int32_t lab[2] = { 1, 3 };
		int ix = tb_input(&t, ty(IR_F32, 2, -1, 3), x);
		int il = tb_input(&t, ty(IR_I32, 1, -1), lab);
		tb_op(&t, IR_CROSS_ENTROPY, ty(IR_F32, 0), 2, ix, il);
		freopen("/dev/null", "w", stderr);
		tb_run(&t);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	checks++;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 1) {
		printf("FAIL bad label: child status %d, expected exit 1\n", st);
		failures++;
	}
}

/* ---- dropout ---- */

/* d1 x d2 elements per row: 64 (whole vector groups), 77 (a group, whole
 * blocks and a partial one), 3 (a partial block alone), 140 */
static void test_dropout_shape(int d1, int d2)
{
	tb t;
	tb_init(&t, "dropout", 32, 40);
	int E = d1 * d2;
	int64_t n = 32 * E;
	float p = 0.25f, scale = 1.0f / (1.0f - p);
	float *x = fill(n, false), *dy = fill(n, false);
	for (int64_t i = 0; i < n; i++) {   /* nonzero, so a zero output means dropped */
		if (x[i] == 0.0f) x[i] = 1.0f;
		if (dy[i] == 0.0f) dy[i] = 1.0f;
	}
	ir_type tt = ty(IR_F32, 3, -1, d1, d2);
	int ix = tb_input(&t, tt, x), idy = tb_input(&t, tt, dy);
	ir_node *y = tb_op(&t, IR_DROPOUT, tt, 1, ix);
	ir_node *dx = tb_op(&t, IR_DROPOUT_BWD, tt, 1, idy);
	ir_node *y2 = tb_op(&t, IR_DROPOUT, tt, 1, ix);
	y->stream = dx->stream = 1;
	y2->stream = 0;
	y->fa[0] = dx->fa[0] = y2->fa[0] = p;
	y->fa[1] = dx->fa[1] = y2->fa[1] = scale;
	if (!tb_run(&t)) {
		float *w = malloc((size_t)n * 4), *wd = malloc((size_t)n * 4);
		for (int r = 0; r < 32; r++)
			for (int e = 0; e < E; e++) {
				float u = nnd_rt_uniform(&t.keys[2], (uint32_t)e, (uint32_t)t.sample_idx[r], (uint32_t)t.epoch, 0);
				w[r * E + e] = u >= p ? x[r * E + e] * scale : +0.0f;
				wd[r * E + e] = u >= p ? dy[r * E + e] * scale : +0.0f;
			}
		const float *gy = res(&t, y->id), *gd = res(&t, dx->id), *gy2 = res(&t, y2->id);
		cmp_f32(&t, "dropout", gy, w, n);
		cmp_f32(&t, "dropout_bwd", gd, wd, n);
		int64_t kept = 0, same_mask = 0, other_same = 0;
		for (int64_t i = 0; i < n; i++) {
			kept += gy[i] != 0.0f;
			same_mask += (gy[i] != 0.0f) == (gd[i] != 0.0f);
			other_same += (gy[i] != 0.0f) == (gy2[i] != 0.0f);
		}
		double frac = (double)kept / (double)n;
		checks++;
		/* n Bernoulli(0.75) draws: sd = 0.433 / sqrt(n) (0.0096 for 2048) */
		double tol = 5.0 * 0.433 / sqrt((double)n);
		if (frac < 0.75 - tol || frac > 0.75 + tol || same_mask != n || other_same == n) {
			printf("FAIL dropout stats: kept %.4f (want ~0.75), bwd mask agrees %" PRId64 "/%" PRId64
			       ", other stream identical %" PRId64 "\n", frac, same_mask, n, other_same);
			failures++;
		}
		free(w);
		free(wd);
	}
	free(x);
	free(dy);
	tb_done(&t);
}

static void test_dropout(void)
{
	test_dropout_shape(8, 8);
	test_dropout_shape(7, 11);
	test_dropout_shape(3, 1);
	test_dropout_shape(4, 35);
}

/* ---- optimizer updates ---- */

static void test_sgd(float mom, float wd, bool nesterov, bool has_mom)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "sgd mom=%g wd=%g nesterov=%d state=%d", (double)mom, (double)wd, nesterov, has_mom);
	tb_init(&t, name, 1, 1);
	int n = 37;
	for (int i = 0; i < n; i++) {
		t.params[3 + i] = rndf();
		t.grads[3 + i] = rndf();
		t.opt[5 + i] = rndf();
	}
	float p0[64], g0[64], m0[64];
	memcpy(p0, t.params + 3, sizeof(float) * (size_t)n);
	memcpy(g0, t.grads + 3, sizeof(float) * (size_t)n);
	memcpy(m0, t.opt + 5, sizeof(float) * (size_t)n);
	ir_type pt = ty(IR_F32, 2, 1, n);
	int ip = tb_block(&t, IR_PARAM, pt, IR_BLK_PARAM, 3);
	int ig = tb_block(&t, IR_PARAM, pt, IR_BLK_GRAD, 3);
	int im = tb_block(&t, IR_OPT_SLOT, pt, IR_BLK_OPT, 5);
	ir_node *u = tb_op(&t, IR_SGD_UPDATE, ty(IR_F32, 0), 3, ip, ig, im);
	u->fa[0] = mom;
	u->fa[1] = wd;
	u->ia[0] = nesterov;
	u->ia[1] = has_mom;
	if (!tb_run(&t)) {
		float wp[64], wm[64];
		for (int i = 0; i < n; i++) {
			float p = p0[i], g = g0[i], m = m0[i];
			if (wd != 0) g = g + wd * p;
			if (mom != 0 && has_mom) {
				m = mom * m + g;
				g = nesterov ? g + mom * m : m;
			}
			wp[i] = p - t.lr * g;
			wm[i] = m;
		}
		cmp_f32(&t, "param", t.params + 3, wp, n);
		cmp_f32(&t, "momentum", t.opt + 5, wm, n);
		cmp_f32(&t, "grad untouched", t.grads + 3, g0, n);
	}
	tb_done(&t);
}

static void test_adam(float wd, bool decoupled)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "adam wd=%g decoupled=%d", (double)wd, decoupled);
	tb_init(&t, name, 1, 1);
	int n = 41;
	float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
	for (int i = 0; i < n; i++) {
		t.params[i] = rndf();
		t.grads[i] = rndf();
		t.opt[100 + i] = rndf() * 0.1f;
		t.opt[100 + n + i] = fabsf(rndf()) * 0.01f;
	}
	t.grads[0] = 0.0f;
	t.opt[100 + n] = 0.0f;
	float p0[64], g0[64], m0[64], v0[64];
	memcpy(p0, t.params, sizeof(float) * (size_t)n);
	memcpy(g0, t.grads, sizeof(float) * (size_t)n);
	memcpy(m0, t.opt + 100, sizeof(float) * (size_t)n);
	memcpy(v0, t.opt + 100 + n, sizeof(float) * (size_t)n);
	ir_type pt = ty(IR_F32, 1, n);
	int ip = tb_block(&t, IR_PARAM, pt, IR_BLK_PARAM, 0);
	int ig = tb_block(&t, IR_PARAM, pt, IR_BLK_GRAD, 0);
	int im = tb_block(&t, IR_OPT_SLOT, pt, IR_BLK_OPT, 100);
	int iv = tb_block(&t, IR_OPT_SLOT, pt, IR_BLK_OPT, 100 + n);
	ir_node *u = tb_op(&t, IR_ADAM_UPDATE, ty(IR_F32, 0), 4, ip, ig, im, iv);
	u->fa[0] = b1;
	u->fa[1] = b2;
	u->fa[2] = eps;
	u->fa[3] = wd;
	u->ia[0] = decoupled;
	if (!tb_run(&t)) {
		float wp[64], wm[64], wv[64];
		for (int i = 0; i < n; i++) {
			float p = p0[i], g = g0[i], m = m0[i], v = v0[i], lr = t.lr;
			if (decoupled && wd != 0) p = p - (lr * wd) * p;
			if (!decoupled && wd != 0) g = g + wd * p;
			m = b1 * m + (1.0f - b1) * g;
			v = b2 * v + (1.0f - b2) * (g * g);
			p = p - lr * ((m / t.bc1) / (sqrtf(v / t.bc2) + eps));
			wp[i] = p, wm[i] = m, wv[i] = v;
		}
		cmp_f32(&t, "param", t.params, wp, n);
		cmp_f32(&t, "m", t.opt + 100, wm, n);
		cmp_f32(&t, "v", t.opt + 100 + n, wv, n);
	}
	tb_done(&t);
}

/* ---- reduction plans: the definitions of passes/plans.c ---- */

static ir_plan mkplan(ir_plan_family f, int64_t arg)
{
	ir_plan p = { f, 0, 0, false };
	if (f == IR_PLAN_BLOCKED)
		p.block = arg;
	if (f == IR_PLAN_TREE)
		p.fanin = (int)arg;
	return p;
}

/* the sum of t[0..n) in plan order, written from the header of plans.c */
static float ref_reduce(ir_plan p, const float *t, int64_t n)
{
	if (p.family == IR_PLAN_BLOCKED) {
		float tot = 0.0f;
		for (int64_t b = 0; b < n; b += p.block) {
			float s = 0.0f;
			for (int64_t k = b; k < n && k < b + p.block; k++)
				s = s + t[k];
			tot = tot + s;
		}
		return tot;
	}
	if (p.family == IR_PLAN_TREE) {
		if (n == 0)
			return 0.0f;
		float *w = malloc((size_t)n * sizeof *w);
		memcpy(w, t, (size_t)n * sizeof *w);
		int64_t m = n;
		while (m > 1) {
			int64_t g = 0;
			for (int64_t i = 0; i < m; i += p.fanin) {
				float s = w[i];
				for (int64_t j = i + 1; j < m && j < i + p.fanin; j++)
					s = s + w[j];
				w[g++] = s;
			}
			m = g;
		}
		float r = w[0];
		free(w);
		return r;
	}
	float acc = 0.0f;
	for (int64_t k = 0; k < n; k++)
		acc = acc + t[k];
	return acc;
}

/* the dot product of a[0..n) and b[0..n) under a fused plan (seq+fma or
 * blocked:N+fma): acc = fmaf(a, b, acc) -- libm's fmaf is correctly rounded */
static float ref_dot_fused(ir_plan p, const float *a, const float *b, int64_t n)
{
	int64_t nb = p.family == IR_PLAN_BLOCKED ? p.block : (n > 0 ? n : 1);
	float tot = 0.0f;
	for (int64_t s = 0; s < n; s += nb) {
		float acc = 0.0f;
		for (int64_t k = s; k < n && k < s + nb; k++)
			acc = fmaf(a[k], b[k], acc);
		tot = p.family == IR_PLAN_BLOCKED ? tot + acc : acc;
	}
	return tot;
}

static const ir_plan test_plans[] = {
	{ IR_PLAN_SEQ, 0, 0, false },
	{ IR_PLAN_BLOCKED, 2, 0, false }, { IR_PLAN_BLOCKED, 7, 0, false }, { IR_PLAN_BLOCKED, 64, 0, false },
	{ IR_PLAN_BLOCKED, 300, 0, false },   /* the matmul kernel's k chunks become 900 wide */
	{ IR_PLAN_BLOCKED, 1100, 0, false },  /* > the matmul kernel's k chunk (1024): its generic path */
	{ IR_PLAN_TREE, 0, 2, false }, { IR_PLAN_TREE, 0, 3, false }, { IR_PLAN_TREE, 0, 5, false },
};
#define NPLANS ((int)(sizeof test_plans / sizeof test_plans[0]))

/* fused plans, for dot products (matmul) only */
static const ir_plan fused_plans[] = {
	{ IR_PLAN_SEQ, 0, 0, true }, { IR_PLAN_BLOCKED, 2, 0, true }, { IR_PLAN_BLOCKED, 7, 0, true },
	{ IR_PLAN_BLOCKED, 64, 0, true }, { IR_PLAN_BLOCKED, 300, 0, true }, { IR_PLAN_BLOCKED, 1100, 0, true },
};

/* the plans' own reference against hand-computed orders */
static void test_ref_reduce(void)
{
	float t[5] = { 1.0f, 0x1p24f, 1.0f, -0x1p24f, 1.0f };
	checks++;
	/* seq: ((((0+1)+2^24)+1)-2^24)+1 = 1 (2^24+1 rounds to 2^24 twice) */
	float s = ref_reduce(mkplan(IR_PLAN_SEQ, 0), t, 5);
	/* tree:2: levels [1+2^24, 1-2^24, 1] -> [(1+2^24)+(1-2^24), 1] -> one sum */
	float tr = ref_reduce(mkplan(IR_PLAN_TREE, 2), t, 5);
	float w_tr = ((1.0f + 0x1p24f) + (1.0f + -0x1p24f)) + 1.0f;
	float bl = ref_reduce(mkplan(IR_PLAN_BLOCKED, 2), t, 5);
	float w_bl = ((0.0f + ((0.0f + 1.0f) + 0x1p24f)) + ((0.0f + 1.0f) + -0x1p24f)) + (0.0f + 1.0f);
	float nz[3] = { -0.0f, -0.0f, -0.0f };
	if (s != 1.0f || bits(tr) != bits(w_tr) || bits(bl) != bits(w_bl) ||
	    bits(ref_reduce(mkplan(IR_PLAN_TREE, 2), nz, 3)) != 0x80000000u ||   /* no +0 start */
	    bits(ref_reduce(mkplan(IR_PLAN_BLOCKED, 2), nz, 3)) != 0 ||
	    bits(ref_reduce(mkplan(IR_PLAN_TREE, 3), nz, 0)) != 0) {
		printf("FAIL reference plans\n");
		failures++;
	}
}

/* SUM and MEAN along every axis of [B, 3, 7], an axis of length 1 and
 * one of length 0, under plan p; rows of -0 (tree keeps -0, seq/blocked
 * start from +0) and of large/small magnitudes (the order shows). */
static void test_plan_axis(ir_plan p)
{
	tb t;
	char name[96], pb[32];
	snprintf(name, sizeof name, "plan %s: sum/mean", ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, 5, 6);
	cur_plan = p;
	int64_t dv[3] = { 5, 3, 7 };
	int64_t nx = 5 * 3 * 7;
	float *x = fill(nx, false);
	for (int64_t i = 0; i < nx; i++)
		if (i % 5 == 0)
			x[i] = ldexpf(x[i], 20);
	for (int j = 0; j < 7; j++)
		x[7 + j] = -0.0f;   /* row (0, 1, :) */
	int ix = tb_input(&t, ty(IR_F32, 3, -1, 3, 7), x);
	ir_node *ys[2][3];
	for (int op = 0; op < 2; op++)
		for (int axis = 0; axis < 3; axis++) {
			ir_type ot = ty(IR_F32, 0);
			for (int k = 0; k < 3; k++)
				if (k != axis) {
					ot.d[ot.rank].c = k == 0 ? 1 : dv[k];
					ot.d[ot.rank++].sym = k == 0;
				}
			ys[op][axis] = tb_op(&t, op ? IR_MEAN : IR_SUM, ot, 1, ix);
			ys[op][axis]->ia[0] = axis;
		}
	float *x1 = fill(5 * 4, false);
	int ix1 = tb_input(&t, ty(IR_F32, 3, -1, 4, 1), x1);
	ir_node *y1 = tb_op(&t, IR_SUM, ty(IR_F32, 2, -1, 4), 1, ix1);
	y1->ia[0] = 2;
	float x0[1] = { 0 };
	int ix0 = tb_input(&t, ty(IR_F32, 2, -1, 0), x0);
	ir_node *y0 = tb_op(&t, IR_SUM, ty(IR_F32, 1, -1), 1, ix0);
	y0->ia[0] = 1;
	if (!tb_run(&t)) {
		float terms[8], w[64];
		for (int op = 0; op < 2; op++)
			for (int axis = 0; axis < 3; axis++) {
				int64_t pre = 1, post = 1, len = dv[axis];
				for (int k = 0; k < axis; k++) pre *= dv[k];
				for (int k = axis + 1; k < 3; k++) post *= dv[k];
				for (int64_t pp = 0; pp < pre; pp++)
					for (int64_t q = 0; q < post; q++) {
						for (int64_t k = 0; k < len; k++)
							terms[k] = x[(pp * len + k) * post + q];
						float v = ref_reduce(p, terms, len);
						w[pp * post + q] = op ? v / (float)len : v;
					}
				char what[32];
				snprintf(what, sizeof what, "%s axis %d", op ? "mean" : "sum", axis);
				cmp_f32(&t, what, res(&t, ys[op][axis]->id), w, pre * post);
			}
		for (int i = 0; i < 20; i++)
			w[i] = ref_reduce(p, &x1[i], 1);
		cmp_f32(&t, "length 1", res(&t, y1->id), w, 20);
		for (int i = 0; i < 5; i++)
			w[i] = 0.0f;
		cmp_f32(&t, "length 0", res(&t, y0->id), w, 5);
	}
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	free(x);
	free(x1);
	tb_done(&t);
}

/* SUM_TO of [B, 3, 4] (B = 9) to every kind of target under plan p */
static void test_plan_sum_to(ir_plan p)
{
	tb t;
	char name[96], pb[32];
	snprintf(name, sizeof name, "plan %s: sum_to", ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, 9, 9);
	cur_plan = p;
	shp targets[] = { { 1, { 4 } }, { 2, { 3, 1 } }, { 3, { 1, 3, 4 } }, { 0, { 0 } },
	                  { 3, { -1, 1, 4 } }, { 3, { -1, 3, 4 } }, { 2, { 3, 4 } } };
	enum { NT = sizeof targets / sizeof targets[0] };
	ir_type xt = ty(IR_F32, 3, -1, 3, 4);
	int64_t nx = 9 * 3 * 4;
	float *x = fill(nx, false);
	for (int64_t i = 0; i < nx; i += 3)
		x[i] = ldexpf(x[i], 18);
	int ix = tb_input(&t, xt, x);
	ir_node *ys[NT];
	for (int i = 0; i < NT; i++)
		ys[i] = tb_op(&t, IR_SUM_TO, ty_of(targets[i]), 1, ix);
	if (!tb_run(&t)) {
		for (int i = 0; i < NT; i++) {
			ir_type ot = ty_of(targets[i]);
			int64_t no = numel(&t, &ot);
			float *w = malloc((size_t)(no ? no : 1) * sizeof *w), *terms = malloc((size_t)nx * sizeof *terms);
			for (int64_t j = 0; j < no; j++) {
				int64_t n = 0;
				for (int64_t e = 0; e < nx; e++)   /* row-major: the plan's term order */
					if (bidx(&xt, &ot, t.B, e) == j)
						terms[n++] = x[e];
				w[j] = ref_reduce(p, terms, n);
			}
			char what[32];
			snprintf(what, sizeof what, "target %d", i);
			cmp_f32(&t, what, res(&t, ys[i]->id), w, no);
			free(w);
			free(terms);
		}
	}
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	free(x);
	tb_done(&t);
}

/* matmul under plan p, one transpose combination: K of 0, 1, not a
 * multiple of any block, across the kernel's 1024-wide k chunks; M and N
 * with row and column remainders; one B-dependent M */
static void test_plan_matmul(ir_plan p, bool ta, bool tb_)
{
	static const int mk[][3] = { { 7, 0, 5 }, { 5, 1, 33 }, { 13, 37, 40 }, { 6, 300, 17 }, { 3, 517, 70 }, { 2, 2300, 9 },
	                             { 1, 64, 1 }, { -3, 29, 35 } };
	enum { NC = sizeof mk / sizeof mk[0] };
	tb t;
	char name[96], pb[32];
	snprintf(name, sizeof name, "plan %s: matmul ta=%d tb=%d", ir_plan_str(p, pb, sizeof pb), ta, tb_);
	tb_init(&t, name, 5, 5);
	cur_plan = p;
	float *as[NC], *bs[NC];
	ir_node *cs[NC];
	for (int q = 0; q < NC; q++) {
		int Md = mk[q][0], K = mk[q][1], N = mk[q][2];
		int64_t M = Md < 0 ? -Md * t.B : Md;
		as[q] = fill(M * K, false);
		bs[q] = fill((int64_t)K * N, false);
		for (int64_t i = 0; i < M * K; i += 4)
			as[q][i] = ldexpf(as[q][i], 16);
		int ia = tb_input(&t, ta ? ty(IR_F32, 2, K, Md) : ty(IR_F32, 2, Md, K), as[q]);
		int ib = tb_input(&t, tb_ ? ty(IR_F32, 2, N, K) : ty(IR_F32, 2, K, N), bs[q]);
		cs[q] = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, Md, N), 2, ia, ib);
		cs[q]->ia[0] = ta;
		cs[q]->ia[1] = tb_;
	}
	if (!tb_run(&t))
		for (int q = 0; q < NC; q++) {
			int K = mk[q][1], N = mk[q][2];
			int64_t M = mk[q][0] < 0 ? -mk[q][0] * t.B : mk[q][0];
			float *w = malloc((size_t)(M * N) * sizeof *w), *terms = malloc((size_t)(K + 1) * sizeof *terms);
			float *xs = malloc((size_t)(K + 1) * sizeof *xs), *ys = malloc((size_t)(K + 1) * sizeof *ys);
			for (int64_t i = 0; i < M; i++)
				for (int64_t j = 0; j < N; j++) {
					for (int64_t k = 0; k < K; k++) {
						xs[k] = ta ? as[q][k * M + i] : as[q][i * K + k];
						ys[k] = tb_ ? bs[q][j * K + k] : bs[q][k * N + j];
						terms[k] = xs[k] * ys[k];
					}
					w[i * N + j] = p.fused ? ref_dot_fused(p, xs, ys, K) : ref_reduce(p, terms, K);
				}
			free(xs);
			free(ys);
			char what[48];
			snprintf(what, sizeof what, "%" PRId64 "x%dx%d", M, K, N);
			cmp_f32(&t, what, res(&t, cs[q]->id), w, M * N);
			free(w);
			free(terms);
		}
	for (int q = 0; q < NC; q++) {
		free(as[q]);
		free(bs[q]);
	}
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	tb_done(&t);
}

/* softmax family, cross_entropy (row sums and the batch sum), its
 * gradient and mse under plan p: C = 13, B = 7 */
static void test_plan_rows(ir_plan p)
{
	tb t;
	char name[96], pb[32];
	snprintf(name, sizeof name, "plan %s: softmax/losses", ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, 7, 8);
	cur_plan = p;
	enum { B = 7, C = 13 };
	float *x = fill(B * C, false), *dy = fill(B * C, false), *tg = fill(B * C, false);
	for (int i = 0; i < B * C; i++) {
		x[i] *= 6.0f;
		if (i % 4 == 0)
			dy[i] = ldexpf(dy[i], 14);
	}
	int32_t lab[B] = { 0, 12, 3, 3, 5, 7, 1 };
	float dl = 1.25f;
	ir_type xt = ty(IR_F32, 2, -1, C);
	int ix = tb_input(&t, xt, x), idy = tb_input(&t, xt, dy), it = tb_input(&t, xt, tg);
	int il = tb_input(&t, ty(IR_I32, 1, -1), lab), idl = tb_input(&t, ty(IR_F32, 0), &dl);
	ir_node *sm = tb_op(&t, IR_SOFTMAX, xt, 1, ix);
	ir_node *ls = tb_op(&t, IR_LOG_SOFTMAX, xt, 1, ix);
	ir_node *smb = tb_op(&t, IR_SOFTMAX_BWD, xt, 2, idy, sm->id);
	ir_node *lsb = tb_op(&t, IR_LOG_SOFTMAX_BWD, xt, 2, idy, ls->id);
	ir_node *ce = tb_op(&t, IR_CROSS_ENTROPY, ty(IR_F32, 0), 2, ix, il);
	ir_node *ceb = tb_op(&t, IR_CROSS_ENTROPY_BWD, xt, 3, ix, il, idl);
	ir_node *mse = tb_op(&t, IR_MSE, ty(IR_F32, 0), 2, ix, it);
	if (!tb_run(&t)) {
		float w1[B * C], w2[B * C], w3[B * C], w4[B * C], w6[B * C], terms[B * C], l[B];
		for (int r = 0; r < B; r++) {
			const float *xr = x + r * C, *dr = dy + r * C;
			float m = -INFINITY, e[C];
			for (int k = 0; k < C; k++)
				m = ref_maximum(m, xr[k]);
			for (int k = 0; k < C; k++)
				e[k] = nnd_rt_expf(xr[k] - m);
			float s = ref_reduce(p, e, C);
			for (int k = 0; k < C; k++) {
				w1[r * C + k] = e[k] / s;
				w2[r * C + k] = (xr[k] - m) - nnd_rt_logf(s);
			}
			for (int k = 0; k < C; k++)
				terms[k] = dr[k] * w1[r * C + k];
			float s1 = ref_reduce(p, terms, C);
			float s2 = ref_reduce(p, dr, C);
			for (int k = 0; k < C; k++) {
				w3[r * C + k] = w1[r * C + k] * (dr[k] - s1);
				w4[r * C + k] = dr[k] - nnd_rt_expf(w2[r * C + k]) * s2;
				w6[r * C + k] = (e[k] / s - (k == lab[r] ? 1.0f : 0.0f)) * (dl / (float)B);
			}
			l[r] = (m + nnd_rt_logf(s)) - xr[lab[r]];
		}
		float wce = ref_reduce(p, l, B) / (float)B;
		for (int i = 0; i < B * C; i++) {
			float d = x[i] - tg[i];
			terms[i] = d * d;
		}
		float wmse = ref_reduce(p, terms, B * C) / (float)(B * C);
		cmp_f32(&t, "softmax", res(&t, sm->id), w1, B * C);
		cmp_f32(&t, "log_softmax", res(&t, ls->id), w2, B * C);
		cmp_f32(&t, "softmax_bwd", res(&t, smb->id), w3, B * C);
		cmp_f32(&t, "log_softmax_bwd", res(&t, lsb->id), w4, B * C);
		cmp_f32(&t, "cross_entropy", res(&t, ce->id), &wce, 1);
		cmp_f32(&t, "cross_entropy_bwd", res(&t, ceb->id), w6, B * C);
		cmp_f32(&t, "mse", res(&t, mse->id), &wmse, 1);
	}
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	free(x);
	free(dy);
	free(tg);
	tb_done(&t);
}

/* The racy plan: accepted for sum over a contiguous axis and for
 * cross_entropy (with one thread it is the sequential sum), rejected
 * elsewhere (here: matmul, and sum over a strided axis). */
static void test_racy(void)
{
	tb t;
	tb_init(&t, "racy plan (1 thread)", 3, 3);
	float *x = fill(3 * 11, false);
	int ix = tb_input(&t, ty(IR_F32, 2, -1, 11), x);
	cur_plan = mkplan(IR_PLAN_RACY, 0);
	ir_node *s = tb_op(&t, IR_SUM, ty(IR_F32, 1, -1), 1, ix);
	s->ia[0] = 1;
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	nnd_rt_set_threads(1);
	if (!tb_run(&t)) {
		float w[3];
		for (int r = 0; r < 3; r++)
			w[r] = ref_reduce(mkplan(IR_PLAN_SEQ, 0), x + r * 11, 11);
		cmp_f32(&t, "sum", res(&t, s->id), w, 3);
	}
	tb_done(&t);
	for (int bad = 0; bad < 2; bad++) {
		tb_init(&t, bad ? "racy sum over a strided axis rejected" : "racy matmul rejected", 3, 3);
		ix = tb_input(&t, ty(IR_F32, 2, -1, 11), x);
		int iw = tb_input(&t, ty(IR_F32, 2, 11, 4), x);
		cur_plan = mkplan(IR_PLAN_RACY, 0);
		if (bad) {
			ir_node *y = tb_op(&t, IR_SUM, ty(IR_F32, 1, 11), 1, ix);
			y->ia[0] = 0;
		} else {
			tb_op(&t, IR_MATMUL, ty(IR_F32, 2, -1, 4), 2, ix, iw);
		}
		cur_plan = mkplan(IR_PLAN_SEQ, 0);
		ir_module m = { .source_path = "bad", .progs = &t.p, .nprogs = 1 };
		fprintf(stderr, "(an internal error about the racy plan is expected next)\n");
		cg_module *cm = cg_build(&m, "", NULL, 2, false);
		checks++;
		if (cm) {
			printf("FAIL %s: cg_build accepted it\n", t.name);
			failures++;
			cg_free(cm);
		}
		tb_done(&t);
	}
	free(x);
}

/* ---- threads: every kernel split at every grain gives the same bits ---- */

/* A graph of every kind of kernel, compiled with NND_CG_GRAIN1 (every
 * kernel splits down to single units), run at 1, 2, 3, 4 threads: the
 * activations, parameters, optimizer state and outputs must be the same
 * bits each time.  Sizes cut matmul column blocks and row blocks mid-way. */
static void test_threads(ir_plan p)
{
	tb t;
	char name[96], pb[32];
	snprintf(name, sizeof name, "threads 1..4, plan %s", ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, 13, 16);
	cur_plan = p;
	enum { B = 13, I = 37, H = 70, C = 11 };
	float *x = fill(B * I, true), *w = fill(I * H, false), *w2 = fill(H * C, false), *bias = fill(H, false);
	int32_t lab[B];
	for (int i = 0; i < B; i++)
		lab[i] = (i * 7) % C;
	int ix = tb_input(&t, ty(IR_F32, 2, -1, I), x);
	int iw = tb_input(&t, ty(IR_F32, 2, I, H), w);
	int iw2 = tb_input(&t, ty(IR_F32, 2, H, C), w2);
	int ib = tb_input(&t, ty(IR_F32, 1, H), bias);
	int il = tb_input(&t, ty(IR_I32, 1, -1), lab);
	ir_node *h = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, -1, H), 2, ix, iw);
	ir_node *hb = tb_op(&t, IR_ADD, ty(IR_F32, 2, -1, H), 2, h->id, ib);
	ir_node *e = tb_op(&t, IR_TANH, ty(IR_F32, 2, -1, H), 1, hb->id);
	ir_node *d = tb_op(&t, IR_DROPOUT, ty(IR_F32, 2, -1, H), 1, e->id);
	d->stream = 0;
	d->fa[0] = 0.25f;
	d->fa[1] = 1.0f / 0.75f;
	ir_node *lg = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, -1, C), 2, d->id, iw2);
	ir_node *sm = tb_op(&t, IR_SOFTMAX, ty(IR_F32, 2, -1, C), 1, lg->id);
	ir_node *ce = tb_op(&t, IR_CROSS_ENTROPY, ty(IR_F32, 0), 2, lg->id, il);
	ir_node *one = tb_op(&t, IR_CONST, ty(IR_F32, 0), 0);
	one->fa[0] = 1.0f;
	ir_node *g = tb_op(&t, IR_CROSS_ENTROPY_BWD, ty(IR_F32, 2, -1, C), 3, lg->id, il, one->id);
	ir_node *dsm = tb_op(&t, IR_SOFTMAX_BWD, ty(IR_F32, 2, -1, C), 2, g->id, sm->id);
	ir_node *dw2 = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, H, C), 2, d->id, g->id);
	dw2->ia[0] = 1;
	ir_node *dh = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, -1, H), 2, g->id, iw2);
	dh->ia[1] = 1;
	ir_node *db = tb_op(&t, IR_SUM_TO, ty(IR_F32, 1, H), 1, dh->id);
	ir_node *cs = tb_op(&t, IR_SUM, ty(IR_F32, 1, H), 1, dh->id);
	cs->ia[0] = 0;
	ir_node *rs = tb_op(&t, IR_MEAN, ty(IR_F32, 1, -1), 1, dh->id);
	rs->ia[0] = 1;
	ir_node *am = tb_op(&t, IR_ARGMAX, ty(IR_I32, 1, -1), 1, lg->id);
	am->ia[0] = 1;
	ir_node *acc = tb_op(&t, IR_ACCURACY, ty(IR_F32, 0), 2, lg->id, il);
	ir_node *tr = tb_op(&t, IR_TRANSPOSE, ty(IR_F32, 2, H, -1), 1, dh->id);
	tr->ia[0] = 10;    /* perm [1, 0]: the tiled kernel (the last axis moves) */
	/* random_crop and its gradient on [B, 7, 10] */
	ir_node *e3 = tb_op(&t, IR_RESHAPE, ty(IR_F32, 3, -1, 7, 10), 1, e->id);
	ir_node *rc = tb_op(&t, IR_RANDOM_CROP, ty(IR_F32, 3, -1, 6, 6), 1, e3->id);
	rc->ia[0] = 6;
	rc->ia[1] = 2;
	rc->stream = 1;
	ir_node *rcb = tb_op(&t, IR_RANDOM_CROP_BWD, ty(IR_F32, 3, -1, 7, 10), 1, rc->id);
	memcpy(rcb->ia, rc->ia, sizeof rc->ia);
	rcb->stream = 1;
	/* a general permutation with B in the middle, tiled: [B, 7, 10] -> [10, B, 7] */
	ir_node *tp = tb_op(&t, IR_TRANSPOSE, ty(IR_F32, 3, 10, -1, 7), 1, e3->id);
	tp->ia[0] = 201;
	/* batched matmul: [3, B, C] x [C, 5] */
	ir_node *rsh = tb_op(&t, IR_BROADCAST, ty(IR_F32, 3, 3, -1, C), 1, g->id);
	float *w3 = fill(C * 5, false);
	int iw3 = tb_input(&t, ty(IR_F32, 2, C, 5), w3);
	ir_node *bm = tb_op(&t, IR_MATMUL, ty(IR_F32, 3, 3, -1, 5), 2, rsh->id, iw3);
	/* an update of a parameter [H, C] from dw2 */
	for (int i = 0; i < H * C; i++) {
		t.params[i] = rndf();
		t.opt[i] = rndf();
	}
	int ip = tb_block(&t, IR_PARAM, ty(IR_F32, 2, H, C), IR_BLK_PARAM, 0);
	int io = tb_block(&t, IR_OPT_SLOT, ty(IR_F32, 2, H, C), IR_BLK_OPT, 0);
	ir_node *u = tb_op(&t, IR_SGD_UPDATE, ty(IR_F32, 0), 3, ip, dw2->id, io);
	u->fa[0] = 0.9f;
	u->ia[1] = 1;
	(void)ce; (void)dsm; (void)db; (void)cs; (void)rs; (void)am; (void)acc; (void)tr; (void)bm;
	(void)rcb; (void)tp;
	cur_plan = mkplan(IR_PLAN_SEQ, 0);

	setenv("NND_CG_GRAIN1", "1", 1);
	nnd_step_fn fn;
	cg_module *cm = tb_build(&t, 2, NULL, &fn);
	unsetenv("NND_CG_GRAIN1");
	if (cm) {
		size_t abytes = (size_t)(BREG * t.Bmax + 65536);
		float p0[H * C], o0[H * C];
		memcpy(p0, t.params, sizeof p0);
		memcpy(o0, t.opt, sizeof o0);
		uint8_t *first = malloc(abytes);
		float fp[H * C], fo[H * C];
		for (int T = 1; T <= 4; T++) {
			nnd_rt_set_threads(T);
			memset(t.acts, 0xA5, abytes);
			memcpy(t.params, p0, sizeof p0);
			memcpy(t.opt, o0, sizeof o0);
			nnd_step_args a;
			tb_args(&t, &a);
			fn(&a);
			if (T == 1) {
				memcpy(first, t.acts, abytes);
				memcpy(fp, t.params, sizeof fp);
				memcpy(fo, t.opt, sizeof fo);
				continue;
			}
			char what[48];
			snprintf(what, sizeof what, "%d threads vs 1: activations", T);
			checks++;
			if (memcmp(first, t.acts, abytes)) {
				for (int i = 0; i < t.g->nnodes; i++) {
					const ir_node *n = t.g->nodes[i];
					if (n->blk != IR_BLK_ACT)
						continue;
					size_t off = (size_t)(n->off_c + n->off_b * t.Bmax);
					size_t nb = (size_t)numel(&t, &n->type) * 4;
					if (memcmp(first + off, t.acts + off, nb))
						printf("FAIL %s %s: node %d (%s) differs\n", t.name, what, n->id, ir_ops[n->op].name);
				}
				failures++;
			}
			snprintf(what, sizeof what, "%d threads vs 1: params", T);
			cmp_f32(&t, what, t.params, fp, H * C);
			snprintf(what, sizeof what, "%d threads vs 1: momentum", T);
			cmp_f32(&t, what, t.opt, fo, H * C);
		}
		nnd_rt_set_threads(1);
		free(first);
		cg_free(cm);
	}
	free(x);
	free(w);
	free(w2);
	free(w3);
	free(bias);
	tb_done(&t);
}

/* ---- node digests and the infer graph ---- */

static uint64_t digest64(const void *p, int64_t bytes)
{
	uint8_t dig[32];
	nnd_sha256(bytes > 0 ? p : "", (size_t)(bytes > 0 ? bytes : 0), dig);
	uint64_t h = 0;
	for (int i = 0; i < 8; i++)
		h = h << 8 | dig[i];
	return h;
}

/* with args.debug: one nnd_rt_node_digest per node that has storage (an
 * update reports its parameter, after the update; a CONST without storage
 * reports nothing), with the node's bytes at this B; none without debug */
static void test_digests(void)
{
	tb t;
	tb_init(&t, "node digests", 5, 8);
	float *x = fill(5 * 6, false);
	for (int i = 0; i < 6; i++) {
		t.params[10 + i] = rndf();
		t.grads[10 + i] = rndf();
	}
	float p0[6], p1[6];
	memcpy(p0, t.params + 10, sizeof p0);
	int ix = tb_input(&t, ty(IR_F32, 2, -1, 6), x);
	ir_node *k = ir_add(t.a, t.g, IR_CONST, 0, NULL, &(ir_type){ .dt = IR_F32 });   /* no storage */
	k->fa[0] = 3.0f;
	ir_node *y = tb_op(&t, IR_MUL, ty(IR_F32, 2, -1, 6), 2, ix, k->id);
	ir_node *s = tb_op(&t, IR_SUM, ty(IR_F32, 1, 6), 1, y->id);
	int ip = tb_block(&t, IR_PARAM, ty(IR_F32, 1, 6), IR_BLK_PARAM, 10);
	int ig = tb_block(&t, IR_PARAM, ty(IR_F32, 1, 6), IR_BLK_GRAD, 10);
	ir_node *u = tb_op(&t, IR_SGD_UPDATE, ty(IR_F32, 0), 3, ip, ig, ip);
	ir_node *am = tb_op(&t, IR_ARGMAX, ty(IR_I32, 1, -1), 1, ix);
	am->ia[0] = 1;
	nnd_step_fn fn;
	cg_module *cm = tb_build(&t, 2, NULL, &fn);
	if (cm) {
		rt_digests tab;
		memset(&tab, 0, sizeof tab);
		rt_digests_activate(&tab);
		nnd_step_args a;
		tb_args(&t, &a);
		a.step = 7;
		fn(&a);                       /* debug off: nothing */
		int64_t off_n = tab.n;
		memcpy(t.params + 10, p0, sizeof p0);
		a.debug = 1;
		fn(&a);
		rt_digests_activate(NULL);
		memcpy(p1, t.params + 10, sizeof p1);
		struct { int node; const void *p; int64_t bytes; } want[] = {
			{ ix, x, 5 * 6 * 4 },
			{ y->id, res(&t, y->id), 5 * 6 * 4 },
			{ s->id, res(&t, s->id), 6 * 4 },
			{ ip, p0, 6 * 4 },            /* the parameter before the update */
			{ ig, t.grads + 10, 6 * 4 },
			{ u->id, p1, 6 * 4 },          /* ... and after it */
			{ am->id, res(&t, am->id), 5 * 4 },
		};
		int nw = (int)(sizeof want / sizeof want[0]);
		checks++;
		if (off_n != 0 || tab.n != nw) {
			printf("FAIL %s: %" PRId64 " digests without debug, %" PRId64 " with (want 0, %d)\n", t.name, off_n,
			       tab.n, nw);
			failures++;
		} else {
			for (int i = 0; i < nw; i++) {
				const rt_digest *d = &tab.v[i];
				if (d->node != want[i].node || d->graph != 0 || d->step != 7 ||
				    d->h != digest64(want[i].p, want[i].bytes)) {
					printf("FAIL %s: report %d: node %d graph %d step %" PRId64 " digest %016" PRIx64
					       ", want node %d graph 0 step 7 digest %016" PRIx64 "\n", t.name, i, d->node, d->graph,
					       d->step, d->h, want[i].node, digest64(want[i].p, want[i].bytes));
					failures++;
					break;
				}
			}
		}
		rt_digests_free(&tab);
		cg_free(cm);
	}
	free(x);
	tb_done(&t);
}

/* nnd_infer_<i>: the infer graph writes its result node into args.result;
 * the model's infer table points at it (and its eval table is NULL) */
static void test_infer(void)
{
	tb t;
	tb_init(&t, "infer graph", 4, 6);
	enum { I = 9, O = 5 };
	float *x = fill(4 * I, false);
	for (int i = 0; i < I * O; i++)
		t.params[i] = rndf();
	for (int i = 0; i < O; i++)
		t.params[I * O + i] = rndf();
	int ix = tb_input(&t, ty(IR_F32, 2, -1, I), x);   /* the train graph: a relu */
	tb_op(&t, IR_RELU, ty(IR_F32, 2, -1, I), 1, ix);
	ir_graph *train = t.g;
	t.g = ir_graph_new(t.a, "infer");
	t.p->infer_g = t.g;
	ix = tb_input(&t, ty(IR_F32, 2, -1, I), x);
	int iw = tb_block(&t, IR_PARAM, ty(IR_F32, 2, I, O), IR_BLK_PARAM, 0);
	int ib = tb_block(&t, IR_PARAM, ty(IR_F32, 1, O), IR_BLK_PARAM, I * O);
	ir_node *mm = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, -1, O), 2, ix, iw);
	ir_node *r = tb_op(&t, IR_ADD, ty(IR_F32, 2, -1, O), 2, mm->id, ib);
	r->blk = IR_BLK_RESULT;
	r->off_c = 0;
	r->off_b = 0;
	t.g->result = r->id;
	t.g = train;
	nnd_step_fn fn;
	cg_module *cm = tb_build(&t, 2, "nnd_infer_0", &fn);
	if (cm) {
		const nnd_model *model = cg_jit_lookup(cm, "nnd_model");
		checks++;
		void *fp;
		memcpy(&fp, &fn, sizeof fp);
		void *ip = model && model->infer ? *(void *const *)&model->infer[0] : NULL;
		void *ep = model && model->eval ? *(void *const *)&model->eval[0] : (void *)1;
		if (!model || model->nprogs != 1 || ip != fp || ep != NULL) {
			printf("FAIL %s: nnd_model tables (infer %p, want %p; eval %p, want NULL)\n", t.name, ip, fp, ep);
			failures++;
		}
		float out[4 * O + 1];
		for (int i = 0; i < 4 * O + 1; i++)
			out[i] = -7.0f;
		nnd_step_args a;
		tb_args(&t, &a);
		a.result = out;
		fn(&a);
		float want[4 * O + 1];
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < O; j++) {
				float acc = 0.0f;
				for (int k = 0; k < I; k++)
					acc = acc + x[i * I + k] * t.params[k * O + j];
				want[i * O + j] = acc + t.params[I * O + j];
			}
		want[4 * O] = -7.0f;   /* nothing past B rows */
		cmp_f32(&t, "result", out, want, 4 * O + 1);
		cg_free(cm);
	}
	free(x);
	tb_done(&t);
}

/* ---- the AOT path ---- */

/* the same kernels at -O0 and -O3 must give the same bits as -O2 */
static void test_opt_levels(void)
{
	float out[3][35];
	for (int o = 0; o < 3; o++) {
		tb t;
		tb_init(&t, o == 0 ? "O0" : o == 1 ? "O2" : "O3", 5, 5);
		rng_state = 12345;
		float *a = fill(5 * 11, false), *b = fill(11 * 7, false);
		int ia = tb_input(&t, ty(IR_F32, 2, -1, 11), a), ib = tb_input(&t, ty(IR_F32, 2, 11, 7), b);
		ir_node *c = tb_op(&t, IR_MATMUL, ty(IR_F32, 2, -1, 7), 2, ia, ib);
		ir_node *s = tb_op(&t, IR_SOFTMAX, ty(IR_F32, 2, -1, 7), 1, c->id);
		if (!tb_run_opt(&t, o == 0 ? 0 : o == 1 ? 2 : 3))
			memcpy(out[o], res(&t, s->id), sizeof out[o]);
		free(a);
		free(b);
		tb_done(&t);
	}
	tb t;
	tb_init(&t, "opt levels agree", 1, 1);
	cmp_f32(&t, "O0 vs O2", out[0], out[1], 35);
	cmp_f32(&t, "O3 vs O2", out[2], out[1], 35);
	tb_done(&t);
}

static void test_aot(const char *dir)
{
	tb t;
	char obj[1024], exe[1024];
	tb_init(&t, "aot object + link", 1, 1);
	snprintf(obj, sizeof obj, "%s/cg_test_model.o", dir);
	snprintf(exe, sizeof exe, "%s/cg_test_model", dir);
	float x[4] = { 0 };
	int ix = tb_input(&t, ty(IR_F32, 2, -1, 4), x);
	ir_node *r = tb_op(&t, IR_RELU, ty(IR_F32, 2, -1, 4), 1, ix);
	(void)r;
	ir_module m = { .source_path = "aot", .progs = &t.p, .nprogs = 1 };
	cg_module *cm = cg_build(&m, "nnd-manifest 1\n", NULL, 2, true);
	checks++;
	if (!cm) {
		printf("FAIL %s: cg_build\n", t.name);
		failures++;
		tb_done(&t);
		return;
	}
	remove(obj);
	remove(exe);
	struct stat st;
	if (cg_emit_object(cm, obj) || stat(obj, &st) || st.st_size == 0) {
		printf("FAIL %s: no object file\n", t.name);
		failures++;
	} else if (cg_link_executable(obj, exe) || stat(exe, &st) || !(st.st_mode & S_IXUSR)) {
		printf("FAIL %s: link\n", t.name);
		failures++;
	}
	/* the textual IR names both step functions and the model */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cg_print_llvm(cm, f);
	fclose(f);
	checks++;
	if (!buf || !strstr(buf, "nnd_train_0") || !strstr(buf, "@nnd_model") || !strstr(buf, "@main") ||
	    strstr(buf, "fmuladd") || strstr(buf, " fast ") || strstr(buf, "contract")) {
		printf("FAIL %s: printed LLVM IR is not as expected\n", t.name);
		failures++;
	}
	free(buf);
	cg_free(cm);
	tb_done(&t);
}

/* nnd_cg_test --sgemm [M K N [ta tb [reps]]]: not a test -- times one
 * matmul kernel (JIT, -O2) on a hand-built graph and prints GFLOP/s
 * (2*M*K*N flops per call; the best of `reps` calls) and a checksum. */
static int bench_sgemm(int argc, char **argv)
{
	int M = argc > 0 ? atoi(argv[0]) : 1024, K = argc > 1 ? atoi(argv[1]) : 1024;
	int N = argc > 2 ? atoi(argv[2]) : 1024;
	bool ta = argc > 3 && atoi(argv[3]), tb_ = argc > 4 && atoi(argv[4]);
	int reps = argc > 5 ? atoi(argv[5]) : 5;
	if (M < 1 || K < 1 || N < 1 || reps < 1)
		return 2;
	tb t;
	int64_t cbytes = (int64_t)M * N * 4;
	tb_init(&t, "sgemm bench", 1, (cbytes + BREG - 1) / BREG);
	float *a = fill((int64_t)M * K, false), *b = fill((int64_t)K * N, false);
	int ia = tb_input(&t, ta ? ty(IR_F32, 2, K, M) : ty(IR_F32, 2, M, K), a);
	int ib = tb_input(&t, tb_ ? ty(IR_F32, 2, N, K) : ty(IR_F32, 2, K, N), b);
	int in2[2] = { ia, ib };
	ir_type ct = ty(IR_F32, 2, M, N);
	ir_node *c = ir_add(t.a, t.g, IR_MATMUL, 2, in2, &ct);
	c->plan.family = IR_PLAN_SEQ;
	c->plan.fused = !getenv("NND_SGEMM_UNFUSED");   /* the default plan, seq+fma */
	c->blk = IR_BLK_ACT;
	c->off_c = 0;   /* the B-sized region: Bmax was chosen to hold C */
	c->ia[0] = ta;
	c->ia[1] = tb_;
	ir_module m = { .source_path = "sgemm", .progs = &t.p, .nprogs = 1 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cg_module *cm = cg_build(&m, "nnd-manifest 1\n", NULL, 2, false);
	void *sym = cm ? cg_jit_lookup(cm, "nnd_train_0") : NULL;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!sym) {
		fprintf(stderr, "sgemm bench: cg_build/lookup failed\n");
		return 1;
	}
	printf("compile+jit %.3f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
	nnd_step_fn fn;
	memcpy(&fn, &sym, sizeof fn);
	nnd_step_args args;
	memset(&args, 0, sizeof args);
	args.params = t.params;
	args.grads = t.grads;
	args.opt = t.opt;
	args.state = t.state;
	args.acts = t.acts;
	args.inputs = t.inputs;
	args.sample_idx = t.sample_idx;
	args.keys = t.keys;
	args.outputs = t.outputs;
	args.B = t.B;
	args.Bmax = t.Bmax;
	double best = 1e30;
	if (getenv("NND_CG_THREADS"))   /* the runtime's pool, as `train --threads` */
		nnd_rt_set_threads(atoi(getenv("NND_CG_THREADS")));
	for (int r = 0; r < reps; r++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		fn(&args);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
		if (s < best)
			best = s;
	}
	const float *cv = res(&t, c->id);
	uint64_t h = 1469598103934665603ull;
	for (int64_t i = 0; i < (int64_t)M * N; i++)
		h = (h ^ bits(cv[i])) * 1099511628211ull;
	printf("sgemm %dx%dx%d ta=%d tb=%d: best %.4f s, %.2f GFLOP/s, fnv %016" PRIx64 "\n",
	       M, K, N, ta, tb_, best, 2.0 * M * K * N / best * 1e-9, h);
	cg_free(cm);
	free(a);
	free(b);
	tb_done(&t);
	return 0;
}

/* ---- convolution, pooling, random_flip, state_ema ---- */

typedef struct cvc { int B, C, H, W, O, KH, KW, s, p, d, G; } cvc;

static int conv_oh(const cvc *q, int H, int KH) { return (H + 2 * q->p - q->d * (KH - 1) - 1) / q->s + 1; }

/* im2col and col2im on their own: an image with specials (NaN, inf, -0
 * are moved, never computed with) and random columns, under plan p */
static void test_im2col(cvc q, ir_plan p, bool const_n)
{
	tb t;
	char name[160], pb[32];
	snprintf(name, sizeof name, "im2col/col2im N%d%s C%d %dx%d k%dx%d s%d p%d d%d plan %s", q.B,
	         const_n ? "" : "(B)", q.C, q.H, q.W, q.KH, q.KW, q.s, q.p, q.d, ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, q.B, q.B + 2);
	cur_plan = p;
	int OH = conv_oh(&q, q.H, q.KH), OW = conv_oh(&q, q.W, q.KW), nb = const_n ? q.B : -1;
	int64_t nx = (int64_t)q.B * q.C * q.H * q.W, nc = (int64_t)q.C * q.KH * q.KW * q.B * OH * OW;
	float *x = fill(nx, true), *col = fill(nc, p.family == IR_PLAN_SEQ);
	ir_type tx = ty(IR_F32, 4, nb, q.C, q.H, q.W), tc = ty(IR_F32, 6, q.C, q.KH, q.KW, nb, OH, OW);
	int ix = tb_input(&t, tx, x), icol = tb_input(&t, tc, col);
	int64_t ia[4] = { q.s, q.p, q.d, 0 };
	int y = tb_emit(&t, IR_IM2COL, 1, &ix, &tc, ia);
	int dx = tb_emit(&t, IR_COL2IM, 1, &icol, &tx, ia);
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	if (y >= 0 && dx >= 0 && !tb_run(&t)) {
		float *wy = malloc((size_t)nc * 4), *wdx = malloc((size_t)nx * 4), terms[256];
		int64_t k = 0;
		for (int c = 0; c < q.C; c++)
			for (int kh = 0; kh < q.KH; kh++)
				for (int kw = 0; kw < q.KW; kw++)
					for (int n = 0; n < q.B; n++)
						for (int oh = 0; oh < OH; oh++)
							for (int ow = 0; ow < OW; ow++) {
								int ih = oh * q.s - q.p + kh * q.d, iw = ow * q.s - q.p + kw * q.d;
								wy[k++] = ih >= 0 && ih < q.H && iw >= 0 && iw < q.W ?
								          x[(((int64_t)n * q.C + c) * q.H + ih) * q.W + iw] : 0.0f;
							}
		for (int n = 0; n < q.B; n++)
			for (int c = 0; c < q.C; c++)
				for (int ih = 0; ih < q.H; ih++)
					for (int iw = 0; iw < q.W; iw++) {
						int m = 0;
						for (int kh = 0; kh < q.KH; kh++)
							for (int kw = 0; kw < q.KW; kw++) {
								int th = ih + q.p - kh * q.d, tw_ = iw + q.p - kw * q.d;
								bool ok = th >= 0 && tw_ >= 0 && th % q.s == 0 && tw_ % q.s == 0 &&
								          th / q.s < OH && tw_ / q.s < OW;
								terms[m++] = ok ? col[((((int64_t)c * q.KH + kh) * q.KW + kw) * q.B + n) * OH * OW +
								                      (th / q.s) * OW + tw_ / q.s] : 0.0f;
							}
						wdx[(((int64_t)n * q.C + c) * q.H + ih) * q.W + iw] = ref_reduce(p, terms, m);
					}
		cmp_f32_nan(&t, "im2col", res(&t, y), wy, nc);
		cmp_f32_nan(&t, "col2im", res(&t, dx), wdx, nx);
		free(wy); free(wdx);
	}
	free(x); free(col);
	tb_done(&t);
}

/* conv2d as passes/conv.c builds it, and the backward nodes autodiff
 * derives from it (reshape, transpose, matmul with a transposed operand,
 * col2im), against references of the orders ops.def documents, under
 * plan p (every matmul and col2im) */
static void test_conv(cvc q, ir_plan p)
{
	tb t;
	char name[160], pb[32];
	snprintf(name, sizeof name, "conv2d B%d C%d %dx%d O%d k%dx%d s%d p%d d%d g%d plan %s", q.B, q.C, q.H, q.W,
	         q.O, q.KH, q.KW, q.s, q.p, q.d, q.G, ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, q.B, q.B + 1);
	cur_plan = p;
	int Cg = q.C / q.G, Og = q.O / q.G;
	int OH = conv_oh(&q, q.H, q.KH), OW = conv_oh(&q, q.W, q.KW), P = OH * OW;
	int64_t nx = (int64_t)q.B * q.C * q.H * q.W, nw = (int64_t)q.O * Cg * q.KH * q.KW;
	int64_t ny = (int64_t)q.B * q.O * OH * OW;
	float *x = fill(nx, false), *w = fill(nw, false), *dy = fill(ny, false);
	x[0] = -0.0f;
	ir_type tx = ty(IR_F32, 4, -1, q.C, q.H, q.W), tw = ty(IR_F32, 4, q.O, Cg, q.KH, q.KW);
	ir_type tyy = ty(IR_F32, 4, -1, q.O, OH, OW);
	int ix = tb_input(&t, tx, x), iw = tb_input(&t, tw, w), idy = tb_input(&t, tyy, dy);
	int64_t ia[4] = { q.s, q.p, q.d, q.G }, none[4] = { 0 }, swap[4] = { 102 }, ta[4] = { 1, 0 }, tbm[4] = { 0, 1 };
	char err[256];
	int y = conv2d_lower(&t, tb_emit, ix, &tx, iw, &tw, ia, err, sizeof err);
	int col = -1, colm = -1, wm = -1, ym = -1;
	for (int i = 0; i < t.g->nnodes; i++) {
		const ir_node *n = t.g->nodes[i];
		if (n->op == IR_IM2COL)
			col = i;
		else if (n->op == IR_RESHAPE && col >= 0 && n->in[0] == col)
			colm = i;
		else if (n->op == IR_RESHAPE && n->in[0] == iw)
			wm = i;
		else if (n->op == IR_MATMUL)
			ym = i;
	}
	if (y < 0 || col < 0 || colm < 0 || wm < 0 || ym < 0) {
		printf("FAIL %s: conv2d_lower %s\n", name, err);
		failures++;
		free(x); free(w); free(dy);
		tb_done(&t);
		return;
	}
	/* the backward, as autodiff builds it */
	ir_type d3 = ty(IR_F32, 3, -1, q.O, P);
	int dy3 = tb_emit(&t, IR_RESHAPE, 1, &idy, &d3, none);
	int dyt = tb_emit(&t, IR_TRANSPOSE, 1, &dy3, NULL, swap);
	int dym = tb_emit(&t, IR_RESHAPE, 1, &dyt, &t.g->nodes[ym]->type, none);
	int in1[2] = { dym, colm }, in2[2] = { wm, dym };
	int dwm = tb_emit(&t, IR_MATMUL, 2, in1, NULL, tbm);
	int dw = tb_emit(&t, IR_RESHAPE, 1, &dwm, &tw, none);
	int dcolm = tb_emit(&t, IR_MATMUL, 2, in2, NULL, ta);
	int dcol = tb_emit(&t, IR_RESHAPE, 1, &dcolm, &t.g->nodes[col]->type, none);
	int dx = tb_emit(&t, IR_COL2IM, 1, &dcol, &tx, ia);
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	if (dx >= 0 && dw >= 0 && !tb_run(&t)) {
		float *wy = malloc((size_t)ny * 4), *wdx = malloc((size_t)nx * 4), *wdw = malloc((size_t)nw * 4);
		int64_t nt = (int64_t)q.B * OH * OW + (int64_t)Og + (int64_t)Cg * q.KH * q.KW;
		float *terms = malloc((size_t)nt * 4), t2[256];
#define X_(n, c, h, w_) x[(((int64_t)(n) * q.C + (c)) * q.H + (h)) * q.W + (w_)]
#define W_(o, c, h, w_) w[(((int64_t)(o) * Cg + (c)) * q.KH + (h)) * q.KW + (w_)]
#define DY_(n, o, h, w_) dy[(((int64_t)(n) * q.O + (o)) * OH + (h)) * OW + (w_)]
/* the column entry: the input pixel, or +0 in the padding */
#define COL_(n, c, kh, kw, oh, ow) (oh * q.s - q.p + kh * q.d >= 0 && oh * q.s - q.p + kh * q.d < q.H && \
	ow * q.s - q.p + kw * q.d >= 0 && ow * q.s - q.p + kw * q.d < q.W ? \
	X_(n, c, oh * q.s - q.p + kh * q.d, ow * q.s - q.p + kw * q.d) : 0.0f)
		/* y: over k = (cl, kh, kw), w * col */
		for (int n = 0; n < q.B; n++)
			for (int o = 0; o < q.O; o++)
				for (int oh = 0; oh < OH; oh++)
					for (int ow = 0; ow < OW; ow++) {
						int g = o / Og, k = 0;
						for (int cl = 0; cl < Cg; cl++)
							for (int kh = 0; kh < q.KH; kh++)
								for (int kw = 0; kw < q.KW; kw++)
									terms[k++] = W_(o, cl, kh, kw) * COL_(n, g * Cg + cl, kh, kw, oh, ow);
						wy[(((int64_t)n * q.O + o) * OH + oh) * OW + ow] = ref_reduce(p, terms, k);
					}
		/* dx: per (kh, kw) the matmul's sum over ol of w * dy (every
		 * column entry), then col2im's sum over the (kh, kw) that reach
		 * the pixel */
		for (int n = 0; n < q.B; n++)
			for (int c = 0; c < q.C; c++)
				for (int ih = 0; ih < q.H; ih++)
					for (int iw_ = 0; iw_ < q.W; iw_++) {
						int g = c / Cg, m = 0;
						for (int kh = 0; kh < q.KH; kh++)
							for (int kw = 0; kw < q.KW; kw++) {
								int th = ih + q.p - kh * q.d, tw_ = iw_ + q.p - kw * q.d;
								bool ok = th >= 0 && tw_ >= 0 && th % q.s == 0 && tw_ % q.s == 0 &&
								          th / q.s < OH && tw_ / q.s < OW;
								if (!ok) {
									t2[m++] = 0.0f;
									continue;
								}
								int k = 0;
								for (int ol = 0; ol < Og; ol++)
									terms[k++] = W_(g * Og + ol, c % Cg, kh, kw) * DY_(n, g * Og + ol, th / q.s, tw_ / q.s);
								t2[m++] = ref_reduce(p, terms, k);
							}
						wdx[(((int64_t)n * q.C + c) * q.H + ih) * q.W + iw_] = ref_reduce(p, t2, m);
					}
		/* dw: over k = (n, oh, ow), dy * col */
		for (int o = 0; o < q.O; o++)
			for (int cl = 0; cl < Cg; cl++)
				for (int kh = 0; kh < q.KH; kh++)
					for (int kw = 0; kw < q.KW; kw++) {
						int g = o / Og, k = 0;
						for (int n = 0; n < q.B; n++)
							for (int oh = 0; oh < OH; oh++)
								for (int ow = 0; ow < OW; ow++)
									terms[k++] = DY_(n, o, oh, ow) * COL_(n, g * Cg + cl, kh, kw, oh, ow);
						wdw[(((int64_t)o * Cg + cl) * q.KH + kh) * q.KW + kw] = ref_reduce(p, terms, k);
					}
#undef X_
#undef W_
#undef DY_
#undef COL_
		cmp_f32(&t, "forward", res(&t, y), wy, ny);
		cmp_f32(&t, "dx", res(&t, dx), wdx, nx);
		cmp_f32(&t, "dw", res(&t, dw), wdw, nw);
		free(wy); free(wdx); free(wdw); free(terms);
	}
	free(x); free(w); free(dy);
	tb_done(&t);
}

static void test_pool(int H, int W, int k, int s, ir_plan p, bool specials)
{
	tb t;
	char name[128], pb[32];
	snprintf(name, sizeof name, "pool %dx%d k%d s%d plan %s%s", H, W, k, s, ir_plan_str(p, pb, sizeof pb),
	         specials ? " specials" : "");
	int B = 3, C = 2, OH = (H - k) / s + 1, OW = (W - k) / s + 1;
	tb_init(&t, name, B, B + 1);
	int64_t nx = (int64_t)B * C * H * W, ny = (int64_t)B * C * OH * OW;
	float *x = fill(nx, specials), *dy = fill(ny, false);
	for (int64_t i = 8; i < nx; i += 5)
		x[i] = x[i - 1];    /* ties */
	dy[0] = -0.0f;          /* dx = +0 + dy: +0 */
	ir_type tx = ty(IR_F32, 4, -1, C, H, W), tyy = ty(IR_F32, 4, -1, C, OH, OW);
	int ix = tb_input(&t, tx, x), idy = tb_input(&t, tyy, dy);
	cur_plan = p;
	ir_node *ym = tb_op(&t, IR_MAX_POOL2D, tyy, 1, ix);
	ir_node *dm = tb_op(&t, IR_MAX_POOL2D_BWD, tx, 2, idy, ix);
	ir_node *ya = tb_op(&t, IR_AVG_POOL2D, tyy, 1, ix);
	ir_node *da = tb_op(&t, IR_AVG_POOL2D_BWD, tx, 1, idy);
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	ym->ia[0] = dm->ia[0] = ya->ia[0] = da->ia[0] = k;
	ym->ia[1] = dm->ia[1] = ya->ia[1] = da->ia[1] = s;
	if (!tb_run(&t)) {
		float *wm = malloc((size_t)ny * 4), *wa = malloc((size_t)ny * 4);
		float *wdm = calloc((size_t)nx, 4), *wda = calloc((size_t)nx, 4), terms[64];
		for (int64_t pl = 0; pl < (int64_t)B * C; pl++)
			for (int oh = 0; oh < OH; oh++)
				for (int ow = 0; ow < OW; ow++) {
					float m = -INFINITY, best = -INFINITY;
					int bq = 0, nt = 0;
					for (int i = 0; i < k; i++)
						for (int j = 0; j < k; j++) {
							float v = x[(pl * H + oh * s + i) * W + ow * s + j];
							m = ref_maximum(m, v);
							if (v > best || (isnan(v) && !isnan(best))) { best = v; bq = i * k + j; }
							terms[nt++] = v;
						}
					int64_t yi = (pl * OH + oh) * OW + ow;
					wm[yi] = m;
					wa[yi] = ref_reduce(p, terms, nt) / (float)(k * k);
					int64_t xi = (pl * H + oh * s + bq / k) * W + ow * s + bq % k;
					wdm[xi] = wdm[xi] + dy[yi];
					float gv = dy[yi] / (float)(k * k);
					for (int i = 0; i < k; i++)
						for (int j = 0; j < k; j++) {
							int64_t xj = (pl * H + oh * s + i) * W + ow * s + j;
							wda[xj] = wda[xj] + gv;
						}
				}
		cmp_f32_nan(&t, "max_pool2d", res(&t, ym->id), wm, ny);
		cmp_f32(&t, "max_pool2d_bwd", res(&t, dm->id), wdm, nx);
		cmp_f32_nan(&t, "avg_pool2d", res(&t, ya->id), wa, ny);
		cmp_f32(&t, "avg_pool2d_bwd", res(&t, da->id), wda, nx);
		free(wm); free(wa); free(wdm); free(wda);
	}
	free(x); free(dy);
	tb_done(&t);
}

static void test_random_flip(int axis)
{
	tb t;
	char name[64];
	snprintf(name, sizeof name, "random_flip axis %d", axis);
	int B = 40, D1 = 3, D2 = 4, D3 = 5;
	tb_init(&t, name, B, B + 1);
	int64_t E = D1 * D2 * D3, n = B * E;
	float *x = fill(n, false);
	ir_type tt = ty(IR_F32, 4, -1, D1, D2, D3);
	int ix = tb_input(&t, tt, x);
	ir_node *y = tb_op(&t, IR_RANDOM_FLIP, tt, 1, ix);
	y->ia[0] = axis;
	y->stream = 1;
	if (!tb_run(&t)) {
		float *wy = malloc((size_t)n * 4);
		int64_t dims[4] = { B, D1, D2, D3 }, post = 1, flips = 0;
		for (int d = axis + 1; d < 4; d++)
			post *= dims[d];
		int64_t L = dims[axis];
		for (int r = 0; r < B; r++) {
			float u = nnd_rt_uniform(&t.keys[2], 0, (uint32_t)t.sample_idx[r], (uint32_t)t.epoch, 1);
			bool f = u < 0.5f;
			flips += f;
			for (int64_t e = 0; e < E; e++) {
				int64_t i = (e / post) % L;
				wy[r * E + e] = x[r * E + (f ? e + (L - 1 - 2 * i) * post : e)];
			}
		}
		cmp_f32(&t, "random_flip", res(&t, y->id), wy, n);
		checks++;
		if (flips == 0 || flips == B) {
			printf("FAIL %s: %" PRId64 " of %d rows flipped\n", name, flips, B);
			failures++;
		}
		free(wy);
	}
	free(x);
	tb_done(&t);
}

/* random_crop, random_crop_bwd (same stream), crop, crop_bwd against a
 * reference written from ops.def: Philox at {0, sample, epoch, 2}, oy from
 * word 0, ox from word 1, (w * n) >> 32; the window of the zero-padded
 * input; the gradient scatters dy back into the window. */
static void crop_ref(const float *x, float *y, int64_t rows, int64_t planes, int64_t H, int64_t W,
                     int64_t S, int64_t P, const int64_t *oy, const int64_t *ox, bool bwd)
{
	for (int64_t r = 0; r < rows; r++)
		for (int64_t p = 0; p < planes; p++) {
			int64_t pl = r * planes + p;
			if (!bwd) {
				for (int64_t i = 0; i < S; i++)
					for (int64_t j = 0; j < S; j++) {
						int64_t h = oy[r] + i - P, w = ox[r] + j - P;
						y[(pl * S + i) * S + j] = h >= 0 && h < H && w >= 0 && w < W
							? x[(pl * H + h) * W + w] : 0.0f;
					}
			} else {
				for (int64_t h = 0; h < H; h++)
					for (int64_t w = 0; w < W; w++) {
						int64_t i = h + P - oy[r], j = w + P - ox[r];
						y[(pl * H + h) * W + w] = i >= 0 && i < S && j >= 0 && j < S
							? x[(pl * S + i) * S + j] : 0.0f;
					}
			}
		}
}

static void test_random_crop(int rank, int H, int W, int S, int P)
{
	tb t;
	char name[96];
	snprintf(name, sizeof name, "random_crop rank %d %dx%d size %d pad %d", rank, H, W, S, P);
	int B = 37, C = rank == 4 ? 3 : 1;
	tb_init(&t, name, B, B + 2);
	int64_t nx = (int64_t)B * C * H * W, ny = (int64_t)B * C * S * S;
	float *x = fill(nx, true), *dy = fill(ny, true);
	ir_type xt = rank == 4 ? ty(IR_F32, 4, -1, C, H, W) : ty(IR_F32, 3, -1, H, W);
	ir_type yt = rank == 4 ? ty(IR_F32, 4, -1, C, S, S) : ty(IR_F32, 3, -1, S, S);
	int ix = tb_input(&t, xt, x), idy = tb_input(&t, yt, dy);
	ir_node *y = tb_op(&t, IR_RANDOM_CROP, yt, 1, ix);
	ir_node *dx = tb_op(&t, IR_RANDOM_CROP_BWD, xt, 1, idy);
	int64_t cy = (H + 2 * P - S) / 3, cx = (W + 2 * P - S) / 2;   /* some fixed window */
	ir_node *fy = tb_op(&t, IR_CROP, yt, 1, ix);
	ir_node *fdx = tb_op(&t, IR_CROP_BWD, xt, 1, idy);
	ir_node *ns[4] = { y, dx, fy, fdx };
	for (int k = 0; k < 4; k++) {
		int64_t ia[4] = { S, P, k >= 2 ? cy : 0, k >= 2 ? cx : 0 };
		memcpy(ns[k]->ia, ia, sizeof ia);
		if (k < 2)
			ns[k]->stream = 1;
	}
	if (!tb_run(&t)) {
		int64_t oy[64], ox[64], fo_y[64], fo_x[64], distinct = 0;
		for (int r = 0; r < B; r++) {
			uint32_t ctr[4] = { 0, (uint32_t)t.sample_idx[r], (uint32_t)t.epoch, 2 }, w[4];
			nnd_philox4x32_10(ctr, &t.keys[2], w);
			oy[r] = (int64_t)(((uint64_t)w[0] * (uint64_t)(H + 2 * P - S + 1)) >> 32);
			ox[r] = (int64_t)(((uint64_t)w[1] * (uint64_t)(W + 2 * P - S + 1)) >> 32);
			fo_y[r] = cy;
			fo_x[r] = cx;
			distinct += r > 0 && (oy[r] != oy[0] || ox[r] != ox[0]);
		}
		float *wy = malloc((size_t)ny * 4), *wdx = malloc((size_t)nx * 4);
		crop_ref(x, wy, B, C, H, W, S, P, oy, ox, false);
		crop_ref(dy, wdx, B, C, H, W, S, P, oy, ox, true);
		cmp_f32(&t, "random_crop", res(&t, y->id), wy, ny);
		cmp_f32(&t, "random_crop_bwd", res(&t, dx->id), wdx, nx);
		crop_ref(x, wy, B, C, H, W, S, P, fo_y, fo_x, false);
		crop_ref(dy, wdx, B, C, H, W, S, P, fo_y, fo_x, true);
		cmp_f32(&t, "crop", res(&t, fy->id), wy, ny);
		cmp_f32(&t, "crop_bwd", res(&t, fdx->id), wdx, nx);
		checks++;
		if ((H + 2 * P > S || W + 2 * P > S) && distinct == 0) {
			printf("FAIL %s: every row has the same window\n", name);
			failures++;
		}
		free(wy);
		free(wdx);
	}
	free(x);
	free(dy);
	tb_done(&t);
}

/* general transpose: every permutation of ranks 2 to 4 over sizes that
 * leave tile remainders (the tiled kernel's tile is 32), B in several
 * places; integer and byte data too (a transpose copies any dtype) */
static void perm_ref(const ir_type *xt, int64_t B, const int *perm, const void *x, void *y, int esz)
{
	int r = xt->rank;
	int64_t xs[IR_MAX_RANK], od[IR_MAX_RANK], n = 1;
	strides(xt, B, xs);
	for (int d = 0; d < r; d++) {
		od[d] = ir_dim_eval(xt->d[perm[d]], B);
		n *= od[d];
	}
	for (int64_t lin = 0; lin < n; lin++) {
		int64_t rem = lin, src = 0;
		for (int d = r - 1; d >= 0; d--) {
			src += (rem % od[d]) * xs[perm[d]];
			rem /= od[d];
		}
		memcpy((char *)y + lin * esz, (const char *)x + src * esz, (size_t)esz);
	}
}

static bool next_perm(int *a, int n)
{
	int i = n - 2;
	while (i >= 0 && a[i] >= a[i + 1])
		i--;
	if (i < 0)
		return false;
	int j = n - 1;
	while (a[j] <= a[i])
		j--;
	int t = a[i]; a[i] = a[j]; a[j] = t;
	for (int l = i + 1, h = n - 1; l < h; l++, h--) {
		t = a[l]; a[l] = a[h]; a[h] = t;
	}
	return true;
}

typedef struct perm_case { int perm[IR_MAX_RANK]; ir_node *y; } perm_case;

static void perm_check(tb *t, const ir_type *xt, int64_t B, const void *x, int esz, perm_case *cs, int ncs)
{
	if (!tb_run(t)) {
		int64_t n = ir_dim_eval(ir_type_numel(xt), B);
		void *want = malloc((size_t)n * (size_t)esz);
		for (int k = 0; k < ncs; k++) {
			perm_ref(xt, B, cs[k].perm, x, want, esz);
			checks++;
			if (memcmp(res(t, cs[k].y->id), want, (size_t)n * (size_t)esz)) {
				printf("FAIL %s: perm %" PRId64 "\n", t->name, cs[k].y->ia[0]);
				failures++;
			}
		}
		free(want);
	}
	tb_done(t);
}

static void test_transpose_perm(ir_type xt, int64_t B, ir_dtype dt)
{
	tb t;
	char name[96], tn[64];
	xt.dt = dt;
	snprintf(name, sizeof name, "transpose, every perm of %s, B=%d", ir_type_str(&xt, tn, sizeof tn), (int)B);
	int r = xt.rank, esz = ir_dtype_size(dt);
	int64_t n = ir_dim_eval(ir_type_numel(&xt), B);
	ir_dim ne = ir_type_numel(&xt);
	int64_t bytes = (ne.c * esz + 63) / 64 * 64;
	float *xf = fill(n, true);
	void *x = xf;
	if (dt != IR_F32) {   /* integers: distinct bit patterns */
		x = malloc((size_t)n * (size_t)esz);
		for (int64_t i = 0; i < n; i++) {
			uint32_t v = (uint32_t)(i * 2654435761u);
			memcpy((char *)x + i * esz, &v, (size_t)esz);
		}
	}
	perm_case cs[24];
	int ncs = 0, ix = -1, perm[IR_MAX_RANK];
	for (int d = 0; d < r; d++)
		perm[d] = d;
	do {
		/* a new graph when the arena region would overflow */
		if (ncs && (ne.sym ? t.used_b + bytes > BREG : t.used_c + bytes > 65536)) {
			perm_check(&t, &xt, B, x, esz, cs, ncs);
			ncs = 0;
		}
		if (!ncs) {
			tb_init(&t, name, B, B);
			ix = tb_input(&t, xt, x);
		}
		ir_type yt = xt;
		for (int d = 0; d < r; d++)
			yt.d[d] = xt.d[perm[d]];
		cs[ncs].y = tb_op(&t, IR_TRANSPOSE, yt, 1, ix);
		cs[ncs].y->ia[0] = ir_perm_pack(perm, r);
		memcpy(cs[ncs].perm, perm, sizeof perm);
		ncs++;
	} while (next_perm(perm, r));
	perm_check(&t, &xt, B, x, esz, cs, ncs);
	if (x != xf)
		free(x);
	free(xf);
}

/* broadcast of every kind of operand to an explicit shape, any dtype */
static void test_broadcast(void)
{
	tb t;
	tb_init(&t, "broadcast", 5, 6);
	float *v = fill(7, true), *m = fill(3, false);
	uint8_t bytes[4] = { 1, 200, 3, 255 };
	int iv = tb_input(&t, ty(IR_F32, 1, 7), v);
	int im = tb_input(&t, ty(IR_F32, 2, 3, 1), m);
	int ib = tb_input(&t, ty(IR_U8, 2, 1, 4), bytes);
	ir_node *a = tb_op(&t, IR_BROADCAST, ty(IR_F32, 3, -1, 2, 7), 1, iv);
	ir_node *b = tb_op(&t, IR_BROADCAST, ty(IR_F32, 4, 2, -1, 3, 9), 1, im);
	ir_node *c = tb_op(&t, IR_BROADCAST, ty(IR_U8, 3, 2, -1, 4), 1, ib);
	if (!tb_run(&t)) {
		float wa[5 * 2 * 7], wb[2 * 5 * 3 * 9];
		uint8_t wc[2 * 5 * 4];
		for (int i = 0; i < 5 * 2 * 7; i++)
			wa[i] = v[i % 7];
		for (int i = 0; i < 2 * 5 * 3 * 9; i++)
			wb[i] = m[(i / 9) % 3];
		for (int i = 0; i < 2 * 5 * 4; i++)
			wc[i] = bytes[i % 4];
		cmp_f32(&t, "[7] -> [B, 2, 7]", res(&t, a->id), wa, 5 * 2 * 7);
		cmp_f32(&t, "[3, 1] -> [2, B, 3, 9]", res(&t, b->id), wb, 2 * 5 * 3 * 9);
		checks++;
		if (memcmp(res(&t, c->id), wc, sizeof wc)) {
			printf("FAIL broadcast u8 [1, 4] -> [2, B, 4]\n");
			failures++;
		}
	}
	free(v);
	free(m);
	tb_done(&t);
}

static void test_state_ema(void)
{
	tb t;
	tb_init(&t, "state_ema", 1, 1);
	ir_type tt = ty(IR_F32, 1, 7);
	float v[7];
	for (int i = 0; i < 7; i++) {
		t.state[i] = rndf();
		v[i] = rndf();
	}
	float want[7], m = 0.1f, om = 1.0f - m;
	for (int i = 0; i < 7; i++)
		want[i] = om * t.state[i] + m * v[i];
	int is = tb_block(&t, IR_STATE, tt, IR_BLK_STATE, 0);
	int iv = tb_input(&t, tt, v);
	ir_node *u = tb_op(&t, IR_STATE_EMA, tt, 2, is, iv);
	u->fa[0] = m;
	u->fa[1] = om;
	if (!tb_run(&t))
		cmp_f32(&t, "state_ema", t.state, want, 7);
	tb_done(&t);
}

static void test_slice_concat(void)
{
	tb t;
	tb_init(&t, "slice/concat/one_hot", 3, 4);
	int B = 3, D1 = 4, D2 = 5;
	int64_t n = B * D1 * D2;
	float *x = fill(n, true), *z = fill(B * 2 * D2, false), *dy = fill(B * D1 * 3, false);
	int32_t lab[3] = { 2, -1, 4 };
	ir_type tx = ty(IR_F32, 3, -1, D1, D2), tz = ty(IR_F32, 3, -1, 2, D2);
	ir_type ts = ty(IR_F32, 3, -1, D1, 3), tc = ty(IR_F32, 3, -1, D1 + 2, D2);
	int ix = tb_input(&t, tx, x), iz = tb_input(&t, tz, z), idy = tb_input(&t, ts, dy);
	int il = tb_input(&t, ty(IR_I32, 1, -1), lab);
	ir_node *s = tb_op(&t, IR_SLICE, ts, 1, ix);
	ir_node *sb = tb_op(&t, IR_SLICE_BWD, tx, 1, idy);
	ir_node *cc = tb_op(&t, IR_CONCAT, tc, 2, ix, iz);
	ir_node *oh = tb_op(&t, IR_ONE_HOT, ty(IR_F32, 2, -1, 4), 1, il);
	s->ia[0] = sb->ia[0] = 2; s->ia[1] = sb->ia[1] = 1; s->ia[2] = sb->ia[2] = 4;
	cc->ia[0] = 1;
	oh->ia[0] = 4;
	if (!tb_run(&t)) {
		float ws[60], wsb[60], wc[90], wo[12];
		for (int b = 0; b < B; b++) {
			for (int i = 0; i < D1; i++)
				for (int j = 0; j < D2; j++) {
					if (j >= 1 && j < 4)
						ws[(b * D1 + i) * 3 + j - 1] = x[(b * D1 + i) * D2 + j];
					wsb[(b * D1 + i) * D2 + j] = j >= 1 && j < 4 ? dy[(b * D1 + i) * 3 + j - 1] : 0.0f;
				}
			for (int i = 0; i < D1 + 2; i++)
				for (int j = 0; j < D2; j++)
					wc[(b * (D1 + 2) + i) * D2 + j] = i < D1 ? x[(b * D1 + i) * D2 + j] : z[(b * 2 + i - D1) * D2 + j];
			for (int k = 0; k < 4; k++)
				wo[b * 4 + k] = lab[b] == k ? 1.0f : 0.0f;
		}
		cmp_f32(&t, "slice", res(&t, s->id), ws, B * D1 * 3);
		cmp_f32(&t, "slice_bwd", res(&t, sb->id), wsb, n);
		cmp_f32(&t, "concat", res(&t, cc->id), wc, B * (D1 + 2) * D2);
		cmp_f32(&t, "one_hot", res(&t, oh->id), wo, 12);
	}
	free(x); free(z); free(dy);
	tb_done(&t);
}

static void test_embedding(ir_plan p)
{
	tb t;
	char name[96], pb[32];
	snprintf(name, sizeof name, "embedding plan %s", ir_plan_str(p, pb, sizeof pb));
	tb_init(&t, name, 6, 7);
	int V = 5, D = 3, P = 6 * 2;
	float *tab = fill(V * D, true), *dy = fill(P * D, false);
	int32_t idx[12] = { 1, 4, 1, 0, 7, 1, -1, 4, 2, 1, 0, 4 };
	int itab = tb_input(&t, ty(IR_F32, 2, V, D), tab), ix = tb_input(&t, ty(IR_I32, 2, -1, 2), idx);
	int idy = tb_input(&t, ty(IR_F32, 3, -1, 2, D), dy);
	ir_node *y = tb_op(&t, IR_EMBEDDING, ty(IR_F32, 3, -1, 2, D), 2, itab, ix);
	cur_plan = p;
	ir_node *g = tb_op(&t, IR_EMBEDDING_BWD, ty(IR_F32, 2, V, D), 2, idy, ix);
	cur_plan = mkplan(IR_PLAN_SEQ, 0);
	if (!tb_run(&t)) {
		float wy[36], wg[15], terms[12];
		for (int q = 0; q < P; q++)
			for (int j = 0; j < D; j++)
				wy[q * D + j] = idx[q] >= 0 && idx[q] < V ? tab[idx[q] * D + j] : 0.0f;
		for (int v = 0; v < V; v++)
			for (int j = 0; j < D; j++) {
				for (int q = 0; q < P; q++)
					terms[q] = idx[q] == v ? dy[q * D + j] : 0.0f;
				wg[v * D + j] = ref_reduce(p, terms, P);
			}
		cmp_f32(&t, "embedding", res(&t, y->id), wy, P * D);
		cmp_f32(&t, "embedding_bwd", res(&t, g->id), wg, V * D);
	}
	free(tab); free(dy);
	tb_done(&t);
}

int main(int argc, char **argv)
{
	const char *aot_dir = NULL;
	if (argc > 1 && !strcmp(argv[1], "--sgemm"))
		return bench_sgemm(argc - 2, argv + 2);
	bool vw_subset = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--aot-dir") && i + 1 < argc)
			aot_dir = argv[++i];
		else if (!strcmp(argv[i], "--vw-subset"))
			vw_subset = true;
	}
	if (vw_subset) {
		/* the kernels whose code depends on the vector width (NND_MM_VW):
		 * the matmul's vectors and masks, the fused plan, dropout's
		 * vectorised Philox, the vectorised 2x2 pooling */
		for (int ta = 0; ta < 2; ta++)
			for (int tb_ = 0; tb_ < 2; tb_++) {
				test_matmul(7, 13, 5, ta, tb_, 4, 0);
				test_matmul(13, 513, 17, ta, tb_, 2, 2);
				test_plan_matmul(fused_plans[0], ta, tb_);
			}
		test_matmul(64, 64, 64, false, false, 1, 0);
		test_matmul(5, 33, 100, false, false, 1, 0);
		test_dropout();
		test_pool(9, 40, 2, 2, mkplan(IR_PLAN_SEQ, 0), true);
		test_pool(7, 9, 2, 2, mkplan(IR_PLAN_SEQ, 0), true);
		printf("%d checks, %d failures (vector-width subset)\n", checks, failures);
		return failures ? 1 : 0;
	}

	/* matmul: every transpose combination, odd sizes, B-dependent M and K */
	for (int ta = 0; ta < 2; ta++)
		for (int tb_ = 0; tb_ < 2; tb_++) {
			test_matmul(7, 13, 5, ta, tb_, 4, 0);
			test_matmul(3, 5, 33, ta, tb_, 5, 1);
			test_matmul(6, 3, 17, ta, tb_, 3, 2);
		}
	test_matmul(1, 1, 1, false, false, 1, 0);
	test_matmul(64, 64, 64, false, false, 1, 0);
	/* sizes around the LLVM kernel's tiling: 6-row blocks, 8/16-lane vectors
	 * two per block, k in chunks of 1024 (every remainder of each) */
	{
		static const int sz[] = { 1, 3, 4, 5, 6, 7, 12, 16, 17, 32, 33, 64, 100 };
		static const int ks[] = { 1, 3, 4, 5, 7, 16, 17, 33, 64, 100 };
		const int nsz = (int)(sizeof sz / sizeof sz[0]), nks = (int)(sizeof ks / sizeof ks[0]);
		for (int ta = 0; ta < 2; ta++)
			for (int tb_ = 0; tb_ < 2; tb_++) {
				test_matmul_grid(ta, tb_, sz, nsz, ks, nks, sz, nsz);
				test_matmul(7, 2100, 33, ta, tb_, 1, 0);       /* 3 k chunks */
				test_matmul(13, 513, 17, ta, tb_, 2, 2);       /* K = 1026: B-dependent, 2 chunks */
				test_matmul(5, 1024, 100, ta, tb_, 1, 0);      /* exactly one chunk */
			}
		/* B-dependent M: every row remainder through the run-time switch */
		for (int B = 1; B <= 6; B++)
			test_matmul(1, 9, 20, B & 1, false, B, 1);
		test_matmul(100, 33, 17, true, false, 3, 1);
		test_matmul(13, 17, 100, false, true, 3, 2);
		test_matmul(7, 17, 100, true, true, 5, 1);
	}
	test_batched_matmul(2, 3, 4, 5, false, false, true, false);
	for (int ta = 0; ta < 2; ta++)
		for (int tb_ = 0; tb_ < 2; tb_++) {
			test_batched_matmul(3, 7, 13, 33, ta, tb_, true, true);
			test_batched_matmul(2, 13, 5, 17, ta, tb_, false, true);
			test_batched_matmul(2, 6, 9, 40, ta, tb_, true, false);
		}

	ir_opcode un[] = { IR_NEG, IR_EXP, IR_LOG, IR_SQRT, IR_TANH, IR_SIGMOID, IR_RELU, IR_GELU };
	for (size_t i = 0; i < sizeof un / sizeof un[0]; i++)
		test_unary(un[i]);

	ir_opcode bin[] = { IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_POW, IR_MAXIMUM, IR_MINIMUM, IR_GE,
	                    IR_RELU_BWD, IR_TANH_BWD, IR_SIGMOID_BWD, IR_GELU_BWD };
	shp shapes[][3] = {
		{ { 3, { -1, 3, 4 } }, { 3, { -1, 3, 4 } }, { 3, { -1, 3, 4 } } },   /* same */
		{ { 3, { -1, 3, 4 } }, { 1, { 4 } }, { 3, { -1, 3, 4 } } },          /* trailing vector */
		{ { 3, { -1, 1, 4 } }, { 2, { 3, 1 } }, { 3, { -1, 3, 4 } } },       /* both broadcast */
		{ { 3, { -1, 3, 4 } }, { 0, { 0 } }, { 3, { -1, 3, 4 } } },          /* scalar */
		{ { 2, { 3, 1 } }, { 2, { 1, 4 } }, { 2, { 3, 4 } } },               /* outer */
		{ { 0, { 0 } }, { 2, { -1, 5 } }, { 2, { -1, 5 } } },                /* scalar first */
	};
	for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++)
		for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
			test_binary(bin[i], shapes[s][0], shapes[s][1], shapes[s][2]);
	test_maxmin_zeros();
	test_where();
	test_cast();
	test_shape_ops();

	ir_opcode red[] = { IR_SUM, IR_MEAN, IR_MAX, IR_ARGMAX };
	for (size_t i = 0; i < sizeof red / sizeof red[0]; i++)
		for (int axis = 0; axis < 3; axis++) {
			test_axis_reduce(red[i], axis, false, false);
			test_axis_reduce(red[i], axis, true, true);
		}
	shp targets[] = { { 1, { 4 } }, { 2, { 3, 1 } }, { 3, { 1, 3, 4 } }, { 0, { 0 } },
	                  { 3, { -1, 1, 4 } }, { 3, { -1, 3, 4 } } };
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
		test_sum_to(targets[i]);

	test_softmax();
	test_losses(IR_U8);
	test_losses(IR_I32);
	test_bad_label();
	test_dropout();

	test_sgd(0.0f, 0.0f, false, false);
	test_sgd(0.9f, 0.0f, false, true);
	test_sgd(0.9f, 0.01f, true, true);
	test_sgd(0.0f, 0.01f, false, false);
	test_adam(0.0f, false);
	test_adam(0.01f, false);
	test_adam(0.01f, true);

	test_ref_reduce();
	for (int i = 0; i < NPLANS; i++) {
		test_plan_axis(test_plans[i]);
		test_plan_sum_to(test_plans[i]);
		test_plan_rows(test_plans[i]);
		for (int ta = 0; ta < 2; ta++)
			for (int tb_ = 0; tb_ < 2; tb_++)
				test_plan_matmul(test_plans[i], ta, tb_);
	}
	for (size_t i = 0; i < sizeof fused_plans / sizeof fused_plans[0]; i++)
		for (int ta = 0; ta < 2; ta++)
			for (int tb_ = 0; tb_ < 2; tb_++)
				test_plan_matmul(fused_plans[i], ta, tb_);
	{
		static const cvc cv[] = {
			{ 2, 3, 6, 7, 4, 3, 3, 1, 1, 1, 1 },
			{ 3, 4, 9, 8, 6, 3, 2, 2, 0, 2, 2 },
			{ 1, 2, 5, 5, 2, 1, 1, 1, 0, 1, 1 },
			{ 2, 4, 7, 6, 4, 3, 3, 3, 2, 1, 4 },
		};
		for (size_t j = 0; j < sizeof cv / sizeof cv[0]; j++)
			for (int i = 0; i < NPLANS; i++)
				test_conv(cv[j], test_plans[i]);
		/* the example's shapes (conv 1->4 on 28x28, then 4->8 on 14x14) */
		test_conv((cvc){ 3, 1, 28, 28, 4, 3, 3, 1, 1, 1, 1 }, test_plans[0]);
		test_conv((cvc){ 2, 4, 14, 14, 8, 3, 3, 1, 1, 1, 1 }, test_plans[0]);
		static const cvc ic[] = {
			{ 2, 3, 6, 7, 0, 3, 3, 1, 1, 1, 1 },
			{ 3, 2, 9, 8, 0, 3, 2, 2, 0, 2, 1 },
			{ 1, 2, 5, 5, 0, 1, 1, 1, 0, 1, 1 },
			{ 2, 2, 7, 6, 0, 3, 3, 3, 2, 1, 1 },
			{ 2, 1, 4, 5, 0, 2, 4, 1, 3, 2, 1 },   /* pad wider than the kernel's reach */
		};
		for (size_t j = 0; j < sizeof ic / sizeof ic[0]; j++)
			for (int i = 0; i < NPLANS; i++)
				test_im2col(ic[j], test_plans[i], i % 2 == 1);
		for (int i = 0; i < NPLANS; i++) {
			test_pool(6, 8, 2, 2, test_plans[i], i == 0);
			test_pool(7, 7, 3, 2, test_plans[i], false);
		}
		test_pool(5, 6, 2, 1, mkplan(IR_PLAN_SEQ, 0), true);
		/* 2x2 at stride 2 (vectorised over ow): more outputs per row than
		 * lanes, odd sizes (a row and a column outside every window) */
		test_pool(9, 40, 2, 2, mkplan(IR_PLAN_SEQ, 0), true);
		test_pool(7, 9, 2, 2, mkplan(IR_PLAN_SEQ, 0), true);
		test_pool(28, 28, 2, 2, mkplan(IR_PLAN_SEQ, 0), false);
		/* windows that do not overlap, with and without gaps */
		test_pool(8, 9, 2, 3, mkplan(IR_PLAN_SEQ, 0), true);
		test_pool(9, 10, 3, 3, mkplan(IR_PLAN_SEQ, 0), true);
		for (int a = 1; a < 4; a++)
			test_random_flip(a);
		test_random_crop(4, 8, 8, 8, 0);     /* window = input: offsets 0 */
		test_random_crop(4, 8, 8, 6, 2);
		test_random_crop(3, 7, 10, 5, 1);   /* H != W */
		test_random_crop(4, 5, 6, 9, 3);    /* window larger than the input */
		test_random_crop(3, 4, 4, 10, 3);   /* the whole padded input */
		test_random_crop(4, 9, 7, 1, 0);
		test_random_crop(3, 6, 6, 2, 5);    /* windows wholly in the padding */
		test_broadcast();
		{
			ir_type shapes[] = {
				ty(IR_F32, 2, 33, 70), ty(IR_F32, 2, -1, 65), ty(IR_F32, 2, 1, 40),
				ty(IR_F32, 3, 5, 33, 40), ty(IR_F32, 3, -1, 3, 37), ty(IR_F32, 3, 2, -1, 64),
				ty(IR_F32, 4, 2, 3, 35, 33), ty(IR_F32, 4, -1, 1, 5, 34),
			};
			for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
				test_transpose_perm(shapes[i], 3, IR_F32);
			test_transpose_perm(ty(IR_I32, 3, -1, 33, 5), 2, IR_I32);
			test_transpose_perm(ty(IR_U8, 3, 7, -1, 34), 2, IR_U8);
		}
		test_state_ema();
		test_slice_concat();
		for (int i = 0; i < NPLANS; i++)
			test_embedding(test_plans[i]);
	}
	test_racy();
	test_threads(mkplan(IR_PLAN_SEQ, 0));
	test_threads(mkplan(IR_PLAN_BLOCKED, 7));
	test_threads(mkplan(IR_PLAN_TREE, 3));
	test_digests();
	test_infer();
	test_opt_levels();

	char tmpl[] = "/tmp/nnd_cg_test.XXXXXX";
	if (!aot_dir)
		aot_dir = mkdtemp(tmpl);
	if (aot_dir)
		test_aot(aot_dir);

	printf("%d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
