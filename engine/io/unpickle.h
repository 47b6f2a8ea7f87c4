/*
 * A RESTRICTED unpickler for PyTorch state dicts: it understands the pickle opcodes a
 * torch.save'd dict of tensors uses and nothing else, and it never runs code. Globals
 * are an allow-list (collections.OrderedDict, torch._utils._rebuild_tensor_v2 /
 * _rebuild_parameter, torch.<T>Storage); REDUCE may only call those; BUILD only sets
 * (and ignores) an OrderedDict's plain-data state (its _metadata). Anything else -- INST,
 * OBJ, NEWOBJ, EXT*, other globals, text PERSID -- is refused with the file, the opcode
 * (or global) and its byte offset. Sizes are bounded (values, memo, MARK nesting).
 *
 * Single-threaded; the result owns its strings.
 */
#ifndef CS_UNPICKLE_H
#define CS_UNPICKLE_H

#include "safetensors.h"

typedef struct pk_tensor {
    char *name;           /* state-dict key */
    char *storage_key;    /* archive member data/<key> */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t storage_offset; /* elements */
    int64_t storage_numel;  /* the storage's declared length in elements */
} pk_tensor;

typedef struct pk_state_dict {
    pk_tensor *tensors;
    int64_t count;
    int64_t global_step; /* the top-level "global_step" int, or -1 */
} pk_state_dict;

/* Unpickles buf and finds the state dict: the top-level dict's "state_dict" entry when
 * it has one, else the top-level dict. Non-tensor entries of the state dict are skipped;
 * non-contiguous tensors are errors. `label` names the file in messages. */
cs_status unpickle_state_dict(const uint8_t *buf, size_t size, const char *label,
                              pk_state_dict *out, char *msg, size_t msg_size);
void pk_state_dict_free(pk_state_dict *sd);

#endif
