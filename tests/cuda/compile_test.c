/* compile_test.c - nnd_cuda_compile (runtime/cuda.c) without a GPU: a
 * source with an error gives NVRTC's log in the message; a correct one
 * gives PTX with its kernel.  Exit 77 when NVRTC is not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/rt.h"

int main(void)
{
	char *out = NULL, *log = NULL, err[8192];
	size_t len = 0;
	const char *bad = "extern \"C\" __global__ void k(float *x) { x[0] = undeclared_thing; }\n";
	int rc = nnd_cuda_compile(bad, "compute_80", &out, &len, &log, err, sizeof err);
	if (rc && !strncmp(err, "no NVRTC", 8)) {
		printf("skipped: %s\n", err);
		return 77;
	}
	if (rc == 0 || !strstr(err, "NVRTC could not compile") || !strstr(err, "undeclared_thing") || !log) {
		printf("FAIL: a bad source gave rc %d, message: %s\n", rc, err);
		return 1;
	}
	printf("compile error reported:\n%s\n", err);
	free(log);
	log = NULL;
	const char *good = "extern \"C\" __global__ void k(float *x, float a, float b) { x[0] = x[0] * a + b; }\n";
	rc = nnd_cuda_compile(good, "compute_80", &out, &len, &log, err, sizeof err);
	if (rc || !out || !strstr(out, ".entry k") || strstr(out, "fma.rn.f32") || !strstr(out, "mul.rn.f32")) {
		printf("FAIL: good source: rc %d %s\n%s\n", rc, err, out ? out : "");
		return 1;
	}
	printf("ok: x*a+b compiles to separate mul.rn/add.rn (--fmad=false)\n");
	free(out);
	free(log);
	return 0;
}
