/* llvm.c - lowering a planned IR module to LLVM IR through the C API, then
 * to an object file, an executable, or an in-memory JIT.
 *
 * Every node becomes one loop nest ("kernel"), outlined into an internal
 * function `<step>.n<ID>(nnd_step_args *a, i64 lo, i64 hi)` that computes
 * the units [lo, hi) of the node's outermost independent dimension (rows,
 * blocks of a matmul's output, output elements of a reduction, chunks of an
 * elementwise op).  The step function calls it through
 * nnd_rt_parallel_for(kernel, a, units, grain), or directly over [0, units)
 * where the node must run as one range (scalar results such as a loss, and
 * the test-only racy plan, whose runtime sum uses the pool itself).  A unit
 * is always a set of whole outputs, so a reduction is never split across
 * threads and the bits never depend on the thread count.
 *
 * The float operations are exactly those ir/ops.def spells out, in that
 * order, with no fast-math flags and no fmuladd: the optimiser may
 * vectorise and unroll (which never changes a bit of these kernels because
 * no reduction is ever reassociated: a sum is always carried in its plan's
 * order, with the vectorised loop, if any, running over independent
 * outputs), but it cannot change a result.
 *
 * Reduction plans (passes/plans.c defines them): every sum goes through
 * emit_reduce(), which implements seq, blocked:N, tree:F and (test only)
 * racy for a scalar accumulator fed by a term callback; the kernels whose
 * fast seq form accumulates in memory across a vectorised loop of outputs
 * (sum/mean/sum_to) keep that form for seq and use emit_reduce per output
 * for the other plans; matmul implements seq and blocked:N (N <= 256) in its
 * register-blocked microkernel and tree:F / larger blocks in a per-output
 * generic path.  max, argmax and accuracy's count do not depend on the
 * order of their inputs (max propagates NaN, argmax takes the first NaN or
 * the lowest index of the max, the count is an integer), so every plan but
 * racy shares their sequential code.
 *
 * With args->debug set, the step function reports every node's value (for
 * an update op: the updated parameter) through nnd_rt_node_digest.
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
#define NND_LINK_LIBS "-lz -ldeflate -lcrypto -lcjson -lm -lpthread"
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

/* a node's kernel being emitted (see kern_begin) */
typedef struct kern {
	LLVMValueRef fn, lo, hi;          /* the kernel and its range parameters */
	LLVMValueRef units, grain;        /* values of the step function */
	bool direct;                      /* one call over [0, units), no pool */
	LLVMValueRef s_fn, s_args, s_B, s_Bmax, s_panel;
	LLVMBasicBlockRef s_entry, s_block;
} kern;


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
	int gidx;                                     /* graph: 0 train, 1 eval, 2 infer */
	const char *fname;                            /* the step function's name */
	LLVMTypeRef kern_ty;                          /* void (ptr, i64, i64) */
	LLVMValueRef debug;                           /* i1: args->debug & 1 (step function) */
	LLVMValueRef prof;                            /* i1: args->debug & 2 (step function) */
	bool grain1;                                  /* NND_CG_GRAIN1 set: every grain is 1 unit */
	bool in_kern;                                 /* emitting a kernel: */
	kern kcur;                                    /* its state (kern_abort) */
} cg;

/* nnd_step_args field indices (runtime/rt.h) */
enum { A_PARAMS, A_GRADS, A_OPT, A_STATE, A_ACTS, A_INPUTS, A_SAMPLE_IDX, A_KEYS,
       A_OUTPUTS, A_B, A_BMAX, A_STEP, A_EPOCH, A_LR, A_BC1, A_BC2, A_RESULT, A_DEBUG,
       A_NFIELDS };

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

/* llvm.fma: a*b+acc with one rounding, scalar or vector -- only where a
 * fused plan (+fma) asks for it (determinism.md: an fma happens only where
 * the IR says fma); LLVM never forms one by itself without contract flags */
static LLVMValueRef build_fma(cg *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc)
{
	static const char nm[] = "llvm.fma";
	unsigned id = LLVMLookupIntrinsicID(nm, sizeof nm - 1);
	LLVMTypeRef ov[1] = { LLVMTypeOf(a) };
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ov, 1);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, ov, 1);
	LLVMValueRef args[3] = { a, b, acc };
	return LLVMBuildCall2(c->b, fty, f, args, 3, "");
}

/* one term of a dot product: acc + a*b, fused (one rounding) or not */
static LLVMValueRef dot_step(cg *c, bool fused, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b)
{
	return fused ? build_fma(c, a, b, acc) : fadd(c, acc, fmul(c, a, b));
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
	case IR_BLK_RESULT: field = A_RESULT; break;
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

static LLVMValueRef sub(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(c->b, a, b, ""); }
static LLVMValueRef sdiv(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSDiv(c->b, a, b, ""); }
static LLVMValueRef smin(cg *c, LLVMValueRef a, LLVMValueRef b)
{
	return sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, a, b, ""), a, b);
}
static LLVMValueRef smax(cg *c, LLVMValueRef a, LLVMValueRef b)
{
	return sel(c, LLVMBuildICmp(c->b, LLVMIntSGT, a, b, ""), a, b);
}
/* ceil(a / b) for a >= 0, b >= 1 */
static LLVMValueRef cdiv(cg *c, LLVMValueRef a, LLVMValueRef b)
{
	return sdiv(c, add(c, a, sub(c, b, ci64(c, 1))), b);
}

/* for (iv = lo; iv < hi; iv++) */
static LLVMValueRef range_begin(cg *c, cg_loop *l, LLVMValueRef lo, LLVMValueRef hi)
{
	return add(c, loop_begin(c, l, sub(c, hi, lo)), lo);
}

/* if (cond) { ... }: returns the join block, the builder is in the then block */
static LLVMBasicBlockRef if_begin(cg *c, LLVMValueRef cond)
{
	LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "then");
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "endif");
	LLVMBuildCondBr(c->b, cond, then, join);
	LLVMPositionBuilderAtEnd(c->b, then);
	return join;
}
static void if_end(cg *c, LLVMBasicBlockRef join)
{
	LLVMBuildBr(c->b, join);
	LLVMPositionBuilderAtEnd(c->b, join);
}

/* A unit range [lo, hi) over a 2-d index space [outer, inner] flattened
 * row-major: one iteration per outer index the range touches, with the
 * part [qlo, qhi) of its inner indices that lies in the range. */
typedef struct cg_span {
	cg_loop l;
	LLVMValueRef outer, qlo, qhi;
} cg_span;

static void span_begin(cg *c, cg_span *s, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef inner)
{
	LLVMValueRef in1 = smax(c, inner, ci64(c, 1));   /* inner == 0: no units, no division by 0 */
	s->outer = range_begin(c, &s->l, sdiv(c, lo, in1), cdiv(c, hi, in1));
	LLVMValueRef base = mul(c, s->outer, in1);
	s->qlo = smax(c, sub(c, lo, base), ci64(c, 0));
	s->qhi = smin(c, sub(c, hi, base), inner);
}
static void span_end(cg *c, cg_span *s) { loop_end(c, &s->l); }

/* ------------------------------------------------------------------ */
/* kernels: one outlined function per node, run over unit ranges        */

/* Work per chunk below which a range is not worth handing to another
 * thread (units of the cheapest operation: one load-op-store of a float).
 * They only decide speed: every range holds whole outputs. */
#define GRAIN_CHEAP 32768      /* elementwise arithmetic, copies, sums */
#define GRAIN_CALL 2048        /* elementwise ops that call nnd's math per element */
#define GRAIN_RNG 1024         /* one Philox call per element */
#define GRAIN_MAC 131072       /* matmul multiply-adds */

/* grain in units: ceil(work / per_unit) (per_unit computed in the step
 * function; 0 counts as 1) */
static LLVMValueRef grain_of(cg *c, int64_t work, LLVMValueRef per_unit)
{
	if (c->grain1)
		return ci64(c, 1);
	return cdiv(c, ci64(c, work), smax(c, per_unit, ci64(c, 1)));
}

/* Starts node n's kernel: units and grain are values of the step
 * function; from here until kern_end everything is emitted into the
 * kernel, whose c->args, c->B, c->Bmax are its own.  Returns [lo, hi). */
static void kern_begin(cg *c, const ir_node *n, kern *k, LLVMValueRef units, LLVMValueRef grain, bool direct)
{
	char name[128];
	snprintf(name, sizeof name, "%s.n%d", c->fname, n->id);
	k->units = units;
	k->grain = grain;
	k->direct = direct;
	k->s_fn = c->fn;
	k->s_args = c->args;
	k->s_B = c->B;
	k->s_Bmax = c->Bmax;
	k->s_panel = c->mm_panel;
	k->s_entry = c->entry;
	k->s_block = LLVMGetInsertBlock(c->b);
	k->fn = LLVMAddFunction(c->mod, name, c->kern_ty);
	LLVMSetLinkage(k->fn, LLVMInternalLinkage);
	c->fn = k->fn;
	c->args = LLVMGetParam(k->fn, 0);
	k->lo = LLVMGetParam(k->fn, 1);
	k->hi = LLVMGetParam(k->fn, 2);
	c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
	c->mm_panel = NULL;
	LLVMPositionBuilderAtEnd(c->b, c->entry);
	c->B = load_field(c, A_B, c->i64);
	c->Bmax = load_field(c, A_BMAX, c->i64);
	LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
	LLVMBuildBr(c->b, body);
	LLVMPositionBuilderAtEnd(c->b, body);
	c->kcur = *k;
	c->in_kern = true;
}

static void kern_restore(cg *c, kern *k)
{
	c->fn = k->s_fn;
	c->args = k->s_args;
	c->B = k->s_B;
	c->Bmax = k->s_Bmax;
	c->mm_panel = k->s_panel;
	c->entry = k->s_entry;
	LLVMPositionBuilderAtEnd(c->b, k->s_block);
	c->in_kern = false;
}

/* Ends the kernel and calls it from the step function. */
static void kern_end(cg *c, kern *k)
{
	LLVMBuildRetVoid(c->b);
	kern_restore(c, k);
	if (k->direct) {
		LLVMValueRef a[3] = { c->args, ci64(c, 0), k->units };
		LLVMBuildCall2(c->b, c->kern_ty, k->fn, a, 3, "");
		return;
	}
	LLVMTypeRef pt[4] = { c->ptr, c->ptr, c->i64, c->i64 };
	LLVMTypeRef fty = LLVMFunctionType(c->vd, pt, 4, 0);
	LLVMValueRef a[4] = { LLVMBuildPointerCast(c->b, k->fn, c->ptr, ""), c->args, k->units, k->grain };
	LLVMBuildCall2(c->b, fty, rt_fn(c, "nnd_rt_parallel_for", fty), a, 4, "");
}

/* after an emitter failed half way: close the kernel (the module is
 * thrown away) and go back to the step function */
static void kern_abort(cg *c)
{
	if (!c->in_kern)
		return;
	if (!LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(c->b)))
		LLVMBuildUnreachable(c->b);
	kern k = c->kcur;
	kern_restore(c, &k);
}

/* ------------------------------------------------------------------ */
/* reduction plans                                                     */

/* plans.c guarantees blocked:N with N >= 2 and tree:F with F >= 2; the
 * test-only racy plan is accepted only where `racy_ok`. */
static int check_plan(cg *c, const ir_node *n, bool racy_ok)
{
	char buf[64];
	if (n->plan.fused && (!(ir_ops[n->op].flags & IR_F_DOT) ||
	                      (n->plan.family != IR_PLAN_SEQ && n->plan.family != IR_PLAN_BLOCKED)))
		return cg_err(c, n, "plan %s: only seq and blocked dot products can be fused",
		              ir_plan_str(n->plan, buf, sizeof buf));
	switch (n->plan.family) {
	case IR_PLAN_SEQ: return 0;
	case IR_PLAN_BLOCKED:
		if (n->plan.block >= 1)
			return 0;
		break;
	case IR_PLAN_TREE:
		if (n->plan.fanin >= 2)
			return 0;
		break;
	case IR_PLAN_RACY:
		if (racy_ok)
			return 0;
		return cg_err(c, n, "the test-only racy plan is supported only for sum/mean over a contiguous "
		              "axis and cross_entropy's batch sum (and cross_entropy_bwd, as seq)");
	case IR_PLAN_NONE:
		return cg_err(c, n, "reduction without a plan");
	}
	return cg_err(c, n, "malformed reduction plan %s", ir_plan_str(n->plan, buf, sizeof buf));
}

/* llvm.stacksave / llvm.stackrestore (overloaded on the pointer type from
 * LLVM 18 on) */
static LLVMValueRef stack_intrinsic(cg *c, const char *nm, LLVMValueRef arg)
{
	unsigned id = LLVMLookupIntrinsicID(nm, strlen(nm));
	LLVMTypeRef ov[1] = { c->ptr };
	size_t nov = LLVMIntrinsicIsOverloaded(id) ? 1 : 0;
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ov, nov);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, ov, nov);
	return LLVMBuildCall2(c->b, fty, f, arg ? &arg : NULL, arg ? 1 : 0, "");
}

/* term k of a reduction, emitted at the builder's position; called exactly
 * once per k, in ascending k (so a term may also store a side result) */
typedef LLVMValueRef (*cg_term_fn)(cg *c, void *ctx, LLVMValueRef k);

/* float[len] on the stack, filled with the terms in index order (between
 * a stacksave and a stackrestore: *save) */
static LLVMValueRef terms_buffer(cg *c, LLVMValueRef len, cg_term_fn term, void *ctx, LLVMValueRef *save)
{
	*save = stack_intrinsic(c, "llvm.stacksave", NULL);
	LLVMValueRef buf = LLVMBuildArrayAlloca(c->b, c->f32, len, "terms");
	LLVMSetAlignment(buf, 16);
	cg_loop l;
	LLVMValueRef k = loop_begin(c, &l, len);
	store_at(c, c->f32, buf, k, term(c, ctx, k));
	loop_end(c, &l);
	return buf;
}

/* The sum of term(0..len) in the order of `plan` (passes/plans.c):
 *   seq        acc = +0; acc = acc + t_k for k = 0, 1, ...
 *   blocked:N  blocks of N consecutive terms (the last may be shorter),
 *              each summed seq from +0; the block sums summed seq from +0
 *   tree:F     groups of F consecutive terms, each summed from its first
 *              term, form the next level, until one remains (no terms: +0)
 *   racy       (test only) the terms in a buffer, summed by
 *              nnd_rt_racy_sum: must not run inside a parallel range */
static LLVMValueRef emit_reduce(cg *c, ir_plan plan, LLVMValueRef len, cg_term_fn term, void *ctx)
{
	LLVMValueRef zero = cf32(c, 0.0f);
	cg_loop l, l2;
	switch (plan.family) {
	case IR_PLAN_BLOCKED: {
		LLVMValueRef NB = ci64(c, plan.block);
		LLVMValueRef tot = new_var(c, c->f32, zero);
		LLVMValueRef b = loop_begin(c, &l, cdiv(c, len, NB));
		LLVMValueRef p = new_var(c, c->f32, zero);
		LLVMValueRef k0 = mul(c, b, NB);
		LLVMValueRef kk = loop_begin(c, &l2, smin(c, NB, sub(c, len, k0)));
		set_var(c, p, fadd(c, get_var(c, c->f32, p), term(c, ctx, add(c, k0, kk))));
		loop_end(c, &l2);
		set_var(c, tot, fadd(c, get_var(c, c->f32, tot), get_var(c, c->f32, p)));
		loop_end(c, &l);
		return get_var(c, c->f32, tot);
	}
	case IR_PLAN_TREE: {
		LLVMValueRef save, F = ci64(c, plan.fanin);
		LLVMValueRef buf = terms_buffer(c, len, term, ctx, &save);
		/* level by level, in place: group g's sum goes to buf[g] (g <= g*F) */
		LLVMValueRef cnt = new_var(c, c->i64, len);
		LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tree.level");
		LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tree.body");
		LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tree.done");
		LLVMBuildBr(c->b, head);
		LLVMPositionBuilderAtEnd(c->b, head);
		LLVMValueRef nlev = get_var(c, c->i64, cnt);
		LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, nlev, ci64(c, 1), ""), body, done);
		LLVMPositionBuilderAtEnd(c->b, body);
		LLVMValueRef ng = cdiv(c, nlev, F);
		LLVMValueRef g = loop_begin(c, &l, ng);
		LLVMValueRef first = mul(c, g, F);
		LLVMValueRef s = new_var(c, c->f32, load_at(c, c->f32, buf, first));
		LLVMValueRef j = loop_begin(c, &l2, sub(c, smin(c, F, sub(c, nlev, first)), ci64(c, 1)));
		set_var(c, s, fadd(c, get_var(c, c->f32, s), load_at(c, c->f32, buf, add(c, add(c, first, ci64(c, 1)), j))));
		loop_end(c, &l2);
		store_at(c, c->f32, buf, g, get_var(c, c->f32, s));
		loop_end(c, &l);
		set_var(c, cnt, ng);
		LLVMBuildBr(c->b, head);
		LLVMPositionBuilderAtEnd(c->b, done);
		LLVMValueRef r = new_var(c, c->f32, zero);
		LLVMBasicBlockRef join = if_begin(c, LLVMBuildICmp(c->b, LLVMIntSGT, len, ci64(c, 0), ""));
		set_var(c, r, load_at(c, c->f32, buf, ci64(c, 0)));
		if_end(c, join);
		LLVMValueRef rv = get_var(c, c->f32, r);
		stack_intrinsic(c, "llvm.stackrestore", save);
		return rv;
	}
	case IR_PLAN_RACY: {
		LLVMValueRef save;
		LLVMValueRef buf = terms_buffer(c, len, term, ctx, &save);
		LLVMTypeRef pt[2] = { c->ptr, c->i64 };
		LLVMTypeRef fty = LLVMFunctionType(c->f32, pt, 2, 0);
		LLVMValueRef a[2] = { LLVMBuildPointerCast(c->b, buf, c->ptr, ""), len };
		LLVMValueRef r = LLVMBuildCall2(c->b, fty, rt_fn(c, "nnd_rt_racy_sum", fty), a, 2, "");
		stack_intrinsic(c, "llvm.stackrestore", save);
		return r;
	}
	default: {   /* seq */
		LLVMValueRef acc = new_var(c, c->f32, zero);
		LLVMValueRef k = loop_begin(c, &l, len);
		set_var(c, acc, fadd(c, get_var(c, c->f32, acc), term(c, ctx, k)));
		loop_end(c, &l);
		return get_var(c, c->f32, acc);
	}
	}
}

/* A row-major loop nest over `rank` dims with up to 5 linear indices, one
 * per operand, each the dot product of the induction variables with that
 * operand's strides (0 for broadcast dims).  The innermost stride is a
 * literal 1 or 0 so the vectoriser sees unit-stride or invariant access. */
