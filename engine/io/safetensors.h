/*
 * safetensors reader: memory-maps a file, validates its header and exposes its tensors.
 *
 * The header is untrusted: st_parse checks the header length against the file size,
 * JSON validity (UTF-8, nothing but whitespace padding after the object, no repeated
 * key anywhere), dtype names, shapes (rank, non-negative integer dims, no overflow), that
 * each byte range equals shape × element size and lies inside the data area, that ranges
 * do not overlap, and that __metadata__ is an object of strings. Errors are CS_ERR_FORMAT
 * (CS_ERR_IO for a file that cannot be opened or is not a regular file) and name the
 * file and the tensor. Data offsets need not be aligned: reads go through memcpy.
 *
 * An st_file is read-only after opening and may be shared between threads.
 */
#ifndef CS_SAFETENSORS_H
#define CS_SAFETENSORS_H

#include "common.h"

enum { ST_MAX_DIMS = 8 };

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    size_t offset; /* from the start of the file */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    char *path;          /* for messages */
    const uint8_t *data; /* whole file (mapped or borrowed) */
    size_t size;
    bool mapped;
    bool file_pages;     /* data lies in a read-only file mapping (this file's or a viewed
                            file's): st_release may drop its pages */
    uint8_t *owned;      /* heap data freed by st_close (a .ckpt's tensors), or NULL */
    st_tensor *tensors;  /* sorted by name */
    int64_t count;
} st_file;

/* Maps and validates the file at path. */
cs_status st_open(const char *path, st_file **out, char *msg, size_t msg_size);

/* Validates a file image already in memory (borrowed: buf must outlive *out). `label`
 * names it in messages. This is what the fuzz target drives. */
cs_status st_parse(const uint8_t *buf, size_t size, const char *label, st_file **out, char *msg,
                   size_t msg_size);

/* An empty file labelled `path` over data[0, size) (borrowed unless the caller sets
 * owned), for tables built in code (renaming views, .ckpt readers): the caller appends
 * with st_append, then calls st_finish to sort and check names. */
cs_status st_new_table(const char *path, const uint8_t *data, size_t size, st_file **out,
                       char *msg, size_t msg_size);
/* Appends a tensor (name copied); offset/nbytes must lie inside data (asserted). */
cs_status st_append(st_file *f, const char *name, st_dtype dtype, int ndim,
                    const int64_t *shape, size_t offset, char *msg, size_t msg_size);
/* Sorts the table; a name appearing twice is an error naming it. */
cs_status st_finish(st_file *f, char *msg, size_t msg_size);

void st_close(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* Converts a float tensor (F32, F16, BF16, F64) to fp32 in dst (numel floats). */
cs_status st_read_f32(const st_file *f, const st_tensor *t, float *dst, char *msg,
                      size_t msg_size);
/* Converts an integer tensor (I64, I32, I16, I8, U8, BOOL) to int64 in dst. */
cs_status st_read_i64(const st_file *f, const st_tensor *t, int64_t *dst, char *msg,
                      size_t msg_size);

/* Drops the resident file pages lying wholly inside t's data (madvise DONTNEED) once the
 * loader has copied it: they would otherwise count in the RSS beside the copy. The data
 * stays readable (pages fault back in from the file). No-op unless f->file_pages. */
void st_release(const st_file *f, const st_tensor *t);

/* IEEE half / bfloat16 to float (half.h). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

#endif
