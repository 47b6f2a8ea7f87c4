/*
 * The engine's bundled data (config/ in the source tree: the CLIP tokenizer files a
 * single-file checkpoint does not carry). Looked up, first hit wins, as:
 *   $CFGSERVE_DATA_DIR, <exe dir>/../share/cfgserve, <exe dir>/../config,
 *   <exe dir>/../../config (a build tree's bin/), and the source tree's config/.
 * Thread-safe (no state).
 */
#ifndef CS_DATADIR_H
#define CS_DATADIR_H

#include "common.h"

/* Writes the first existing "<data dir>/<rel>" to out; false when none exists. */
bool datadir_find(const char *rel, char *out, size_t size);

#endif
