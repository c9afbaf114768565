/* nnd_dev.h - the argument block of every CUDA kernel nnd generates.
 *
 * This header is shared, as text, by the host and the device: the runtime
 * (runtime/cuda.c) includes it, and the CUDA code generator
 * (codegen/cuda.c) embeds it verbatim in the CUDA source it writes (CMake
 * turns it into a string at build time), so the two layouts cannot drift.
 * Valid C11 and CUDA C++; int64_t etc. come from <stdint.h> on the host
 * and from the generated source's own typedefs on the device.  Every field
 * is 8 bytes (pointers, int64_t) or a pair of floats, so the layout is the
 * same on x86-64 and nvptx64.
 *
 * The kernel gets it by value (kernel parameter space, < 4 KiB).  Device
 * addresses; the blocks are laid out as on the CPU (memory plan, rt.h). */
#ifndef NND_DEV_H
#define NND_DEV_H

#define NND_DEV_MAX_INPUTS 8

typedef struct nnd_dargs {
	float *params;               /* parameter block */
	float *grads;                /* gradient block (params' layout) */
	float *opt;                  /* optimizer state block */
	float *state;                /* non-trainable state block */
	unsigned char *acts;         /* activation arena (act_c + act_b * Bmax bytes) */
	const void *inputs[NND_DEV_MAX_INPUTS];   /* batch fields, manifest order */
	const int64_t *sample_idx;   /* dataset index of each row */
	const uint32_t *keys;        /* 2 words per stream */
	float *outputs;              /* scalars: loss, then metrics */
	float *result;               /* infer graph's output tensor */
	int64_t *err;                /* [4]: bad label found, row, label, classes */
	int64_t B, Bmax, step, epoch;
	float lr, bc1;
	float bc2, pad_;
} nnd_dargs;

#endif
