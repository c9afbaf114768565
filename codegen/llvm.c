/* llvm.c - lowering a planned IR module to LLVM IR through the C API, then
 * to an object file, an executable, or an in-memory JIT.
 *
 * Every node becomes one loop nest ("kernel") in the step function of its
 * graph.  The float operations are exactly those ir/ops.def spells out, in
 * that order, with no fast-math flags and no fmuladd: the optimiser may
 * vectorise and unroll (which never changes a bit of these kernels because
 * no reduction is ever reassociated: a sum is always carried along one loop
 * in index order, with the vectorised loop, if any, running over
 * independent outputs), but it cannot change a result.
 *
 * Works with the typed pointers of LLVM 14 and the opaque pointers of
 * LLVM 15+: every load/store/GEP/call names its element or function type
 * (the *2 builders), and pointers are cast to the element type's pointer
 * before use (a no-op with opaque pointers). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h>

/* LLVMRunPasses (13), LLVMOrcExecutorAddress (14); LLVMOrcThreadSafeContext-
 * GetContext is gone after 20.  Opaque pointers (15+) need no guard: see
 * ptr_to(). */
#if LLVM_VERSION_MAJOR < 14 || LLVM_VERSION_MAJOR > 20
#error "codegen/llvm.c supports LLVM 14 to 20"
#endif

#include "codegen.h"
#include "../runtime/rt.h"

#ifndef NND_RT_LIB
#define NND_RT_LIB "libnndrt.a"
#endif
#ifndef NND_LINK_LIBS
#define NND_LINK_LIBS "-lz -lcrypto -lcjson -lm -lpthread"
#endif

struct cg_module {
	LLVMOrcThreadSafeContextRef tsc;   /* owns ctx (shared with the JIT) */
	LLVMContextRef ctx;
	LLVMModuleRef mod;                 /* NULL once handed to the JIT */
	LLVMTargetMachineRef tm;
	LLVMOrcLLJITRef jit;               /* created by the first JIT lookup */
};

/* ------------------------------------------------------------------ */
/* per-function code generation state                                  */

typedef struct cg {
	LLVMContextRef ctx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	LLVMTypeRef i1, i8, i32, i64, f32, vd, ptr;   /* ptr: i8* (or opaque ptr) */
	LLVMTypeRef args_ty;                          /* struct nnd_step_args */
	LLVMTypeRef step_ty;                          /* void (ptr) */
	const ir_program *prog;
	const ir_graph *g;
	int prog_index;
	LLVMValueRef fn, args;
	LLVMValueRef B, Bmax;                         /* i64, loaded at entry */
	LLVMBasicBlockRef entry;                      /* allocas go here */
	int vw;                                       /* f32 lanes of the matmul vectors */
	LLVMValueRef mm_panel;                        /* this function's matmul b panel, or NULL */
} cg;

/* nnd_step_args field indices (runtime/rt.h) */
enum { A_PARAMS, A_GRADS, A_OPT, A_STATE, A_ACTS, A_INPUTS, A_SAMPLE_IDX, A_KEYS,
       A_OUTPUTS, A_B, A_BMAX, A_STEP, A_EPOCH, A_LR, A_BC1, A_BC2, A_NFIELDS };

static int cg_err(cg *c, const ir_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cg_err(cg *c, const ir_node *n, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "nndc: internal error: codegen: %s graph of program %d, node %d (%s%s%s): ",
	        c->g->name ? c->g->name : "?", c->prog_index, n->id, ir_ops[n->op].name,
	        n->path ? " " : "", n->path ? n->path : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static LLVMValueRef ci64(cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(cg *c, int32_t v) { return LLVMConstInt(c->i32, (unsigned long long)(int64_t)v, 1); }

/* float constants are made from their bits so that no double rounding or
 * host conversion can touch them (-0.0f and NaN payloads included) */
static LLVMValueRef cf32(cg *c, float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return LLVMConstBitCast(LLVMConstInt(c->i32, u, 0), c->f32);
}

static LLVMTypeRef elem_ty(cg *c, ir_dtype dt)
{
	switch (dt) {
	case IR_F32: return c->f32;
	case IR_I32: return c->i32;
	case IR_U8: return c->i8;
	}
	return c->f32;
}

static LLVMValueRef ptr_to(cg *c, LLVMValueRef p, LLVMTypeRef elem)
{
	return LLVMBuildPointerCast(c->b, p, LLVMPointerType(elem, 0), "");
}

static LLVMValueRef load_field(cg *c, int field, LLVMTypeRef ty)
{
	LLVMValueRef a = ptr_to(c, c->args, c->args_ty);
	LLVMValueRef p = LLVMBuildStructGEP2(c->b, c->args_ty, a, (unsigned)field, "");
	return LLVMBuildLoad2(c->b, ty, p, "");
}

static LLVMValueRef gep(cg *c, LLVMTypeRef elem, LLVMValueRef base, LLVMValueRef idx)
{
	LLVMValueRef p = ptr_to(c, base, elem);
	return LLVMBuildInBoundsGEP2(c->b, elem, p, &idx, 1, "");
}

static LLVMValueRef load_at(cg *c, LLVMTypeRef elem, LLVMValueRef base, LLVMValueRef idx)
{
	return LLVMBuildLoad2(c->b, elem, gep(c, elem, base, idx), "");
}

static void store_at(cg *c, LLVMTypeRef elem, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef v)
{
	LLVMBuildStore(c->b, v, gep(c, elem, base, idx));
}

static LLVMValueRef add(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->b, a, b, ""); }
static LLVMValueRef mul(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(c->b, a, b, ""); }
static LLVMValueRef fadd(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(c->b, a, b, ""); }
static LLVMValueRef fsub(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(c->b, a, b, ""); }
static LLVMValueRef fmul(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(c->b, a, b, ""); }
static LLVMValueRef fdiv(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(c->b, a, b, ""); }
static LLVMValueRef sel(cg *c, LLVMValueRef k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSelect(c->b, k, a, b, ""); }
static LLVMValueRef fcmp(cg *c, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFCmp(c->b, p, a, b, ""); }
static LLVMValueRef isnan_(cg *c, LLVMValueRef a) { return fcmp(c, LLVMRealUNO, a, a); }
/* (float)n of an int64 count: sitofp rounds to nearest like C's conversion */
static LLVMValueRef i2f(cg *c, LLVMValueRef n) { return LLVMBuildSIToFP(c->b, n, c->f32, ""); }

/* scalar accumulators live in allocas of the entry block; SROA/mem2reg
 * turns them into phis at -O1 and above */
static LLVMValueRef new_var(cg *c, LLVMTypeRef ty, LLVMValueRef init)
{
	LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
	LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
	if (first)
		LLVMPositionBuilderBefore(eb, first);
	else
		LLVMPositionBuilderAtEnd(eb, c->entry);
	LLVMValueRef v = LLVMBuildAlloca(eb, ty, "");
	LLVMDisposeBuilder(eb);
	LLVMBuildStore(c->b, init, v);
	return v;
}
static LLVMValueRef get_var(cg *c, LLVMTypeRef ty, LLVMValueRef v) { return LLVMBuildLoad2(c->b, ty, v, ""); }
static void set_var(cg *c, LLVMValueRef var, LLVMValueRef v) { LLVMBuildStore(c->b, v, var); }

/* external function (runtime or intrinsic), declared once per module */
static LLVMValueRef rt_fn(cg *c, const char *name, LLVMTypeRef fty)
{
	LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
	if (!f)
		f = LLVMAddFunction(c->mod, name, fty);
	return f;
}

static LLVMValueRef call_f1(cg *c, const char *name, LLVMValueRef x)
{
	LLVMTypeRef pt[1] = { c->f32 };
	LLVMTypeRef fty = LLVMFunctionType(c->f32, pt, 1, 0);
	return LLVMBuildCall2(c->b, fty, rt_fn(c, name, fty), &x, 1, "");
}

static LLVMValueRef call_f2(cg *c, const char *name, LLVMValueRef x, LLVMValueRef y)
{
	LLVMTypeRef pt[2] = { c->f32, c->f32 };
	LLVMValueRef a[2] = { x, y };
	LLVMTypeRef fty = LLVMFunctionType(c->f32, pt, 2, 0);
	return LLVMBuildCall2(c->b, fty, rt_fn(c, name, fty), a, 2, "");
}

/* llvm.sqrt.f32 is IEEE sqrt, correctly rounded, and vectorisable */
static LLVMValueRef build_sqrt(cg *c, LLVMValueRef x)
{
	static const char nm[] = "llvm.sqrt";
	unsigned id = LLVMLookupIntrinsicID(nm, sizeof nm - 1);
	LLVMTypeRef ov[1] = { c->f32 };
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ov, 1);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, ov, 1);
	return LLVMBuildCall2(c->b, fty, f, &x, 1, "");
}

/* ------------------------------------------------------------------ */
/* shapes and storage                                                  */

static const ir_node *in_node(cg *c, const ir_node *n, int i)
{
	return c->g->nodes[n->in[i]];
}

/* c * B^sym at run time */
static LLVMValueRef dim_val(cg *c, ir_dim d)
{
	LLVMValueRef v = ci64(c, d.c);
	for (int i = 0; i < d.sym; i++)
		v = mul(c, v, c->B);
	return v;
}

static LLVMValueRef numel_val(cg *c, const ir_type *t)
{
	return dim_val(c, ir_type_numel(t));
}

/* product of dims [lo, hi) */
static LLVMValueRef dims_prod(cg *c, const ir_type *t, int lo, int hi)
{
	LLVMValueRef v = ci64(c, 1);
	for (int i = lo; i < hi; i++)
		v = mul(c, v, dim_val(c, t->d[i]));
	return v;
}

static bool dim_is_one(ir_dim d) { return d.c == 1 && d.sym == 0; }

/* Base address of a node's value; NULL (after an error) when the node has
 * no storage. */
static LLVMValueRef node_base(cg *c, const ir_node *n)
{
	int field;
	switch (n->blk) {
	case IR_BLK_ACT: {
		LLVMValueRef acts = load_field(c, A_ACTS, c->ptr);
		LLVMValueRef off = add(c, ci64(c, n->off_c), mul(c, ci64(c, n->off_b), c->Bmax));
		return gep(c, c->i8, acts, off);
	}
	case IR_BLK_PARAM: field = A_PARAMS; break;
	case IR_BLK_GRAD: field = A_GRADS; break;
	case IR_BLK_OPT: field = A_OPT; break;
	case IR_BLK_STATE: field = A_STATE; break;
	case IR_BLK_OUTPUT: field = A_OUTPUTS; break;
	case IR_BLK_INPUT: {
		LLVMValueRef inputs = load_field(c, A_INPUTS, c->ptr);
		return load_at(c, c->ptr, inputs, ci64(c, n->ia[0]));
	}
	default:
		cg_err(c, n, "value has no storage (memory plan missing)");
		return NULL;
	}
	LLVMValueRef blk = load_field(c, field, c->ptr);
	return gep(c, c->f32, blk, ci64(c, n->off_c));
}

/* An operand: where it lives, or the immediate value of a CONST (whose
 * reads need no memory, whether or not the memory plan gave it a slot). */
