/* cublas_sgemm.c - cuBLAS SGEMM throughput (FP32, no TF32: the default
 * math mode), the reference for nnd's matmul kernel in
 * scripts/gpu-check.sh.  Needs no CUDA headers: libcuda.so.1 and
 * libcublas are loaded with dlopen.
 *
 *   cc -O2 bench/cublas_sgemm.c -ldl -o cublas_sgemm
 *   ./cublas_sgemm M N K [M N K ...]     prints "sgemm M N K: X GFLOP/s"
 * C = A B with row-major A [M,K], B [K,N] (computed as C^T = B^T A^T). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
static CUresult (*cuInit)(unsigned);
static CUresult (*cuDeviceGet)(int *, int);
static CUresult (*cuDevicePrimaryCtxRetain)(void **, int);
static CUresult (*cuCtxSetCurrent)(void *);
static CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
static CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
static CUresult (*cuEventCreate)(void **, unsigned);
static CUresult (*cuEventRecord)(void *, void *);
static CUresult (*cuEventSynchronize)(void *);
static CUresult (*cuEventElapsedTime)(float *, void *, void *);
static int (*cublasCreate)(void **);
static int (*cublasSgemm)(void *, int, int, int, int, int, const float *, const float *, int, const float *, int,
                          const float *, float *, int);

static void *sym(void *h, const char *n)
{
	void *p = dlsym(h, n);
	if (!p) {
		fprintf(stderr, "cublas_sgemm: %s: %s\n", n, dlerror());
		exit(2);
	}
	return p;
}

#define CK(x) do { int rc_ = (x); if (rc_) { fprintf(stderr, "cublas_sgemm: %s: error %d\n", #x, rc_); return 2; } } while (0)

int main(int argc, char **argv)
{
	void *cu = dlopen("libcuda.so.1", RTLD_NOW);
	const char *names[] = { "libcublas.so", "libcublas.so.13", "libcublas.so.12",
	                        "/usr/local/cuda/lib64/libcublas.so", NULL };
	void *bl = NULL;
	for (int i = 0; names[i] && !bl; i++)
		bl = dlopen(names[i], RTLD_NOW);
	if (!cu || !bl) {
		printf("cublas_sgemm: skipped (%s)\n", !cu ? "no libcuda.so.1" : "no libcublas");
		return 77;
	}
	*(void **)&cuInit = sym(cu, "cuInit");
	*(void **)&cuDeviceGet = sym(cu, "cuDeviceGet");
	*(void **)&cuDevicePrimaryCtxRetain = sym(cu, "cuDevicePrimaryCtxRetain");
	*(void **)&cuCtxSetCurrent = sym(cu, "cuCtxSetCurrent");
	*(void **)&cuMemAlloc = sym(cu, "cuMemAlloc_v2");
	*(void **)&cuMemsetD8 = sym(cu, "cuMemsetD8_v2");
	*(void **)&cuEventCreate = sym(cu, "cuEventCreate");
	*(void **)&cuEventRecord = sym(cu, "cuEventRecord");
	*(void **)&cuEventSynchronize = sym(cu, "cuEventSynchronize");
	*(void **)&cuEventElapsedTime = sym(cu, "cuEventElapsedTime");
	*(void **)&cublasCreate = sym(bl, "cublasCreate_v2");
	*(void **)&cublasSgemm = sym(bl, "cublasSgemm_v2");
	int dev;
	void *ctx, *h, *e0, *e1;
	CK(cuInit(0));
	CK(cuDeviceGet(&dev, 0));
	CK(cuDevicePrimaryCtxRetain(&ctx, dev));
	CK(cuCtxSetCurrent(ctx));
	CK(cublasCreate(&h));
	CK(cuEventCreate(&e0, 0));
	CK(cuEventCreate(&e1, 0));
	for (int a = 1; a + 2 < argc; a += 3) {
		int M = atoi(argv[a]), N = atoi(argv[a + 1]), K = atoi(argv[a + 2]);
		CUdeviceptr A, B, C;
		CK(cuMemAlloc(&A, (size_t)M * K * 4));
		CK(cuMemAlloc(&B, (size_t)K * N * 4));
		CK(cuMemAlloc(&C, (size_t)M * N * 4));
		CK(cuMemsetD8(A, 0, (size_t)M * K * 4));
		CK(cuMemsetD8(B, 0, (size_t)K * N * 4));
		const float one = 1.0f, zero = 0.0f;
		/* row-major C[M,N] = A[M,K] B[K,N]  <=>  column-major C^T = B^T A^T */
		CK(cublasSgemm(h, 0, 0, N, M, K, &one, (const float *)B, N, (const float *)A, K, &zero, (float *)C, N));
		int reps = 20;
		CK(cuEventRecord(e0, NULL));
		for (int r = 0; r < reps; r++)
			CK(cublasSgemm(h, 0, 0, N, M, K, &one, (const float *)B, N, (const float *)A, K, &zero, (float *)C, N));
		CK(cuEventRecord(e1, NULL));
		CK(cuEventSynchronize(e1));
		float ms = 0;
		CK(cuEventElapsedTime(&ms, e0, e1));
		printf("cuBLAS sgemm M=%d N=%d K=%d: %.0f GFLOP/s (%.3f ms)\n", M, N, K,
		       2.0 * M * N * (double)K * reps / (ms * 1e6), ms / reps);
	}
	return 0;
}
