/* cfgserve-bench --write-model (bench_write_model.c). */
#ifndef CS_BENCH_WRITE_MODEL_H
#define CS_BENCH_WRITE_MODEL_H

/* Writes a diffusers folder at `out`: config_dir's configs (tokenizer vocabulary from the
 * bundled one when config_dir has none) and random weights in dtype "F16", "BF16" or
 * "F32". Returns an exit status (0 ok, 1 failure, 2 bad dtype). */
int bench_write_model(const char *config_dir, const char *out, const char *dtype);

#endif