typedef struct cg_val {
	const ir_node *n;
	LLVMTypeRef ty;
	LLVMValueRef base;   /* NULL for CONST */
	LLVMValueRef imm;
} cg_val;

static int val_of(cg *c, const ir_node *n, cg_val *v)
{
	v->n = n;
	v->ty = elem_ty(c, n->type.dt);
	v->base = NULL;
	v->imm = NULL;
	if (n->op == IR_CONST) {
		switch (n->type.dt) {
		case IR_F32: v->imm = cf32(c, n->fa[0]); break;
		case IR_I32: v->imm = ci32(c, (int32_t)n->fa[0]); break;
		case IR_U8: v->imm = LLVMConstInt(c->i8, (unsigned long long)(uint8_t)n->fa[0], 0); break;
		}
		return 0;
	}
	if (n->op == IR_NUMEL) {
		/* (float)(ia0 * B^ia1): an int64 count rounded once to f32 */
		ir_dim d = { n->ia[0], (int)n->ia[1] };
		v->imm = i2f(c, dim_val(c, d));
		return 0;
	}
	v->base = node_base(c, n);
	return v->base ? 0 : -1;
}

static LLVMValueRef vload(cg *c, const cg_val *v, LLVMValueRef idx)
{
	return v->imm ? v->imm : load_at(c, v->ty, v->base, idx);
}

static void vstore(cg *c, const cg_val *v, LLVMValueRef idx, LLVMValueRef x)
{
	store_at(c, v->ty, v->base, idx, x);
}

/* ------------------------------------------------------------------ */
/* loops                                                               */

/* for (iv = 0; iv < n; iv++): guarded, rotated (bottom-tested) form, the
 * shape LLVM's loop passes and vectoriser expect. */
typedef struct cg_loop {
	LLVMBasicBlockRef body, exit;
	LLVMValueRef iv, n;
} cg_loop;

static LLVMValueRef loop_begin(cg *c, cg_loop *l, LLVMValueRef n)
{
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	l->body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "loop");
	l->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "loop.end");
	l->n = n;
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, n, ci64(c, 0), ""), l->body, l->exit);
	LLVMPositionBuilderAtEnd(c->b, l->body);
	l->iv = LLVMBuildPhi(c->b, c->i64, "i");
	LLVMValueRef zero = ci64(c, 0);
	LLVMAddIncoming(l->iv, &zero, &pre, 1);
	return l->iv;
}

static void loop_end(cg *c, cg_loop *l)
{
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->iv, ci64(c, 1), "");
	LLVMAddIncoming(l->iv, &next, &latch, 1);
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, next, l->n, ""), l->body, l->exit);
	LLVMPositionBuilderAtEnd(c->b, l->exit);
}

/* A row-major loop nest over `rank` dims with up to 5 linear indices, one
 * per operand, each the dot product of the induction variables with that
 * operand's strides (0 for broadcast dims).  The innermost stride is a
 * literal 1 or 0 so the vectoriser sees unit-stride or invariant access. */
#define CG_NEST_OPS 5
typedef struct cg_nest {
	int rank, nops;
	LLVMValueRef dim[IR_MAX_RANK];
	LLVMValueRef stride[CG_NEST_OPS][IR_MAX_RANK];
	cg_loop loop[IR_MAX_RANK];
	LLVMValueRef idx[CG_NEST_OPS];
} cg_nest;

static void nest_begin(cg *c, cg_nest *ns)
{
	for (int o = 0; o < ns->nops; o++)
		ns->idx[o] = ci64(c, 0);
	for (int k = 0; k < ns->rank; k++) {
		LLVMValueRef iv = loop_begin(c, &ns->loop[k], ns->dim[k]);
		for (int o = 0; o < ns->nops; o++)
			ns->idx[o] = add(c, ns->idx[o], mul(c, iv, ns->stride[o][k]));
	}
}

static void nest_end(cg *c, cg_nest *ns)
{
	for (int k = ns->rank - 1; k >= 0; k--)
		loop_end(c, &ns->loop[k]);
}

/* row-major strides of t */
static void strides_of(cg *c, const ir_type *t, LLVMValueRef *s)
{
	LLVMValueRef acc = ci64(c, 1);
	for (int k = t->rank - 1; k >= 0; k--) {
		s[k] = acc;
		acc = mul(c, acc, dim_val(c, t->d[k]));
	}
}

/* strides of `in` read NumPy-broadcast into a shape of rank `rank`:
 * trailing dims aligned, missing or literal-1 dims get stride 0 */
static void bcast_strides(cg *c, const ir_type *in, int rank, LLVMValueRef *s)
{
	LLVMValueRef is[IR_MAX_RANK];
	strides_of(c, in, is);
	for (int k = 0; k < rank; k++) {
		int j = k - (rank - in->rank);
		s[k] = (j < 0 || dim_is_one(in->d[j])) ? ci64(c, 0) : is[j];
	}
}

/* ------------------------------------------------------------------ */
/* elementwise ops                                                     */

typedef LLVMValueRef (*cg_scalar_fn)(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x);

static int emit_elementwise(cg *c, const ir_node *n, cg_scalar_fn f)
{
	cg_val out, in[4];
	if (n->type.rank > IR_MAX_RANK || n->nin > 4)
		return cg_err(c, n, "bad rank or arity");
	if (val_of(c, n, &out))
		return -1;
	if (!out.base)
		return cg_err(c, n, "a CONST cannot be an elementwise result");
	cg_nest ns;
	ns.rank = n->type.rank;
	ns.nops = 1 + n->nin;
	for (int k = 0; k < ns.rank; k++)
		ns.dim[k] = dim_val(c, n->type.d[k]);
	strides_of(c, &n->type, ns.stride[0]);
	for (int i = 0; i < n->nin; i++) {
		const ir_node *x = in_node(c, n, i);
		if (x->type.rank > n->type.rank)
			return cg_err(c, n, "input %d has a higher rank than the result", i);
		if (val_of(c, x, &in[i]))
			return -1;
		bcast_strides(c, &x->type, ns.rank, ns.stride[1 + i]);
	}
	nest_begin(c, &ns);
	LLVMValueRef xs[4];
	for (int i = 0; i < n->nin; i++)
		xs[i] = vload(c, &in[i], ns.idx[1 + i]);
	LLVMValueRef y = f(c, n, in, xs);
	if (!y)
		return -1;
	vstore(c, &out, ns.idx[0], y);
	nest_end(c, &ns);
	return 0;
}

static bool is_f32(const cg_val *v) { return v->n->type.dt == IR_F32; }

static LLVMValueRef s_neg(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n;
	if (!is_f32(&in[0]))
		return LLVMBuildNeg(c->b, x[0], "");
	return LLVMBuildFNeg(c->b, x[0], "");
}
static LLVMValueRef s_exp(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return call_f1(c, "nnd_rt_expf", x[0]); }
static LLVMValueRef s_log(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return call_f1(c, "nnd_rt_logf", x[0]); }
static LLVMValueRef s_sqrt(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return build_sqrt(c, x[0]); }
static LLVMValueRef s_tanh(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return call_f1(c, "nnd_rt_tanhf", x[0]); }
static LLVMValueRef s_sigmoid(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return call_f1(c, "nnd_rt_sigmoidf", x[0]); }
static LLVMValueRef s_gelu(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return call_f1(c, "nnd_rt_geluf", x[0]); }
static LLVMValueRef s_pow(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x) { (void)n; (void)in; return call_f2(c, "nnd_rt_powf", x[0], x[1]); }

/* x > 0 ? x : (x != x ? x : +0) */
static LLVMValueRef s_relu(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n; (void)in;
	LLVMValueRef z = sel(c, isnan_(c, x[0]), x[0], cf32(c, 0.0f));
	return sel(c, fcmp(c, LLVMRealOGT, x[0], cf32(c, 0.0f)), x[0], z);
}

static LLVMValueRef s_cast(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	ir_dtype from = in[0].n->type.dt, to = n->type.dt;
	LLVMTypeRef t = elem_ty(c, to);
	if (from == to)
		return x[0];
	if (from == IR_F32)   /* truncates toward 0, as C */
		return to == IR_I32 ? LLVMBuildFPToSI(c->b, x[0], t, "") : LLVMBuildFPToUI(c->b, x[0], t, "");
	if (to == IR_F32)
		return from == IR_U8 ? LLVMBuildUIToFP(c->b, x[0], t, "") : LLVMBuildSIToFP(c->b, x[0], t, "");
	if (from == IR_U8)    /* u8 -> i32 */
		return LLVMBuildZExt(c->b, x[0], t, "");
	return LLVMBuildTrunc(c->b, x[0], t, "");   /* i32 -> u8: modulo 256, as C */
}

static LLVMValueRef s_arith(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	bool f = n->type.dt == IR_F32;
	if (in[0].n->type.dt != n->type.dt || in[1].n->type.dt != n->type.dt) {
		cg_err(c, n, "operand dtypes differ from the result's");
		return NULL;
	}
	switch (n->op) {
	case IR_ADD: return f ? fadd(c, x[0], x[1]) : add(c, x[0], x[1]);
	case IR_SUB: return f ? fsub(c, x[0], x[1]) : LLVMBuildSub(c->b, x[0], x[1], "");
	case IR_MUL: return f ? fmul(c, x[0], x[1]) : mul(c, x[0], x[1]);
	case IR_DIV:
		if (f)
			return fdiv(c, x[0], x[1]);
		cg_err(c, n, "integer division is not an IR operation");
		return NULL;
	default: break;
	}
	return NULL;
}

/* maximum/minimum: NaN if either is NaN (a's if both), otherwise the larger
 * (smaller); equal values may be -0/+0, where max is +0 and min -0: the
 * bitwise AND (OR) of two equal floats is that value, and of -0/+0 is +0
 * (-0). */
static LLVMValueRef s_maxmin(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)in;
	bool mx = n->op == IR_MAXIMUM;
	LLVMValueRef a = x[0], b = x[1];
	LLVMValueRef ai = LLVMBuildBitCast(c->b, a, c->i32, "");
	LLVMValueRef bi = LLVMBuildBitCast(c->b, b, c->i32, "");
	LLVMValueRef eq = LLVMBuildBitCast(c->b, mx ? LLVMBuildAnd(c->b, ai, bi, "") : LLVMBuildOr(c->b, ai, bi, ""), c->f32, "");
	LLVMValueRef r = sel(c, fcmp(c, LLVMRealOEQ, a, b), eq, b);
	r = sel(c, fcmp(c, mx ? LLVMRealOGT : LLVMRealOLT, a, b), a, r);
	r = sel(c, isnan_(c, b), b, r);
	return sel(c, isnan_(c, a), a, r);
}

static LLVMValueRef nonzero(cg *c, const cg_val *v, LLVMValueRef x)
{
	if (is_f32(v))
		return fcmp(c, LLVMRealUNE, x, cf32(c, 0.0f));   /* as C's x != 0: NaN is true */
	return LLVMBuildICmp(c->b, LLVMIntNE, x, LLVMConstInt(v->ty, 0, 0), "");
}

static LLVMValueRef s_where(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n;
	return sel(c, nonzero(c, &in[0], x[0]), x[1], x[2]);
}

