/*
 * PyTorch checkpoints (.ckpt / .pt): a zip archive holding `<root>/data.pkl` (the pickled
 * object) and `<root>/data/<key>` (raw tensor storages). The pickle is read by a
 * RESTRICTED unpickler (unpickle.h) that never runs code; the state dict it describes
 * (the top-level dict, or its "state_dict" entry) becomes an st_file whose tensors point
 * into one owned copy of the storages, so everything that reads safetensors reads it.
 *
 * Every zip offset and size is checked by libzip (ZIP_CHECKCONS) and again here before
 * use. Single-threaded; used only while loading.
 */
#ifndef CS_CKPT_H
#define CS_CKPT_H

#include "safetensors.h"

/* Reads the checkpoint at path. *global_step is the checkpoint's "global_step" entry, or
 * -1. Errors name the file, the archive member and the problem. */
cs_status ckpt_open(const char *path, st_file **out, int64_t *global_step, char *msg,
                    size_t msg_size);

/* The same for an archive already in memory (borrowed; the fuzz and unit tests drive it). */
cs_status ckpt_parse(const uint8_t *buf, size_t size, const char *label, st_file **out,
                     int64_t *global_step, char *msg, size_t msg_size);

/* Whether the file starts like a zip archive ("PK\3\4"). */
bool ckpt_is_zip(const char *path);

#endif