#define CG_NEST_OPS (1 + IR_TREE_LEAVES)   /* the result and a fused tree's loads */
typedef struct cg_nest {
	int rank, nops;
	LLVMValueRef dim[IR_MAX_RANK];      /* trip counts */
	LLVMValueRef lo[IR_MAX_RANK];       /* first index of each dim (NULL: 0) */
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
		if (ns->lo[k])
			iv = add(c, iv, ns->lo[k]);
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

/* elements per chunk worth a thread, by the cost of one element */
static int64_t elem_grain(ir_opcode op)
{
	switch (op) {
	case IR_EXP: case IR_LOG: case IR_TANH: case IR_SIGMOID: case IR_GELU: case IR_POW:
	case IR_GELU_BWD:
		return GRAIN_CALL;
	default:
		return GRAIN_CHEAP;
	}
}

/* units: the result's first dim (rank 0: one unit) */
static void elem_units(cg *c, const ir_type *t, int64_t work, LLVMValueRef *units, LLVMValueRef *grain)
{
	if (t->rank == 0) {
		*units = ci64(c, 1);
		*grain = ci64(c, 1);
		return;
	}
	*units = dim_val(c, t->d[0]);
	*grain = grain_of(c, work, dims_prod(c, t, 1, t->rank));
}

/* A fused elementwise tree (ir_fused_tree): its leaves are read with
 * their broadcast strides against the root's shape, exactly as their own
 * readers would read them. */
static int tree_of(cg *c, const ir_node *n, ir_tree *t)
{
	const ir_node *bad;
	char err[128];
	if (ir_fused_tree(c->g, n, t, &bad, err, sizeof err))
		return cg_err(c, bad, "%s", err);
	return 0;
}

static cg_scalar_fn elem_rule(cg *c, const ir_node *n);
/* The loop shape of a fused tree: the root's dims with every run of
 * constant dims after the first merged into one wherever each leaf is
 * either read along all of them or broadcast along all of them (then the
 * merged dim is contiguous, or stride 0, for every operand).  [B, 28, 28]
 * loops as [B, 784]: long unit-stride inner loops vectorise without a
 * scalar tail every 28 elements.  Dim 0 stays: it is the unit dim. */
static void coalesce(const ir_type *out, const ir_tree *t, ir_type *mout, ir_type *mleaf)
{
	int R = out->rank;
	/* bc[j][k]: leaf j is broadcast along root dim k (missing or 1) */
	bool bc[CG_NEST_OPS][IR_MAX_RANK];
	for (int j = 0; j < t->nleaf; j++)
		for (int k = 0; k < R; k++) {
			int d = k - (R - t->leaf[j]->type.rank);
			bc[j][k] = d < 0 || dim_is_one(t->leaf[j]->type.d[d]);
		}
	*mout = *out;
	mout->rank = 0;
	for (int j = 0; j < t->nleaf; j++) {
		mleaf[j] = t->leaf[j]->type;
		mleaf[j].rank = 0;
	}
	for (int k = 0; k < R; k++) {
		bool merge = k >= 2 && mout->d[mout->rank - 1].sym == 0 && out->d[k].sym == 0;
		for (int j = 0; merge && j < t->nleaf; j++)
			merge = bc[j][k] == bc[j][k - 1];
		if (merge) {
			mout->d[mout->rank - 1].c *= out->d[k].c;
			for (int j = 0; j < t->nleaf; j++)
				if (!bc[j][k])
					mleaf[j].d[mleaf[j].rank - 1].c *= out->d[k].c;
			continue;
		}
		mout->d[mout->rank++] = out->d[k];
		for (int j = 0; j < t->nleaf; j++)
			mleaf[j].d[mleaf[j].rank++] = bc[j][k] ? (ir_dim){ 1, 0 } : out->d[k];
	}
}


static int emit_elementwise(cg *c, const ir_node *n, cg_scalar_fn f)
{
	cg_val out, in[CG_NEST_OPS];
	ir_tree t;
	if (n->type.rank > IR_MAX_RANK || n->nin > 4)
		return cg_err(c, n, "bad rank or arity");
	if (n->op == IR_CONST || n->op == IR_NUMEL || n->blk == IR_BLK_NONE || n->blk == IR_BLK_FUSED)
		return cg_err(c, n, "an elementwise result needs storage");
	if (tree_of(c, n, &t))
		return -1;
	int64_t cost = GRAIN_CHEAP;
	for (int m = 0; m < t.ninner; m++) {
		const ir_node *x = t.inner[m];
		for (int i = 0; i < x->nin; i++)
			if (in_node(c, x, i)->type.rank > x->type.rank)
				return cg_err(c, x, "input %d has a higher rank than the result", i);
		if (x != n && (x->type.rank != n->type.rank || !elem_rule(c, x)))
			return cg_err(c, x, "cannot be fused into node %d", n->id);
		if (elem_grain(x->op) < cost)
			cost = elem_grain(x->op);
	}
	kern k;
	LLVMValueRef units, grain;
	elem_units(c, &n->type, cost, &units, &grain);
	kern_begin(c, n, &k, units, grain, n->type.rank == 0);
	if (val_of(c, n, &out))
		return -1;
	ir_type mout, mleaf[CG_NEST_OPS];
	coalesce(&n->type, &t, &mout, mleaf);
	cg_nest ns;
	memset(&ns, 0, sizeof ns);
	ns.rank = mout.rank;
	ns.nops = 1 + t.nleaf;
	for (int d = 0; d < ns.rank; d++)
		ns.dim[d] = dim_val(c, mout.d[d]);
	if (ns.rank > 0) {   /* dim 0 restricted to the range */
		ns.lo[0] = k.lo;
		ns.dim[0] = sub(c, k.hi, k.lo);
	}
	strides_of(c, &mout, ns.stride[0]);
	for (int i = 0; i < t.nleaf; i++) {
		if (val_of(c, t.leaf[i], &in[i]))
			return -1;
		bcast_strides(c, &mleaf[i], ns.rank, ns.stride[1 + i]);
	}
	nest_begin(c, &ns);
	/* values of this element: leaves first, then the inner nodes in order */
	const ir_node *vn[IR_TREE_LEAVES + IR_TREE_INNER];
	cg_val vv[IR_TREE_LEAVES + IR_TREE_INNER];
	LLVMValueRef vx[IR_TREE_LEAVES + IR_TREE_INNER];
	int nv = 0;
	for (int i = 0; i < t.nleaf; i++, nv++) {
		vn[nv] = t.leaf[i];
		vv[nv] = in[i];
		vx[nv] = vload(c, &in[i], ns.idx[1 + i]);
	}
	LLVMValueRef y = NULL;
	for (int m = 0; m < t.ninner; m++) {
		const ir_node *x = t.inner[m];
		cg_val xin[4];
		LLVMValueRef xs[4];
		for (int i = 0; i < x->nin; i++) {
			int j = nv - 1;
			while (j >= 0 && vn[j] != in_node(c, x, i))
				j--;
			if (j < 0)
				return cg_err(c, x, "fused input %d not computed", i);
			xin[i] = vv[j];
			xs[i] = vx[j];
		}
		y = (x == n ? f : elem_rule(c, x))(c, x, xin, xs);
		if (!y)
			return -1;
		vn[nv] = x;
		vv[nv] = (cg_val){ .n = x, .ty = elem_ty(c, x->type.dt) };
		vx[nv++] = y;
	}
	vstore(c, &out, ns.idx[0], y);
	nest_end(c, &ns);
	kern_end(c, &k);
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

/* The scalar rule of an elementwise op after its operand checks; NULL
 * (with the error reported) when the node is malformed.  Used for a
 * kernel's own node and for every node fused into it. */
static cg_scalar_fn elem_rule(cg *c, const ir_node *n)
{
	cg_scalar_fn f32fn = NULL;
	switch (n->op) {
	case IR_NEG: return s_neg;
	case IR_CAST: return s_cast;
	case IR_ADD: case IR_SUB: case IR_MUL: case IR_DIV: return s_arith;
	case IR_WHERE:
		if (in_node(c, n, 1)->type.dt != n->type.dt || in_node(c, n, 2)->type.dt != n->type.dt) {
			cg_err(c, n, "branch dtypes differ from the result's");
			return NULL;
		}
		return s_where;
	case IR_EXP: f32fn = s_exp; break;
	case IR_LOG: f32fn = s_log; break;
	case IR_SQRT: f32fn = s_sqrt; break;
	case IR_TANH: f32fn = s_tanh; break;
	case IR_SIGMOID: f32fn = s_sigmoid; break;
	case IR_RELU: f32fn = s_relu; break;
	case IR_GELU: f32fn = s_gelu; break;
	case IR_POW: f32fn = s_pow; break;
	case IR_MAXIMUM: case IR_MINIMUM: f32fn = s_maxmin; break;
	case IR_GE: f32fn = s_ge; break;
	case IR_RELU_BWD: f32fn = s_relu_bwd; break;
	case IR_TANH_BWD: f32fn = s_tanh_bwd; break;
	case IR_SIGMOID_BWD: f32fn = s_sigmoid_bwd; break;
	case IR_GELU_BWD: f32fn = s_gelu_bwd; break;
	default:
		cg_err(c, n, "not an elementwise op");
		return NULL;
	}
	return need_f32(c, n) ? NULL : f32fn;
}

static int emit_elem(cg *c, const ir_node *n)
{
	cg_scalar_fn f = elem_rule(c, n);
	return f ? emit_elementwise(c, n, f) : -1;
}
#define CG_ELEM(ID) static int emit_##ID(cg *c, const ir_node *n) { return emit_elem(c, n); }
CG_ELEM(NEG) CG_ELEM(CAST) CG_ELEM(ADD) CG_ELEM(SUB) CG_ELEM(MUL) CG_ELEM(DIV) CG_ELEM(WHERE)
CG_ELEM(EXP) CG_ELEM(LOG) CG_ELEM(SQRT) CG_ELEM(TANH) CG_ELEM(SIGMOID) CG_ELEM(RELU) CG_ELEM(GELU)
CG_ELEM(POW) CG_ELEM(MAXIMUM) CG_ELEM(MINIMUM) CG_ELEM(GE) CG_ELEM(RELU_BWD) CG_ELEM(TANH_BWD)
CG_ELEM(SIGMOID_BWD) CG_ELEM(GELU_BWD)
#undef CG_ELEM
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
	kern k;
	LLVMValueRef units = numel_val(c, &n->type);
	kern_begin(c, n, &k, units, grain_of(c, GRAIN_CHEAP, ci64(c, 1)), false);
	cg_val v, out;
	if (val_of(c, n, &v))
		return -1;
	out = v;
	out.imm = NULL;
	if (!(out.base = node_base(c, n)))
		return -1;
	cg_loop l;
	LLVMValueRef i = range_begin(c, &l, k.lo, k.hi);
	vstore(c, &out, i, v.imm);
	loop_end(c, &l);
	kern_end(c, &k);
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
	kern k;
	kern_begin(c, n, &k, numel_val(c, &n->type), grain_of(c, GRAIN_CHEAP, ci64(c, 1)), false);
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	cg_loop l;
	LLVMValueRef i = range_begin(c, &l, k.lo, k.hi);
	vstore(c, &out, i, vload(c, &in, i));
	loop_end(c, &l);
	kern_end(c, &k);
	return 0;
}

/* Output axis d reads input axis perm[d] (ops.def).  When the input's
 * last axis stays last, every output row is a contiguous run of the input:
 * a plain nest over the output, units = its first dim.  Otherwise the two
 * axes that carry the contiguous runs -- output axis q (the input's last
 * axis) and the output's last axis -- are cut into TR_TILE x TR_TILE tiles
 * so that both the tile's reads and its writes stay in cache (8: measured,
 * one thread, AVX-512, f32[1024, 2048] -> [2048, 1024]: 1.5 ms; tiles of
 * 16: 2.7 ms, of 32 or 64: 6 ms; the untiled nest: 10 to 12 ms).  Units are
 * then (the other output axes flattened, row tiles of axis q): a unit
 * writes all the output elements of its tile row, so units never share an
 * output.  Only speed depends on the tiling: every element is one copy. */
#define TR_TILE 8
static int emit_TRANSPOSE(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int r = n->type.rank, perm[IR_MAX_RANK], q = -1;
	if (x->type.rank != r || !ir_perm_unpack(n->ia[0], r, perm))
		return cg_err(c, n, "bad transpose permutation");
	if (x->type.dt != n->type.dt)
		return cg_err(c, n, "dtype changes");
	for (int d = 0; d < r; d++)
		if (perm[d] == r - 1)
			q = d;
	kern k;
	cg_val in, out;
	LLVMValueRef is[IR_MAX_RANK], os[IR_MAX_RANK];
	if (r < 2 || q == r - 1) {
		LLVMValueRef units, grain;
		elem_units(c, &n->type, GRAIN_CHEAP, &units, &grain);
		kern_begin(c, n, &k, units, grain, r == 0);
		if (val_of(c, x, &in) || val_of(c, n, &out))
			return -1;
		cg_nest ns;
		memset(&ns, 0, sizeof ns);
		ns.rank = r;
		ns.nops = 2;
		strides_of(c, &n->type, ns.stride[0]);
		strides_of(c, &x->type, is);
		for (int d = 0; d < r; d++) {
			ns.dim[d] = dim_val(c, n->type.d[d]);
			ns.stride[1][d] = is[perm[d]];
		}
		if (r > 0) {
			ns.lo[0] = k.lo;
			ns.dim[0] = sub(c, k.hi, k.lo);
		}
		nest_begin(c, &ns);
		vstore(c, &out, ns.idx[0], vload(c, &in, ns.idx[1]));
		nest_end(c, &ns);
		kern_end(c, &k);
		return 0;
	}
	/* tiled: units = P * ceil(Dq / T), P = product of the output's other axes */
	LLVMValueRef T = ci64(c, TR_TILE);
	LLVMValueRef P = ci64(c, 1);
	for (int d = 0; d < r - 1; d++)
		if (d != q)
			P = mul(c, P, dim_val(c, n->type.d[d]));
	LLVMValueRef units = mul(c, P, cdiv(c, dim_val(c, n->type.d[q]), T));
	kern_begin(c, n, &k, units, grain_of(c, GRAIN_CHEAP, mul(c, T, dim_val(c, n->type.d[r - 1]))), false);
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	strides_of(c, &n->type, os);
	strides_of(c, &x->type, is);
	LLVMValueRef Dq = dim_val(c, n->type.d[q]), Dl = dim_val(c, n->type.d[r - 1]);
	LLVMValueRef nqt = cdiv(c, Dq, T), sl = is[perm[r - 1]];
	cg_loop lu, lj, li, le;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef qt = LLVMBuildSRem(c->b, u, nqt, ""), rest = sdiv(c, u, nqt);
	LLVMValueRef ob = ci64(c, 0), ib = ci64(c, 0);
	for (int d = r - 2; d >= 0; d--) {   /* the other axes, last first */
		if (d == q)
			continue;
		LLVMValueRef e = dim_val(c, n->type.d[d]);
		LLVMValueRef qq = sdiv(c, rest, e);
		LLVMValueRef id = sub(c, rest, mul(c, qq, e));
		ob = add(c, ob, mul(c, id, os[d]));
		ib = add(c, ib, mul(c, id, is[perm[d]]));
		rest = qq;
	}
	LLVMValueRef q0 = mul(c, qt, T);
	LLVMValueRef qn = smin(c, T, sub(c, Dq, q0));
	LLVMValueRef jt = loop_begin(c, &lj, cdiv(c, Dl, T));
	LLVMValueRef j0 = mul(c, jt, T);
	LLVMValueRef jn = smin(c, T, sub(c, Dl, j0));
	LLVMValueRef iq = add(c, loop_begin(c, &li, qn), q0);
	/* the input's last axis has stride 1 */
	LLVMValueRef orow = add(c, add(c, ob, mul(c, iq, os[q])), j0);
	LLVMValueRef irow = add(c, add(c, ib, iq), mul(c, j0, sl));
	LLVMValueRef j = loop_begin(c, &le, jn);
	vstore(c, &out, add(c, orow, j), vload(c, &in, add(c, irow, mul(c, j, sl))));
	loop_end(c, &le);
	loop_end(c, &li);
	loop_end(c, &lj);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

/* ------------------------------------------------------------------ */
/* reductions                                                          */

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

/* a strided run of terms: x[base + k * stride] */
typedef struct strided_terms { const cg_val *x; LLVMValueRef base, stride; } strided_terms;
static LLVMValueRef term_strided(cg *c, void *ctx, LLVMValueRef k)
{
	strided_terms *t = ctx;
	return vload(c, t->x, add(c, t->base, mul(c, k, t->stride)));
}

/* Sequential folds of many outputs, R at a time: out[k] for k in [lo, hi)
 * is init, then step(acc, x[(a*K + k)*Z + z]) for a = 0..A-1, z = 0..Z-1
 * in that order (then / div, if div).  Each of R consecutive outputs has
 * its own register accumulator and the R chains are interleaved, so the
 * loop runs at the adder's throughput instead of its latency; every
 * output still sees its terms in order (only which outputs run together
 * changes).  step: fadd, or max_step when is_max. */
#define FOLD_R 8
static void emit_fold(cg *c, const cg_val *in, const cg_val *out, LLVMValueRef lo, LLVMValueRef hi,
                      LLVMValueRef A, LLVMValueRef K, LLVMValueRef Z, LLVMValueRef init, bool is_max,
                      LLVMValueRef div)
{
	LLVMValueRef ng = sdiv(c, sub(c, hi, lo), ci64(c, FOLD_R));
	for (int pass = 0; pass < 2; pass++) {
		int R = pass ? 1 : FOLD_R;
		cg_loop lg, la, lz;
		LLVMValueRef k0 = pass ? range_begin(c, &lg, add(c, lo, mul(c, ng, ci64(c, FOLD_R))), hi)
		                       : add(c, lo, mul(c, loop_begin(c, &lg, ng), ci64(c, FOLD_R)));
		LLVMValueRef acc[FOLD_R];
		for (int r = 0; r < R; r++)
			acc[r] = new_var(c, c->f32, init);
		LLVMValueRef a = loop_begin(c, &la, A);
		LLVMValueRef base = mul(c, add(c, mul(c, a, K), k0), Z);
		LLVMValueRef z = loop_begin(c, &lz, Z);
		LLVMValueRef xi = add(c, base, z);
		for (int r = 0; r < R; r++) {
			LLVMValueRef v = vload(c, in, add(c, xi, mul(c, ci64(c, r), Z)));
			LLVMValueRef cur = get_var(c, c->f32, acc[r]);
			set_var(c, acc[r], is_max ? max_step(c, cur, v) : fadd(c, cur, v));
		}
		loop_end(c, &lz);
		loop_end(c, &la);
		for (int r = 0; r < R; r++) {
			LLVMValueRef v = get_var(c, c->f32, acc[r]);
			vstore(c, out, add(c, k0, ci64(c, r)), div ? fdiv(c, v, div) : v);
		}
		loop_end(c, &lg);
	}
}

/* SUM, MEAN, MAX over one axis: x viewed as [pre, len, post]; units are
 * the outputs (p, q), flattened.  seq (and any plan of MAX): loop order p,
 * k, q: out[p,q] is carried through k in ascending order; the q loop
 * (independent outputs, unit stride) is the one that may vectorise.  Other
 * plans: one emit_reduce per output. */
static int emit_axis_reduce(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int axis = 0;
	cg_val in, out;
	if (need_f32(c, n) || axis_of(c, n, &x->type, &axis))
		return -1;
	bool contiguous = true;
	for (int d = axis + 1; d < x->type.rank; d++)
		contiguous &= dim_is_one(x->type.d[d]);
	if (check_plan(c, n, n->op != IR_MAX && contiguous))
		return -1;
	bool vec = n->op == IR_MAX || n->plan.family == IR_PLAN_SEQ;
	kern k;
	LLVMValueRef units = mul(c, dims_prod(c, &x->type, 0, axis), dims_prod(c, &x->type, axis + 1, x->type.rank));
	kern_begin(c, n, &k, units, grain_of(c, GRAIN_CHEAP, dim_val(c, x->type.d[axis])),
	           n->plan.family == IR_PLAN_RACY);
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	LLVMValueRef len = dim_val(c, x->type.d[axis]);
	LLVMValueRef post = dims_prod(c, &x->type, axis + 1, x->type.rank);
	if (!vec) {
		LLVMValueRef post1 = smax(c, post, ci64(c, 1));
		cg_loop lo;
		LLVMValueRef o = range_begin(c, &lo, k.lo, k.hi);
		LLVMValueRef p = sdiv(c, o, post1), q = sub(c, o, mul(c, p, post1));
		strided_terms t = { &in, add(c, mul(c, mul(c, p, len), post), q), post };
		LLVMValueRef v = emit_reduce(c, n->plan, len, term_strided, &t);
		if (n->op == IR_MEAN)
			v = fdiv(c, v, i2f(c, len));
		vstore(c, &out, o, v);
		loop_end(c, &lo);
		kern_end(c, &k);
		return 0;
	}
	LLVMValueRef init = n->op == IR_MAX ? cf32(c, -__builtin_inff()) : cf32(c, 0.0f);
	if (contiguous) {
		/* post == 1: out[p] = fold of the row x[p*len ..], rows interleaved */
		emit_fold(c, &in, &out, k.lo, k.hi, ci64(c, 1), ci64(c, 0), len, init, n->op == IR_MAX,
		          n->op == IR_MEAN ? i2f(c, len) : NULL);
		kern_end(c, &k);
		return 0;
	}
	cg_span sp;
	cg_loop lk, lq;
	span_begin(c, &sp, k.lo, k.hi, post);
	LLVMValueRef p = sp.outer;
	LLVMValueRef obase = mul(c, p, post);
	LLVMValueRef q = range_begin(c, &lq, sp.qlo, sp.qhi);
	vstore(c, &out, add(c, obase, q), init);
	loop_end(c, &lq);
	LLVMValueRef kk = loop_begin(c, &lk, len);
	LLVMValueRef xbase = mul(c, add(c, mul(c, p, len), kk), post);
	q = range_begin(c, &lq, sp.qlo, sp.qhi);
	LLVMValueRef oi = add(c, obase, q);
	LLVMValueRef acc = vload(c, &out, oi), v = vload(c, &in, add(c, xbase, q));
	vstore(c, &out, oi, n->op == IR_MAX ? max_step(c, acc, v) : fadd(c, acc, v));
	loop_end(c, &lq);
	loop_end(c, &lk);
	if (n->op == IR_MEAN) {
		LLVMValueRef fn_ = i2f(c, len);
		q = range_begin(c, &lq, sp.qlo, sp.qhi);
		oi = add(c, obase, q);
		vstore(c, &out, oi, fdiv(c, vload(c, &out, oi), fn_));
		loop_end(c, &lq);
	}
	span_end(c, &sp);
	kern_end(c, &k);
	return 0;
}

static int emit_SUM(cg *c, const ir_node *n) { return emit_axis_reduce(c, n); }
static int emit_MEAN(cg *c, const ir_node *n) { return emit_axis_reduce(c, n); }
static int emit_MAX(cg *c, const ir_node *n) { return emit_axis_reduce(c, n); }

/* any plan: the result does not depend on the order (see the top) */
static int emit_ARGMAX(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	int axis = 0;
	cg_val in, out;
	if (check_plan(c, n, false) || axis_of(c, n, &x->type, &axis))
		return -1;
	if (x->type.dt != IR_F32 || n->type.dt != IR_I32)
		return cg_err(c, n, "argmax maps f32 to i32");
	kern k;
	LLVMValueRef units = mul(c, dims_prod(c, &x->type, 0, axis), dims_prod(c, &x->type, axis + 1, x->type.rank));
	kern_begin(c, n, &k, units, grain_of(c, GRAIN_CHEAP / 4, dim_val(c, x->type.d[axis])), false);
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	LLVMValueRef len = dim_val(c, x->type.d[axis]);
	LLVMValueRef post = dims_prod(c, &x->type, axis + 1, x->type.rank);
	LLVMValueRef post1 = smax(c, post, ci64(c, 1));
	LLVMValueRef best = new_var(c, c->f32, cf32(c, 0.0f));
	LLVMValueRef bidx = new_var(c, c->i64, ci64(c, 0));
	cg_loop lo, lk;
	LLVMValueRef o = range_begin(c, &lo, k.lo, k.hi);
	LLVMValueRef p = sdiv(c, o, post1), q = sub(c, o, mul(c, p, post1));
	set_var(c, best, cf32(c, -__builtin_inff()));
	set_var(c, bidx, ci64(c, 0));
	LLVMValueRef kk = loop_begin(c, &lk, len);
	LLVMValueRef xi = add(c, mul(c, add(c, mul(c, p, len), kk), post), q);
	argmax_step(c, best, bidx, vload(c, &in, xi), kk);
	loop_end(c, &lk);
	vstore(c, &out, o, LLVMBuildTrunc(c->b, get_var(c, c->i64, bidx), c->i32, ""));
	loop_end(c, &lo);
	kern_end(c, &k);
	return 0;
}

/* SUM_TO, other plans: the input elements of output o, in row-major order
 * of the reduced dims: x[base + sum_d idx_d(k) * stride_d] */
typedef struct sumto_terms {
	const cg_val *x;
	LLVMValueRef base;
	int nred;
	LLVMValueRef ext[IR_MAX_RANK], stride[IR_MAX_RANK];
} sumto_terms;
static LLVMValueRef term_sumto(cg *c, void *ctx, LLVMValueRef k)
{
	sumto_terms *t = ctx;
	LLVMValueRef off = t->base, rem = k;
	for (int r = t->nred - 1; r >= 0; r--) {
		LLVMValueRef q = r ? sdiv(c, rem, t->ext[r]) : ci64(c, 0);
		LLVMValueRef idx = r ? sub(c, rem, mul(c, q, t->ext[r])) : rem;
		off = add(c, off, mul(c, idx, t->stride[r]));
		rem = q;
	}
	return vload(c, t->x, off);
}

/* seq: out = +0; then every input element, in row-major order, is added to
 * the output element it maps to: each output's additions come in index
 * order.  Units: the first kept (not reduced) dim of x, so a range holds
 * whole outputs and the inner loops stay unit-stride.  Other plans: units
 * are the outputs, each one emit_reduce over its input elements. */
static int emit_SUM_TO(cg *c, const ir_node *n)
{
	const ir_node *x = in_node(c, n, 0);
	const ir_type *xt = &x->type, *tt = &n->type;
	cg_val in, out;
	if (check_plan(c, n, false) || need_f32(c, n))
		return -1;
	if (tt->rank > xt->rank)
		return cg_err(c, n, "target has a higher rank than the input");
	int rx = xt->rank, sh = rx - tt->rank, split = -1;
	bool kept[IR_MAX_RANK];
	for (int d = 0; d < rx; d++) {
		kept[d] = d >= sh && !dim_is_one(tt->d[d - sh]);
		if (kept[d] && split < 0)
			split = d;
	}
	kern k;
	if (n->plan.family != IR_PLAN_SEQ) {
		LLVMValueRef no = numel_val(c, tt), nx = numel_val(c, xt);
		kern_begin(c, n, &k, no, grain_of(c, GRAIN_CHEAP, sdiv(c, nx, smax(c, no, ci64(c, 1)))), false);
		if (val_of(c, x, &in) || val_of(c, n, &out))
			return -1;
		LLVMValueRef xs[IR_MAX_RANK];
		strides_of(c, xt, xs);
		sumto_terms t;
		memset(&t, 0, sizeof t);
		t.x = &in;
		LLVMValueRef R = ci64(c, 1);
		for (int d = 0; d < rx; d++)
			if (!kept[d]) {
				t.ext[t.nred] = dim_val(c, xt->d[d]);
				t.stride[t.nred++] = xs[d];
				R = mul(c, R, dim_val(c, xt->d[d]));
			}
		cg_loop lo;
		LLVMValueRef o = range_begin(c, &lo, k.lo, k.hi);
		LLVMValueRef rem = o, base = ci64(c, 0);
		for (int d = rx - 1; d >= sh; d--) {
			if (!kept[d])
				continue;   /* a literal 1 in the target: index 0 */
			LLVMValueRef e = dim_val(c, tt->d[d - sh]);
			LLVMValueRef q = sdiv(c, rem, e);
			base = add(c, base, mul(c, sub(c, rem, mul(c, q, e)), xs[d]));
			rem = q;
		}
		t.base = base;
		vstore(c, &out, o, emit_reduce(c, n->plan, R, term_sumto, &t));
		loop_end(c, &lo);
		kern_end(c, &k);
		return 0;
	}
	/* the kept dims one block [split, end) with reduced dims after it: x is
	 * [A, K, Z] and output k folds x[a, k, z] in (a, z) order, outputs
	 * interleaved (emit_fold) */
	int end = split;
	while (end >= 0 && end < rx && kept[end])
		end++;
	bool block = split >= 0 && end < rx;
	for (int d = end; block && d < rx; d++)
		block = !kept[d];
	if (block) {
		LLVMValueRef K = dims_prod(c, xt, split, end), Z = dims_prod(c, xt, end, rx);
		kern_begin(c, n, &k, K, grain_of(c, GRAIN_CHEAP, mul(c, dims_prod(c, xt, 0, split), Z)), false);
		if (val_of(c, x, &in) || val_of(c, n, &out))
			return -1;
		/* in the kernel: its own B */
		K = dims_prod(c, xt, split, end);
		Z = dims_prod(c, xt, end, rx);
		emit_fold(c, &in, &out, k.lo, k.hi, dims_prod(c, xt, 0, split), K, Z, cf32(c, 0.0f), false, NULL);
		kern_end(c, &k);
		return 0;
	}
	LLVMValueRef units = split >= 0 ? dim_val(c, xt->d[split]) : ci64(c, 1);
	LLVMValueRef per = split >= 0 ? mul(c, dims_prod(c, xt, 0, split), dims_prod(c, xt, split + 1, rx))
	                              : numel_val(c, xt);
	kern_begin(c, n, &k, units, grain_of(c, GRAIN_CHEAP, per), split < 0);
	if (val_of(c, x, &in) || val_of(c, n, &out))
		return -1;
	/* zero the outputs of the range: a nest over the target's dims */
	cg_nest zs;
	memset(&zs, 0, sizeof zs);
	zs.rank = tt->rank;
	zs.nops = 1;
	for (int d = 0; d < tt->rank; d++)
		zs.dim[d] = dim_val(c, tt->d[d]);
	strides_of(c, tt, zs.stride[0]);
	if (split >= 0) {
		zs.lo[split - sh] = k.lo;
		zs.dim[split - sh] = sub(c, k.hi, k.lo);
	}
	nest_begin(c, &zs);
	vstore(c, &out, zs.idx[0], cf32(c, 0.0f));
	nest_end(c, &zs);
	cg_nest ns;
	memset(&ns, 0, sizeof ns);
	ns.rank = rx;
	ns.nops = 2;
	for (int d = 0; d < rx; d++)
		ns.dim[d] = dim_val(c, xt->d[d]);
	if (split >= 0) {
		ns.lo[split] = k.lo;
		ns.dim[split] = sub(c, k.hi, k.lo);
	}
	strides_of(c, xt, ns.stride[0]);
	bcast_strides(c, tt, ns.rank, ns.stride[1]);
	nest_begin(c, &ns);
	LLVMValueRef acc = vload(c, &out, ns.idx[1]);
	vstore(c, &out, ns.idx[1], fadd(c, acc, vload(c, &in, ns.idx[0])));
	nest_end(c, &ns);
	kern_end(c, &k);
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
/* k values per panel chunk: a later chunk reloads and stores every output
 * of the block again, so long chunks pay off -- 1024 (a 128 KiB panel, in
 * L2) ran sgemm 2048^3 at 103 GFLOP/s against 64-75 with 256 here, and
 * never slower at the smaller sizes */
#define MM_KC 1024
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
	int64_t kc;                         /* k values per panel chunk (<= MM_KC) */
	int64_t nbk;                        /* plan blocked:nbk, or 0 (seq) */
	bool fused;                         /* plan +fma: acc = fma(a, b, acc) */
	bool plain_gep;                     /* vector addresses may lie outside the
	                                       value (masked lanes only): no inbounds */
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
	LLVMValueRef p = m->plain_gep ? LLVMBuildGEP2(c->b, c->f32, ptr_to(c, base, c->f32), &idx, 1, "")
	                              : gep(c, c->f32, base, idx);
	return LLVMBuildPointerCast(c->b, p, LLVMPointerType(m->vty, 0), "");
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
			nxt[r][v] = dot_step(c, m->fused, acc[r][v], bc, bv[v]);
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

/* The same block under plan blocked:NB (m->nbk): the chunk holds whole
 * blocks of k (chunks are multiples of NB, see mm_column_block); each
 * block's products are summed from +0 in partial accumulators p, then
 * acc = acc + p in block order, acc starting at +0 (or, in a later chunk,
 * at the running total the previous chunk stored in c).  Accumulators in
 * allocas: exact, not tuned. */
static void mm_block_blocked(cg *c, mm_ctx *m, int mr, LLVMValueRef i0, LLVMValueRef j0, LLVMValueRef *mask,
                             const mm_krange *kr)
{
	LLVMValueRef acc[MM_MR][MM_NV], p[MM_MR][MM_NV], bv[MM_NV], crow[MM_MR];
	LLVMValueRef zero = LLVMConstNull(m->vty);
	for (int r = 0; r < mr; r++) {
		crow[r] = add(c, m->cbase, add(c, mul(c, add(c, i0, ci64(c, r)), m->N), j0));
		for (int v = 0; v < MM_NV; v++)
			acc[r][v] = new_var(c, m->vty, kr->resume
			            ? sel(c, kr->resume, mm_vload(c, m, m->C.base, add(c, crow[r], ci64(c, v * m->vw)),
			                                          mask ? mask[v] : NULL), zero)
			            : zero);
	}
	LLVMValueRef NB = ci64(c, m->nbk);
	cg_loop lb, lk;
	LLVMValueRef kb = loop_begin(c, &lb, cdiv(c, kr->len, NB));
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++)
			p[r][v] = new_var(c, m->vty, zero);
	LLVMValueRef kst = mul(c, kb, NB);
	LLVMValueRef kk = loop_begin(c, &lk, smin(c, NB, sub(c, kr->len, kst)));
	LLVMValueRef kl = add(c, kst, kk), k = add(c, kr->k0, kl);
	for (int v = 0; v < MM_NV; v++)
		bv[v] = mm_bvec(c, m, k, kl, j0, v, mask ? mask[v] : NULL);
	for (int r = 0; r < mr; r++) {
		LLVMValueRef i = add(c, i0, ci64(c, r));
		LLVMValueRef ai = m->ta ? add(c, mul(c, k, m->M), i) : add(c, mul(c, i, m->K), k);
		LLVMValueRef bc = splat(c, m->vty, vload(c, &m->A, add(c, m->abase, ai)));
		for (int v = 0; v < MM_NV; v++)
			set_var(c, p[r][v], dot_step(c, m->fused, get_var(c, m->vty, p[r][v]), bc, bv[v]));
	}
	loop_end(c, &lk);
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++)
			set_var(c, acc[r][v], fadd(c, get_var(c, m->vty, acc[r][v]), get_var(c, m->vty, p[r][v])));
	loop_end(c, &lb);
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < MM_NV; v++)
			mm_vstore(c, m, m->C.base, add(c, crow[r], ci64(c, v * m->vw)), get_var(c, m->vty, acc[r][v]),
			          mask ? mask[v] : NULL);
}

