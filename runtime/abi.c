/* abi.c - the runtime entry points that generated kernels call for
 * situations the kernels cannot handle themselves. */
#include <inttypes.h>
#include "rt.h"
#include "rt_internal.h"

/* A label outside [0, classes) would index past the logits: stop with a
 * message naming the batch row and the value (a data error, exit 1), and
 * the sample the row holds with where its label lies in its file (a
 * label the program computes is checked only here; one taken as it is
 * from the data is checked when the data is used, train.c). */
void nnd_rt_bad_label(int64_t row, int64_t label, int64_t classes)
{
	char where[800];
	if (rt_batch_row_where(row, where, sizeof where))
		rt_die(1, "label %" PRId64 " in row %" PRId64 " of the batch is outside [0, %" PRId64 ") (%s)",
		       label, row, classes, where);
	rt_die(1, "label %" PRId64 " in row %" PRId64 " of the batch is outside [0, %" PRId64 ")",
	       label, row, classes);
}