/* a >= b ? 1.0f : +0; an ordered compare is false when either is NaN */
static LLVMValueRef s_ge(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n; (void)in;
	return sel(c, fcmp(c, LLVMRealOGE, x[0], x[1]), cf32(c, 1.0f), cf32(c, 0.0f));
}

static LLVMValueRef s_relu_bwd(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n; (void)in;
	return sel(c, fcmp(c, LLVMRealOGT, x[1], cf32(c, 0.0f)), x[0], cf32(c, 0.0f));
}
static LLVMValueRef s_tanh_bwd(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n; (void)in;
	return fmul(c, x[0], fsub(c, cf32(c, 1.0f), fmul(c, x[1], x[1])));
}
static LLVMValueRef s_sigmoid_bwd(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n; (void)in;
	return fmul(c, x[0], fmul(c, x[1], fsub(c, cf32(c, 1.0f), x[1])));
}
static LLVMValueRef s_gelu_bwd(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)n; (void)in;
	return fmul(c, x[0], call_f1(c, "nnd_rt_gelu_gradf", x[1]));
}
static LLVMValueRef s_copy(cg *c, const ir_node *n, const cg_val *in, LLVMValueRef *x)
{
	(void)c;
	if (in[0].n->type.dt != n->type.dt) {
		cg_err(c, n, "dtype changes");
		return NULL;
	}
	return x[0];
}

static int need_f32(cg *c, const ir_node *n)
{
	if (n->type.dt != IR_F32)
		return cg_err(c, n, "result must be f32");
	for (int i = 0; i < n->nin; i++)
		if (in_node(c, n, i)->type.dt != IR_F32 && !(n->op == IR_WHERE && i == 0))
			return cg_err(c, n, "input %d must be f32", i);
	return 0;
}

#define CG_ELEM_F32(ID, FN) \
	static int emit_##ID(cg *c, const ir_node *n) { return need_f32(c, n) ? -1 : emit_elementwise(c, n, FN); }
CG_ELEM_F32(EXP, s_exp)
CG_ELEM_F32(LOG, s_log)
CG_ELEM_F32(SQRT, s_sqrt)
CG_ELEM_F32(TANH, s_tanh)
CG_ELEM_F32(SIGMOID, s_sigmoid)
CG_ELEM_F32(RELU, s_relu)
CG_ELEM_F32(GELU, s_gelu)
CG_ELEM_F32(POW, s_pow)
CG_ELEM_F32(MAXIMUM, s_maxmin)
CG_ELEM_F32(MINIMUM, s_maxmin)
CG_ELEM_F32(GE, s_ge)
CG_ELEM_F32(RELU_BWD, s_relu_bwd)
CG_ELEM_F32(TANH_BWD, s_tanh_bwd)
CG_ELEM_F32(SIGMOID_BWD, s_sigmoid_bwd)
CG_ELEM_F32(GELU_BWD, s_gelu_bwd)
#undef CG_ELEM_F32

static int emit_NEG(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_neg); }
static int emit_CAST(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_cast); }
static int emit_ADD(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_arith); }
static int emit_SUB(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_arith); }
static int emit_MUL(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_arith); }
static int emit_DIV(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_arith); }
static int emit_WHERE(cg *c, const ir_node *n)
{
	if (in_node(c, n, 1)->type.dt != n->type.dt || in_node(c, n, 2)->type.dt != n->type.dt)
		return cg_err(c, n, "branch dtypes differ from the result's");
	return emit_elementwise(c, n, s_where);
}
static int emit_BROADCAST(cg *c, const ir_node *n) { return emit_elementwise(c, n, s_copy); }

/* ------------------------------------------------------------------ */
/* leaves, constants, shapes                                           */

static int emit_INPUT(cg *c, const ir_node *n) { (void)c; (void)n; return 0; }
static int emit_PARAM(cg *c, const ir_node *n) { (void)c; (void)n; return 0; }
static int emit_STATE(cg *c, const ir_node *n) { (void)c; (void)n; return 0; }
static int emit_OPT_SLOT(cg *c, const ir_node *n) { (void)c; (void)n; return 0; }

/* reads of a CONST (NUMEL) use its immediate value; memory is filled only
 * when the memory plan gave it a slot (someone may read it as a tensor) */
static int emit_CONST(cg *c, const ir_node *n)
{
	if (n->blk == IR_BLK_NONE)
		return 0;
	cg_val v, out;
	if (val_of(c, n, &v))
		return -1;
	out = v;
	out.imm = NULL;
	if (!(out.base = node_base(c, n)))
		return -1;
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, numel_val(c, &n->type));
	vstore(c, &out, i, v.imm);
	loop_end(c, &l);
	return 0;
}

static int emit_NUMEL(cg *c, const ir_node *n)
{
	if (n->type.dt != IR_F32 || n->type.rank != 0)
		return cg_err(c, n, "numel is f32[]");
	return emit_CONST(c, n);
}

static bool same_storage(const ir_node *a, const ir_node *b)
{
	return a->blk == b->blk && a->off_c == b->off_c && a->off_b == b->off_b &&
	       (a->blk != IR_BLK_INPUT || a->ia[0] == b->ia[0]);
}

static int emit_RESHAPE(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	cg_val in, out;
	if (x->type.dt != n->type.dt)
		return cg_err(c, n, "dtype changes");
	if (same_storage(n, x) && x->op != IR_CONST && x->op != IR_NUMEL)
		return 0;    /* the memory plan aliased it: nothing to move */
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, numel_val(c, &n->type));
	vstore(c, &out, i, vload(c, &in, i));
	loop_end(c, &l);
	return 0;
}

static int emit_TRANSPOSE(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int r = n->type.rank, a0 = (int)n->ia[0], a1 = (int)n->ia[1];
	if (x->type.rank != r || a0 < 0 || a1 < 0 || a0 >= r || a1 >= r)
		return cg_err(c, n, "bad transpose axes");
	cg_val in, out;
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	cg_nest ns;
	LLVMValueRef is[IR_MAX_RANK];
	ns.rank = r;
	ns.nops = 2;
	strides_of(c, &n->type, ns.stride[0]);
	strides_of(c, &x->type, is);
	for (int k = 0; k < r; k++) {
		int p = k == a0 ? a1 : k == a1 ? a0 : k;
		ns.dim[k] = dim_val(c, n->type.d[k]);
		ns.stride[1][k] = is[p];
	}
	nest_begin(c, &ns);
	vstore(c, &out, ns.idx[0], vload(c, &in, ns.idx[1]));
	nest_end(c, &ns);
	return 0;
}

/* ------------------------------------------------------------------ */
/* reductions                                                          */

/* Only the sequential plan so far.  Each reduction emitter takes the plan
 * through this one gate, so BLOCKED/TREE become new cases of acc_* below
 * rather than changes to every kernel. */
static int check_plan(cg *c, const ir_node *n)
{
	char buf[64];
	if (n->plan.family == IR_PLAN_SEQ)
		return 0;
	return cg_err(c, n, "reduction plan %s is not implemented by the LLVM backend",
	              ir_plan_str(n->plan, buf, sizeof buf));
}

/* maximum(acc, x) of the reductions: NaN propagates (the first one seen
 * stays), max(-0,+0) = +0 -- the MAXIMUM rule with acc as a */
static LLVMValueRef max_step(cg *c, LLVMValueRef acc, LLVMValueRef x)
{
	LLVMValueRef xs[2] = { acc, x };
	ir_node fake;
	memset(&fake, 0, sizeof fake);
	fake.op = IR_MAXIMUM;
	return s_maxmin(c, &fake, NULL, xs);
}

/* argmax update: keep the first NaN, else the lowest index of the max */
static void argmax_step(cg *c, LLVMValueRef best, LLVMValueRef bidx, LLVMValueRef x, LLVMValueRef k)
{
	LLVMValueRef bv = get_var(c, c->f32, best);
	LLVMValueRef take = LLVMBuildOr(c->b, fcmp(c, LLVMRealOGT, x, bv),
	                                LLVMBuildAnd(c->b, isnan_(c, x), LLVMBuildNot(c->b, isnan_(c, bv), ""), ""), "");
	set_var(c, best, sel(c, take, x, bv));
	set_var(c, bidx, sel(c, take, k, get_var(c, c->i64, bidx)));
}

static int axis_of(cg *c, const ir_node *n, const ir_type *t, int *axis)
{
	int64_t a = n->ia[0];
	if (a < 0)
		a += t->rank;
	if (a < 0 || a >= t->rank)
		return cg_err(c, n, "axis %" PRId64 " out of range", n->ia[0]);
	*axis = (int)a;
	return 0;
}

/* SUM, MEAN, MAX over one axis: x viewed as [pre, len, post].  Loop order
 * p, k, q: out[p,q] is carried through k in ascending order; the q loop
 * (independent outputs, unit stride) is the one that may vectorise. */
static int emit_axis_reduce(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int axis = 0;
	cg_val in, out;
	if (check_plan(c, n) || need_f32(c, n) || axis_of(c, n, &x->type, &axis))
		return -1;
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	LLVMValueRef pre = dims_prod(c, &x->type, 0, axis);
	LLVMValueRef len = dim_val(c, x->type.d[axis]);
	LLVMValueRef post = dims_prod(c, &x->type, axis + 1, x->type.rank);
	LLVMValueRef init = n->op == IR_MAX ? cf32(c, -__builtin_inff()) : cf32(c, 0.0f);
	cg_loop lp, lk, lq;
	LLVMValueRef p = loop_begin(c, &lp, pre);
	LLVMValueRef obase = mul(c, p, post);
	LLVMValueRef q = loop_begin(c, &lq, post);
	vstore(c, &out, add(c, obase, q), init);
	loop_end(c, &lq);
	LLVMValueRef k = loop_begin(c, &lk, len);
	LLVMValueRef xbase = mul(c, add(c, mul(c, p, len), k), post);
	q = loop_begin(c, &lq, post);
	LLVMValueRef oi = add(c, obase, q);
	LLVMValueRef acc = vload(c, &out, oi), v = vload(c, &in, add(c, xbase, q));
	vstore(c, &out, oi, n->op == IR_MAX ? max_step(c, acc, v) : fadd(c, acc, v));
	loop_end(c, &lq);
	loop_end(c, &lk);
	if (n->op == IR_MEAN) {
		LLVMValueRef fn_ = i2f(c, len);
		q = loop_begin(c, &lq, post);
		oi = add(c, obase, q);
		vstore(c, &out, oi, fdiv(c, vload(c, &out, oi), fn_));
		loop_end(c, &lq);
	}
	loop_end(c, &lp);
	return 0;
}

static int emit_SUM(cg *c, const ir_node *n) { return emit_axis_reduce(c, n); }
static int emit_MEAN(cg *c, const ir_node *n) { return emit_axis_reduce(c, n); }
static int emit_MAX(cg *c, const ir_node *n) { return emit_axis_reduce(c, n); }

