/*
 * Unicode support for the tokenizer (see unicode.h): UTF-8 decoding, property lookups in
 * the generated run tables, CPython's str.lower() and NFC. Stateless and thread-safe.
 */
#include "unicode.h"

#include <string.h>

#include "unicode_tables.h"

/* Sanity limit for canonical reordering with insertion sort: longer runs of combining
 * marks (only hostile input has them) take a merge sort instead of O(n^2) swaps. */
enum { REORDER_INSERTION_MAX = 32 };

cs_status uni_decode_utf8(const char *s, size_t len, uint32_t *out, size_t *n_out, char *msg,
                          size_t msg_size) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t c = p[i];
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            c &= 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) lo = 0xa0; /* overlong */
            if (c == 0xed) hi = 0x9f; /* UTF-16 surrogates */
            c &= 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) lo = 0x90; /* overlong */
            if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
            c &= 0x07;
        } else {
            goto bad;
        }
        if (len - i <= need || p[i + 1] < lo || p[i + 1] > hi) goto bad;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80) goto bad;
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        out[n++] = c;
        i += need + 1;
    }
    *n_out = n;
    return CS_OK;
bad:
    return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                   "text is not valid UTF-8 (byte 0x%02x at offset %zu)", p[i], i);
}

size_t uni_encode_utf8(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Value of the run containing cp in a (start << 8 | value) run table. */
static unsigned run_value(const uint32_t *runs, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n; /* invariant: runs[lo] starts at or before cp (runs[0] at 0) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((runs[mid] >> 8) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return runs[lo] & 0xff;
}

static unsigned props(uint32_t cp) {
    if (cp >= 0x110000) return UNI_F_CONTROL; /* not a character: treat as unassigned */
    return run_value(uni_prop_ranges, uni_prop_ranges_len, cp);
}

bool uni_is_control(uint32_t cp) {
    return props(cp) & UNI_F_CONTROL;
}
bool uni_is_ws(uint32_t cp) {
    return props(cp) & UNI_F_WS;
}
bool uni_is_space(uint32_t cp) {
    return props(cp) & UNI_F_SPACE;
}
bool uni_is_letter(uint32_t cp) {
    return props(cp) & UNI_F_LETTER;
}
bool uni_is_number(uint32_t cp) {
    return props(cp) & UNI_F_NUMBER;
}

bool uni_is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

const char *uni_version(void) {
    return uni_tables_version;
}

/* ---- lowercase ------------------------------------------------------------------ */

static uint32_t lower_simple(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    size_t lo = 0, hi = uni_lower_runs_len;
    while (lo < hi) { /* first run starting after cp */
        size_t mid = lo + (hi - lo) / 2;
        if (uni_lower_runs[mid].start <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return cp;
    const uni_lower_run *r = &uni_lower_runs[lo - 1];
    uint32_t off = cp - r->start;
    if (off % r->stride != 0 || off / r->stride >= r->count) return cp;
    return (uint32_t)((int64_t)cp + r->delta);
}

/* CPython's handle_capital_sigma: U+03A3 at i lowercases to final sigma when a cased
 * letter precedes it and none follows, skipping case-ignorable characters both ways. */
static bool final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    unsigned p = 0;
    while (j > 0) {
        p = props(s[--j]);
        if (!(p & UNI_F_CASE_IGN)) break;
        p = 0;
    }
    if (!(p & UNI_F_CASED)) return false;
    for (j = i + 1; j < n; j++) {
        p = props(s[j]);
        if (!(p & UNI_F_CASE_IGN)) return !(p & UNI_F_CASED);
    }
    return true;
}

size_t uni_lower(const uint32_t *in, size_t n, uint32_t *out) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c == 0x130) { /* the only multi-code-point lowercase (SpecialCasing.txt) */
            out[m++] = 'i';
            out[m++] = 0x307;
        } else if (c == 0x3A3) {
            out[m++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
        } else {
            out[m++] = lower_simple(c);
        }
    }
    return m;
}

/* ---- NFC ------------------------------------------------------------------------ */

