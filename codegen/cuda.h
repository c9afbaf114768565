/* cuda.h - lowering a planned IR module to CUDA C++ (docs/cuda.md).
 *
 * cg_cuda_source writes one self-contained CUDA source for every graph of
 * every train block: a preamble (typedefs, the device ABI of
 * runtime/nnd_dev.h, nnd's own math from runtime/math.c and Philox from
 * runtime/philox.c, embedded as text at build time, and the reduction plan
 * helpers), then one __global__ kernel per node that computes, one thread
 * per independent output, exactly the operations ir/ops.def spells out,
 * every reduction in its node's plan order.  Launch records follow as
 * comment lines the runtime reads (runtime/cuda.c):
 *
 *   //@node P G ID KERNEL UC USYM VBLK VOFFC VOFFB VBYTESC VBYTESSYM FC FSYM OP
 *
 * one per node of graph G (0 train, 1 eval, 2 infer) of train block P, in
 * node order: KERNEL ("-" for none) runs over UC * B^USYM units (one
 * thread each); the node's value (an update op: the updated parameter)
 * lives in block VBLK (ir_block; 0 none) at VOFFC + VOFFB * Bmax (bytes
 * for the arena, floats for the float blocks, the input index for an
 * input) and spans VBYTESC * B^VBYTESSYM bytes (for node digests).  ID -1
 * is the kernel that copies the graph's scalar outputs to args.outputs.
 * Convolutions that --cudnn computes whole get a //@conv record each and
 * the nodes nothing then needs a //@skip record (conv_records in cuda.c,
 * ir_conv_match in ir/ir.c; docs/cuda.md "cuDNN").
 * A source that could not be generated is the single line
 *   //@error MESSAGE
 *
 * The text is compiled at run time by NVRTC with --fmad=false --ftz=false
 * --prec-div=true --prec-sqrt=true (runtime/cuda.c), so no float
 * operation is contracted or approximated.  Every op of ops.def must have
 * an emitter cu_<ID> (a missing one does not compile). */
#ifndef NND_CG_CUDA_H
#define NND_CG_CUDA_H

#include "../ir/ir.h"

/* The CUDA source of module m (malloc'd, NUL-terminated); NULL after
 * writing the reason (naming the op and node) into err. */
char *cg_cuda_source(const ir_module *m, char *err, size_t errlen);
/* NND_CUDA_MM (smem, the default, or reg: the large products' matmul
 * kernel): 0 when unset or known, else prints nndc's error and returns 1 */
int cg_cuda_check_env(void);

#endif