static void mm_any_block(cg *c, mm_ctx *m, int mr, LLVMValueRef i0, LLVMValueRef j0, LLVMValueRef *mask,
                         const mm_krange *kr)
{
	if (m->nbk)
		mm_block_blocked(c, m, mr, i0, j0, mask, kr);
	else
		mm_block(c, m, mr, i0, j0, mask, kr);
}

/* the row blocks [rb0, rb1) of one column block: full blocks of MM_MR
 * rows, then, if the range reaches it, the block of the M % MM_MR rows
 * left (a switch over the possible counts, or just the one count when M
 * is a compile-time constant) */
static void mm_rows(cg *c, mm_ctx *m, LLVMValueRef j0, LLVMValueRef *mask, const mm_krange *kr,
                    LLVMValueRef rb0, LLVMValueRef rb1)
{
	LLVMValueRef mb = LLVMBuildSDiv(c->b, m->M, ci64(c, MM_MR), "");
	LLVMValueRef mfull = mul(c, mb, ci64(c, MM_MR));
	cg_loop li;
	LLVMValueRef ib = range_begin(c, &li, rb0, smin(c, rb1, mb));
	mm_any_block(c, m, MM_MR, mul(c, ib, ci64(c, MM_MR)), j0, mask, kr);
	loop_end(c, &li);
	if (m->Mc >= 0 && m->Mc % MM_MR == 0)
		return;
	LLVMBasicBlockRef rest = if_begin(c, LLVMBuildICmp(c->b, LLVMIntSGT, rb1, mb, ""));
	if (m->Mc >= 0) {
		mm_any_block(c, m, (int)(m->Mc % MM_MR), mfull, j0, mask, kr);
		if_end(c, rest);
		return;
	}
	LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.rows.end");
	LLVMValueRef sw = LLVMBuildSwitch(c->b, LLVMBuildSub(c->b, m->M, mfull, ""), join, MM_MR - 1);
	for (int mr = 1; mr < MM_MR; mr++) {
		LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.rows");
		LLVMAddCase(sw, ci64(c, mr), bb);
		LLVMPositionBuilderAtEnd(c->b, bb);
		mm_any_block(c, m, mr, mfull, j0, mask, kr);
		LLVMBuildBr(c->b, join);
	}
	LLVMPositionBuilderAtEnd(c->b, join);
	if_end(c, rest);
}

/* llvm.prefetch (read, keep in all cache levels) of base[idx]: a hint
 * that never faults, so idx may lie past the end (a plain GEP, not
 * inbounds) */
static void prefetch(cg *c, LLVMValueRef base, LLVMValueRef idx)
{
	static const char nm[] = "llvm.prefetch";
	unsigned id = LLVMLookupIntrinsicID(nm, sizeof nm - 1);
	LLVMTypeRef ov[1] = { c->ptr };
	size_t nov = LLVMIntrinsicIsOverloaded(id) ? 1 : 0;
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ov, nov);
	LLVMTypeRef fty = LLVMIntrinsicGetType(c->ctx, id, ov, nov);
	LLVMValueRef p = LLVMBuildGEP2(c->b, c->f32, ptr_to(c, base, c->f32), &idx, 1, "");
	LLVMValueRef a[4] = { LLVMBuildPointerCast(c->b, p, c->ptr, ""), ci32(c, 0), ci32(c, 3), ci32(c, 1) };
	LLVMBuildCall2(c->b, fty, f, a, 4, "");
}

/* rows[0..vw) (vectors of vw lanes) transposed in place: log2(vw)
 * rounds of interleaving row i with row i + vw/2 (low halves to 2i, high
 * halves to 2i+1).  Data movement only. */
static void mm_transpose(cg *c, mm_ctx *m, LLVMValueRef *rows)
{
	int n = m->vw;
	LLVMValueRef lo[MM_MAXVW], hi[MM_MAXVW], t[MM_MAXVW];
	for (int l = 0; l < n; l++) {
		lo[l] = ci32(c, (l % 2 ? n : 0) + l / 2);
		hi[l] = ci32(c, (l % 2 ? n : 0) + n / 2 + l / 2);
	}
	LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)n), mhi = LLVMConstVector(hi, (unsigned)n);
	for (int round = 1; round < n; round *= 2) {
		for (int i = 0; i < n / 2; i++) {
			t[2 * i] = LLVMBuildShuffleVector(c->b, rows[i], rows[i + n / 2], mlo, "");
			t[2 * i + 1] = LLVMBuildShuffleVector(c->b, rows[i], rows[i + n / 2], mhi, "");
		}
		memcpy(rows, t, (size_t)n * sizeof *rows);
	}
}

/* one column block (its row blocks [rb0, rb1)): b read in place over all
 * of K, or copied into the panel chunk by chunk (m->kc values of k),
 * columns past N repeating column N-1 (their lanes are never stored) */
static void mm_column_block(cg *c, mm_ctx *m, LLVMValueRef j0, LLVMValueRef *mask, LLVMValueRef rb0,
                            LLVMValueRef rb1)
{
	mm_krange kr = { ci64(c, 0), m->K, NULL };
	if (!m->panel) {
		mm_rows(c, m, j0, mask, &kr, rb0, rb1);
		return;
	}
	/* max(1, ceil(K / KC)) chunks: K == 0 still stores the +0s */
	LLVMValueRef KC = ci64(c, m->kc), nr = ci64(c, MM_NV * m->vw);
	LLVMValueRef nch = LLVMBuildSDiv(c->b, add(c, m->K, ci64(c, m->kc - 1)), KC, "");
	nch = sel(c, LLVMBuildICmp(c->b, LLVMIntSGT, nch, ci64(c, 1), ""), nch, ci64(c, 1));
	cg_loop lc, lj, lk;
	LLVMValueRef ch = loop_begin(c, &lc, nch);
	kr.k0 = mul(c, ch, KC);
	LLVMValueRef left = LLVMBuildSub(c->b, m->K, kr.k0, "");
	kr.len = sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, left, KC, ""), left, KC);
	kr.resume = LLVMBuildICmp(c->b, LLVMIntNE, ch, ci64(c, 0), "");
	if (m->tb) {
		LLVMValueRef kdone;
		{
			/* vw x vw tiles of b (vw rows j, vw consecutive k each: vector
			 * loads) transposed in registers into vw rows of the panel; k
			 * left over below.  Columns past N (the last, partial block)
			 * repeat column N-1: their lanes are never stored. */
			cg_loop lb;
			LLVMValueRef vwv = ci64(c, m->vw), nkb = sdiv(c, kr.len, vwv);
			LLVMValueRef last = LLVMBuildSub(c->b, m->N, ci64(c, 1), "");
			LLVMValueRef kb = loop_begin(c, &lb, nkb);
			for (int v = 0; v < MM_NV; v++) {
				LLVMValueRef rows[MM_MAXVW];
				for (int r = 0; r < m->vw; r++) {
					LLVMValueRef j = add(c, j0, ci64(c, v * m->vw + r));
					if (mask)
						j = smin(c, j, last);
					rows[r] = mm_vload(c, m, m->Bv.base, add(c, m->bbase, add(c, mul(c, j, m->K),
					                                                        add(c, kr.k0, mul(c, kb, vwv)))), NULL);
				}
				mm_transpose(c, m, rows);
				for (int r = 0; r < m->vw; r++)
					mm_vstore(c, m, m->panel, add(c, mul(c, add(c, mul(c, kb, vwv), ci64(c, r)), nr), ci64(c, v * m->vw)),
					          rows[r], NULL);
			}
			loop_end(c, &lb);
			kdone = mul(c, nkb, vwv);
		}
		LLVMValueRef jj = loop_begin(c, &lj, nr);
		LLVMValueRef j = add(c, j0, jj), last = LLVMBuildSub(c->b, m->N, ci64(c, 1), "");
		j = sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, j, m->N, ""), j, last);
		LLVMValueRef src = add(c, m->bbase, add(c, mul(c, j, m->K), kr.k0));
		LLVMValueRef kk = range_begin(c, &lk, kdone, kr.len);
		store_at(c, c->f32, m->panel, add(c, mul(c, kk, nr), jj), load_at(c, c->f32, m->Bv.base, add(c, src, kk)));
		loop_end(c, &lk);
		loop_end(c, &lj);
	} else {
		LLVMValueRef kk = loop_begin(c, &lk, kr.len);
		LLVMValueRef src = add(c, m->bbase, add(c, mul(c, add(c, kr.k0, kk), m->N), j0));
		for (int v = 0; v < MM_NV; v++)
			mm_vstore(c, m, m->panel, add(c, mul(c, kk, nr), ci64(c, v * m->vw)),
			          mm_vload(c, m, m->Bv.base, add(c, src, ci64(c, v * m->vw)), mask ? mask[v] : NULL), NULL);
		/* the rows of a wide b lie far apart: ask for the next column
		 * block's lines now, so that its packing finds them in cache */
		for (int v = 0; v < MM_NV; v++)
			prefetch(c, m->Bv.base, add(c, src, ci64(c, (MM_NV + v) * m->vw)));
		loop_end(c, &lk);
	}
	mm_rows(c, m, j0, mask, &kr, rb0, rb1);
	loop_end(c, &lc);
}

