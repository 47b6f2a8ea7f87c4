/*
 * The model's LoRA folder and cache of loaded LoRAs (lora.h). Names are file names inside
 * the folder; anything path-like is refused before the file system is touched, and the
 * resolved file must lie inside the folder (no symlink escapes). A LoRA loads on first use
 * and stays cached for the model's lifetime; jobs hold references.
 *
 * Thread-safe: one mutex guards the cache (the folder is set before the model is shared).
 */
#ifndef CS_LORA_REGISTRY_H
#define CS_LORA_REGISTRY_H

#include "lora.h"

typedef struct lora_registry lora_registry;

lora_registry *lora_registry_new(void);
void lora_registry_free(lora_registry *r);

cs_status lora_registry_set_dir(lora_registry *r, const char *dir, char *msg, size_t n);

/* The name rule alone: a plain file name (no '/', '\\', leading '.', control bytes), valid
 * UTF-8, at most 200 bytes, ".safetensors" or no extension. */
cs_status lora_name_check(const char *name, char *msg, size_t n);

/* Checks the name and that the file exists inside the folder; canon (>= 256 bytes)
 * receives the name without ".safetensors", path (>= 4096) the file's real path. */
cs_status lora_registry_resolve(const lora_registry *r, const char *name, char *canon,
                                char *path, char *msg, size_t n);

/* A new reference to LoRA `name`, loaded against the tables on first use. */
cs_status lora_registry_get(lora_registry *r, const char *name,
                            const lora_module_table *const tables[LORA_COMPONENTS],
                            lora_file **out, char *msg, size_t n);

/* Sorted names of the folder's .safetensors files (malloc'd, NULL-terminated). */
char **lora_registry_list(const lora_registry *r, int *count);

#endif
