/* Process set-up for fast BLAS: picks OpenBLAS's kernel set before the library is used
 * (see cfgserve.h, cs_runtime_init). Called once from main, before any thread starts. */
#include "common.h"

#include <cblas.h>
#include <string.h>
#include <unistd.h>

/* Debian's OpenBLAS falls back to generic SSE3 kernels on CPUs it does not recognise
 * (measured ~5x slower sgemm); naming the closest known core restores the fast ones. */
static const char *pick_coretype(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void cs_runtime_init(int argc, char **argv) {
    (void)argc;
    if (getenv("OPENBLAS_CORETYPE") || getenv("CFGSERVE_NO_REEXEC")) return;
    const char *core = pick_coretype();
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    /* Guards against a loop should the variable be dropped by an exec wrapper. */
    setenv("CFGSERVE_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default kernels rather than refusing to run. */
    cs_log(CS_LOG_WARN, "could not re-execute with OPENBLAS_CORETYPE=%s; sgemm may be slow", core);
}

void cs_set_threads(int n) {
    if (n > 0) openblas_set_num_threads(n);
}

int cs_threads(void) {
    return openblas_get_num_threads();
}

const char *cs_blas_kernel_name(void) {
    return openblas_get_corename();
}