/* matmul, generic path (plans tree:F, and blocked:N with N > MM_KC):
 * units are the rows of all batches; every output is one emit_reduce of
 * its K products.  Exact, not tuned. */
typedef struct mm_terms {
	const mm_ctx *m;
	LLVMValueRef i, j;
} mm_terms;
static LLVMValueRef term_mm(cg *c, void *ctx, LLVMValueRef k)
{
	mm_terms *t = ctx;
	const mm_ctx *m = t->m;
	LLVMValueRef ai = m->ta ? add(c, mul(c, k, m->M), t->i) : add(c, mul(c, t->i, m->K), k);
	LLVMValueRef bi = m->tb ? add(c, mul(c, t->j, m->K), k) : add(c, mul(c, k, m->N), t->j);
	return fmul(c, vload(c, &m->A, add(c, m->abase, ai)), vload(c, &m->Bv, add(c, m->bbase, bi)));
}

static void mm_generic(cg *c, const ir_node *n, mm_ctx *m, const kern *k, LLVMValueRef sa, LLVMValueRef sb)
{
	LLVMValueRef M1 = smax(c, m->M, ci64(c, 1));
	cg_loop lu, lj;
	LLVMValueRef u = range_begin(c, &lu, k->lo, k->hi);
	LLVMValueRef bi = sdiv(c, u, M1);
	mm_terms t = { m, sub(c, u, mul(c, bi, M1)), NULL };
	m->abase = mul(c, bi, sa);
	m->bbase = mul(c, bi, sb);
	m->cbase = mul(c, bi, mul(c, m->M, m->N));
	t.j = loop_begin(c, &lj, m->N);
	LLVMValueRef v;
	if (m->fused) {
		/* blocked:N+fma (N > MM_KC): each block acc = fma(a, b, acc) from
		 * +0, the block sums added in order from +0 */
		cg_loop lb, lk;
		LLVMValueRef NB = ci64(c, n->plan.block), zero = cf32(c, 0.0f);
		LLVMValueRef tot = new_var(c, c->f32, zero);
		LLVMValueRef b = loop_begin(c, &lb, cdiv(c, m->K, NB));
		LLVMValueRef p = new_var(c, c->f32, zero), k0 = mul(c, b, NB);
		LLVMValueRef kk = add(c, k0, loop_begin(c, &lk, smin(c, NB, sub(c, m->K, k0))));
		LLVMValueRef ai = m->ta ? add(c, mul(c, kk, m->M), t.i) : add(c, mul(c, t.i, m->K), kk);
		LLVMValueRef bi = m->tb ? add(c, mul(c, t.j, m->K), kk) : add(c, mul(c, kk, m->N), t.j);
		set_var(c, p, build_fma(c, vload(c, &m->A, add(c, m->abase, ai)), vload(c, &m->Bv, add(c, m->bbase, bi)),
		                        get_var(c, c->f32, p)));
		loop_end(c, &lk);
		set_var(c, tot, fadd(c, get_var(c, c->f32, tot), get_var(c, c->f32, p)));
		loop_end(c, &lb);
		v = get_var(c, c->f32, tot);
	} else
		v = emit_reduce(c, n->plan, m->K, term_mm, &t);
	vstore(c, &m->C, add(c, m->cbase, add(c, mul(c, t.i, m->N), t.j)), v);
	loop_end(c, &lj);
	loop_end(c, &lu);
}

/* Units: (batch, column block, row block) flattened, row blocks fastest,
 * so a range is whole MM_MR x NR output blocks (the last row block and
 * the last column block may be partial); a range that cuts a column block
 * packs that block's panel for its own rows. */
static int emit_MATMUL(cg *c, const ir_node *n)
{
	const ir_node *an = in_node(c, n, 0), *bn = in_node(c, n, 1);
	const ir_type *at = &an->type, *bt = &bn->type, *ct = &n->type;
	mm_ctx m;
	memset(&m, 0, sizeof m);
	m.ta = n->ia[0] != 0;
	m.tb = n->ia[1] != 0;
	if (check_plan(c, n, false) || need_f32(c, n))
		return -1;
	if (at->rank < 2 || bt->rank < 2 || ct->rank < 2 ||
	    (at->rank != 2 && at->rank != ct->rank) || (bt->rank != 2 && bt->rank != ct->rank))
		return cg_err(c, n, "unsupported matmul ranks %d x %d -> %d", at->rank, bt->rank, ct->rank);
	if (n->blk == IR_BLK_NONE)
		return cg_err(c, n, "a matmul result needs storage");
	bool generic = n->plan.family == IR_PLAN_TREE || (n->plan.family == IR_PLAN_BLOCKED && n->plan.block > MM_KC);
	m.vw = c->vw;
	m.vty = LLVMVectorType(c->f32, (unsigned)m.vw);
	m.nbk = n->plan.family == IR_PLAN_BLOCKED ? n->plan.block : 0;
	m.fused = n->plan.fused;
	m.kc = m.nbk ? m.nbk * (MM_KC / m.nbk) : MM_KC;
	int r = ct->rank;
	LLVMValueRef NR = ci64(c, MM_NV * m.vw);
	/* units and grain, in the step function */
	{
		LLVMValueRef M = dim_val(c, ct->d[r - 2]), N = dim_val(c, ct->d[r - 1]);
		LLVMValueRef K = dim_val(c, at->d[at->rank - (m.ta ? 2 : 1)]), nb = dims_prod(c, ct, 0, r - 2);
		LLVMValueRef units, grain;
		if (generic) {
			units = mul(c, nb, M);
			grain = grain_of(c, GRAIN_MAC, mul(c, N, K));
		} else {
			units = mul(c, mul(c, nb, cdiv(c, N, NR)), cdiv(c, M, ci64(c, MM_MR)));
			grain = grain_of(c, GRAIN_MAC, mul(c, ci64(c, MM_MR * MM_NV * m.vw), K));
		}
		kern k;
		kern_begin(c, n, &k, units, grain, false);
		if (val_of(c, an, &m.A) || val_of(c, bn, &m.Bv) || val_of(c, n, &m.C))
			return -1;
		m.M = dim_val(c, ct->d[r - 2]);
		m.Mc = ct->d[r - 2].sym ? -1 : ct->d[r - 2].c;
		m.N = dim_val(c, ct->d[r - 1]);
		m.K = dim_val(c, at->d[at->rank - (m.ta ? 2 : 1)]);
		LLVMValueRef sa = at->rank == 2 ? ci64(c, 0) : mul(c, m.M, m.K);   /* batch strides */
		LLVMValueRef sb = bt->rank == 2 ? ci64(c, 0) : mul(c, m.K, m.N);
		if (generic) {
			mm_generic(c, n, &m, &k, sa, sb);
			kern_end(c, &k);
			return 0;
		}
		if (!m.Bv.imm) {
			/* one panel per kernel */
			LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->ctx);
			LLVMValueRef first = LLVMGetFirstInstruction(c->entry);
			if (first)
				LLVMPositionBuilderBefore(eb, first);
			else
				LLVMPositionBuilderAtEnd(eb, c->entry);
			c->mm_panel = LLVMBuildAlloca(eb, LLVMArrayType(c->f32, MM_KC * MM_NV * MM_MAXVW), "panel");
			LLVMSetAlignment(c->mm_panel, 64);
			LLVMDisposeBuilder(eb);
			m.panel = c->mm_panel;
		}
		LLVMValueRef nj = LLVMBuildSDiv(c->b, m.N, NR, "");
		LLVMValueRef nfull = mul(c, nj, NR);
		LLVMValueRef rem = LLVMBuildSub(c->b, m.N, nfull, "");
		LLVMValueRef ncb1 = smax(c, cdiv(c, m.N, NR), ci64(c, 1));
		cg_span sp;
		span_begin(c, &sp, k.lo, k.hi, cdiv(c, m.M, ci64(c, MM_MR)));
		LLVMValueRef bi = sdiv(c, sp.outer, ncb1);
		LLVMValueRef jb = sub(c, sp.outer, mul(c, bi, ncb1));
		m.abase = mul(c, bi, sa);
		m.bbase = mul(c, bi, sb);
		m.cbase = mul(c, bi, mul(c, m.M, m.N));
		LLVMBasicBlockRef full = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.full");
		LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.part");
		LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "mm.col.end");
		LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, jb, nj, ""), full, part);
		LLVMPositionBuilderAtEnd(c->b, full);
		mm_column_block(c, &m, mul(c, jb, NR), NULL, sp.qlo, sp.qhi);
		LLVMBuildBr(c->b, join);
		/* the partial column block: lanes past N masked off */
		LLVMPositionBuilderAtEnd(c->b, part);
		LLVMValueRef mask[MM_NV];
		LLVMValueRef rv = splat(c, LLVMVectorType(c->i64, (unsigned)m.vw), rem);
		for (int v = 0; v < MM_NV; v++) {
			LLVMValueRef lane[MM_MAXVW];
			for (int l = 0; l < m.vw; l++)
				lane[l] = ci64(c, v * m.vw + l);
			mask[v] = LLVMBuildICmp(c->b, LLVMIntSLT, LLVMConstVector(lane, (unsigned)m.vw), rv, "");
		}
		mm_column_block(c, &m, nfull, mask, sp.qlo, sp.qhi);
		LLVMBuildBr(c->b, join);
		LLVMPositionBuilderAtEnd(c->b, join);
		span_end(c, &sp);
		kern_end(c, &k);
	}
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

/* max_seq of x[base .. base+C) from -inf (the MAX reduction's rule; the
 * result does not depend on the order, so every plan shares it) */
static LLVMValueRef row_max(cg *c, const cg_val *x, LLVMValueRef base, LLVMValueRef C)
{
	LLVMValueRef m = new_var(c, c->f32, cf32(c, -__builtin_inff()));
	cg_loop l;
	LLVMValueRef k = loop_begin(c, &l, C);
	set_var(c, m, max_step(c, get_var(c, c->f32, m), vload(c, x, add(c, base, k))));
	loop_end(c, &l);
	return get_var(c, c->f32, m);
}

/* terms exp(x_k - m) of a row; if y is given, also y_k = exp(x_k - m) */
typedef struct exp_terms {
	const cg_val *x, *y;
	LLVMValueRef base, m;
} exp_terms;
static LLVMValueRef term_exp(cg *c, void *ctx, LLVMValueRef k)
{
	exp_terms *t = ctx;
	LLVMValueRef i = add(c, t->base, k);
	LLVMValueRef e = call_f1(c, "nnd_rt_expf", fsub(c, vload(c, t->x, i), t->m));
	if (t->y)
		vstore(c, t->y, i, e);
	return e;
}

/* sum, in plan order, of exp(x_k - m) over a row; if y is given, also
 * y_k = exp(x_k - m) */
static LLVMValueRef row_sumexp(cg *c, ir_plan plan, const cg_val *x, LLVMValueRef base, LLVMValueRef C,
                               LLVMValueRef m, const cg_val *y)
{
	exp_terms t = { x, y, base, m };
	return emit_reduce(c, plan, C, term_exp, &t);
}

/* the row kernels: units are rows; grain by the exp per element */
static void rows_kernel(cg *c, const ir_node *n, kern *k, const ir_type *t)
{
	LLVMValueRef rows = dims_prod(c, t, 0, t->rank - 1);
	kern_begin(c, n, k, rows, grain_of(c, GRAIN_CALL, dim_val(c, t->d[t->rank - 1])), false);
}

static int emit_SOFTMAX(cg *c, const ir_node *n)
{
	cg_val x, y;
	cg_rows r;
	kern k;
	if (check_plan(c, n, false) || need_f32(c, n) || n->type.rank < 1)
		return n->type.rank < 1 ? cg_err(c, n, "needs at least one axis") : -1;
	rows_kernel(c, n, &k, &n->type);
	if (rows_of(c, n, &n->type, &r) || val_of(c, in_node(c, n, 0), &x) || val_of(c, n, &y))
		return -1;
	cg_loop li, lk;
	LLVMValueRef i = range_begin(c, &li, k.lo, k.hi);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, n->plan, &x, base, r.C, m, &y);
	LLVMValueRef kk = loop_begin(c, &lk, r.C);
	LLVMValueRef yi = add(c, base, kk);
	vstore(c, &y, yi, fdiv(c, vload(c, &y, yi), s));
	loop_end(c, &lk);
	loop_end(c, &li);
	kern_end(c, &k);
	return 0;
}

static int emit_LOG_SOFTMAX(cg *c, const ir_node *n)
{
	cg_val x, y;
	cg_rows r;
	kern k;
	if (check_plan(c, n, false) || need_f32(c, n) || n->type.rank < 1)
		return n->type.rank < 1 ? cg_err(c, n, "needs at least one axis") : -1;
	rows_kernel(c, n, &k, &n->type);
	if (rows_of(c, n, &n->type, &r) || val_of(c, in_node(c, n, 0), &x) || val_of(c, n, &y))
		return -1;
	cg_loop li, lk;
	LLVMValueRef i = range_begin(c, &li, k.lo, k.hi);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, n->plan, &x, base, r.C, m, NULL);
	LLVMValueRef ls = call_f1(c, "nnd_rt_logf", s);
	LLVMValueRef kk = loop_begin(c, &lk, r.C);
	LLVMValueRef xi = add(c, base, kk);
	vstore(c, &y, xi, fsub(c, fsub(c, vload(c, &x, xi), m), ls));
	loop_end(c, &lk);
	loop_end(c, &li);
	kern_end(c, &k);
	return 0;
}

/* terms of the softmax gradients' row sums: dy_j * y_j, or dy_j */
typedef struct bwd_terms {
	const cg_val *dy, *y;
	LLVMValueRef base;
} bwd_terms;
static LLVMValueRef term_bwd(cg *c, void *ctx, LLVMValueRef k)
{
	bwd_terms *t = ctx;
	LLVMValueRef i = add(c, t->base, k);
	LLVMValueRef dyk = vload(c, t->dy, i);
	return t->y ? fmul(c, dyk, vload(c, t->y, i)) : dyk;
}

/* (dy, y): softmax: dx_k = y_k * (dy_k - sum(dy_j*y_j));
 * log_softmax: dx_k = dy_k - exp(y_k) * sum(dy_j) (sums in plan order) */
static int emit_softmax_bwd(cg *c, const ir_node *n, bool logsm)
{
	cg_val dy, y, dx;
	cg_rows r;
	kern k;
	if (check_plan(c, n, false) || need_f32(c, n) || n->type.rank < 1)
		return n->type.rank < 1 ? cg_err(c, n, "needs at least one axis") : -1;
	rows_kernel(c, n, &k, &n->type);
	if (rows_of(c, n, &n->type, &r))
		return -1;
	if (val_of(c, in_node(c, n, 0), &dy) || val_of(c, in_node(c, n, 1), &y) || val_of(c, n, &dx))
		return -1;
	cg_loop li, lk;
	LLVMValueRef i = range_begin(c, &li, k.lo, k.hi);
	LLVMValueRef base = mul(c, i, r.C);
	bwd_terms t = { &dy, logsm ? NULL : &y, base };
	LLVMValueRef sv = emit_reduce(c, n->plan, r.C, term_bwd, &t);
	LLVMValueRef kk = loop_begin(c, &lk, r.C);
	LLVMValueRef xi = add(c, base, kk);
	LLVMValueRef dyk = vload(c, &dy, xi);
	LLVMValueRef yk = vload(c, &y, xi);
	vstore(c, &dx, xi, logsm ? fsub(c, dyk, fmul(c, call_f1(c, "nnd_rt_expf", yk), sv))
	                         : fmul(c, yk, fsub(c, dyk, sv)));
	loop_end(c, &lk);
	loop_end(c, &li);
	kern_end(c, &k);
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
 * should it ever return, the kernel returns before reading out of bounds) */
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

/* cross_entropy's batch terms: l_i = (m + log(s)) - x_i[label], the row
 * sum s in the node's plan (seq for the racy plan, which is the batch
 * sum's only) */
typedef struct ce_terms {
	const cg_val *x, *lab;
	LLVMValueRef C;
	ir_plan row_plan;
} ce_terms;
static LLVMValueRef term_ce(cg *c, void *ctx, LLVMValueRef i)
{
	ce_terms *t = ctx;
	LLVMValueRef label = load_label(c, t->lab, i);
	check_label(c, i, label, t->C);
	LLVMValueRef base = mul(c, i, t->C);
	LLVMValueRef m = row_max(c, t->x, base, t->C);
	LLVMValueRef s = row_sumexp(c, t->row_plan, t->x, base, t->C, m, NULL);
	return fsub(c, fadd(c, m, call_f1(c, "nnd_rt_logf", s)), vload(c, t->x, add(c, base, label)));
}

/* a scalar result: one range (the batch sum is a reduction) */
static int emit_CROSS_ENTROPY(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0), *ln = in_node(c, n, 1);
	cg_val x, lab, out;
	cg_rows r;
	kern k;
	if (check_plan(c, n, true) || labels_ok(c, n, ln))
		return -1;
	kern_begin(c, n, &k, ci64(c, 1), ci64(c, 1), true);
	if (rows_of(c, n, &xn->type, &r) || val_of(c, xn, &x) || val_of(c, ln, &lab) || val_of(c, n, &out))
		return -1;
	ce_terms t = { &x, &lab, r.C, n->plan };
	if (n->plan.family == IR_PLAN_RACY)
		t.row_plan.family = IR_PLAN_SEQ;
	LLVMValueRef tot = emit_reduce(c, n->plan, r.rows, term_ce, &t);
	vstore(c, &out, ci64(c, 0), fdiv(c, tot, i2f(c, r.rows)));
	kern_end(c, &k);
	return 0;
}

static int emit_CROSS_ENTROPY_BWD(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0), *ln = in_node(c, n, 1);
	cg_val x, lab, dl, dx;
	cg_rows r;
	kern k;
	/* racy: accepted because cross_entropy_bwd shares its instance path
	 * with cross_entropy (`--plan loss=racy` names both); it has no batch
	 * sum, and its row sums are seq, as cross_entropy's are under racy */
	if (check_plan(c, n, true) || labels_ok(c, n, ln))
		return -1;
	ir_plan row_plan = n->plan;
	if (row_plan.family == IR_PLAN_RACY)
		row_plan.family = IR_PLAN_SEQ;
	if (n->type.dt != IR_F32 || in_node(c, n, 2)->type.dt != IR_F32)
		return cg_err(c, n, "result and dloss must be f32");
	rows_kernel(c, n, &k, &xn->type);
	if (rows_of(c, n, &xn->type, &r))
		return -1;
	if (val_of(c, xn, &x) || val_of(c, ln, &lab) || val_of(c, in_node(c, n, 2), &dl) || val_of(c, n, &dx))
		return -1;
	LLVMValueRef g = fdiv(c, vload(c, &dl, ci64(c, 0)), i2f(c, r.rows));
	cg_loop li, lk;
	LLVMValueRef i = range_begin(c, &li, k.lo, k.hi);
	LLVMValueRef label = load_label(c, &lab, i);
	check_label(c, i, label, r.C);
	LLVMValueRef base = mul(c, i, r.C);
	LLVMValueRef m = row_max(c, &x, base, r.C);
	LLVMValueRef s = row_sumexp(c, row_plan, &x, base, r.C, m, &dx);   /* dx_k = e_k */
	LLVMValueRef kk = loop_begin(c, &lk, r.C);
	LLVMValueRef xi = add(c, base, kk);
	LLVMValueRef ind = sel(c, LLVMBuildICmp(c->b, LLVMIntEQ, kk, label, ""), cf32(c, 1.0f), cf32(c, 0.0f));
	vstore(c, &dx, xi, fmul(c, fsub(c, fdiv(c, vload(c, &dx, xi), s), ind), g));
	loop_end(c, &lk);
	loop_end(c, &li);
	kern_end(c, &k);
	return 0;
}

