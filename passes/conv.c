/* conv.c - conv2d as IR ops: im2col, a matmul and data movement (the
 * composition and its exact semantics are in ir/ops.def, "convolution and
 * pooling").  Used by lower.c for the language's conv2d and by the tools
 * that build IR themselves (the ONNX harness, the codegen tests), so every
 * convolution is the same nodes; autodiff differentiates them with the
 * rules of matmul, reshape, transpose and im2col (whose gradient is
 * col2im), and the plans pass gives the matmuls and col2im their plans. */
#include <string.h>
#include "passes.h"

static ir_type f32_type(int rank, const ir_dim *d)
{
	ir_type t = ir_scalar(IR_F32);
	t.rank = rank;
	for (int i = 0; i < rank; i++)
		t.d[i] = d[i];
	return t;
}

#define K(c) ((ir_dim){ (c), 0 })

int conv2d_lower(void *ctx, conv_emit_fn *emit, int x, const ir_type *xt, int w, const ir_type *wt,
                 const int64_t *ia, char *err, size_t errlen)
{
	ir_type yt;
	err[0] = 0;
	if (shape_conv2d(xt, wt, ia, &yt, err, errlen))
		return -1;
	ir_dim N = xt->d[0];
	int64_t C = xt->d[1].c, O = wt->d[0].c, Cg = wt->d[1].c, KH = wt->d[2].c, KW = wt->d[3].c;
	int64_t G = ia[3], Og = O / G, Kg = Cg * KH * KW, OH = yt.d[2].c, OW = yt.d[3].c, P = OH * OW;
	ir_dim NP = { N.c * P, N.sym };
	int64_t cia[4] = { ia[0], ia[1], ia[2], 0 }, none[4] = { 0, 0, 0, 0 }, swap01[4] = { 102, 0, 0, 0 };   /* perm [1, 0, 2] (ir_perm_pack) */

	ir_type colt = f32_type(6, (ir_dim[]){ K(C), K(KH), K(KW), N, K(OH), K(OW) });
	int col = emit(ctx, IR_IM2COL, 1, &x, &colt, cia);
	ir_type colmt, wmt;
	if (G == 1) {
		colmt = f32_type(2, (ir_dim[]){ K(Kg), NP });
		wmt = f32_type(2, (ir_dim[]){ K(O), K(Kg) });
	} else {
		colmt = f32_type(3, (ir_dim[]){ K(G), K(Kg), NP });
		wmt = f32_type(3, (ir_dim[]){ K(G), K(Og), K(Kg) });
	}
	int colm = col < 0 ? -1 : emit(ctx, IR_RESHAPE, 1, &col, &colmt, none);
	int wm = emit(ctx, IR_RESHAPE, 1, &w, &wmt, none);
	if (colm < 0 || wm < 0)
		return -1;
	int mm[2] = { wm, colm };
	int ym = emit(ctx, IR_MATMUL, 2, mm, NULL, none);
	ir_type y3t = f32_type(3, (ir_dim[]){ K(O), N, K(P) });
	int y3 = ym < 0 ? -1 : emit(ctx, IR_RESHAPE, 1, &ym, &y3t, none);
	int yt3 = y3 < 0 ? -1 : emit(ctx, IR_TRANSPOSE, 1, &y3, NULL, swap01);
	return yt3 < 0 ? -1 : emit(ctx, IR_RESHAPE, 1, &yt3, &yt, none);
}