static int emit_ARGMAX(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int axis = 0;
	cg_val in, out;
	if (check_plan(c, n) || axis_of(c, n, &x->type, &axis))
		return -1;
	if (x->type.dt != IR_F32 || n->type.dt != IR_I32)
		return cg_err(c, n, "argmax maps f32 to i32");
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	LLVMValueRef pre = dims_prod(c, &x->type, 0, axis);
	LLVMValueRef len = dim_val(c, x->type.d[axis]);
	LLVMValueRef post = dims_prod(c, &x->type, axis + 1, x->type.rank);
	LLVMValueRef best = new_var(c, c->f32, cf32(c, 0.0f));
	LLVMValueRef bidx = new_var(c, c->i64, ci64(c, 0));
	cg_loop lp, lq, lk;
	LLVMValueRef p = loop_begin(c, &lp, pre);
	LLVMValueRef q = loop_begin(c, &lq, post);
	set_var(c, best, cf32(c, -__builtin_inff()));
	set_var(c, bidx, ci64(c, 0));
	LLVMValueRef k = loop_begin(c, &lk, len);
	LLVMValueRef xi = add(c, mul(c, add(c, mul(c, p, len), k), post), q);
	argmax_step(c, best, bidx, vload(c, &in, xi), k);
	loop_end(c, &lk);
	vstore(c, &out, add(c, mul(c, p, post), q),
	       LLVMBuildTrunc(c->b, get_var(c, c->i64, bidx), c->i32, ""));
	loop_end(c, &lq);
	loop_end(c, &lp);
	return 0;
}

/* out = +0; then every input element, in row-major order, is added to the
 * output element it maps to: each output's additions come in index order */
static int emit_SUM_TO(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	cg_val in, out;
	if (check_plan(c, n) || need_f32(c, n))
		return -1;
	if (n->type.rank > x->type.rank)
		return cg_err(c, n, "target has a higher rank than the input");
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, numel_val(c, &n->type));
	vstore(c, &out, i, cf32(c, 0.0f));
	loop_end(c, &l);
	cg_nest ns;
	ns.rank = x->type.rank;
	ns.nops = 2;
	for (int k = 0; k < ns.rank; k++)
		ns.dim[k] = dim_val(c, x->type.d[k]);
	strides_of(c, &x->type, ns.stride[0]);
	bcast_strides(c, &n->type, ns.rank, ns.stride[1]);
	nest_begin(c, &ns);
	LLVMValueRef acc = vload(c, &out, ns.idx[1]);
	vstore(c, &out, ns.idx[1], fadd(c, acc, vload(c, &in, ns.idx[0])));
	nest_end(c, &ns);
	return 0;
}

/* ------------------------------------------------------------------ */
/* matmul                                                              */

/* c[i,j] = +0, then for k ascending c[i,j] = c[i,j] + a[i,k]*b[k,j], each
 * product and each sum rounded to f32 (plan SEQ).
 *
 * Register-blocked: the output is cut into blocks of MM_MR rows by NR =
 * MM_NV vectors of c->vw columns.  A block keeps its MM_MR x MM_NV vector
 * accumulators in SSA values (phis of its k loop), starts them at +0 and
 * runs k = 0, 1, ..., K-1: load b[k, j0..j0+NR) as vectors, broadcast
 * a[i0+r, k], acc = acc + (bcast * bvec) as a separate fmul and fadd with
 * no fast-math flags -- so every lane is exactly one output's sequential
 * sum, and LLVM can neither contract nor reorder it.  The tiling changes
 * only which outputs are computed together, never the order of any
 * output's additions.  Leftover rows (M % MM_MR) use one-row blocks;
 * leftover columns (N % NR) use masked loads and stores.
 *
 * A transposed b (b[k, j] at b[j*K + k], strided in j) is first copied,
 * MM_KC values of k at a time, into a stack panel laid out [k][NR]; the
 * k loop then runs over one chunk at a time and a later chunk starts its
 * accumulators from the c values the previous chunk stored -- a store and
 * a load of a float are exact, so each output still sees k = 0, 1, ...
 * in order. */
#define MM_MR 6
#define MM_NV 2
#define MM_KC 256
#define MM_MAXVW 16

typedef struct mm_ctx {
	cg_val A, Bv, C;
	bool ta, tb;
	LLVMValueRef M, N, K;
	int64_t Mc;                         /* M when it does not depend on B, else -1 */
	LLVMValueRef abase, bbase, cbase;   /* element offsets of this batch */
	int vw;                             /* lanes per vector */
	LLVMTypeRef vty;                    /* <vw x float> */
	LLVMValueRef panel;                 /* float[MM_KC * NR] or NULL (b read in place) */
} mm_ctx;

/* the k range one block runs, and where its accumulators start */
typedef struct mm_krange {
	LLVMValueRef k0, len;   /* global k of the first step, number of steps */
	LLVMValueRef resume;    /* i1: start from c (a later chunk), or NULL: from +0 */
} mm_krange;

static LLVMValueRef splat(cg *c, LLVMTypeRef vty, LLVMValueRef x)
{
	LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetUndef(vty), x, ci32(c, 0), "");
	LLVMTypeRef mt = LLVMVectorType(c->i32, LLVMGetVectorSize(vty));
	return LLVMBuildShuffleVector(c->b, v, LLVMGetUndef(vty), LLVMConstNull(mt), "");
}

static LLVMValueRef vec_ptr(cg *c, mm_ctx *m, LLVMValueRef base, LLVMValueRef idx)
{
	return LLVMBuildPointerCast(c->b, gep(c, c->f32, base, idx), LLVMPointerType(m->vty, 0), "");
}

/* llvm.masked.load / llvm.masked.store, overloaded on (vector, pointer) */
static LLVMValueRef masked_intrinsic(cg *c, mm_ctx *m, const char *nm, LLVMTypeRef *fty)
{
	unsigned id = LLVMLookupIntrinsicID(nm, strlen(nm));
	LLVMTypeRef ov[2] = { m->vty, LLVMPointerType(m->vty, 0) };
	*fty = LLVMIntrinsicGetType(c->ctx, id, ov, 2);
	return LLVMGetIntrinsicDeclaration(c->mod, id, ov, 2);
}

/* vw contiguous floats at base[idx], unaligned; mask NULL: all lanes,
 * else the masked-off lanes are neither read nor written */
static LLVMValueRef mm_vload(cg *c, mm_ctx *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef mask)
{
	LLVMValueRef p = vec_ptr(c, m, base, idx);
	if (!mask) {
		LLVMValueRef v = LLVMBuildLoad2(c->b, m->vty, p, "");
		LLVMSetAlignment(v, 4);
		return v;
	}
	LLVMTypeRef fty;
	LLVMValueRef f = masked_intrinsic(c, m, "llvm.masked.load", &fty);
	LLVMValueRef a[4] = { p, ci32(c, 4), mask, LLVMConstNull(m->vty) };
	return LLVMBuildCall2(c->b, fty, f, a, 4, "");
}

static void mm_vstore(cg *c, mm_ctx *m, LLVMValueRef base, LLVMValueRef idx, LLVMValueRef x, LLVMValueRef mask)
{
	LLVMValueRef p = vec_ptr(c, m, base, idx);
	if (!mask) {
		LLVMValueRef s = LLVMBuildStore(c->b, x, p);
		LLVMSetAlignment(s, 4);
		return;
	}
	LLVMTypeRef fty;
	LLVMValueRef f = masked_intrinsic(c, m, "llvm.masked.store", &fty);
	LLVMValueRef a[4] = { x, p, ci32(c, 4), mask };
	LLVMBuildCall2(c->b, fty, f, a, 4, "");
}

/* vector v of b's row k (k counted from the chunk start kl when b is in
 * the panel) in the column block starting at j0 */
static LLVMValueRef mm_bvec(cg *c, mm_ctx *m, LLVMValueRef k, LLVMValueRef kl, LLVMValueRef j0, int v,
                            LLVMValueRef mask)
{
	if (m->Bv.imm)
		return splat(c, m->vty, m->Bv.imm);
	if (m->panel)
		return mm_vload(c, m, m->panel, add(c, mul(c, kl, ci64(c, MM_NV * m->vw)), ci64(c, v * m->vw)), NULL);
	LLVMValueRef j = add(c, j0, ci64(c, v * m->vw));
	return mm_vload(c, m, m->Bv.base, add(c, m->bbase, add(c, mul(c, k, m->N), j)), mask);
}

/* one block: rows i0..i0+mr, columns j0..j0+NR (masks: NULL, or one lane
 * mask per vector for the last, partial column block), steps kr */
static void mm_block(cg *c, mm_ctx *m, int mr, LLVMValueRef i0, LLVMValueRef j0, LLVMValueRef *mask,
                     const mm_krange *kr)
{
	LLVMValueRef acc[MM_MR][MM_NV], nxt[MM_MR][MM_NV], init[MM_MR][MM_NV], bv[MM_NV], crow[MM_MR];
	LLVMValueRef zero = LLVMConstNull(m->vty);   /* +0.0f in every lane */
	for (int r = 0; r < mr; r++) {
		crow[r] = add(c, m->cbase, add(c, mul(c, add(c, i0, ci64(c, r)), m->N), j0));
		for (int v = 0; v < MM_NV; v++)
			init[r][v] = kr->resume
			           ? sel(c, kr->resume, mm_vload(c, m, m->C.base, add(c, crow[r], ci64(c, v * m->vw)),
			                                         mask ? mask[v] : NULL), zero)
			           : zero;
	}
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
	cg_loop lk;
	LLVMValueRef kl = loop_begin(c, &lk, kr->len);
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++) {
			acc[r][v] = LLVMBuildPhi(c->b, m->vty, "acc");
			LLVMAddIncoming(acc[r][v], &init[r][v], &pre, 1);
		}
	LLVMValueRef k = add(c, kr->k0, kl);
	for (int v = 0; v < MM_NV; v++)
		bv[v] = mm_bvec(c, m, k, kl, j0, v, mask ? mask[v] : NULL);
	for (int r = 0; r < mr; r++) {
		LLVMValueRef i = add(c, i0, ci64(c, r));
		LLVMValueRef ai = m->ta ? add(c, mul(c, k, m->M), i) : add(c, mul(c, i, m->K), k);
		LLVMValueRef bc = splat(c, m->vty, vload(c, &m->A, add(c, m->abase, ai)));
		for (int v = 0; v < MM_NV; v++)
			nxt[r][v] = fadd(c, acc[r][v], fmul(c, bc, bv[v]));
	}
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++)
			LLVMAddIncoming(acc[r][v], &nxt[r][v], &latch, 1);
	loop_end(c, &lk);
	/* no steps (K == 0) leaves the initial value; all phis first */
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++) {
			acc[r][v] = LLVMBuildPhi(c->b, m->vty, "c");
			LLVMValueRef in[2] = { init[r][v], nxt[r][v] };
			LLVMBasicBlockRef from[2] = { pre, latch };
			LLVMAddIncoming(acc[r][v], in, from, 2);
		}
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++)
			mm_vstore(c, m, m->C.base, add(c, crow[r], ci64(c, v * m->vw)), acc[r][v], mask ? mask[v] : NULL);
}

/* every row of one column block: full row blocks, then one block of the
 * M % MM_MR rows left (a switch over the possible counts, or just the one
 * count when M is a compile-time constant) */