typedef struct mse_terms { const cg_val *p, *t; } mse_terms;
static LLVMValueRef term_mse(cg *c, void *ctx, LLVMValueRef i)
{
	mse_terms *t = ctx;
	LLVMValueRef d = fsub(c, vload(c, t->p, i), vload(c, t->t, i));
	return fmul(c, d, d);
}

static int emit_MSE(cg *c, const ir_node *n)
{
	const ir_node *pn = in_node(c, n, 0), *tn = in_node(c, n, 1);
	cg_val p, t, out;
	kern k;
	if (check_plan(c, n, false) || need_f32(c, n))
		return -1;
	if (!ir_type_eq(&pn->type, &tn->type))
		return cg_err(c, n, "prediction and target types differ");
	kern_begin(c, n, &k, ci64(c, 1), ci64(c, 1), true);
	if (val_of(c, pn, &p) || val_of(c, tn, &t) || val_of(c, n, &out))
		return -1;
	LLVMValueRef cnt = numel_val(c, &pn->type);
	mse_terms mt = { &p, &t };
	LLVMValueRef s = emit_reduce(c, n->plan, cnt, term_mse, &mt);
	vstore(c, &out, ci64(c, 0), fdiv(c, s, i2f(c, cnt)));
	kern_end(c, &k);
	return 0;
}

/* any plan: an integer count does not depend on the order */
static int emit_ACCURACY(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0), *ln = in_node(c, n, 1);
	cg_val x, lab, out;
	cg_rows r;
	kern k;
	if (check_plan(c, n, false) || labels_ok(c, n, ln))
		return -1;
	if (n->type.dt != IR_F32)
		return cg_err(c, n, "result must be f32");
	kern_begin(c, n, &k, ci64(c, 1), ci64(c, 1), true);
	if (rows_of(c, n, &xn->type, &r) || val_of(c, xn, &x) || val_of(c, ln, &lab) || val_of(c, n, &out))
		return -1;
	LLVMValueRef cnt = new_var(c, c->i64, ci64(c, 0));
	LLVMValueRef best = new_var(c, c->f32, cf32(c, 0.0f));
	LLVMValueRef bidx = new_var(c, c->i64, ci64(c, 0));
	cg_loop li, lk;
	LLVMValueRef i = loop_begin(c, &li, r.rows);
	LLVMValueRef base = mul(c, i, r.C);
	set_var(c, best, cf32(c, -__builtin_inff()));
	set_var(c, bidx, ci64(c, 0));
	LLVMValueRef kk = loop_begin(c, &lk, r.C);
	argmax_step(c, best, bidx, vload(c, &x, add(c, base, kk)), kk);
	loop_end(c, &lk);
	LLVMValueRef hit = LLVMBuildICmp(c->b, LLVMIntEQ, get_var(c, c->i64, bidx), load_label(c, &lab, i), "");
	set_var(c, cnt, add(c, get_var(c, c->i64, cnt), LLVMBuildZExt(c->b, hit, c->i64, "")));
	loop_end(c, &li);
	vstore(c, &out, ci64(c, 0), fdiv(c, i2f(c, get_var(c, c->i64, cnt)), i2f(c, r.rows)));
	kern_end(c, &k);
	return 0;
}

/* ------------------------------------------------------------------ */
/* random                                                              */

/* Philox4x32-10 in the kernel itself (runtime/philox.c is the reference,
 * checked against Random123's vectors; tests/codegen compares the two).
 * Each element computes its whole block and keeps its word: four times the
 * arithmetic of sharing blocks, but branch-free, so the element loop
 * vectorises and is far cheaper than a call per element. */
/* the integer constant v of type ty, or its splat when ty is a vector type
 * of ity lanes */
static LLVMValueRef kconst(cg *c, LLVMTypeRef ty, LLVMTypeRef ity, uint64_t v)
{
	(void)c;
	if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind)
		return LLVMConstInt(ity, v, 0);
	unsigned n = LLVMGetVectorSize(ty);
	LLVMValueRef e[64];
	for (unsigned i = 0; i < n && i < 64; i++)
		e[i] = LLVMConstInt(ity, v, 0);
	return LLVMConstVector(e, n);
}

/* ctr, k0, k1: i32 values, or vectors of i32 (then one block per lane) */
static void philox_block(cg *c, LLVMValueRef ctr[4], LLVMValueRef k0, LLVMValueRef k1, LLVMValueRef x[4])
{
	x[0] = ctr[0]; x[1] = ctr[1]; x[2] = ctr[2]; x[3] = ctr[3];
	LLVMTypeRef t32 = LLVMTypeOf(ctr[0]), t64 = c->i64;
	if (LLVMGetTypeKind(t32) == LLVMVectorTypeKind)
		t64 = LLVMVectorType(c->i64, LLVMGetVectorSize(t32));
	LLVMValueRef m0 = kconst(c, t64, c->i64, 0xD2511F53u), m1 = kconst(c, t64, c->i64, 0xCD9E8D57u);
	LLVMValueRef w0 = kconst(c, t32, c->i32, 0x9E3779B9u), w1 = kconst(c, t32, c->i32, 0xBB67AE85u);
	LLVMValueRef sh = kconst(c, t64, c->i64, 32);
	for (int round = 0; round < 10; round++) {
		if (round) {
			k0 = LLVMBuildAdd(c->b, k0, w0, "");
			k1 = LLVMBuildAdd(c->b, k1, w1, "");
		}
		LLVMValueRef p0 = LLVMBuildMul(c->b, m0, LLVMBuildZExt(c->b, x[0], t64, ""), "");
		LLVMValueRef p1 = LLVMBuildMul(c->b, m1, LLVMBuildZExt(c->b, x[2], t64, ""), "");
		LLVMValueRef hi0 = LLVMBuildTrunc(c->b, LLVMBuildLShr(c->b, p0, sh, ""), t32, "");
		LLVMValueRef lo0 = LLVMBuildTrunc(c->b, p0, t32, "");
		LLVMValueRef hi1 = LLVMBuildTrunc(c->b, LLVMBuildLShr(c->b, p1, sh, ""), t32, "");
		LLVMValueRef lo1 = LLVMBuildTrunc(c->b, p1, t32, "");
		LLVMValueRef y0 = LLVMBuildXor(c->b, LLVMBuildXor(c->b, hi1, x[1], ""), k0, "");
		LLVMValueRef y2 = LLVMBuildXor(c->b, LLVMBuildXor(c->b, hi0, x[3], ""), k1, "");
		x[0] = y0; x[1] = lo1; x[2] = y2; x[3] = lo0;
	}
}

static LLVMValueRef philox_word(cg *c, LLVMValueRef ctr[4], LLVMValueRef k0, LLVMValueRef k1,
                                LLVMValueRef word)
{
	LLVMValueRef x[4];
	philox_block(c, ctr, k0, k1, x);
	/* select word `word` (0..3) without a branch */
	LLVMValueRef is1 = LLVMBuildICmp(c->b, LLVMIntEQ, word, ci32(c, 1), "");
	LLVMValueRef is2 = LLVMBuildICmp(c->b, LLVMIntEQ, word, ci32(c, 2), "");
	LLVMValueRef is3 = LLVMBuildICmp(c->b, LLVMIntEQ, word, ci32(c, 3), "");
	LLVMValueRef v = LLVMBuildSelect(c->b, is1, x[1], x[0], "");
	v = LLVMBuildSelect(c->b, is2, x[2], v, "");
	return LLVMBuildSelect(c->b, is3, x[3], v, "");
}

/* A random op's stream inputs, loaded in its kernel: the Philox key of
 * its stream, the rows' dataset indices and the epoch (determinism.md:
 * counters from logical indices only) */
typedef struct cg_rng { LLVMValueRef k0, k1, sidx, epoch; } cg_rng;

static int stream_ok(cg *c, const ir_node *n)
{
	if (n->stream < 0 || (c->prog && n->stream >= c->prog->nstreams))
		return cg_err(c, n, "no random stream");
	return 0;
}

static void rng_load(cg *c, const ir_node *n, cg_rng *r)
{
	LLVMValueRef keys = load_field(c, A_KEYS, c->ptr);
	LLVMValueRef key = gep(c, c->i32, keys, ci64(c, 2 * (int64_t)n->stream));
	r->sidx = load_field(c, A_SAMPLE_IDX, c->ptr);
	r->epoch = LLVMBuildTrunc(c->b, load_field(c, A_EPOCH, c->i64), c->i32, "");
	r->k0 = load_at(c, c->i32, key, ci64(c, 0));
	r->k1 = load_at(c, c->i32, key, ci64(c, 1));
}

/* y = u >= p ? x * scale : +0, with u the draw of element e of its row
 * (word e % 4 of the block at {e / 4, sample, epoch, 0}, >> 8, * 2^-24).
 * The loop runs over blocks, not elements: one Philox block serves its
 * four elements (a quarter of the per-element form's arithmetic), and the
 * block loop still vectorises.  A row whose length is not a multiple of 4
 * ends with one partial block, guarded per word.  Same words, same order
 * as nnd_rt_uniform: the counter holds logical indices only. */
static void dropout_elem(cg *c, const ir_node *n, const cg_val *x, const cg_val *y, LLVMValueRef base,
                         LLVMValueRef e, LLVMValueRef w)
{
	LLVMValueRef u = fmul(c, LLVMBuildUIToFP(c->b, LLVMBuildLShr(c->b, w, ci32(c, 8), ""), c->f32, ""),
	                      cf32(c, 0x1p-24f));
	LLVMValueRef xi = add(c, base, e);
	LLVMValueRef keep = fcmp(c, LLVMRealOGE, u, cf32(c, n->fa[0]));
	vstore(c, y, xi, sel(c, keep, fmul(c, vload(c, x, xi), cf32(c, n->fa[1])), cf32(c, 0.0f)));
}

/* Whole groups of vw blocks (4 * vw elements) of a row, one block per
 * vector lane: words w0..w3 of lane l are elements 4l..4l+3 of the group,
 * so two shuffles put the four word vectors into element order. */
static void dropout_groups(cg *c, const ir_node *n, const cg_val *x, const cg_val *y, const cg_rng *rg,
                           LLVMValueRef s, LLVMValueRef base, LLVMValueRef nfull)
{
	int vw = c->vw;
	LLVMTypeRef vi = LLVMVectorType(c->i32, (unsigned)vw);
	LLVMTypeRef vf = LLVMVectorType(c->f32, (unsigned)vw);
	LLVMTypeRef v4 = LLVMVectorType(c->f32, (unsigned)(4 * vw));
	LLVMValueRef lane[64], m2[128], m4[256];
	for (int l = 0; l < vw; l++)
		lane[l] = ci32(c, l);
	for (int i = 0; i < 2 * vw; i++)          /* concat */
		m2[i] = ci32(c, i);
	for (int l = 0; l < vw; l++)
		for (int j = 0; j < 4; j++)       /* element 4l+j = word j of lane l */
			m4[4 * l + j] = ci32(c, j * vw + l);
	cg_loop lg;
	LLVMValueRef g = loop_begin(c, &lg, sdiv(c, nfull, ci64(c, vw)));
	LLVMValueRef b0 = LLVMBuildTrunc(c->b, mul(c, g, ci64(c, vw)), c->i32, "");
	LLVMValueRef ctr[4] = { LLVMBuildAdd(c->b, splat(c, vi, b0), LLVMConstVector(lane, (unsigned)vw), ""),
	                        splat(c, vi, s), splat(c, vi, rg->epoch), LLVMConstNull(vi) };
	LLVMValueRef w[4], u[4];
	philox_block(c, ctr, splat(c, vi, rg->k0), splat(c, vi, rg->k1), w);
	for (int j = 0; j < 4; j++)
		u[j] = LLVMBuildFMul(c->b, LLVMBuildUIToFP(c->b, LLVMBuildLShr(c->b, w[j], kconst(c, vi, c->i32, 8), ""), vf, ""),
		                     splat(c, vf, cf32(c, 0x1p-24f)), "");
	LLVMValueRef m2v = LLVMConstVector(m2, (unsigned)(2 * vw));
	LLVMValueRef u01 = LLVMBuildShuffleVector(c->b, u[0], u[1], m2v, "");
	LLVMValueRef u23 = LLVMBuildShuffleVector(c->b, u[2], u[3], m2v, "");
	LLVMValueRef uu = LLVMBuildShuffleVector(c->b, u01, u23, LLVMConstVector(m4, (unsigned)(4 * vw)), "");
	LLVMValueRef idx = add(c, base, mul(c, g, ci64(c, 4 * vw)));
	LLVMValueRef px = LLVMBuildPointerCast(c->b, gep(c, c->f32, x->base, idx), LLVMPointerType(v4, 0), "");
	LLVMValueRef py = LLVMBuildPointerCast(c->b, gep(c, c->f32, y->base, idx), LLVMPointerType(v4, 0), "");
	LLVMValueRef xv = LLVMBuildLoad2(c->b, v4, px, "");
	LLVMSetAlignment(xv, 4);
	LLVMValueRef keep = fcmp(c, LLVMRealOGE, uu, splat(c, v4, cf32(c, n->fa[0])));
	LLVMValueRef yv = sel(c, keep, fmul(c, xv, splat(c, v4, cf32(c, n->fa[1]))), LLVMConstNull(v4));
	LLVMValueRef st = LLVMBuildStore(c->b, yv, py);
	LLVMSetAlignment(st, 4);
	loop_end(c, &lg);
}

