/*
 * cfgserve — public C API of the inference engine.
 *
 * Basic usage:
 *
 *     cs_runtime_init(argc, argv);             // picks fast BLAS kernels (may re-exec once)
 *     cs_model *m;
 *     char msg[512];
 *     if (cs_model_load("models/default", &m, msg, sizeof msg) != CS_OK) { puts(msg); ... }
 *     ...
 *     cs_model_free(m);
 *
 * Thread safety: a cs_model is read-only after cs_model_load returns and may be shared by
 * any number of threads. Functions that take a msg buffer write a NUL-terminated,
 * human-readable reason there on failure (what, where, why).
 */
#ifndef CFGSERVE_H
#define CFGSERVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CS_API __attribute__((visibility("default")))
#else
#define CS_API
#endif

typedef enum cs_status {
    CS_OK = 0,
    CS_ERR_INVALID_ARG = -1, /* a parameter is out of range or malformed */
    CS_ERR_IO = -2,          /* a file could not be opened, mapped or read */
    CS_ERR_FORMAT = -3,      /* a file's contents are malformed or inconsistent */
    CS_ERR_UNSUPPORTED = -4, /* valid input the engine does not implement */
    CS_ERR_NOMEM = -5,       /* an allocation failed */
    CS_ERR_CANCELLED = -6,   /* the caller asked to stop */
    CS_ERR_INTERNAL = -7     /* a bug: please report */
} cs_status;

/* A short constant name for a status ("invalid argument", ...). */
CS_API const char *cs_status_str(cs_status s);

typedef enum cs_log_level {
    CS_LOG_DEBUG = 0,
    CS_LOG_INFO = 1,
    CS_LOG_WARN = 2,
    CS_LOG_ERROR = 3
} cs_log_level;

/* The engine never prints; it hands log lines to this callback (default: none). */
typedef void (*cs_log_fn)(cs_log_level level, const char *line, void *user);
CS_API void cs_set_log(cs_log_fn fn, void *user);

/*
 * Prepares the process for fast matrix products. OpenBLAS chooses its kernels when it is
 * loaded and Debian's build falls back to slow ones on CPUs it does not know, so when
 * OPENBLAS_CORETYPE is unset this sets it for the detected CPU and re-executes the
 * program once (argv must be main's). A value already set is respected. Returns only
 * when no re-exec was needed or the re-exec failed.
 */
CS_API void cs_runtime_init(int argc, char **argv);

/* The OpenBLAS kernel set in use ("Haswell", "SkylakeX", ...), for logs and reports. */
CS_API const char *cs_blas_kernel_name(void);

typedef struct cs_model cs_model; /* read-only after load; share across threads */

/* Loads a diffusers-layout model folder (model_index.json, tokenizer/, text_encoder/,
 * unet/, vae/, scheduler/). Every file is validated; on failure *out is NULL. */
CS_API cs_status cs_model_load(const char *dir, cs_model **out, char *msg, size_t msg_size);
CS_API void cs_model_free(cs_model *m);

#ifdef __cplusplus
}
#endif
#endif /* CFGSERVE_H */
