/* Runtime settings of the public API: the process-wide compute thread count and the BLAS
 * kernel report. */
#include "cfgserve/cfgserve.h"

#include "check.h"

int main(void) {
    CHECK(cs_blas_kernel_name() != NULL);
    cs_set_threads(1);
    CHECK_EQ_INT(cs_threads(), 1);
    cs_set_threads(2);
    CHECK_EQ_INT(cs_threads(), 2);
    cs_set_threads(0); /* keeps the current setting */
    CHECK_EQ_INT(cs_threads(), 2);
    cs_set_threads(-3);
    CHECK_EQ_INT(cs_threads(), 2);
    CHECK_DONE();
}