static int emit_dropout(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	cg_val x, y;
	if (need_f32(c, n))
		return -1;
	if (stream_ok(c, n))
		return -1;
	if (n->type.rank < 1 || !ir_type_eq(&n->type, &xn->type))
		return cg_err(c, n, "needs [rows, ...] input of the result's type");
	kern k;
	LLVMValueRef units, grain;
	elem_units(c, &n->type, GRAIN_RNG, &units, &grain);
	kern_begin(c, n, &k, units, grain, false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	cg_rng rg;
	rng_load(c, n, &rg);
	LLVMValueRef E = dims_prod(c, &n->type, 1, n->type.rank);
	LLVMValueRef nfull = LLVMBuildLShr(c->b, E, ci64(c, 2), "");
	LLVMValueRef rest = LLVMBuildAnd(c->b, E, ci64(c, 3), "");
	cg_loop lr, lb;   /* units: rows */
	LLVMValueRef r = range_begin(c, &lr, k.lo, k.hi);
	LLVMValueRef s = LLVMBuildTrunc(c->b, load_at(c, c->i64, rg.sidx, r), c->i32, "");
	LLVMValueRef base = mul(c, r, E);
	dropout_groups(c, n, &x, &y, &rg, s, base, nfull);
	LLVMValueRef vw = ci64(c, c->vw);
	LLVMValueRef done = mul(c, sdiv(c, nfull, vw), vw);
	LLVMValueRef b = add(c, loop_begin(c, &lb, sub(c, nfull, done)), done);
	LLVMValueRef ctr[4] = { LLVMBuildTrunc(c->b, b, c->i32, ""), s, rg.epoch, ci32(c, 0) };
	LLVMValueRef w[4];
	philox_block(c, ctr, rg.k0, rg.k1, w);
	for (int j = 0; j < 4; j++)
		dropout_elem(c, n, &x, &y, base, add(c, LLVMBuildShl(c->b, b, ci64(c, 2), ""), ci64(c, j)), w[j]);
	loop_end(c, &lb);
	LLVMBasicBlockRef join = if_begin(c, LLVMBuildICmp(c->b, LLVMIntNE, rest, ci64(c, 0), ""));
	{
		LLVMValueRef ct[4] = { LLVMBuildTrunc(c->b, nfull, c->i32, ""), s, rg.epoch, ci32(c, 0) };
		philox_block(c, ct, rg.k0, rg.k1, w);
		for (int j = 0; j < 3; j++) {   /* rest is 1..3 */
			LLVMBasicBlockRef jn = if_begin(c, LLVMBuildICmp(c->b, LLVMIntSGT, rest, ci64(c, j), ""));
			dropout_elem(c, n, &x, &y, base, add(c, LLVMBuildShl(c->b, nfull, ci64(c, 2), ""), ci64(c, j)), w[j]);
			if_end(c, jn);
		}
	}
	if_end(c, join);
	loop_end(c, &lr);
	kern_end(c, &k);
	return 0;
}
static int emit_DROPOUT(cg *c, const ir_node *n) { return emit_dropout(c, n); }
static int emit_DROPOUT_BWD(cg *c, const ir_node *n) { return emit_dropout(c, n); }

/* ------------------------------------------------------------------ */
/* optimizer updates (in place)                                        */

/* Units are the parameter's elements: each is updated on its own. */
static int update_check(cg *c, const ir_node *n, int cnt)
{
	const ir_type *pt = &in_node(c, n, 0)->type;
	for (int i = 0; i < cnt; i++) {
		const ir_node *x = in_node(c, n, i);
		if (x->type.dt != IR_F32 || !ir_type_eq(&x->type, pt))
			return cg_err(c, n, "input %d must be f32 of the parameter's type", i);
		if (x->op == IR_CONST || x->op == IR_NUMEL || x->blk == IR_BLK_NONE)
			return cg_err(c, n, "input %d has no storage", i);
	}
	return 0;
}

static int update_vals(cg *c, const ir_node *n, int cnt, cg_val *v)
{
	for (int i = 0; i < cnt; i++)
		if (val_of(c, in_node(c, n, i), &v[i]))
			return -1;
	return 0;
}

static int emit_SGD_UPDATE(cg *c, const ir_node *n)
{
	float mom = n->fa[0], wd = n->fa[1];
	bool nesterov = n->ia[0] != 0, has_mom = n->ia[1] != 0 && mom != 0.0f;
	cg_val v[3];
	kern k;
	if (update_check(c, n, has_mom ? 3 : 2))
		return -1;
	kern_begin(c, n, &k, numel_val(c, &in_node(c, n, 0)->type), grain_of(c, GRAIN_CHEAP / 2, ci64(c, 1)), false);
	if (update_vals(c, n, has_mom ? 3 : 2, v))
		return -1;
	LLVMValueRef lr = load_field(c, A_LR, c->f32);
	cg_loop l;
	LLVMValueRef i = range_begin(c, &l, k.lo, k.hi);
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
	kern_end(c, &k);
	return 0;
}

static int emit_ADAM_UPDATE(cg *c, const ir_node *n)
{
	float b1 = n->fa[0], b2 = n->fa[1], eps = n->fa[2], wd = n->fa[3];
	bool decoupled = n->ia[0] != 0;
	cg_val v[4];
	kern k;
	if (update_check(c, n, 4))
		return -1;
	kern_begin(c, n, &k, numel_val(c, &in_node(c, n, 0)->type), grain_of(c, GRAIN_CHEAP / 4, ci64(c, 1)), false);
	if (update_vals(c, n, 4, v))
		return -1;
	LLVMValueRef lr = load_field(c, A_LR, c->f32);
	LLVMValueRef c1 = load_field(c, A_BC1, c->f32), c2 = load_field(c, A_BC2, c->f32);
	LLVMValueRef one = cf32(c, 1.0f);
	cg_loop l;
	LLVMValueRef i = range_begin(c, &l, k.lo, k.hi);
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
	kern_end(c, &k);
	return 0;
}

/* ------------------------------------------------------------------ */
/* random_flip, convolution, pooling, state updates                    */

/* See ops.def: per row, u = word 0 of Philox at {0, sample, epoch, 1};
 * u < 0.5f reverses the row along the axis. */
static int emit_RANDOM_FLIP(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	cg_val x, y;
	int ax = (int)n->ia[0];
	if (need_f32(c, n))
		return -1;
	if (stream_ok(c, n))
		return -1;
	if (n->type.rank < 2 || ax < 1 || ax >= n->type.rank || !ir_type_eq(&n->type, &xn->type))
		return cg_err(c, n, "needs [rows, ...] input of the result's type and an axis >= 1");
	kern k;
	LLVMValueRef units, grain;
	elem_units(c, &n->type, GRAIN_CHEAP, &units, &grain);
	kern_begin(c, n, &k, units, grain, false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	cg_rng rg;
	rng_load(c, n, &rg);
	LLVMValueRef sidx = rg.sidx, epoch = rg.epoch, k0 = rg.k0, k1 = rg.k1;
	int64_t E = 1, post = 1, L = n->type.d[ax].c;
	for (int i = 1; i < n->type.rank; i++)
		E *= n->type.d[i].c;
	for (int i = ax + 1; i < n->type.rank; i++)
		post *= n->type.d[i].c;
	cg_loop lr, le;
	LLVMValueRef r = range_begin(c, &lr, k.lo, k.hi);
	LLVMValueRef s = LLVMBuildTrunc(c->b, load_at(c, c->i64, sidx, r), c->i32, "");
	LLVMValueRef ctr[4] = { ci32(c, 0), s, epoch, ci32(c, 1) };
	LLVMValueRef w = philox_word(c, ctr, k0, k1, ci32(c, 0));
	LLVMValueRef u = fmul(c, LLVMBuildUIToFP(c->b, LLVMBuildLShr(c->b, w, ci32(c, 8), ""), c->f32, ""),
	                      cf32(c, 0x1p-24f));
	LLVMValueRef flip = fcmp(c, LLVMRealOLT, u, cf32(c, 0.5f));
	LLVMValueRef rb = mul(c, r, ci64(c, E));
	LLVMValueRef e = loop_begin(c, &le, ci64(c, E));
	LLVMValueRef i = LLVMBuildSRem(c->b, sdiv(c, e, ci64(c, post)), ci64(c, L), "");
	LLVMValueRef delta = mul(c, sub(c, ci64(c, L - 1), add(c, i, i)), ci64(c, post));
	LLVMValueRef src = add(c, e, sel(c, flip, delta, ci64(c, 0)));
	vstore(c, &y, add(c, rb, e), vload(c, &x, add(c, rb, src)));
	loop_end(c, &le);
	loop_end(c, &lr);
	kern_end(c, &k);
	return 0;
}

/* random_crop, random_crop_bwd, crop, crop_bwd (ops.def).  All four copy
 * a window between the planes of a row: out[.., i, j] = src[.., i + dr,
 * j + dc] where that lies inside src's R x C plane, else +0, with
 *   forward  (out S x S, src H x W): dr = oy - P, dc = ox - P
 *   backward (out H x W, src S x S): dr = P - oy, dc = P - ox.
 * Per plane the rows and columns split into a zero part, a copied part and
 * a zero part (bounds computed once per row), so the inner loops are
 * contiguous stores (and loads) that vectorise.  Units are the rows (the
 * samples); the random ops draw (oy, ox) once per row from Philox at
 * counter {0, sample, epoch, 2}: oy from word 0, ox from word 1, each
 * (w * n) >> 32 with n the number of window positions. */
static LLVMValueRef clampv(cg *c, LLVMValueRef v, LLVMValueRef lo, LLVMValueRef hi)
{
	return smin(c, smax(c, v, lo), hi);
}

static void zero_run(cg *c, const cg_val *v, LLVMValueRef base, LLVMValueRef from, LLVMValueRef to)
{
	cg_loop l;
	LLVMValueRef j = range_begin(c, &l, from, to);
	vstore(c, v, add(c, base, j), cf32(c, 0.0f));
	loop_end(c, &l);
}

static int emit_crop(cg *c, const ir_node *n, bool random, bool bwd)
{
	const ir_node *xn = in_node(c, n, 0);
	const ir_type *big = bwd ? &n->type : &xn->type, *small = bwd ? &xn->type : &n->type;
	int r = n->type.rank;
	int64_t S = n->ia[0], P = n->ia[1];
	cg_val x, y;
	if (need_f32(c, n))
		return -1;
	if (random && stream_ok(c, n))
		return -1;
	if (r < 3 || xn->type.rank != r || S < 1 || P < 0)
		return cg_err(c, n, "bad crop operands");
	int64_t H = big->d[r - 2].c, W = big->d[r - 1].c;
	if (S > H + 2 * P || S > W + 2 * P || small->d[r - 2].c != S || small->d[r - 1].c != S)
		return cg_err(c, n, "bad crop window");
	int64_t planes = 1;
	for (int i = 1; i < r - 2; i++)
		planes *= big->d[i].c;
	int64_t R_out = bwd ? H : S, C_out = bwd ? W : S, R_src = bwd ? S : H, C_src = bwd ? S : W;
	kern k;
	kern_begin(c, n, &k, dim_val(c, n->type.d[0]),
	           grain_of(c, GRAIN_CHEAP, ci64(c, planes * (R_out * C_out + R_src * C_src))), false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	cg_rng rg = { NULL, NULL, NULL, NULL };
	if (random)
		rng_load(c, n, &rg);
	cg_loop lr, lp, li;
	LLVMValueRef row = range_begin(c, &lr, k.lo, k.hi);
	LLVMValueRef oy, ox;
	if (random) {
		LLVMValueRef s = LLVMBuildTrunc(c->b, load_at(c, c->i64, rg.sidx, row), c->i32, "");
		LLVMValueRef ctr[4] = { ci32(c, 0), s, rg.epoch, ci32(c, 2) }, w[4];
		philox_block(c, ctr, rg.k0, rg.k1, w);
		LLVMValueRef sh = ci64(c, 32);
		oy = LLVMBuildLShr(c->b, mul(c, LLVMBuildZExt(c->b, w[0], c->i64, ""), ci64(c, H + 2 * P - S + 1)), sh, "");
		ox = LLVMBuildLShr(c->b, mul(c, LLVMBuildZExt(c->b, w[1], c->i64, ""), ci64(c, W + 2 * P - S + 1)), sh, "");
	} else {
		oy = ci64(c, n->ia[2]);
		ox = ci64(c, n->ia[3]);
	}
	LLVMValueRef dr = bwd ? sub(c, ci64(c, P), oy) : sub(c, oy, ci64(c, P));
	LLVMValueRef dc = bwd ? sub(c, ci64(c, P), ox) : sub(c, ox, ci64(c, P));
	LLVMValueRef zero = ci64(c, 0);
	/* rows i of out with 0 <= i + dr < R_src: [i0, i1); columns likewise */
	LLVMValueRef i0 = clampv(c, LLVMBuildNeg(c->b, dr, ""), zero, ci64(c, R_out));
	LLVMValueRef i1 = clampv(c, sub(c, ci64(c, R_src), dr), i0, ci64(c, R_out));
	LLVMValueRef j0 = clampv(c, LLVMBuildNeg(c->b, dc, ""), zero, ci64(c, C_out));
	LLVMValueRef j1 = clampv(c, sub(c, ci64(c, C_src), dc), j0, ci64(c, C_out));
	LLVMValueRef pl = loop_begin(c, &lp, ci64(c, planes));
	LLVMValueRef plane = add(c, mul(c, row, ci64(c, planes)), pl);
	LLVMValueRef ob = mul(c, plane, ci64(c, R_out * C_out));
	LLVMValueRef sb = mul(c, plane, ci64(c, R_src * C_src));
	zero_run(c, &y, ob, zero, mul(c, i0, ci64(c, C_out)));
	LLVMValueRef i = range_begin(c, &li, i0, i1);
	LLVMValueRef orow = add(c, ob, mul(c, i, ci64(c, C_out)));
	LLVMValueRef srow = add(c, add(c, sb, mul(c, add(c, i, dr), ci64(c, C_src))), dc);
	zero_run(c, &y, orow, zero, j0);
	cg_loop lj;
	LLVMValueRef j = range_begin(c, &lj, j0, j1);
	vstore(c, &y, add(c, orow, j), vload(c, &x, add(c, srow, j)));
	loop_end(c, &lj);
	zero_run(c, &y, orow, j1, ci64(c, C_out));
	loop_end(c, &li);
	zero_run(c, &y, ob, mul(c, i1, ci64(c, C_out)), ci64(c, R_out * C_out));
	loop_end(c, &lp);
	loop_end(c, &lr);
	kern_end(c, &k);
	return 0;
}
static int emit_RANDOM_CROP(cg *c, const ir_node *n) { return emit_crop(c, n, true, false); }
static int emit_RANDOM_CROP_BWD(cg *c, const ir_node *n) { return emit_crop(c, n, true, true); }
static int emit_CROP(cg *c, const ir_node *n) { return emit_crop(c, n, false, false); }
static int emit_CROP_BWD(cg *c, const ir_node *n) { return emit_crop(c, n, false, true); }

/* slice / slice_bwd / concat: x viewed as [pre, L, post]; units are pre */
static int emit_slice_like(cg *c, const ir_node *n, bool bwd)
{
	const ir_node *xn = in_node(c, n, 0);
	const ir_type *big = bwd ? &n->type : &xn->type;
	int ax = (int)n->ia[0];
	cg_val x, y;
	kern k;
	if (ax < 0 || ax >= big->rank || big->d[ax].sym)
		return cg_err(c, n, "bad slice axis");
	int64_t L = big->d[ax].c, st = n->ia[1], len = n->ia[2] - n->ia[1];
	LLVMValueRef post = dims_prod(c, big, ax + 1, big->rank);
	kern_begin(c, n, &k, dims_prod(c, big, 0, ax), grain_of(c, GRAIN_CHEAP, mul(c, ci64(c, L), post)), false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	post = dims_prod(c, big, ax + 1, big->rank);
	cg_loop lp, lj;
	LLVMValueRef p = range_begin(c, &lp, k.lo, k.hi);
	LLVMValueRef bigrow = mul(c, p, mul(c, ci64(c, L), post)), smallrow = mul(c, p, mul(c, ci64(c, len), post));
	if (!bwd) {
		LLVMValueRef j = loop_begin(c, &lj, mul(c, ci64(c, len), post));
		vstore(c, &y, add(c, smallrow, j), vload(c, &x, add(c, bigrow, add(c, mul(c, ci64(c, st), post), j))));
	} else {
		LLVMValueRef j = loop_begin(c, &lj, mul(c, ci64(c, L), post));
		LLVMValueRef r = sub(c, j, mul(c, ci64(c, st), post));
		LLVMValueRef in = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, r, ci64(c, 0), ""),
		                               LLVMBuildICmp(c->b, LLVMIntSLT, r, mul(c, ci64(c, len), post), ""), "");
		LLVMValueRef rc = smin(c, smax(c, r, ci64(c, 0)), sub(c, mul(c, ci64(c, len), post), ci64(c, 1)));
		vstore(c, &y, add(c, bigrow, j), sel(c, in, vload(c, &x, add(c, smallrow, rc)), cf32(c, 0.0f)));
	}
	loop_end(c, &lj);
	loop_end(c, &lp);
	kern_end(c, &k);
	return 0;
}
static int emit_SLICE(cg *c, const ir_node *n) { return emit_slice_like(c, n, false); }
static int emit_SLICE_BWD(cg *c, const ir_node *n) { return emit_slice_like(c, n, true); }

static int emit_CONCAT(cg *c, const ir_node *n)
{
	const ir_node *an = in_node(c, n, 0), *bn = in_node(c, n, 1);
	int ax = (int)n->ia[0];
	cg_val a, b, y;
	kern k;
	if (ax < 0 || ax >= n->type.rank || n->type.d[ax].sym)
		return cg_err(c, n, "bad concat axis");
	int64_t La = an->type.d[ax].c, Lb = bn->type.d[ax].c;
	LLVMValueRef post = dims_prod(c, &n->type, ax + 1, n->type.rank);
	kern_begin(c, n, &k, dims_prod(c, &n->type, 0, ax), grain_of(c, GRAIN_CHEAP, mul(c, ci64(c, La + Lb), post)), false);
	if (val_of(c, an, &a) || val_of(c, bn, &b) || val_of(c, n, &y))
		return -1;
	post = dims_prod(c, &n->type, ax + 1, n->type.rank);
	cg_loop lp, lj;
	LLVMValueRef p = range_begin(c, &lp, k.lo, k.hi);
	LLVMValueRef na = mul(c, ci64(c, La), post), nb = mul(c, ci64(c, Lb), post);
	LLVMValueRef yrow = mul(c, p, add(c, na, nb));
	LLVMValueRef j = loop_begin(c, &lj, na);
	vstore(c, &y, add(c, yrow, j), vload(c, &a, add(c, mul(c, p, na), j)));
	loop_end(c, &lj);
	j = loop_begin(c, &lj, nb);
	vstore(c, &y, add(c, yrow, add(c, na, j)), vload(c, &b, add(c, mul(c, p, nb), j)));
	loop_end(c, &lj);
	loop_end(c, &lp);
	kern_end(c, &k);
	return 0;
}

static int emit_ONE_HOT(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	cg_val x, y;
	kern k;
	int64_t C = n->ia[0];
	if (n->type.dt != IR_F32 || xn->type.dt == IR_F32 || C < 1)
		return cg_err(c, n, "needs integer indices and an f32 result");
	kern_begin(c, n, &k, numel_val(c, &xn->type), grain_of(c, GRAIN_CHEAP, ci64(c, C)), false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	cg_loop lu, lk;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef v = vload(c, &x, u);
	v = xn->type.dt == IR_U8 ? LLVMBuildZExt(c->b, v, c->i64, "") : LLVMBuildSExt(c->b, v, c->i64, "");
	LLVMValueRef kk = loop_begin(c, &lk, ci64(c, C));
	LLVMValueRef hit = LLVMBuildICmp(c->b, LLVMIntEQ, v, kk, "");
	vstore(c, &y, add(c, mul(c, u, ci64(c, C)), kk), sel(c, hit, cf32(c, 1.0f), cf32(c, 0.0f)));
	loop_end(c, &lk);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

static LLVMValueRef in_range(cg *c, LLVMValueRef v, int64_t lim)
{
	return LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, v, ci64(c, 0), ""),
	                    LLVMBuildICmp(c->b, LLVMIntSLT, v, ci64(c, lim), ""), "");
}
static LLVMValueRef clamp_idx(cg *c, LLVMValueRef v, int64_t lim)
{
	return smin(c, smax(c, v, ci64(c, 0)), ci64(c, lim - 1));
}
static void zero_plane(cg *c, const cg_val *v, LLVMValueRef base, int64_t len);

static LLVMValueRef load_index(cg *c, const cg_val *v, LLVMValueRef i)
{
	LLVMValueRef x = vload(c, v, i);
	return v->n->type.dt == IR_U8 ? LLVMBuildZExt(c->b, x, c->i64, "") : LLVMBuildSExt(c->b, x, c->i64, "");
}

/* units: positions; each copies its table row (or +0) */
static int emit_EMBEDDING(cg *c, const ir_node *n)
{
	const ir_node *tn = in_node(c, n, 0), *in = in_node(c, n, 1);
	cg_val t, x, y;
	kern k;
	int64_t V = tn->type.d[0].c, D = tn->type.d[1].c;
	if (n->type.dt != IR_F32 || in->type.dt == IR_F32)
		return cg_err(c, n, "needs an f32 table and integer indices");
	kern_begin(c, n, &k, numel_val(c, &in->type), grain_of(c, GRAIN_CHEAP, ci64(c, D)), false);
	if (val_of(c, tn, &t) || val_of(c, in, &x) || val_of(c, n, &y))
		return -1;
	cg_loop lp, lj;
	LLVMValueRef p = range_begin(c, &lp, k.lo, k.hi);
	LLVMValueRef v = load_index(c, &x, p);
	LLVMValueRef ok = in_range(c, v, V);
	LLVMValueRef tb_ = mul(c, clamp_idx(c, v, V), ci64(c, D));
	LLVMValueRef j = loop_begin(c, &lj, ci64(c, D));
	vstore(c, &y, add(c, mul(c, p, ci64(c, D)), j), sel(c, ok, vload(c, &t, add(c, tb_, j)), cf32(c, 0.0f)));
	loop_end(c, &lj);
	loop_end(c, &lp);
	kern_end(c, &k);
	return 0;
}

typedef struct emb_terms { const cg_val *dy, *x; LLVMValueRef v, j, D; } emb_terms;
static LLVMValueRef term_emb(cg *c, void *ctx, LLVMValueRef p)
{
	emb_terms *t = ctx;
	LLVMValueRef hit = LLVMBuildICmp(c->b, LLVMIntEQ, load_index(c, t->x, p), t->v, "");
	return sel(c, hit, vload(c, t->dy, add(c, mul(c, p, t->D), t->j)), cf32(c, 0.0f));
}

/* units: table rows v; seq: the row accumulates in memory over the
 * positions in order (non-matching terms, +0, skipped: exact) */
static int emit_EMBEDDING_BWD(cg *c, const ir_node *n)
{
	const ir_node *dn = in_node(c, n, 0), *in = in_node(c, n, 1);
	cg_val dy, x, g;
	kern k;
	int64_t V = n->type.d[0].c, D = n->type.d[1].c;
	if (n->type.dt != IR_F32 || in->type.dt == IR_F32 || check_plan(c, n, false))
		return cg_err(c, n, "needs f32 gradients and integer indices");
	kern_begin(c, n, &k, ci64(c, V), grain_of(c, GRAIN_CHEAP, numel_val(c, &in->type)), false);
	if (val_of(c, dn, &dy) || val_of(c, in, &x) || val_of(c, n, &g))
		return -1;
	cg_loop lv, lp, lj;
	LLVMValueRef v = range_begin(c, &lv, k.lo, k.hi);
	LLVMValueRef gb = mul(c, v, ci64(c, D));
	LLVMValueRef P = numel_val(c, &in->type);
	if (n->plan.family != IR_PLAN_SEQ) {
		LLVMValueRef j = loop_begin(c, &lj, ci64(c, D));
		emb_terms t = { &dy, &x, v, j, ci64(c, D) };
		vstore(c, &g, add(c, gb, j), emit_reduce(c, n->plan, P, term_emb, &t));
		loop_end(c, &lj);
	} else {
		zero_plane(c, &g, gb, D);
		LLVMValueRef p = loop_begin(c, &lp, P);
		LLVMBasicBlockRef join = if_begin(c, LLVMBuildICmp(c->b, LLVMIntEQ, load_index(c, &x, p), v, ""));
		LLVMValueRef j = loop_begin(c, &lj, ci64(c, D));
		LLVMValueRef gi = add(c, gb, j);
		vstore(c, &g, gi, fadd(c, vload(c, &g, gi), vload(c, &dy, add(c, mul(c, p, ci64(c, D)), j))));
		loop_end(c, &lj);
		if_end(c, join);
		loop_end(c, &lp);
	}
	loop_end(c, &lv);
	kern_end(c, &k);
	return 0;
}

/* Explicit vectors of c->vw lanes for the image kernels (im2col, col2im,
 * 2x2 pooling): runs of a row in chunks, the last chunk masked. */
typedef struct pool2v {
	cg *c;
	mm_ctx m;                  /* vty, vw (for mm_vload/mm_vstore) */
	LLVMTypeRef ity;           /* <vw x i32> */
	LLVMValueRef lane;         /* <0, 1, ..., vw-1> as i64 */
	LLVMValueRef even, odd, lo2, hi2;   /* shuffle masks */
} pool2v;

static LLVMValueRef const_lanes(cg *c, int n, int start, int step)
{
	LLVMValueRef v[2 * MM_MAXVW];
	for (int l = 0; l < n; l++)
		v[l] = ci32(c, start + l * step);
	return LLVMConstVector(v, (unsigned)n);
}

static void pool2v_init(cg *c, pool2v *p)
{
	memset(p, 0, sizeof *p);
	p->c = c;
	p->m.vw = c->vw;
	p->m.vty = LLVMVectorType(c->f32, (unsigned)c->vw);
	p->ity = LLVMVectorType(c->i32, (unsigned)c->vw);
	LLVMValueRef v[MM_MAXVW];
	for (int l = 0; l < c->vw; l++)
		v[l] = ci64(c, l);
	p->lane = LLVMConstVector(v, (unsigned)c->vw);
	p->even = const_lanes(c, c->vw, 0, 2);
	p->odd = const_lanes(c, c->vw, 1, 2);
	/* interleave a (lanes 0..vw-1) and b (vw..2vw-1): low and high halves */
	LLVMValueRef lo[MM_MAXVW], hi[MM_MAXVW];
	for (int l = 0; l < c->vw; l++) {
		lo[l] = ci32(c, (l % 2 ? c->vw : 0) + l / 2);
		hi[l] = ci32(c, (l % 2 ? c->vw : 0) + c->vw / 2 + l / 2);
	}
	p->lo2 = LLVMConstVector(lo, (unsigned)c->vw);
	p->hi2 = LLVMConstVector(hi, (unsigned)c->vw);
}

/* lanes l with l + off < n (n, off: i64 scalars) */
static LLVMValueRef lanes_below(pool2v *p, LLVMValueRef n, int64_t off)
{
	cg *c = p->c;
	LLVMTypeRef lt = LLVMVectorType(c->i64, (unsigned)c->vw);
	return LLVMBuildICmp(c->b, LLVMIntSLT, add(c, p->lane, splat(c, lt, ci64(c, off))), splat(c, lt, n), "");
}

/* im2col / col2im geometry: the image [N, C, H, W] and the columns
 * [C, KH, KW, N, OH, OW] (all constant but N) */
typedef struct cgeo {
	ir_dim N;
	int64_t C, H, W, KH, KW, OH, OW, s, p, d;
} cgeo;

static int col_geo(cg *c, const ir_node *n, const ir_type *x, const ir_type *col, cgeo *g)
{
	if (x->rank != 4 || col->rank != 6 || n->ia[0] < 1 || n->ia[1] < 0 || n->ia[2] < 1)
		return cg_err(c, n, "malformed im2col/col2im");
	g->N = x->d[0];
	g->C = x->d[1].c; g->H = x->d[2].c; g->W = x->d[3].c;
	g->KH = col->d[1].c; g->KW = col->d[2].c; g->OH = col->d[4].c; g->OW = col->d[5].c;
	g->s = n->ia[0]; g->p = n->ia[1]; g->d = n->ia[2];
	if (col->d[0].c != g->C || col->d[3].c != g->N.c || col->d[3].sym != g->N.sym)
		return cg_err(c, n, "image and columns do not agree");
	return 0;
}

/* the outputs o in [0, nout) whose input position o*s + off lies in
 * [0, lim): [*lo, *hi) with *lo <= *hi (run time values) */
static void conv_range(cg *c, LLVMValueRef off, int64_t s, int64_t lim, int64_t nout,
                       LLVMValueRef *lo, LLVMValueRef *hi)
{
	LLVMValueRef S = ci64(c, s), zero = ci64(c, 0), NO = ci64(c, nout);
	LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, off, zero, "");
	LLVMValueRef l = sel(c, neg, sdiv(c, add(c, sub(c, zero, off), ci64(c, s - 1)), S), zero);
	LLVMValueRef top = sub(c, ci64(c, lim - 1), off);   /* o*s <= top */
	LLVMValueRef h = sel(c, LLVMBuildICmp(c->b, LLVMIntSLT, top, zero, ""), zero, add(c, sdiv(c, top, S), ci64(c, 1)));
	h = smin(c, h, NO);
	l = smin(c, l, NO);
	*lo = l;
	*hi = smax(c, h, l);
}

static LLVMValueRef srem(cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSRem(c->b, a, b, ""); }

/* A row of OW values in vector steps for im2col/col2im at stride 1:
 * opens the loop lv and returns the first lane's index ow0; *in is the
 * mask of the lanes with lo <= ow0 + lane < hi (the others are neither
 * read nor written, and plain GEPs let their addresses lie outside). */
static LLVMValueRef row_lanes(cg *c, pool2v *p, cg_loop *lv, int64_t OW, LLVMValueRef lo, LLVMValueRef hi,
                              LLVMValueRef *in)
{
	pool2v_init(c, p);
	p->m.plain_gep = true;
	LLVMValueRef ow0 = mul(c, loop_begin(c, lv, ci64(c, (OW + c->vw - 1) / c->vw)), ci64(c, c->vw));
	*in = LLVMBuildAnd(c->b, LLVMBuildNot(c->b, lanes_below(p, sub(c, lo, ow0), 0), ""),
	                   lanes_below(p, sub(c, hi, ow0), 0), "");
	return ow0;
}

/* Units: the rows (c, kh, kw, n) of the columns, each one OH x OW plane:
 * for each oh, the run of ow whose input lies inside the image is copied
 * (unit stride when s = 1), the rest of the row is +0. */
static int emit_IM2COL(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	cgeo g = { 0 };
	cg_val x, col;
	kern k;
	if (need_f32(c, n) || col_geo(c, n, &xn->type, &n->type, &g))
		return -1;
	int64_t plane = g.OH * g.OW;
	kern_begin(c, n, &k, mul(c, dim_val(c, g.N), ci64(c, g.C * g.KH * g.KW)),
	           grain_of(c, GRAIN_CHEAP, ci64(c, plane)), false);
	if (val_of(c, xn, &x) || val_of(c, n, &col))
		return -1;
	LLVMValueRef N = dim_val(c, g.N);
	cg_loop lu, l1, l2;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef nn = srem(c, u, N), r = sdiv(c, u, N);
	LLVMValueRef kw = srem(c, r, ci64(c, g.KW));
	r = sdiv(c, r, ci64(c, g.KW));
	LLVMValueRef kh = srem(c, r, ci64(c, g.KH)), ch = sdiv(c, r, ci64(c, g.KH));
	LLVMValueRef xb = mul(c, add(c, mul(c, nn, ci64(c, g.C)), ch), ci64(c, g.H * g.W));
	LLVMValueRef cb = mul(c, u, ci64(c, plane));
	LLVMValueRef offh = sub(c, mul(c, kh, ci64(c, g.d)), ci64(c, g.p));
	LLVMValueRef offw = sub(c, mul(c, kw, ci64(c, g.d)), ci64(c, g.p));
	LLVMValueRef wl, wh;
	conv_range(c, offw, g.s, g.W, g.OW, &wl, &wh);
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g.OH));
	LLVMValueRef ih = add(c, mul(c, oh, ci64(c, g.s)), offh);
	LLVMValueRef ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, ih, ci64(c, 0), ""),
	                               LLVMBuildICmp(c->b, LLVMIntSLT, ih, ci64(c, g.H), ""), "");
	LLVMValueRef OWv = ci64(c, g.OW);
	LLVMValueRef lo = sel(c, ok, wl, OWv), hi = sel(c, ok, wh, OWv);
	LLVMValueRef row = add(c, cb, mul(c, oh, OWv));
	LLVMValueRef xrow = add(c, xb, add(c, mul(c, sel(c, ok, ih, ci64(c, 0)), ci64(c, g.W)), offw));
	if (g.s == 1) {
		/* the row in vectors: lanes in [lo, hi) loaded (masked: the others
		 * are neither read nor addressed in bounds), the rest +0 */
		pool2v p;
		cg_loop lv;
		LLVMValueRef in, ow0 = row_lanes(c, &p, &lv, g.OW, lo, hi, &in);
		LLVMValueRef v = mm_vload(c, &p.m, x.base, add(c, xrow, ow0), in);
		mm_vstore(c, &p.m, col.base, add(c, row, ow0), v, lanes_below(&p, sub(c, OWv, ow0), 0));
		loop_end(c, &lv);
		loop_end(c, &l1);
		loop_end(c, &lu);
		kern_end(c, &k);
		return 0;
	}
	LLVMValueRef ow = loop_begin(c, &l2, lo);
	vstore(c, &col, add(c, row, ow), cf32(c, 0.0f));
	loop_end(c, &l2);
	ow = range_begin(c, &l2, lo, hi);
	vstore(c, &col, add(c, row, ow), vload(c, &x, add(c, xrow, mul(c, ow, ci64(c, g.s)))));
	loop_end(c, &l2);
	ow = range_begin(c, &l2, hi, OWv);
	vstore(c, &col, add(c, row, ow), cf32(c, 0.0f));
	loop_end(c, &l2);
	loop_end(c, &l1);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