static void mm_rows(cg *c, mm_ctx *m, LLVMValueRef j0, LLVMValueRef *mask, const mm_krange *kr)
{
	LLVMValueRef mb = LLVMBuildSDiv(c->b, m->M, ci64(c, MM_MR), "");
	LLVMValueRef mfull = mul(c, mb, ci64(c, MM_MR));
	cg_loop li;
	LLVMValueRef ib = loop_begin(c, &li, mb);
	mm_block(c, m, MM_MR, mul(c, ib, ci64(c, MM_MR)), j0, mask, kr);
	loop_end(c, &li);
	if (m->Mc >= 0) {
		if (m->Mc % MM_MR)
			mm_block(c, m, (int)(m->Mc % MM_MR), mfull, j0, mask, kr);
		return;
	}
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.rows.end");
	LLVMValueRef sw = LLVMBuildSwitch(c->b, LLVMBuildSub(c->b, m->M, mfull, ""), join, MM_MR - 1);
	for (int mr = 1; mr < MM_MR; mr++) {
		LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.rows");
		LLVMAddCase(sw, ci64(c, mr), bb);
		LLVMPositionBuilderAtEnd(c->b, bb);
		mm_block(c, m, mr, mfull, j0, mask, kr);
		LLVMBuildBr(c->b, join);
	}
	LLVMPositionBuilderAtEnd(c->b, join);
}

/* one column block: b read in place over all of K, or (transposed b)
 * copied into the panel chunk by chunk, columns past N repeating column
 * N-1 (their lanes are never stored) */
static void mm_column_block(cg *c, mm_ctx *m, LLVMValueRef j0, LLVMValueRef *mask)
{
	mm_krange kr = { ci64(c, 0), m->K, NULL };
	if (!m->panel) {
		mm_rows(c, m, j0, mask, &kr);
		return;
	}
	/* max(1, ceil(K / KC)) chunks: K == 0 still stores the +0s */
	LLVMValueRef KC = ci64(c, MM_KC), nr = ci64(c, MM_NV * m->vw);
	LLVMValueRef nch = LLVMBuildSDiv(c->b, add(c, m->K, ci64(c, MM_KC - 1)), KC, "");
	nch = sel(c, LLVMBuildICmp(c->b, LLVMIntSGT, nch, ci64(c, 1), ""), nch, ci64(c, 1));
	cg_loop lc, lj, lk;
	LLVMValueRef ch = loop_begin(c, &lc, nch);
	kr.k0 = mul(c, ch, KC);
	LLVMValueRef left = LLVMBuildSub(c->b, m->K, kr.k0, "");
	kr.len = sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, left, KC, ""), left, KC);
	kr.resume = LLVMBuildICmp(c->b, LLVMIntNE, ch, ci64(c, 0), "");
	if (m->tb) {
		LLVMValueRef jj = loop_begin(c, &lj, nr);
		LLVMValueRef j = add(c, j0, jj), last = LLVMBuildSub(c->b, m->N, ci64(c, 1), "");
		j = sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, j, m->N, ""), j, last);
		LLVMValueRef src = add(c, m->bbase, add(c, mul(c, j, m->K), kr.k0));
		LLVMValueRef kk = loop_begin(c, &lk, kr.len);
		store_at(c, c->f32, m->panel, add(c, mul(c, kk, nr), jj), load_at(c, c->f32, m->Bv.base, add(c, src, kk)));
		loop_end(c, &lk);
		loop_end(c, &lj);
	} else {
		LLVMValueRef kk = loop_begin(c, &lk, kr.len);
		LLVMValueRef src = add(c, m->bbase, add(c, mul(c, add(c, kr.k0, kk), m->N), j0));
		for (int v = 0; v < MM_NV; v++)
			mm_vstore(c, m, m->panel, add(c, mul(c, kk, nr), ci64(c, v * m->vw)),
			          mm_vload(c, m, m->Bv.base, add(c, src, ci64(c, v * m->vw)), mask ? mask[v] : NULL), NULL);
		loop_end(c, &lk);
	}
	mm_rows(c, m, j0, mask, &kr);
	loop_end(c, &lc);
}

static int emit_MATMUL(cg *c, const ir_node *n)
{
	const ir_node *an = in_node(c, n, 0), *bn = in_node(c, n, 1);
	const ir_type *at = &an->type, *bt = &bn->type, *ct = &n->type;
	mm_ctx m;
	memset(&m, 0, sizeof m);
	m.ta = n->ia[0] != 0;
	m.tb = n->ia[1] != 0;
	if (check_plan(c, n) || need_f32(c, n))
		return -1;
	if (at->rank < 2 || bt->rank < 2 || ct->rank < 2 ||
	    (at->rank != 2 && at->rank != ct->rank) || (bt->rank != 2 && bt->rank != ct->rank))
		return cg_err(c, n, "unsupported matmul ranks %d x %d -> %d", at->rank, bt->rank, ct->rank);
	if (val_of(c, an, &m.A) || val_of(c, bn, &m.Bv) || val_of(c, n, &m.C))
		return -1;
	if (!m.C.base)
		return cg_err(c, n, "a CONST cannot be a matmul result");
	m.vw = c->vw;
	m.vty = LLVMVectorType(c->f32, (unsigned)m.vw);
	int r = ct->rank;
	m.M = dim_val(c, ct->d[r - 2]);
	m.Mc = ct->d[r - 2].sym ? -1 : ct->d[r - 2].c;
	m.N = dim_val(c, ct->d[r - 1]);
	m.K = dim_val(c, at->d[at->rank - (m.ta ? 2 : 1)]);
	if (!m.Bv.imm) {
		/* one panel per function, shared by its matmuls (they run one
		 * after the other) */
		if (!c->mm_panel) {
			LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
			LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
			if (first)
				LLVMPositionBuilderBefore(eb, first);
			else
				LLVMPositionBuilderAtEnd(eb, c->entry);
			c->mm_panel = LLVMBuildAlloca(eb, LLVMArrayType(c->f32, MM_KC * MM_NV * MM_MAXVW), "panel");
			LLVMSetAlignment(c->mm_panel, 64);
			LLVMDisposeBuilder(eb);
		}
		m.panel = c->mm_panel;
	}
	LLVMValueRef nb = dims_prod(c, ct, 0, r - 2);
	LLVMValueRef sa = at->rank == 2 ? ci64(c, 0) : mul(c, m.M, m.K);   /* batch strides */
	LLVMValueRef sb = bt->rank == 2 ? ci64(c, 0) : mul(c, m.K, m.N);
	LLVMValueRef NR = ci64(c, MM_NV * m.vw);
	LLVMValueRef nj = LLVMBuildSDiv(c->b, m.N, NR, "");
	LLVMValueRef nfull = mul(c, nj, NR);
	LLVMValueRef rem = LLVMBuildSub(c->b, m.N, nfull, "");
	cg_loop lb, lj, lt;
	LLVMValueRef bi = loop_begin(c, &lb, nb);
	m.abase = mul(c, bi, sa);
	m.bbase = mul(c, bi, sb);
	m.cbase = mul(c, bi, mul(c, m.M, m.N));
	LLVMValueRef jb = loop_begin(c, &lj, nj);
	mm_column_block(c, &m, mul(c, jb, NR), NULL);
	loop_end(c, &lj);
	/* the partial column block, if any: a loop run rem != 0 times (0 or 1) */
	loop_begin(c, &lt, LLVMBuildZExt(c->b, LLVMBuildICmp(c->b, LLVMIntNE, rem, ci64(c, 0), ""), c->i64, ""));
	LLVMValueRef mask[MM_NV];
	LLVMValueRef rv = splat(c, LLVMVectorType(c->i64, (unsigned)m.vw), rem);
	for (int v = 0; v < MM_NV; v++) {
		LLVMValueRef lane[MM_MAXVW];
		for (int l = 0; l < m.vw; l++)
			lane[l] = ci64(c, v * m.vw + l);
		mask[v] = LLVMBuildICmp(c->b, LLVMIntSLT, LLVMConstVector(lane, (unsigned)m.vw), rv, "");
	}
	mm_column_block(c, &m, nfull, mask);
	loop_end(c, &lt);
	loop_end(c, &lb);
	return 0;
}

/* ------------------------------------------------------------------ */
/* softmax family, losses, metrics: row-wise over the last axis        */

typedef struct cg_rows {
	LLVMValueRef rows, C;   /* numel / C, last dim */
} cg_rows;

static int rows_of(cg *c, const ir_node *n, const ir_type *t, cg_rows *r)
{
	if (t->rank < 1)
		return cg_err(c, n, "needs at least one axis");
	r->C = dim_val(c, t->d[t->rank - 1]);
	r->rows = dims_prod(c, t, 0, t->rank - 1);
	return 0;
}

/* max_seq of x[base .. base+C) from -inf (the MAX reduction's rule) */
static LLVMValueRef row_max(cg *c, const cg_val *x, LLVMValueRef base, LLVMValueRef C)
{
	LLVMValueRef m = new_var(c, c->f32, cf32(c, -__builtin_inff()));
	cg_loop l;
	LLVMValueRef k = loop_begin(c, &l, C);
	set_var(c, m, max_step(c, get_var(c, c->f32, m), vload(c, x, add(c, base, k))));
	loop_end(c, &l);
	return get_var(c, c->f32, m);
}

/* sum_seq of exp(x_k - m); if y is given, also y_k = exp(x_k - m) */
static LLVMValueRef row_sumexp(cg *c, const cg_val *x, LLVMValueRef base, LLVMValueRef C,
                               LLVMValueRef m, const cg_val *y, LLVMValueRef ybase)
{
	LLVMValueRef s = new_var(c, c->f32, cf32(c, 0.0f));
	cg_loop l;
	LLVMValueRef k = loop_begin(c, &l, C);
	LLVMValueRef e = call_f1(c, "nnd_rt_expf", fsub(c, vload(c, x, add(c, base, k)), m));
	if (y)
		vstore(c, y, add(c, ybase, k), e);
	set_var(c, s, fadd(c, get_var(c, c->f32, s), e));
	loop_end(c, &l);
	return get_var(c, c->f32, s);
}

static int emit_SOFTMAX(cg *c, const ir_node *n)
{
	cg_val x, y;
	cg_rows r;
	if (check_plan(c, n) || need_f32(c, n) || rows_of(c, n, &n->type, &r))
		return -1;
	if (val_of(c, in_node(c, n, 0), &x) || val_of(c, n, &y))
		return -1;
	cg_loop li, lk;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, &x, base, r.C, m, &y, base);
	LLVMValueRef k = loop_begin(c, &lk, r.C);
	LLVMValueRef yi = add(c, base, k);
	vstore(c, &y, yi, fdiv(c, vload(c, &y, yi), s));
	loop_end(c, &lk);
	loop_end(c, &li);
	return 0;
}

static int emit_LOG_SOFTMAX(cg *c, const ir_node *n)
{
	cg_val x, y;
	cg_rows r;
	if (check_plan(c, n) || need_f32(c, n) || rows_of(c, n, &n->type, &r))
		return -1;
	if (val_of(c, in_node(c, n, 0), &x) || val_of(c, n, &y))
		return -1;
	cg_loop li, lk;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, &x, base, r.C, m, NULL, NULL);
	LLVMValueRef ls = call_f1(c, "nnd_rt_logf", s);
	LLVMValueRef k = loop_begin(c, &lk, r.C);
	LLVMValueRef xi = add(c, base, k);
	vstore(c, &y, xi, fsub(c, fsub(c, vload(c, &x, xi), m), ls));
	loop_end(c, &lk);
	loop_end(c, &li);
	return 0;
}

