/* codegen.h - lowering a planned IR module to native code through the
 * LLVM C API.
 *
 * One LLVM module holds, for every train block i of the source:
 *   void nnd_train_<i>(nnd_step_args *)   the train graph
 *   void nnd_eval_<i>(nnd_step_args *)    the eval graph (if any)
 *   void nnd_infer_<i>(nnd_step_args *)   the infer graph (if any): its
 *                                         result node lands in args->result
 * plus the manifest text, the nnd_model object (runtime/rt.h: train, eval
 * and infer tables, NULL entries for absent graphs, and the CUDA source of
 * codegen/cuda.h for --device cuda) under the symbol "nnd_model", and, for
 * executables, main() calling nnd_rt_main.
 *
 * Each node's kernel is an internal function over a range of independent
 * output units, run through nnd_rt_parallel_for (never splitting a
 * reduction, so the bits do not depend on the thread count); every
 * reduction follows its node's plan (seq, blocked:N, tree:F; racy for
 * tests).  With args->debug set, each node's value is reported through
 * nnd_rt_node_digest.  NND_CG_GRAIN1 (test only) makes every kernel split
 * down to single units; NND_MM_VW=4|8|16 forces the matmul vector width.
 *
 * No fast-math flags, no llvm.fmuladd, no reassociation: every float
 * operation is emitted exactly as the op's semantics in ir/ops.def spell it,
 * so the optimiser may vectorise and unroll but cannot change a bit. */
#ifndef NND_CODEGEN_H
#define NND_CODEGEN_H

#include "../ir/ir.h"

typedef struct cg_module cg_module;

/* The target CPU: the host's, or the x86-64 level named by $NND_CPU
 * (x86-64, x86-64-v2, -v3, -v4: a program for another machine).  Returns
 * nonzero after printing an error when NND_CPU names something else. */
int cg_check_target(void);

/* Builds the module (and verifies it with LLVMVerifyModule).  opt_level
 * 0..3 runs the new pass manager's default<O..> pipeline.  with_main adds a
 * main() for executables.  cuda: the text nnd_model.cuda points to (NULL:
 * none).  Returns NULL after printing an error. */
cg_module *cg_build(const ir_module *m, const char *manifest, const char *cuda, int opt_level,
                    bool with_main);
void cg_free(cg_module *cm);

/* Textual LLVM IR (nndc emit --stage llvm). */
void cg_print_llvm(cg_module *cm, FILE *out);

/* Object file for the host, then an executable linked with the runtime
 * (libnndrt.a and its libraries) through the system C compiler driver.
 * Return 0 on success, else print the tool's/LLVM's message and return -1. */
int cg_emit_object(cg_module *cm, const char *obj_path);
int cg_link_executable(const char *obj_path, const char *exe_path);

/* Runs the module in memory with ORC LLJIT: looks up "nnd_model" and calls
 * nnd_rt_main(argc, argv, model).  Consumes cm.  Returns the exit status. */
int cg_jit_run(cg_module *cm, int argc, char **argv);

/* JIT-compiles the module (on the first call; the module then belongs to
 * the JIT, so cg_print_llvm/cg_emit_object no longer work) and returns the
 * address of symbol `sym` ("nnd_train_0", "nnd_model", ...), or NULL after
 * printing LLVM's message.  For tests and tools that call the step
 * functions directly; cg_free releases the JIT and its code. */
void *cg_jit_lookup(cg_module *cm, const char *sym);

#endif