/* col2im term (kh, kw) for dx[n, c, ih, iw] */
typedef struct col_terms {
	const cgeo *g;
	const cg_val *col;
	LLVMValueRef N, nn, ch, ih, iw;
} col_terms;
static LLVMValueRef term_col2im(cg *c, void *ctx, LLVMValueRef k)
{
	col_terms *t = ctx;
	const cgeo *g = t->g;
	LLVMValueRef kh = sdiv(c, k, ci64(c, g->KW)), kw = srem(c, k, ci64(c, g->KW));
	LLVMValueRef th = sub(c, add(c, t->ih, ci64(c, g->p)), mul(c, kh, ci64(c, g->d)));
	LLVMValueRef tw = sub(c, add(c, t->iw, ci64(c, g->p)), mul(c, kw, ci64(c, g->d)));
	LLVMValueRef thc = smax(c, th, ci64(c, 0)), twc = smax(c, tw, ci64(c, 0));
	LLVMValueRef oh = sdiv(c, thc, ci64(c, g->s)), ow = sdiv(c, twc, ci64(c, g->s));
	LLVMValueRef ok = LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntSGE, th, ci64(c, 0), ""),
	                               LLVMBuildICmp(c->b, LLVMIntSGE, tw, ci64(c, 0), ""), "");
	ok = LLVMBuildAnd(c->b, ok, LLVMBuildICmp(c->b, LLVMIntEQ, mul(c, oh, ci64(c, g->s)), thc, ""), "");
	ok = LLVMBuildAnd(c->b, ok, LLVMBuildICmp(c->b, LLVMIntEQ, mul(c, ow, ci64(c, g->s)), twc, ""), "");
	ok = LLVMBuildAnd(c->b, ok, LLVMBuildICmp(c->b, LLVMIntSLT, oh, ci64(c, g->OH), ""), "");
	ok = LLVMBuildAnd(c->b, ok, LLVMBuildICmp(c->b, LLVMIntSLT, ow, ci64(c, g->OW), ""), "");
	/* col[c, kh, kw, n, oh, ow] */
	LLVMValueRef row = add(c, mul(c, t->ch, ci64(c, g->KH * g->KW)), k);
	LLVMValueRef ci = add(c, mul(c, add(c, mul(c, row, t->N), t->nn), ci64(c, g->OH * g->OW)),
	                      add(c, mul(c, smin(c, oh, ci64(c, g->OH - 1)), ci64(c, g->OW)),
	                          smin(c, ow, ci64(c, g->OW - 1))));
	return sel(c, ok, vload(c, t->col, ci), cf32(c, 0.0f));
}

/* Units: the (c, n) planes of dx.  seq: the plane starts at +0 and, for
 * (kh, kw) in order, the columns' entries that map onto it are added
 * (each (kh, kw) reaches an input position at most once, so every
 * element sees its terms in (kh, kw) order; the +0 terms of the other
 * positions are skipped, which is exact: the sum is never -0).  Other
 * plans: emit_reduce per element over its KH*KW terms. */
static int emit_COL2IM(cg *c, const ir_node *n)
{
	const ir_node *cn = in_node(c, n, 0);
	cgeo g = { 0 };
	cg_val col, dx;
	kern k;
	if (need_f32(c, n) || check_plan(c, n, false) || col_geo(c, n, &n->type, &cn->type, &g))
		return -1;
	int64_t plane = g.H * g.W, khw = g.KH * g.KW;
	kern_begin(c, n, &k, mul(c, dim_val(c, g.N), ci64(c, g.C)),
	           grain_of(c, GRAIN_CHEAP, ci64(c, khw * g.OH * g.OW)), false);
	if (val_of(c, cn, &col) || val_of(c, n, &dx))
		return -1;
	LLVMValueRef N = dim_val(c, g.N);
	cg_loop lu, l1, l2, l3, l4;
	/* units (c, n): consecutive units read consecutive rows of every
	 * (c, kh, kw) block of the columns */
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef ch = sdiv(c, u, N), nn = srem(c, u, N);
	LLVMValueRef pb = mul(c, add(c, mul(c, nn, ci64(c, g.C)), ch), ci64(c, plane));
	if (n->plan.family != IR_PLAN_SEQ) {
		LLVMValueRef ih = loop_begin(c, &l1, ci64(c, g.H));
		LLVMValueRef iw = loop_begin(c, &l2, ci64(c, g.W));
		col_terms t = { .g = &g, .col = &col, .N = N, .nn = nn, .ch = ch, .ih = ih, .iw = iw };
		LLVMValueRef v = emit_reduce(c, n->plan, ci64(c, khw), term_col2im, &t);
		vstore(c, &dx, add(c, pb, add(c, mul(c, ih, ci64(c, g.W)), iw)), v);
		loop_end(c, &l2);
		loop_end(c, &l1);
		loop_end(c, &lu);
		kern_end(c, &k);
		return 0;
	}
	LLVMValueRef i = loop_begin(c, &l1, ci64(c, plane));
	vstore(c, &dx, add(c, pb, i), cf32(c, 0.0f));
	loop_end(c, &l1);
	LLVMValueRef kh = loop_begin(c, &l1, ci64(c, g.KH));
	LLVMValueRef kw = loop_begin(c, &l2, ci64(c, g.KW));
	LLVMValueRef offh = sub(c, mul(c, kh, ci64(c, g.d)), ci64(c, g.p));
	LLVMValueRef offw = sub(c, mul(c, kw, ci64(c, g.d)), ci64(c, g.p));
	LLVMValueRef hl, hh, wl, wh;
	conv_range(c, offh, g.s, g.H, g.OH, &hl, &hh);
	conv_range(c, offw, g.s, g.W, g.OW, &wl, &wh);
	LLVMValueRef row = add(c, mul(c, ch, ci64(c, khw)), add(c, mul(c, kh, ci64(c, g.KW)), kw));
	LLVMValueRef cb = mul(c, add(c, mul(c, row, N), nn), ci64(c, g.OH * g.OW));
	LLVMValueRef oh = range_begin(c, &l3, hl, hh);
	LLVMValueRef crow = add(c, cb, mul(c, oh, ci64(c, g.OW)));
	LLVMValueRef xrow = add(c, pb, add(c, mul(c, add(c, mul(c, oh, ci64(c, g.s)), offh), ci64(c, g.W)), offw));
	if (g.s == 1) {
		/* dx[ih, ow + offw] += col[oh, ow] for ow in [wl, wh), in vectors
		 * (lanes outside masked: neither read nor written) */
		pool2v p;
		cg_loop lv;
		LLVMValueRef in, ow0 = row_lanes(c, &p, &lv, g.OW, wl, wh, &in);
		LLVMValueRef xi = add(c, xrow, ow0);
		LLVMValueRef v = fadd(c, mm_vload(c, &p.m, dx.base, xi, in), mm_vload(c, &p.m, col.base, add(c, crow, ow0), in));
		mm_vstore(c, &p.m, dx.base, xi, v, in);
		loop_end(c, &lv);
	} else {
	LLVMValueRef ow = range_begin(c, &l4, wl, wh);
	LLVMValueRef xi = add(c, xrow, mul(c, ow, ci64(c, g.s)));
	vstore(c, &dx, xi, fadd(c, vload(c, &dx, xi), vload(c, &col, add(c, crow, ow))));
	loop_end(c, &l4);
	}
	loop_end(c, &l3);
	loop_end(c, &l2);
	loop_end(c, &l1);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

/* pooling: units are the (n, c) planes */
typedef struct pgeo { int64_t H, W, OH, OW, k, s; } pgeo;
static int pool_geo(cg *c, const ir_node *n, const ir_type *x, const ir_type *y, pgeo *g)
{
	if (x->rank != 4 || y->rank != 4 || n->ia[0] < 1 || n->ia[1] < 1)
		return cg_err(c, n, "malformed pooling");
	*g = (pgeo){ x->d[2].c, x->d[3].c, y->d[2].c, y->d[3].c, n->ia[0], n->ia[1] };
	return 0;
}
static LLVMValueRef planes(cg *c, const ir_type *x) { return dims_prod(c, x, 0, 2); }

/* y = -inf, then for every window position (i, j) in row-major order,
 * y = max_step(y, x): the loop over ow (independent outputs, x at stride
 * s) is innermost, so it may vectorise; each output still sees its
 * window in order. */
/* 2x2 windows at stride 2, vectorised over ow: a window row's two
 * columns come from two contiguous vectors split into even and odd lanes.
 * The float operations per output are the scalar kernel's, in the same
 * order (max_step / argmax_step lane by lane, dx = +0 + dy at the argmax).
 *
 * Columns 0 and 1 of the windows whose row starts at base (x[base + 2l],
 * x[base + 2l + 1] for lane l < rem) */
static void pool2v_row(pool2v *p, const cg_val *x, LLVMValueRef base, LLVMValueRef rem, LLVMValueRef *c0,
                       LLVMValueRef *c1)
{
	cg *c = p->c;
	LLVMValueRef n2 = mul(c, rem, ci64(c, 2)), vw = ci64(c, c->vw);
	LLVMValueRef v0 = mm_vload(c, &p->m, x->base, base, lanes_below(p, n2, 0));
	/* the second vector only where it has lanes (its address stays inside) */
	LLVMValueRef off = sel(c, LLVMBuildICmp(c->b, LLVMIntSGT, n2, vw, ""), vw, ci64(c, 0));
	LLVMValueRef v1 = mm_vload(c, &p->m, x->base, add(c, base, off), lanes_below(p, n2, c->vw));
	*c0 = LLVMBuildShuffleVector(c->b, v0, v1, p->even, "");
	*c1 = LLVMBuildShuffleVector(c->b, v0, v1, p->odd, "");
}

static LLVMValueRef vmax_step(pool2v *p, LLVMValueRef a, LLVMValueRef b)
{
	cg *c = p->c;
	LLVMValueRef ai = LLVMBuildBitCast(c->b, a, p->ity, ""), bi = LLVMBuildBitCast(c->b, b, p->ity, "");
	LLVMValueRef eq = LLVMBuildBitCast(c->b, LLVMBuildAnd(c->b, ai, bi, ""), p->m.vty, "");
	LLVMValueRef r = sel(c, fcmp(c, LLVMRealOEQ, a, b), eq, b);
	r = sel(c, fcmp(c, LLVMRealOGT, a, b), a, r);
	r = sel(c, isnan_(c, b), b, r);
	return sel(c, isnan_(c, a), a, r);
}

/* k = s = 2: one (n, c) plane from xb to yb */
static void maxpool2_fwd(cg *c, const pgeo *g, const cg_val *x, const cg_val *y, LLVMValueRef xb, LLVMValueRef yb)
{
	pool2v p;
	pool2v_init(c, &p);
	cg_loop l1, l2;
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g->OH));
	LLVMValueRef ow0 = mul(c, loop_begin(c, &l2, ci64(c, (g->OW + c->vw - 1) / c->vw)), ci64(c, c->vw));
	LLVMValueRef rem = sub(c, ci64(c, g->OW), ow0);
	LLVMValueRef m = splat(c, p.m.vty, cf32(c, -__builtin_inff()));
	for (int i = 0; i < 2; i++) {
		LLVMValueRef c0, c1;
		LLVMValueRef base = add(c, xb, add(c, mul(c, add(c, mul(c, oh, ci64(c, 2)), ci64(c, i)), ci64(c, g->W)),
		                                   mul(c, ow0, ci64(c, 2))));
		pool2v_row(&p, x, base, rem, &c0, &c1);
		m = vmax_step(&p, m, c0);
		m = vmax_step(&p, m, c1);
	}
	mm_vstore(c, &p.m, y->base, add(c, yb, add(c, mul(c, oh, ci64(c, g->OW)), ow0)), m, lanes_below(&p, rem, 0));
	loop_end(c, &l2);
	loop_end(c, &l1);
}

/* k = s = 2: dx of one plane (dx at xb, x at xb, dy at yb); every
 * position of a window is written (+0, or +0 + dy at the argmax) */
static void maxpool2_bwd(cg *c, const pgeo *g, const cg_val *dy, const cg_val *x, const cg_val *dx,
                         LLVMValueRef xb, LLVMValueRef yb)
{
	pool2v p;
	pool2v_init(c, &p);
	cg_loop l1, l2;
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g->OH));
	LLVMValueRef ow0 = mul(c, loop_begin(c, &l2, ci64(c, (g->OW + c->vw - 1) / c->vw)), ci64(c, c->vw));
	LLVMValueRef rem = sub(c, ci64(c, g->OW), ow0);
	LLVMValueRef best = splat(c, p.m.vty, cf32(c, -__builtin_inff()));
	LLVMValueRef bidx = LLVMConstNull(p.ity);
	LLVMValueRef base[2];
	for (int i = 0; i < 2; i++) {
		LLVMValueRef cv[2];
		base[i] = add(c, xb, add(c, mul(c, add(c, mul(c, oh, ci64(c, 2)), ci64(c, i)), ci64(c, g->W)),
		                        mul(c, ow0, ci64(c, 2))));
		pool2v_row(&p, x, base[i], rem, &cv[0], &cv[1]);
		for (int j = 0; j < 2; j++) {
			LLVMValueRef v = cv[j];
			LLVMValueRef take = LLVMBuildOr(c->b, fcmp(c, LLVMRealOGT, v, best),
			                                LLVMBuildAnd(c->b, isnan_(c, v), LLVMBuildNot(c->b, isnan_(c, best), ""), ""), "");
			best = sel(c, take, v, best);
			bidx = sel(c, take, splat(c, p.ity, ci32(c, 2 * i + j)), bidx);
		}
	}
	LLVMValueRef gv = mm_vload(c, &p.m, dy->base, add(c, yb, add(c, mul(c, oh, ci64(c, g->OW)), ow0)),
	                           lanes_below(&p, rem, 0));
	gv = fadd(c, splat(c, p.m.vty, cf32(c, 0.0f)), gv);
	LLVMValueRef zero = LLVMConstNull(p.m.vty), n2 = mul(c, rem, ci64(c, 2)), vw = ci64(c, c->vw);
	LLVMValueRef off = sel(c, LLVMBuildICmp(c->b, LLVMIntSGT, n2, vw, ""), vw, ci64(c, 0));
	for (int i = 0; i < 2; i++) {
		LLVMValueRef d[2];
		for (int j = 0; j < 2; j++)
			d[j] = sel(c, LLVMBuildICmp(c->b, LLVMIntEQ, bidx, splat(c, p.ity, ci32(c, 2 * i + j)), ""), gv, zero);
		mm_vstore(c, &p.m, dx->base, base[i], LLVMBuildShuffleVector(c->b, d[0], d[1], p.lo2, ""),
		          lanes_below(&p, n2, 0));
		mm_vstore(c, &p.m, dx->base, add(c, base[i], off), LLVMBuildShuffleVector(c->b, d[0], d[1], p.hi2, ""),
		          lanes_below(&p, n2, c->vw));
	}
	loop_end(c, &l2);
	loop_end(c, &l1);
}