/* (dy, y): softmax: dx_k = y_k * (dy_k - sum_seq(dy_j*y_j));
 * log_softmax: dx_k = dy_k - exp(y_k) * sum_seq(dy_j) */
static int emit_softmax_bwd(cg *c, const ir_node *n, bool logsm)
{
	cg_val dy, y, dx;
	cg_rows r;
	if (check_plan(c, n) || need_f32(c, n) || rows_of(c, n, &n->type, &r))
		return -1;
	if (val_of(c, in_node(c, n, 0), &dy) || val_of(c, in_node(c, n, 1), &y) || val_of(c, n, &dx))
		return -1;
	cg_loop li, lk;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef s = new_var(c, c->f32, cf32(c, 0.0f));
	LLVMValueRef k = loop_begin(c, &lk, r.C);
	LLVMValueRef dyk = vload(c, &dy, add(c, base, k));
	set_var(c, s, fadd(c, get_var(c, c->f32, s), logsm ? dyk : fmul(c, dyk, vload(c, &y, add(c, base, k)))));
	loop_end(c, &lk);
	LLVMValueRef sv = get_var(c, c->f32, s);
	k = loop_begin(c, &lk, r.C);
	LLVMValueRef xi = add(c, base, k);
	dyk = vload(c, &dy, xi);
	LLVMValueRef yk = vload(c, &y, xi);
	vstore(c, &dx, xi, logsm ? fsub(c, dyk, fmul(c, call_f1(c, "nnd_rt_expf", yk), sv))
	                         : fmul(c, yk, fsub(c, dyk, sv)));
	loop_end(c, &lk);
	loop_end(c, &li);
	return 0;
}
static int emit_SOFTMAX_BWD(cg *c, const ir_node *n) { return emit_softmax_bwd(c, n, false); }
static int emit_LOG_SOFTMAX_BWD(cg *c, const ir_node *n) { return emit_softmax_bwd(c, n, true); }

/* label of row i as i64 (u8 labels are unsigned, i32 signed) */
static LLVMValueRef load_label(cg *c, const cg_val *lab, LLVMValueRef i)
{
	LLVMValueRef v = vload(c, lab, i);
	return lab->n->type.dt == IR_U8 ? LLVMBuildZExt(c->b, v, c->i64, "") : LLVMBuildSExt(c->b, v, c->i64, "");
}

/* a label outside [0, C) stops the program: nnd_rt_bad_label exits (and
 * should it ever return, the step function returns before reading out of
 * bounds) */
static void check_label(cg *c, LLVMValueRef row, LLVMValueRef label, LLVMValueRef C)
{
	LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "bad_label");
	LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "label_ok");
	LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntUGE, label, C, ""), bad, ok);
	LLVMPositionBuilderAtEnd(c->b, bad);
	LLVMTypeRef pt[3] = { c->i64, c->i64, c->i64 };
	LLVMTypeRef fty = LLVMFunctionType(c->vd, pt, 3, 0);
	LLVMValueRef a[3] = { row, label, C };
	LLVMBuildCall2(c->b, fty, rt_fn(c, "nnd_rt_bad_label", fty), a, 3, "");
	LLVMBuildRetVoid(c->b);
	LLVMPositionBuilderAtEnd(c->b, ok);
}

static int labels_ok(cg *c, const ir_node *n, const ir_node *lab)
{
	if (lab->type.dt == IR_F32)
		return cg_err(c, n, "labels must be integers");
	if (in_node(c, n, 0)->type.dt != IR_F32 || in_node(c, n, 0)->type.rank != 2)
		return cg_err(c, n, "logits must be f32[B, C]");
	return 0;
}

static int emit_CROSS_ENTROPY(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0), *ln = in_node(c, n, 1);
	cg_val x, lab, out;
	cg_rows r;
	if (check_plan(c, n) || labels_ok(c, n, ln) || rows_of(c, n, &xn->type, &r))
		return -1;
	if (val_of(c, xn, &x) || val_of(c, ln, &lab) || val_of(c, n, &out))
		return -1;
	LLVMValueRef tot = new_var(c, c->f32, cf32(c, 0.0f));
	cg_loop li;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef label = load_label(c, &lab, i);
	check_label(c, i, label, r.C);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, &x, base, r.C, m, NULL, NULL);
	LLVMValueRef l = fsub(c, fadd(c, m, call_f1(c, "nnd_rt_logf", s)), vload(c, &x, add(c, base, label)));
	set_var(c, tot, fadd(c, get_var(c, c->f32, tot), l));
	loop_end(c, &li);
	vstore(c, &out, ci64(c, 0), fdiv(c, get_var(c, c->f32, tot), i2f(c, r.rows)));
	return 0;
}

static int emit_CROSS_ENTROPY_BWD(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0), *ln = in_node(c, n, 1);
	cg_val x, lab, dl, dx;
	cg_rows r;
	if (check_plan(c, n) || labels_ok(c, n, ln) || rows_of(c, n, &xn->type, &r))
		return -1;
	if (n->type.dt != IR_F32 || in_node(c, n, 2)->type.dt != IR_F32)
		return cg_err(c, n, "result and dloss must be f32");
	if (val_of(c, xn, &x) || val_of(c, ln, &lab) || val_of(c, in_node(c, n, 2), &dl) || val_of(c, n, &dx))
		return -1;
	LLVMValueRef g = fdiv(c, vload(c, &dl, ci64(c, 0)), i2f(c, r.rows));
	cg_loop li, lk;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef label = load_label(c, &lab, i);
	check_label(c, i, label, r.C);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, &x, base, r.C, m, &dx, base);   /* dx_k = e_k */
	LLVMValueRef k = loop_begin(c, &lk, r.C);
	LLVMValueRef xi = add(c, base, k);
	LLVMValueRef ind = sel(c, LLVMBuildICmp(c->b, LLVMIntEQ, k, label, ""), cf32(c, 1.0f), cf32(c, 0.0f));
	vstore(c, &dx, xi, fmul(c, fsub(c, fdiv(c, vload(c, &dx, xi), s), ind), g));
	loop_end(c, &lk);
	loop_end(c, &li);
	return 0;
}

static int emit_MSE(cg *c, const ir_node *n)
{
	const ir_node *pn = in_node(c, n, 0), *tn = in_node(c, n, 1);
	cg_val p, t, out;
	if (check_plan(c, n) || need_f32(c, n))
		return -1;
	if (!ir_type_eq(&pn->type, &tn->type))
		return cg_err(c, n, "prediction and target types differ");
	if (val_of(c, pn, &p) || val_of(c, tn, &t) || val_of(c, n, &out))
		return -1;
	LLVMValueRef cnt = numel_val(c, &pn->type);
	LLVMValueRef s = new_var(c, c->f32, cf32(c, 0.0f));
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, cnt);
	LLVMValueRef d = fsub(c, vload(c, &p, i), vload(c, &t, i));
	set_var(c, s, fadd(c, get_var(c, c->f32, s), fmul(c, d, d)));
	loop_end(c, &l);
	vstore(c, &out, ci64(c, 0), fdiv(c, get_var(c, c->f32, s), i2f(c, cnt)));
	return 0;
}

static int emit_ACCURACY(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0), *ln = in_node(c, n, 1);
	cg_val x, lab, out;
	cg_rows r;
	if (check_plan(c, n) || labels_ok(c, n, ln) || rows_of(c, n, &xn->type, &r))
		return -1;
	if (n->type.dt != IR_F32)
		return cg_err(c, n, "result must be f32");
	if (val_of(c, xn, &x) || val_of(c, ln, &lab) || val_of(c, n, &out))
		return -1;
	LLVMValueRef cnt = new_var(c, c->i64, ci64(c, 0));
	LLVMValueRef best = new_var(c, c->f32, cf32(c, 0.0f));
	LLVMValueRef bidx = new_var(c, c->i64, ci64(c, 0));
	cg_loop li, lk;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef base = mul(c, i, r.C);
	set_var(c, best, cf32(c, -__builtin_inff()));
	set_var(c, bidx, ci64(c, 0));
	LLVMValueRef k = loop_begin(c, &lk, r.C);
	argmax_step(c, best, bidx, vload(c, &x, add(c, base, k)), k);
	loop_end(c, &lk);
	LLVMValueRef hit = LLVMBuildICmp(c->b, LLVMIntEQ, get_var(c, c->i64, bidx), load_label(c, &lab, i), "");
	set_var(c, cnt, add(c, get_var(c, c->i64, cnt), LLVMBuildZExt(c->b, hit, c->i64, "")));
	loop_end(c, &li);
	vstore(c, &out, ci64(c, 0), fdiv(c, i2f(c, get_var(c, c->i64, cnt)), i2f(c, r.rows)));
	return 0;
}

/* ------------------------------------------------------------------ */
/* random                                                              */

/* u = nnd_rt_uniform(&keys[2*stream], e, sample_idx[row], epoch, 0);
 * y = u >= p ? x * scale : +0.  The counter holds logical indices only. */
static int emit_dropout(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	cg_val x, y;
	if (need_f32(c, n))
		return -1;
	if (n->stream < 0 || (c->prog && n->stream >= c->prog->nstreams))
		return cg_err(c, n, "no random stream");
	if (n->type.rank < 1 || !ir_type_eq(&n->type, &xn->type))
		return cg_err(c, n, "needs [rows, ...] input of the result's type");
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	LLVMValueRef keys = load_field(c, A_KEYS, c->ptr);
	LLVMValueRef key = gep(c, c->i32, keys, ci64(c, 2 * (int64_t)n->stream));
	LLVMValueRef sidx = load_field(c, A_SAMPLE_IDX, c->ptr);
	LLVMValueRef epoch = LLVMBuildTrunc(c->b, load_field(c, A_EPOCH, c->i64), c->i32, "");
	LLVMValueRef rows = dim_val(c, n->type.d[0]);
	LLVMValueRef E = dims_prod(c, &n->type, 1, n->type.rank);
	LLVMTypeRef pt[5] = { LLVMPointerType(c->i32, 0), c->i32, c->i32, c->i32, c->i32 };
	LLVMTypeRef fty = LLVMFunctionType(c->f32, pt, 5, 0);
	LLVMValueRef uf = rt_fn(c, "nnd_rt_uniform", fty);
	cg_loop lr, le;
	LLVMValueRef r = loop_begin(c, &lr, rows);
	LLVMValueRef s = LLVMBuildTrunc(c->b, load_at(c, c->i64, sidx, r), c->i32, "");
	LLVMValueRef e = loop_begin(c, &le, E);
	LLVMValueRef a[5] = { ptr_to(c, key, c->i32), LLVMBuildTrunc(c->b, e, c->i32, ""), s, epoch, ci32(c, 0) };
	LLVMValueRef u = LLVMBuildCall2(c->b, fty, uf, a, 5, "");
	LLVMValueRef xi = add(c, mul(c, r, E), e);
	LLVMValueRef keep = fcmp(c, LLVMRealOGE, u, cf32(c, n->fa[0]));
	vstore(c, &y, xi, sel(c, keep, fmul(c, vload(c, &x, xi), cf32(c, n->fa[1])), cf32(c, 0.0f)));
	loop_end(c, &le);
	loop_end(c, &lr);
	return 0;
}
static int emit_DROPOUT(cg *c, const ir_node *n) { return emit_dropout(c, n); }
static int emit_DROPOUT_BWD(cg *c, const ir_node *n) { return emit_dropout(c, n); }