enum {
    HANGUL_S = 0xAC00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11A7,
    HANGUL_LCOUNT = 19,
    HANGUL_VCOUNT = 21,
    HANGUL_TCOUNT = 28,
    HANGUL_NCOUNT = HANGUL_VCOUNT * HANGUL_TCOUNT,
    HANGUL_SCOUNT = HANGUL_LCOUNT * HANGUL_NCOUNT
};

static unsigned ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    return run_value(uni_ccc_ranges, uni_ccc_ranges_len, cp);
}

static size_t decompose(uint32_t cp, uint32_t *out) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t s = cp - HANGUL_S;
        out[0] = HANGUL_L + s / HANGUL_NCOUNT;
        out[1] = HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
        if (s % HANGUL_TCOUNT == 0) return 2;
        out[2] = HANGUL_T + s % HANGUL_TCOUNT;
        return 3;
    }
    size_t lo = 0, hi = uni_decomp_cp_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (uni_decomp_cp[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == uni_decomp_cp_len || uni_decomp_cp[lo] != cp) {
        out[0] = cp;
        return 1;
    }
    size_t b = uni_decomp_off[lo], e = uni_decomp_off[lo + 1];
    memcpy(out, &uni_decomp_pool[b], (e - b) * sizeof *out);
    return e - b;
}

/* The primary composite of (a, b), or 0 when there is none. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V &&
        b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = uni_compose_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uni_composition *c = &uni_compose[mid];
        if (c->first < a || (c->first == a && c->second < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < uni_compose_len && uni_compose[lo].first == a && uni_compose[lo].second == b)
        return uni_compose[lo].composite;
    return 0;
}

/* Stable sort of s[0, n) by combining class. Runs of combining marks are a handful of
 * characters in real text (insertion sort); a long run, which only hostile input has,
 * takes a counting sort through scratch memory instead of O(n^2) moves. */
static cs_status sort_marks(uint32_t *s, size_t n) {
    if (n <= REORDER_INSERTION_MAX) {
        for (size_t i = 1; i < n; i++) {
            uint32_t c = s[i];
            unsigned k = ccc(c);
            size_t j = i;
            for (; j > 0 && ccc(s[j - 1]) > k; j--)
                s[j] = s[j - 1];
            s[j] = c;
        }
        return CS_OK;
    }
    uint32_t *tmp = cs_malloc(n * sizeof *tmp);
    if (!tmp) return CS_ERR_NOMEM;
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++)
        start[ccc(s[i]) + 1]++;
    for (int k = 1; k <= 256; k++)
        start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++)
        tmp[start[ccc(s[i])]++] = s[i];
    memcpy(s, tmp, n * sizeof *s);
    free(tmp);
    return CS_OK;
}

cs_status uni_nfc(const uint32_t *in, size_t n, uint32_t *out, size_t *n_out) {
    bool simple = true; /* below U+0300 nothing decomposes, reorders or composes */
    for (size_t i = 0; i < n && simple; i++)
        simple = in[i] < 0x300;
    if (simple) {
        if (n) memcpy(out, in, n * sizeof *out);
        *n_out = n;
        return CS_OK;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += decompose(in[i], out + m);
    /* Canonical ordering: each maximal run of non-starters sorted stably by class. */
    for (size_t i = 0; i < m;) {
        if (ccc(out[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < m && ccc(out[j]) != 0)
            j++;
        if (j - i > 1 && sort_marks(out + i, j - i) != CS_OK) return CS_ERR_NOMEM;
        i = j;
    }
    /* Canonical composition (UAX #15): a character combines with the last starter unless
     * a character of the same or higher class (or a starter) stands between them. */
    size_t starter = 0, w = 1;
    unsigned last = ccc(out[0]) ? 256 : 0;
    for (size_t i = 1; i < m; i++) {
        uint32_t c = out[i];
        unsigned k = ccc(c);
        uint32_t comp = last < k || last == 0 ? compose(out[starter], c) : 0;
        if (comp) {
            out[starter] = comp;
            continue;
        }
        if (k == 0) starter = w;
        last = k;
        out[w++] = c;
    }
    *n_out = w;
    return CS_OK;
}

/* The public check (cfgserve.h) every text field passes before the engine reads it. */
int cs_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += len;
    }
    return true;
}
