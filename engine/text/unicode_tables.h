/*
 * Declarations of the generated Unicode tables (engine/text/unicode_tables_props.c,
 * unicode_tables_decomp.c and unicode_tables_compose.c, written by
 * engine/tools/gen_unicode_tables.py). Only unicode.c reads them; everything else goes
 * through unicode.h. Immutable data: safe from any thread.
 */
#ifndef CS_UNICODE_TABLES_H
#define CS_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Property flags packed in the low byte of uni_prop_ranges entries. */
enum {
    UNI_F_CONTROL = 1,  /* category C* except tab, LF, CR (transformers' _is_control) */
    UNI_F_WS = 2,       /* space, tab, LF, CR or Zs (transformers' _is_whitespace) */
    UNI_F_SPACE = 4,    /* Python str.isspace(): what str.split() splits on */
    UNI_F_LETTER = 8,   /* general category L* (regex \p{L}) */
    UNI_F_NUMBER = 16,  /* general category N* (regex \p{N}) */
    UNI_F_CASED = 32,   /* Cased and not Case_Ignorable (final-sigma context) */
    UNI_F_CASE_IGN = 64 /* Case_Ignorable (final-sigma context) */
};

/* Code points start, start+stride, ... (count of them) lowercase to cp + delta. */
typedef struct uni_lower_run {
    uint32_t start;
    uint16_t count;
    uint8_t stride;
    int32_t delta;
} uni_lower_run;

typedef struct uni_composition {
    uint32_t first, second, composite;
} uni_composition;

extern const char uni_tables_version[];
/* Run starts: entry = start << 8 | value; a run lasts until the next entry's start. */
extern const uint32_t uni_prop_ranges[];
extern const size_t uni_prop_ranges_len;
extern const uint32_t uni_ccc_ranges[];
extern const size_t uni_ccc_ranges_len;
extern const uni_lower_run uni_lower_runs[];
extern const size_t uni_lower_runs_len;
/* Full canonical decomposition of uni_decomp_cp[i]: pool[off[i] .. off[i + 1]). */
extern const uint32_t uni_decomp_cp[];
extern const size_t uni_decomp_cp_len;
extern const uint16_t uni_decomp_off[];
extern const uint32_t uni_decomp_pool[];
extern const size_t uni_decomp_pool_len;
extern const uni_composition uni_compose[];
extern const size_t uni_compose_len;

#endif