/* ------------------------------------------------------------------ */
/* optimizer updates (in place)                                        */

static int update_vals(cg *c, const ir_node *n, int cnt, cg_val *v)
{
	const ir_type *pt = &in_node(c, n, 0)->type;
	for (int i = 0; i < cnt; i++) {
		const ir_node *x = in_node(c, n, i);
		if (x->type.dt != IR_F32 || !ir_type_eq(&x->type, pt))
			return cg_err(c, n, "input %d must be f32 of the parameter's type", i);
		if (val_of(c, x, &v[i]))
			return -1;
		if (!v[i].base)
			return cg_err(c, n, "input %d has no storage", i);
	}
	return 0;
}

static int emit_SGD_UPDATE(cg *c, const ir_node *n)
{
	float mom = n->fa[0], wd = n->fa[1];
	bool nesterov = n->ia[0] != 0, has_mom = n->ia[1] != 0 && mom != 0.0f;
	cg_val v[3];
	if (update_vals(c, n, has_mom ? 3 : 2, v))
		return -1;
	LLVMValueRef lr = load_field(c, A_LR, c->f32);
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, numel_val(c, &v[0].n->type));
	LLVMValueRef p = vload(c, &v[0], i), g = vload(c, &v[1], i);
	if (wd != 0.0f)
		g = fadd(c, g, fmul(c, cf32(c, wd), p));
	if (has_mom) {
		LLVMValueRef m = fadd(c, fmul(c, cf32(c, mom), vload(c, &v[2], i)), g);
		vstore(c, &v[2], i, m);
		g = nesterov ? fadd(c, g, fmul(c, cf32(c, mom), m)) : m;
	}
	vstore(c, &v[0], i, fsub(c, p, fmul(c, lr, g)));
	loop_end(c, &l);
	return 0;
}

static int emit_ADAM_UPDATE(cg *c, const ir_node *n)
{
	float b1 = n->fa[0], b2 = n->fa[1], eps = n->fa[2], wd = n->fa[3];
	bool decoupled = n->ia[0] != 0;
	cg_val v[4];
	if (update_vals(c, n, 4, v))
		return -1;
	LLVMValueRef lr = load_field(c, A_LR, c->f32);
	LLVMValueRef c1 = load_field(c, A_BC1, c->f32), c2 = load_field(c, A_BC2, c->f32);
	LLVMValueRef one = cf32(c, 1.0f);
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, numel_val(c, &v[0].n->type));
	LLVMValueRef p = vload(c, &v[0], i), g = vload(c, &v[1], i);
	if (decoupled && wd != 0.0f)
		p = fsub(c, p, fmul(c, fmul(c, lr, cf32(c, wd)), p));
	if (!decoupled && wd != 0.0f)
		g = fadd(c, g, fmul(c, cf32(c, wd), p));
	LLVMValueRef m = fadd(c, fmul(c, cf32(c, b1), vload(c, &v[2], i)), fmul(c, fsub(c, one, cf32(c, b1)), g));
	LLVMValueRef vv = fadd(c, fmul(c, cf32(c, b2), vload(c, &v[3], i)),
	                       fmul(c, fsub(c, one, cf32(c, b2)), fmul(c, g, g)));
	vstore(c, &v[2], i, m);
	vstore(c, &v[3], i, vv);
	LLVMValueRef den = fadd(c, build_sqrt(c, fdiv(c, vv, c2)), cf32(c, eps));
	vstore(c, &v[0], i, fsub(c, p, fmul(c, lr, fdiv(c, fdiv(c, m, c1), den))));
	loop_end(c, &l);
	return 0;
}

/* ------------------------------------------------------------------ */
/* dispatch: one emitter per row of ops.def (a missing one won't compile) */

typedef int (*cg_emit_fn)(cg *c, const ir_node *n);
static const cg_emit_fn cg_emitters[IR_NUM_OPS] = {
#define OP(id, name, arity, flags) [IR_##id] = emit_##id,
#include "../ir/ops.def"
#undef OP
};

static LLVMValueRef build_graph(cg *c, const ir_graph *g, const char *name)
{
	c->g = g;
	c->fn = LLVMAddFunction(c->mod, name, c->step_ty);
	c->args = LLVMGetParam(c->fn, 0);
	c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
	c->mm_panel = NULL;
	LLVMPositionBuilderAtEnd(c->b, c->entry);
	c->B = load_field(c, A_B, c->i64);
	c->Bmax = load_field(c, A_BMAX, c->i64);
	/* allocas are inserted before the first instruction of entry, so the
	 * kernels start in their own block */
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
	LLVMBuildBr(c->b, body);
	LLVMPositionBuilderAtEnd(c->b, body);
	int bad = 0;
	for (int i = 0; i < g->nnodes; i++) {
		const ir_node *n = g->nodes[i];
		if ((unsigned)n->op >= IR_NUM_OPS) {
			fprintf(stderr, "nndc: internal error: codegen: node %d has opcode %d\n", i, (int)n->op);
			bad = 1;
			continue;
		}
		if (n->nin < 0 || n->nin > 4) {
			bad |= cg_err(c, n, "%d inputs", n->nin) != 0;
			continue;
		}
		if (cg_emitters[n->op](c, n))
			bad = 1;
	}
	for (int k = 0; k < g->noutputs && !bad; k++) {
		const ir_node *o = g->nodes[g->outputs[k]];
		cg_val v;
		if (o->type.rank != 0) {
			bad |= cg_err(c, o, "graph output %d is not a scalar", k) != 0;
			break;
		}
		if (val_of(c, o, &v)) {
			bad = 1;
			break;
		}
		LLVMValueRef x = vload(c, &v, ci64(c, 0));
		if (o->type.dt == IR_I32)
			x = LLVMBuildSIToFP(c->b, x, c->f32, "");
		else if (o->type.dt == IR_U8)
			x = LLVMBuildUIToFP(c->b, x, c->f32, "");
		LLVMValueRef outs = load_field(c, A_OUTPUTS, c->ptr);
		store_at(c, c->f32, outs, ci64(c, k), x);
	}
	LLVMBuildRetVoid(c->b);
	return bad ? NULL : c->fn;
}

/* ------------------------------------------------------------------ */
/* module                                                              */

static int cg_init_llvm(void)
{
	static int done;
	if (!done) {
		if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
			fprintf(stderr, "nndc: error: LLVM has no native target for this host\n");
			return -1;
		}
		done = 1;
	}
	return 0;
}

static LLVMTargetMachineRef host_tm(int opt_level)
{
	char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
	LLVMTargetRef target;
	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		fprintf(stderr, "nndc: error: no LLVM target for %s: %s\n", triple, err ? err : "?");
		LLVMDisposeMessage(err);
		LLVMDisposeMessage(triple);
		return NULL;
	}
	char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
	LLVMCodeGenOptLevel lvl = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
	                        : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, feat, lvl,
	                                                  LLVMRelocPIC, LLVMCodeModelDefault);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(feat);
	LLVMDisposeMessage(triple);
	if (!tm)
		fprintf(stderr, "nndc: error: cannot create an LLVM target machine for the host\n");
	return tm;
}

/* f32 lanes of the matmul kernel's vectors: a zmm register's worth where
 * the target has AVX-512, else a ymm's.  Only speed depends on it: each
 * lane is one output's own sequential sum whatever the width. */
static int host_vector_width(LLVMTargetMachineRef tm)
{
	char *feat = LLVMGetTargetMachineFeatureString(tm);
	int vw = feat && strstr(feat, "+avx512f") ? 16 : 8;
	LLVMDisposeMessage(feat);
	/* NND_MM_VW=4|8|16 forces a width, so that one host can test them all */
	const char *e = getenv("NND_MM_VW");
	if (e && (atoi(e) == 4 || atoi(e) == 8 || atoi(e) == 16))
		vw = atoi(e);
	return vw;
}

static void print_llvm_error(const char *what, LLVMErrorRef e)
{
	char *msg = LLVMGetErrorMessage(e);
	fprintf(stderr, "nndc: error: %s: %s\n", what, msg);
	LLVMDisposeErrorMessage(msg);
}

/* private constant global holding `s` (NUL-terminated); returns an i8* to it */
static LLVMValueRef const_string(cg *c, const char *s, const char *name)
{
	size_t len = strlen(s);
	LLVMValueRef init = LLVMConstStringInContext(c->ctx, s, (unsigned)len, 0);
	LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
	LLVMSetInitializer(gv, init);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
	return LLVMConstPointerCast(gv, c->ptr);
}

static LLVMValueRef fn_table(cg *c, LLVMValueRef *fns, int n, const char *name)
{
	LLVMTypeRef at = LLVMArrayType(c->ptr, (unsigned)n);
	LLVMValueRef *v = xcalloc((size_t)(n ? n : 1), sizeof *v);
	for (int i = 0; i < n; i++)
		v[i] = fns[i] ? LLVMConstPointerCast(fns[i], c->ptr) : LLVMConstNull(c->ptr);
	LLVMValueRef gv = LLVMAddGlobal(c->mod, at, name);
	LLVMSetInitializer(gv, LLVMConstArray(c->ptr, v, (unsigned)n));
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	free(v);
	return LLVMConstPointerCast(gv, c->ptr);
}

static void build_globals(cg *c, const ir_module *m, const char *manifest,
                          LLVMValueRef *train, LLVMValueRef *eval, bool with_main)
{
	LLVMTypeRef mt_el[4] = { c->ptr, c->i32, c->ptr, c->ptr };
	LLVMTypeRef model_ty = LLVMStructTypeInContext(c->ctx, mt_el, 4, 0);
	LLVMValueRef fields[4] = {
		const_string(c, manifest ? manifest : "", "nnd_manifest"),
		ci32(c, m->nprogs),
		fn_table(c, train, m->nprogs, "nnd_train_table"),
		fn_table(c, eval, m->nprogs, "nnd_eval_table"),
	};
	LLVMValueRef model = LLVMAddGlobal(c->mod, model_ty, "nnd_model");
	LLVMSetInitializer(model, LLVMConstNamedStruct(model_ty, fields, 4));
	LLVMSetGlobalConstant(model, 1);
	if (!with_main)
		return;
	/* int main(int argc, char **argv) { return nnd_rt_main(argc, argv, &nnd_model); } */
	LLVMTypeRef argv_ty = LLVMPointerType(c->ptr, 0);
	LLVMTypeRef mp[2] = { c->i32, argv_ty };
	LLVMTypeRef main_ty = LLVMFunctionType(c->i32, mp, 2, 0);
	LLVMTypeRef rp[3] = { c->i32, argv_ty, c->ptr };
	LLVMTypeRef rt_ty = LLVMFunctionType(c->i32, rp, 3, 0);
	LLVMValueRef mainf = LLVMAddFunction(c->mod, "main", main_ty);
	LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, mainf, "entry"));
	LLVMValueRef a[3] = { LLVMGetParam(mainf, 0), LLVMGetParam(mainf, 1), LLVMConstPointerCast(model, c->ptr) };
	LLVMValueRef r = LLVMBuildCall2(c->b, rt_ty, rt_fn(c, "nnd_rt_main", rt_ty), a, 3, "");
	LLVMBuildRet(c->b, r);
}