static int emit_MAX_POOL2D(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	pgeo g = { 0 };
	cg_val x, y;
	kern k;
	if (need_f32(c, n) || pool_geo(c, n, &xn->type, &n->type, &g))
		return -1;
	kern_begin(c, n, &k, planes(c, &xn->type), grain_of(c, GRAIN_CHEAP, ci64(c, g.OH * g.OW * g.k * g.k)), false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	cg_loop lu, l1, l2, l3, l4;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef xb = mul(c, u, ci64(c, g.H * g.W)), yb = mul(c, u, ci64(c, g.OH * g.OW));
	if (g.k == 2 && g.s == 2) {
		maxpool2_fwd(c, &g, &x, &y, xb, yb);
		loop_end(c, &lu);
		kern_end(c, &k);
		return 0;
	}
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g.OH));
	LLVMValueRef yrow = add(c, yb, mul(c, oh, ci64(c, g.OW)));
	LLVMValueRef ow = loop_begin(c, &l2, ci64(c, g.OW));
	vstore(c, &y, add(c, yrow, ow), cf32(c, -__builtin_inff()));
	loop_end(c, &l2);
	LLVMValueRef i = loop_begin(c, &l3, ci64(c, g.k));
	LLVMValueRef j = loop_begin(c, &l4, ci64(c, g.k));
	LLVMValueRef xrow = add(c, xb, add(c, mul(c, add(c, mul(c, oh, ci64(c, g.s)), i), ci64(c, g.W)), j));
	ow = loop_begin(c, &l2, ci64(c, g.OW));
	LLVMValueRef yi = add(c, yrow, ow);
	vstore(c, &y, yi, max_step(c, vload(c, &y, yi), vload(c, &x, add(c, xrow, mul(c, ow, ci64(c, g.s))))));
	loop_end(c, &l2);
	loop_end(c, &l4);
	loop_end(c, &l3);
	loop_end(c, &l1);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

static void zero_plane(cg *c, const cg_val *v, LLVMValueRef base, int64_t len)
{
	cg_loop l;
	LLVMValueRef i = loop_begin(c, &l, ci64(c, len));
	vstore(c, v, add(c, base, i), cf32(c, 0.0f));
	loop_end(c, &l);
}

static int emit_MAX_POOL2D_BWD(cg *c, const ir_node *n)
{
	const ir_node *dn = in_node(c, n, 0), *xn = in_node(c, n, 1);
	pgeo g = { 0 };
	cg_val dy, x, dx;
	kern k;
	if (need_f32(c, n) || pool_geo(c, n, &xn->type, &dn->type, &g))
		return -1;
	kern_begin(c, n, &k, planes(c, &xn->type), grain_of(c, GRAIN_CHEAP, ci64(c, g.OH * g.OW * g.k * g.k)), false);
	if (val_of(c, dn, &dy) || val_of(c, xn, &x) || val_of(c, n, &dx))
		return -1;
	cg_loop lu, l1, l2, l3;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef xb = mul(c, u, ci64(c, g.H * g.W)), yb = mul(c, u, ci64(c, g.OH * g.OW));
	zero_plane(c, &dx, xb, g.H * g.W);
	if (g.k == 2 && g.s == 2) {
		maxpool2_bwd(c, &g, &dy, &x, &dx, xb, yb);
		loop_end(c, &lu);
		kern_end(c, &k);
		return 0;
	}
	if (g.s >= g.k && g.k * g.k <= 16) {
		/* windows that do not overlap: a position gets at most one
		 * gradient, dx = +0 + dy at the window's argmax and +0 at its other
		 * positions; the window unrolled, the ow loop free to vectorise */
		LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g.OH));
		LLVMValueRef ow = loop_begin(c, &l2, ci64(c, g.OW));
		LLVMValueRef wb = add(c, xb, add(c, mul(c, mul(c, oh, ci64(c, g.s)), ci64(c, g.W)), mul(c, ow, ci64(c, g.s))));
		LLVMValueRef best = new_var(c, c->f32, cf32(c, -__builtin_inff()));
		LLVMValueRef bidx = new_var(c, c->i64, ci64(c, 0));
		for (int64_t q = 0; q < g.k * g.k; q++)
			argmax_step(c, best, bidx, vload(c, &x, add(c, wb, ci64(c, (q / g.k) * g.W + q % g.k))), ci64(c, q));
		LLVMValueRef bq = get_var(c, c->i64, bidx);
		LLVMValueRef gv = fadd(c, cf32(c, 0.0f), vload(c, &dy, add(c, yb, add(c, mul(c, oh, ci64(c, g.OW)), ow))));
		for (int64_t q = 0; q < g.k * g.k; q++)
			vstore(c, &dx, add(c, wb, ci64(c, (q / g.k) * g.W + q % g.k)),
			       sel(c, LLVMBuildICmp(c->b, LLVMIntEQ, bq, ci64(c, q), ""), gv, cf32(c, 0.0f)));
		loop_end(c, &l2);
		loop_end(c, &l1);
		loop_end(c, &lu);
		kern_end(c, &k);
		return 0;
	}
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g.OH));
	LLVMValueRef ow = loop_begin(c, &l2, ci64(c, g.OW));
	LLVMValueRef wb = add(c, xb, add(c, mul(c, mul(c, oh, ci64(c, g.s)), ci64(c, g.W)), mul(c, ow, ci64(c, g.s))));
	LLVMValueRef best = new_var(c, c->f32, cf32(c, -__builtin_inff()));
	LLVMValueRef bidx = new_var(c, c->i64, ci64(c, 0));
	LLVMValueRef q = loop_begin(c, &l3, ci64(c, g.k * g.k));
	LLVMValueRef pos = add(c, mul(c, sdiv(c, q, ci64(c, g.k)), ci64(c, g.W)), LLVMBuildSRem(c->b, q, ci64(c, g.k), ""));
	argmax_step(c, best, bidx, vload(c, &x, add(c, wb, pos)), q);
	loop_end(c, &l3);
	LLVMValueRef bq = get_var(c, c->i64, bidx);
	LLVMValueRef di = add(c, wb, add(c, mul(c, sdiv(c, bq, ci64(c, g.k)), ci64(c, g.W)),
	                                 LLVMBuildSRem(c->b, bq, ci64(c, g.k), "")));
	LLVMValueRef gv = vload(c, &dy, add(c, yb, add(c, mul(c, oh, ci64(c, g.OW)), ow)));
	vstore(c, &dx, di, fadd(c, vload(c, &dx, di), gv));
	loop_end(c, &l2);
	loop_end(c, &l1);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

typedef struct pool_terms { const pgeo *g; const cg_val *x; LLVMValueRef wb; } pool_terms;
static LLVMValueRef term_pool(cg *c, void *ctx, LLVMValueRef q)
{
	pool_terms *t = ctx;
	LLVMValueRef kk = ci64(c, t->g->k);
	return vload(c, t->x, add(c, t->wb, add(c, mul(c, sdiv(c, q, kk), ci64(c, t->g->W)), LLVMBuildSRem(c->b, q, kk, ""))));
}

static int emit_AVG_POOL2D(cg *c, const ir_node *n)
{
	const ir_node *xn = in_node(c, n, 0);
	pgeo g = { 0 };
	cg_val x, y;
	kern k;
	if (need_f32(c, n) || check_plan(c, n, false) || pool_geo(c, n, &xn->type, &n->type, &g))
		return -1;
	kern_begin(c, n, &k, planes(c, &xn->type), grain_of(c, GRAIN_CHEAP, ci64(c, g.OH * g.OW * g.k * g.k)), false);
	if (val_of(c, xn, &x) || val_of(c, n, &y))
		return -1;
	cg_loop lu, l1, l2;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef xb = mul(c, u, ci64(c, g.H * g.W)), yb = mul(c, u, ci64(c, g.OH * g.OW));
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g.OH));
	LLVMValueRef ow = loop_begin(c, &l2, ci64(c, g.OW));
	pool_terms t = { &g, &x, add(c, xb, add(c, mul(c, mul(c, oh, ci64(c, g.s)), ci64(c, g.W)), mul(c, ow, ci64(c, g.s)))) };
	LLVMValueRef v = emit_reduce(c, n->plan, ci64(c, g.k * g.k), term_pool, &t);
	vstore(c, &y, add(c, yb, add(c, mul(c, oh, ci64(c, g.OW)), ow)), fdiv(c, v, cf32(c, (float)(g.k * g.k))));
	loop_end(c, &l2);
	loop_end(c, &l1);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

static int emit_AVG_POOL2D_BWD(cg *c, const ir_node *n)
{
	const ir_node *dn = in_node(c, n, 0);
	pgeo g = { 0 };
	cg_val dy, dx;
	kern k;
	if (need_f32(c, n) || pool_geo(c, n, &n->type, &dn->type, &g))
		return -1;
	kern_begin(c, n, &k, planes(c, &n->type), grain_of(c, GRAIN_CHEAP, ci64(c, g.OH * g.OW * g.k * g.k)), false);
	if (val_of(c, dn, &dy) || val_of(c, n, &dx))
		return -1;
	cg_loop lu, l1, l2, l3;
	LLVMValueRef u = range_begin(c, &lu, k.lo, k.hi);
	LLVMValueRef xb = mul(c, u, ci64(c, g.H * g.W)), yb = mul(c, u, ci64(c, g.OH * g.OW));
	zero_plane(c, &dx, xb, g.H * g.W);
	LLVMValueRef oh = loop_begin(c, &l1, ci64(c, g.OH));
	LLVMValueRef ow = loop_begin(c, &l2, ci64(c, g.OW));
	LLVMValueRef wb = add(c, xb, add(c, mul(c, mul(c, oh, ci64(c, g.s)), ci64(c, g.W)), mul(c, ow, ci64(c, g.s))));
	LLVMValueRef gv = fdiv(c, vload(c, &dy, add(c, yb, add(c, mul(c, oh, ci64(c, g.OW)), ow))),
	                       cf32(c, (float)(g.k * g.k)));
	LLVMValueRef q = loop_begin(c, &l3, ci64(c, g.k * g.k));
	LLVMValueRef di = add(c, wb, add(c, mul(c, sdiv(c, q, ci64(c, g.k)), ci64(c, g.W)), LLVMBuildSRem(c->b, q, ci64(c, g.k), "")));
	vstore(c, &dx, di, fadd(c, vload(c, &dx, di), gv));
	loop_end(c, &l3);
	loop_end(c, &l2);
	loop_end(c, &l1);
	loop_end(c, &lu);
	kern_end(c, &k);
	return 0;
}

/* state = fa1 * state + fa0 * value, per element */
static int emit_STATE_EMA(cg *c, const ir_node *n)
{
	cg_val v[2];
	kern k;
	if (update_check(c, n, 2))
		return -1;
	kern_begin(c, n, &k, numel_val(c, &in_node(c, n, 0)->type), grain_of(c, GRAIN_CHEAP / 2, ci64(c, 1)), false);
	if (update_vals(c, n, 2, v))
		return -1;
	cg_loop l;
	LLVMValueRef i = range_begin(c, &l, k.lo, k.hi);
	vstore(c, &v[0], i, fadd(c, fmul(c, cf32(c, n->fa[1]), vload(c, &v[0], i)),
	                         fmul(c, cf32(c, n->fa[0]), vload(c, &v[1], i))));
	loop_end(c, &l);
	kern_end(c, &k);
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

/* With args->debug set: nnd_rt_node_digest(args, graph, node, value,
 * bytes) after node n -- its own value, or for an update op the updated
 * parameter.  Nodes without storage (CONST/NUMEL immediates) report
 * nothing. */
static void emit_digest(cg *c, const ir_node *n)
{
	const ir_node *v = (ir_ops[n->op].flags & IR_F_UPDATE) ? in_node(c, n, 0) : n;
	if (v->blk == IR_BLK_NONE)
		return;
	LLVMBasicBlockRef join = if_begin(c, c->debug);
	LLVMValueRef base = node_base(c, v);
	if (base) {
		LLVMValueRef bytes = mul(c, numel_val(c, &v->type), ci64(c, ir_dtype_size(v->type.dt)));
		LLVMTypeRef pt[5] = { c->ptr, c->i32, c->i32, c->ptr, c->i64 };
		LLVMTypeRef fty = LLVMFunctionType(c->vd, pt, 5, 0);
		LLVMValueRef a[5] = { c->args, ci32(c, c->gidx), ci32(c, n->id),
		                      LLVMBuildPointerCast(c->b, base, c->ptr, ""), bytes };
		LLVMBuildCall2(c->b, fty, rt_fn(c, "nnd_rt_node_digest", fty), a, 5, "");
	}
	if_end(c, join);
}

/* The flops of node n (2 per multiply-add of a dot product, else 0), for
 * --profile's GFLOP/s (convolutions are matmuls: passes/conv.c) */
static LLVMValueRef node_flops(cg *c, const ir_node *n)
{
	if (n->op == IR_MATMUL) {
		const ir_type *at = &in_node(c, n, 0)->type;
		LLVMValueRef K = dim_val(c, at->d[at->rank - (n->ia[0] ? 2 : 1)]);
		return mul(c, mul(c, numel_val(c, &n->type), K), ci64(c, 2));
	}
	return ci64(c, 0);
}

/* With bit 2 of args->debug: nnd_rt_node_time(args, graph, node, flops)
 * after node n (train --profile) */
static void emit_prof(cg *c, const ir_node *n)
{
	LLVMBasicBlockRef join = if_begin(c, c->prof);
	LLVMTypeRef pt[4] = { c->ptr, c->i32, c->i32, c->i64 };
	LLVMTypeRef fty = LLVMFunctionType(c->vd, pt, 4, 0);
	LLVMValueRef a[4] = { c->args, ci32(c, c->gidx), ci32(c, n->id), node_flops(c, n) };
	LLVMBuildCall2(c->b, fty, rt_fn(c, "nnd_rt_node_time", fty), a, 4, "");
	if_end(c, join);
}

static LLVMValueRef build_graph(cg *c, const ir_graph *g, const char *name, int gidx)
{
	c->g = g;
	c->gidx = gidx;
	c->fname = name;
	c->in_kern = false;
	c->fn = LLVMAddFunction(c->mod, name, c->step_ty);
	c->args = LLVMGetParam(c->fn, 0);
	c->entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
	c->mm_panel = NULL;
	LLVMPositionBuilderAtEnd(c->b, c->entry);
	c->B = load_field(c, A_B, c->i64);
	c->Bmax = load_field(c, A_BMAX, c->i64);
	LLVMValueRef dbg = load_field(c, A_DEBUG, c->i32);
	c->debug = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, dbg, ci32(c, 1), ""), ci32(c, 0), "debug");
	c->prof = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildAnd(c->b, dbg, ci32(c, 2), ""), ci32(c, 0), "prof");
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
		if (n->blk == IR_BLK_FUSED)
			continue;   /* computed in its reader's kernel */
		if (cg_emitters[n->op](c, n)) {
			bad = 1;
			kern_abort(c);
			continue;
		}
		emit_digest(c, n);
		emit_prof(c, n);
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

int cg_check_target(void)
{
	static const char *const levels[] = { "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4" };
	const char *want = getenv("NND_CPU");
	if (!want || !*want)
		return 0;
	char *triple = LLVMGetDefaultTargetTriple();
	bool known = false;
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		known |= !strcmp(want, levels[i]);
	int bad = !known || strncmp(triple, "x86_64", 6);
	if (bad)
		fprintf(stderr, "nndc: error: NND_CPU=%s: expected x86-64, x86-64-v2, x86-64-v3 or x86-64-v4 "
		        "on an x86_64 host (this one: %s)\n", want, triple);
	LLVMDisposeMessage(triple);
	return bad;
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
	/* NND_CPU=x86-64[-v2|-v3|-v4]: code for that microarchitecture level
	 * instead of this host's CPU, e.g. a program to run on another machine.
	 * Only speed depends on it: every plan is exact at any vector width.
	 * (A list, because LLVM aborts on a CPU name it does not know.) */
	const char *want = getenv("NND_CPU");
	char *cpu, *feat;
	if (want && *want) {
		if (cg_check_target()) {
			LLVMDisposeMessage(triple);
			return NULL;
		}
		cpu = LLVMCreateMessage(want);
		feat = LLVMCreateMessage("");
	} else {
		cpu = LLVMGetHostCPUName();
		feat = LLVMGetHostCPUFeatures();
	}
	LLVMCodeGenOptLevel lvl = opt_level <= 0 ? LLVMCodeGenLevelNone : opt_level == 1 ? LLVMCodeGenLevelLess
	                        : opt_level == 2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelAggressive;
	LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, triple, cpu, feat, lvl,
	                                                  LLVMRelocPIC, LLVMCodeModelDefault);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(feat);
	LLVMDisposeMessage(triple);
	if (!tm)
		fprintf(stderr, "nndc: error: cannot create an LLVM target machine for the %s\n",
		        want && *want ? "CPU named by NND_CPU" : "host");
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

static void build_globals(cg *c, const ir_module *m, const char *manifest, const char *cuda,
                          LLVMValueRef *train, LLVMValueRef *eval, LLVMValueRef *infer, bool with_main)
{
	/* struct nnd_model (runtime/rt.h) */
	LLVMTypeRef mt_el[6] = { c->ptr, c->i32, c->ptr, c->ptr, c->ptr, c->ptr };
	LLVMTypeRef model_ty = LLVMStructTypeInContext(c->ctx, mt_el, 6, 0);
	LLVMValueRef fields[6] = {
		const_string(c, manifest ? manifest : "", "nnd_manifest"),
		ci32(c, m->nprogs),
		fn_table(c, train, m->nprogs, "nnd_train_table"),
		fn_table(c, eval, m->nprogs, "nnd_eval_table"),
		fn_table(c, infer, m->nprogs, "nnd_infer_table"),
		cuda ? const_string(c, cuda, "nnd_cuda_source") : LLVMConstNull(c->ptr),
	};
	LLVMValueRef model = LLVMAddGlobal(c->mod, model_ty, "nnd_model");
	LLVMSetInitializer(model, LLVMConstNamedStruct(model_ty, fields, 6));
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

cg_module *cg_build(const ir_module *m, const char *manifest, const char *cuda, int opt_level, bool with_main)
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
	/* test only: the smallest grain, so that small kernels are split
	 * across threads too (tests/codegen checks they give the same bits) */
	c.grain1 = getenv("NND_CG_GRAIN1") != NULL;
	LLVMTypeRef af[A_NFIELDS];
	for (int i = 0; i < A_NFIELDS; i++)
		af[i] = i < A_B ? c.ptr : i < A_LR ? c.i64 : i <= A_BC2 ? c.f32 : i == A_RESULT ? c.ptr : c.i32;
	c.args_ty = LLVMStructCreateNamed(c.ctx, "nnd_step_args");
	LLVMStructSetBody(c.args_ty, af, A_NFIELDS, 0);
	c.step_ty = LLVMFunctionType(c.vd, &c.ptr, 1, 0);
	LLVMTypeRef kp[3] = { c.ptr, c.i64, c.i64 };
	c.kern_ty = LLVMFunctionType(c.vd, kp, 3, 0);

	int bad = 0;
	LLVMValueRef *train = xcalloc((size_t)m->nprogs + 1, sizeof *train);
	LLVMValueRef *eval = xcalloc((size_t)m->nprogs + 1, sizeof *eval);
	LLVMValueRef *infer = xcalloc((size_t)m->nprogs + 1, sizeof *infer);
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
		if (!(train[i] = build_graph(&c, p->train, name, 0)))
			bad = 1;
		if (p->eval_g) {
			snprintf(name, sizeof name, "nnd_eval_%d", i);
			if (!(eval[i] = build_graph(&c, p->eval_g, name, 1)))
				bad = 1;
		}
		if (p->infer_g) {
			snprintf(name, sizeof name, "nnd_infer_%d", i);
			if (!(infer[i] = build_graph(&c, p->infer_g, name, 2)))
				bad = 1;
		}
	}
	if (!bad)
		build_globals(&c, m, manifest, cuda, train, eval, infer, with_main);
	free(train);
	free(eval);
	free(infer);
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