static int optimise(cg_module *cm, int opt_level)
{
	char pipe[32];
	snprintf(pipe, sizeof pipe, "default<O%d>", opt_level < 0 ? 0 : opt_level > 3 ? 3 : opt_level);
	LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
	/* the C API's defaults leave SLP off; clang turns both on at -O2 */
	LLVMPassBuilderOptionsSetLoopVectorization(po, opt_level >= 2);
	LLVMPassBuilderOptionsSetSLPVectorization(po, opt_level >= 2);
	LLVMPassBuilderOptionsSetLoopInterleaving(po, opt_level >= 2);
	LLVMPassBuilderOptionsSetLoopUnrolling(po, opt_level >= 2);
	LLVMErrorRef e = LLVMRunPasses(cm->mod, pipe, cm->tm, po);
	LLVMDisposePassBuilderOptions(po);
	if (e) {
		print_llvm_error("LLVM optimisation failed", e);
		return -1;
	}
	return 0;
}

cg_module *cg_build(const ir_module *m, const char *manifest, int opt_level, bool with_main)
{
	if (cg_init_llvm())
		return NULL;
	cg_module *cm = xcalloc(1, sizeof *cm);
	if (!(cm->tm = host_tm(opt_level))) {
		free(cm);
		return NULL;
	}
	cm->tsc = LLVMOrcCreateNewThreadSafeContext();
	cm->ctx = LLVMOrcThreadSafeContextGetContext(cm->tsc);
	cm->mod = LLVMModuleCreateWithNameInContext(m->source_path ? m->source_path : "nnd", cm->ctx);
	char *triple = LLVMGetTargetMachineTriple(cm->tm);
	LLVMSetTarget(cm->mod, triple);
	LLVMDisposeMessage(triple);
	LLVMTargetDataRef td = LLVMCreateTargetDataLayout(cm->tm);
	LLVMSetModuleDataLayout(cm->mod, td);
	LLVMDisposeTargetData(td);

	cg c;
	memset(&c, 0, sizeof c);
	c.ctx = cm->ctx;
	c.mod = cm->mod;
	c.b = LLVMCreateBuilderInContext(c.ctx);
	c.i1 = LLVMInt1TypeInContext(c.ctx);
	c.i8 = LLVMInt8TypeInContext(c.ctx);
	c.i32 = LLVMInt32TypeInContext(c.ctx);
	c.i64 = LLVMInt64TypeInContext(c.ctx);
	c.f32 = LLVMFloatTypeInContext(c.ctx);
	c.vd = LLVMVoidTypeInContext(c.ctx);
	c.ptr = LLVMPointerType(c.i8, 0);
	c.vw = host_vector_width(cm->tm);
	LLVMTypeRef af[A_NFIELDS];
	for (int i = 0; i < A_NFIELDS; i++)
		af[i] = i < A_B ? c.ptr : i < A_LR ? c.i64 : c.f32;
	c.args_ty = LLVMStructCreateNamed(c.ctx, "nnd_step_args");
	LLVMStructSetBody(c.args_ty, af, A_NFIELDS, 0);
	c.step_ty = LLVMFunctionType(c.vd, &c.ptr, 1, 0);

	int bad = 0;
	LLVMValueRef *train = xcalloc((size_t)m->nprogs + 1, sizeof *train);
	LLVMValueRef *eval = xcalloc((size_t)m->nprogs + 1, sizeof *eval);
	for (int i = 0; i < m->nprogs; i++) {
		const ir_program *p = m->progs[i];
		char name[64];
		c.prog = p;
		c.prog_index = i;
		if (!p->train) {
			fprintf(stderr, "nndc: internal error: codegen: program %d has no train graph\n", i);
			bad = 1;
			continue;
		}
		snprintf(name, sizeof name, "nnd_train_%d", i);
		if (!(train[i] = build_graph(&c, p->train, name)))
			bad = 1;
		if (p->eval_g) {
			snprintf(name, sizeof name, "nnd_eval_%d", i);
			if (!(eval[i] = build_graph(&c, p->eval_g, name)))
				bad = 1;
		}
	}
	if (!bad)
		build_globals(&c, m, manifest, train, eval, with_main);
	free(train);
	free(eval);
	LLVMDisposeBuilder(c.b);
	if (!bad) {
		char *msg = NULL;
		if (LLVMVerifyModule(cm->mod, LLVMReturnStatusAction, &msg)) {
			fprintf(stderr, "nndc: internal error: codegen: invalid LLVM module:\n%s\n", msg ? msg : "");
			bad = 1;
		}
		LLVMDisposeMessage(msg);
	}
	if (!bad && optimise(cm, opt_level))
		bad = 1;
	if (bad) {
		cg_free(cm);
		return NULL;
	}
	return cm;
}

void cg_free(cg_module *cm)
{
	if (!cm)
		return;
	if (cm->jit) {
		LLVMErrorRef e = LLVMOrcDisposeLLJIT(cm->jit);
		if (e)
			print_llvm_error("disposing the JIT", e);
	}
	if (cm->mod)
		LLVMDisposeModule(cm->mod);
	if (cm->tsc)
		LLVMOrcDisposeThreadSafeContext(cm->tsc);
	if (cm->tm)
		LLVMDisposeTargetMachine(cm->tm);
	free(cm);
}

void cg_print_llvm(cg_module *cm, FILE *out)
{
	if (!cm->mod) {
		fprintf(stderr, "nndc: internal error: codegen: module already handed to the JIT\n");
		return;
	}
	char *s = LLVMPrintModuleToString(cm->mod);
	fputs(s, out);
	LLVMDisposeMessage(s);
}

int cg_emit_object(cg_module *cm, const char *obj_path)
{
	char *err = NULL;
	if (!cm->mod) {
		fprintf(stderr, "nndc: internal error: codegen: module already handed to the JIT\n");
		return -1;
	}
	/* the C API takes a non-const path */
	char *path = xmalloc(strlen(obj_path) + 1);
	strcpy(path, obj_path);
	LLVMBool fail = LLVMTargetMachineEmitToFile(cm->tm, cm->mod, path, LLVMObjectFile, &err);
	free(path);
	if (fail) {
		fprintf(stderr, "nndc: error: cannot write object file %s: %s\n", obj_path, err ? err : "?");
		LLVMDisposeMessage(err);
		return -1;
	}
	LLVMDisposeMessage(err);
	return 0;
}

/* ------------------------------------------------------------------ */
/* linking                                                             */

int cg_link_executable(const char *obj_path, const char *exe_path)
{
	/* cc OBJ NND_RT_LIB LIBS... -o EXE, without a shell: paths need no
	 * quoting and NND_LINK_LIBS is split on blanks (and CMake's ';') */
	static const char libs_s[] = NND_LINK_LIBS;
	char *libs = xmalloc(sizeof libs_s);
	memcpy(libs, libs_s, sizeof libs_s);
	int cap = 8 + (int)sizeof libs_s, n = 0;
	char **argv = xcalloc((size_t)cap, sizeof *argv);
	argv[n++] = "cc";
	argv[n++] = (char *)obj_path;
	argv[n++] = NND_RT_LIB;
	for (char *tok = strtok(libs, " \t;"); tok; tok = strtok(NULL, " \t;"))
		argv[n++] = tok;
	argv[n++] = "-o";
	argv[n++] = (char *)exe_path;
	argv[n] = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "nndc: error: cannot start the linker: %s\n", strerror(errno));
		free(argv);
		free(libs);
		return -1;
	}
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "nndc: error: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	int st = 0, rc = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = -1;
			break;
		}
	}
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "nndc: error: linking %s failed (", exe_path);
		if (st != -1 && WIFEXITED(st))
			fprintf(stderr, "cc exited with status %d", WEXITSTATUS(st));
		else if (st != -1 && WIFSIGNALED(st))
			fprintf(stderr, "cc killed by signal %d", WTERMSIG(st));
		else
			fprintf(stderr, "cc did not finish");
		fprintf(stderr, "); command:");
		for (int i = 0; argv[i]; i++)
			fprintf(stderr, " %s", argv[i]);
		fputc('\n', stderr);
		rc = -1;
	}
	free(argv);
	free(libs);
	return rc;
}

/* ------------------------------------------------------------------ */
/* JIT                                                                 */

/* Moves the module into a fresh LLJIT whose unresolved symbols (nnd_rt_*)
 * are looked up in this process. */
static int jit_start(cg_module *cm)
{
	LLVMErrorRef e;
	if (cm->jit)
		return 0;
	if (!cm->mod) {
		fprintf(stderr, "nndc: internal error: codegen: no module to JIT\n");
		return -1;
	}
	LLVMOrcJITTargetMachineBuilderRef jtmb;
	if ((e = LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb))) {
		print_llvm_error("JIT: cannot detect the host", e);
		return -1;
	}
	LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
	LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
	if ((e = LLVMOrcCreateLLJIT(&cm->jit, jb))) {
		cm->jit = NULL;
		print_llvm_error("JIT: cannot create LLJIT", e);
		return -1;
	}
	LLVMOrcDefinitionGeneratorRef gen;
	if ((e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(cm->jit),
	                                                              NULL, NULL))) {
		print_llvm_error("JIT: cannot search the process for symbols", e);
		return -1;
	}
	LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(cm->jit);
	LLVMOrcJITDylibAddGenerator(jd, gen);
	LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(cm->mod, cm->tsc);
	cm->mod = NULL;
	/* the module keeps the context alive from here on */
	LLVMOrcDisposeThreadSafeContext(cm->tsc);
	cm->tsc = NULL;
	if ((e = LLVMOrcLLJITAddLLVMIRModule(cm->jit, jd, tsm))) {
		LLVMOrcDisposeThreadSafeModule(tsm);
		print_llvm_error("JIT: cannot add the module", e);
		return -1;
	}
	return 0;
}

void *cg_jit_lookup(cg_module *cm, const char *sym)
{
	if (jit_start(cm))
		return NULL;
	LLVMOrcExecutorAddress addr = 0;
	LLVMErrorRef e = LLVMOrcLLJITLookup(cm->jit, &addr, sym);
	if (e) {
		print_llvm_error("JIT: symbol lookup failed", e);
		return NULL;
	}
	return (void *)(uintptr_t)addr;
}

int cg_jit_run(cg_module *cm, int argc, char **argv)
{
	const nnd_model *model = cg_jit_lookup(cm, "nnd_model");
	int rc = 2;
	if (model)
		rc = nnd_rt_main(argc, argv, model);
	cg_free(cm);
	return rc;
}
