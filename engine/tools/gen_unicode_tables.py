#!/usr/bin/env python3
"""Generates the Unicode data the CLIP tokenizer needs: engine/text/unicode_tables_props.c
(character properties, combining classes, lowercase mapping),
engine/text/unicode_tables_decomp.c (canonical decompositions) and
engine/text/unicode_tables_compose.c (primary composites), the last two for NFC.

The tokenizer must reproduce transformers' slow CLIPTokenizer without ftfy, which runs
Python's `unicodedata` (general categories, NFC) and `str` methods (lower(), isspace())
plus the `regex` module's \\p{L} / \\p{N}. This script asks the same Python functions, so
the C tables agree with CPython's Unicode database version (3.11: Unicode 14.0) by
construction. Run it with the Python whose Unicode version you want to match:

    python3 engine/tools/gen_unicode_tables.py engine/text

Tables (all sorted, searched by binary search; see unicode_tables.h):
  * uni_prop_ranges: (start << 8 | flags) for every maximal run of code points with the same
    property flags, the run ending where the next one starts.
  * uni_lower_runs: simple lowercase mappings as runs {start, count, stride, delta}.
    str.lower()'s two extras (U+0130 -> "i" U+0307 and the final-sigma rule) are code in
    unicode.c; this script checks that nothing else in lower() is context- or
    length-dependent.
  * uni_ccc_ranges: (start << 8 | canonical combining class), run-length like the props.
  * uni_decomp_*: full canonical decompositions (Hangul syllables excluded: algorithmic).
  * uni_compose: primary composites {first, second, composite} sorted by (first, second).
"""
import os
import sys
import unicodedata

MAX_CP = 0x110000

# Property flags; keep in sync with unicode_tables.h.
F_CONTROL = 1  # transformers _is_control: category C* except \t \n \r
F_WS = 2  # transformers _is_whitespace: ' ', \t, \n, \r or category Zs
F_SPACE = 4  # str.isspace(): what str.split() splits on
F_LETTER = 8  # \p{L}
F_NUMBER = 16  # \p{N}
F_CASED = 32  # Cased and not Case_Ignorable (final-sigma rule)
F_CASE_IGN = 64  # Case_Ignorable (final-sigma rule)


def sigma_probe(s):
    """True when the capital sigma in s lowercases to the final form."""
    return "\u03c2" in s.lower()


def case_flags(ch):
    # CPython's final-sigma test skips Case_Ignorable characters first and only then asks
    # whether the character is Cased, so a character is effectively one of: ignorable,
    # cased (and not ignorable), neither. Three probes through str.lower() tell them apart:
    #   p1 = "A" ch "Σ": final iff ch is ignorable or cased
    #   p2 = ch "Σ":     final iff ch is cased and not ignorable
    p1 = sigma_probe("A" + ch + "\u03a3")
    p2 = sigma_probe(ch + "\u03a3")
    if p2:
        return F_CASED
    if p1:
        return F_CASE_IGN
    return 0


def prop_flags(cp):
    ch = chr(cp)
    cat = unicodedata.category(ch)
    f = 0
    if cat.startswith("C") and ch not in "\t\n\r":
        f |= F_CONTROL
    if ch in " \t\n\r" or cat == "Zs":
        f |= F_WS
    if ch.isspace():
        f |= F_SPACE
    if cat.startswith("L"):
        f |= F_LETTER
    if cat.startswith("N"):
        f |= F_NUMBER
    if cp not in range(0xD800, 0xE000):
        f |= case_flags(ch)
    return f


def runs_of(values):
    """[(start, value)] for each maximal run of equal values over 0..MAX_CP-1."""
    out = []
    prev = None
    for cp, v in enumerate(values):
        if v != prev:
            out.append((cp, v))
            prev = v
    return out


def lower_runs():
    maps = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        low = chr(cp).lower()
        if low == chr(cp):
            continue
        if len(low) != 1:
            assert cp == 0x130 and low == "i\u0307", hex(cp)
            continue
        assert not low.isspace()
        maps.append((cp, ord(low) - cp))
    runs = []  # [start, count, stride, delta]
    for cp, delta in maps:
        if runs:
            r = runs[-1]
            last = r[0] + (r[1] - 1) * r[2]
            if r[3] == delta:
                if r[1] == 1 and cp - last in (1, 2):
                    r[2] = cp - last
                    r[1] += 1
                    continue
                if r[1] > 1 and cp - last == r[2]:
                    r[1] += 1
                    continue
        runs.append([cp, 1, 1, delta])
    # Python's lower() must be per character apart from final sigma: check a few contexts.
    for cp, _ in maps[:50]:
        assert ("x" + chr(cp) + "y").lower() == "x" + chr(cp).lower() + "y"
    return runs


def canonical_decomp(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    return [int(x, 16) for x in d.split()]


def full_decomp(cp):
    d = canonical_decomp(cp)
    if d is None:
        return [cp]
    out = []
    for x in d:
        out.extend(full_decomp(x))
    return out


def is_hangul_syllable(cp):
    return 0xAC00 <= cp <= 0xD7A3


def ignorecase_oddities():
    """Non-letter, non-number characters with a case variant that is a letter or number.

    CLIP's regex is compiled with IGNORECASE. The regex module matches the one-member
    classes [\\p{L}] and [\\p{N}] by the plain property, but the negated class
    [^\\s\\p{L}\\p{N}] by "any case variant is in the class", so such a character matches no
    alternative at all and is dropped (tokenizer.c, match_at). Checked to be
    exactly U+0345 (whose uppercase is U+0399).
    """
    odd = []
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        if unicodedata.category(ch)[0] in "LN" or ch.isspace():
            continue
        variants = {ch.lower(), ch.upper(), ch.title(), ch.casefold()}
        if any(len(v) == 1 and unicodedata.category(v)[0] in "LN" for v in variants):
            odd.append(cp)
    return odd


def main():
    assert ignorecase_oddities() == [0x345], ignorecase_oddities()
    props = runs_of([prop_flags(cp) for cp in range(MAX_CP)])
    ccc = runs_of([unicodedata.combining(chr(cp)) for cp in range(MAX_CP)])
    low = lower_runs()

    decomp = []
    compose = []
    for cp in range(MAX_CP):
        if is_hangul_syllable(cp) or 0xD800 <= cp < 0xE000:
            continue
        d = canonical_decomp(cp)
        if d is None:
            continue
        full = full_decomp(cp)
        assert full == [ord(c) for c in unicodedata.normalize("NFD", chr(cp))], hex(cp)
        decomp.append((cp, full))
        # A primary composite: a two-code-point decomposition not excluded from
        # composition, which is exactly when NFC leaves the character as it is.
        if len(d) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            compose.append((d[0], d[1], cp))
    compose.sort()
    # unicode.c skips NFC for text below U+0300: nothing there decomposes into, or composes
    # with, anything that NFC would change.
    assert min(b for _, b, _ in compose) >= 0x300
    assert all(cp >= 0x300 or unicodedata.normalize("NFC", chr(cp)) == chr(cp)
               for cp, _ in decomp)
    max_decomp = max(len(f) for _, f in decomp)

    out_dir = sys.argv[1] if len(sys.argv) > 1 else "engine/text"
    out = open(os.path.join(out_dir, "unicode_tables_props.c"), "w")

    def w(text):
        out.write(text)

    def header(what):
        w("/* Generated by engine/tools/gen_unicode_tables.py from Python %s's unicodedata\n"
          " * (Unicode %s): %s. Do not edit by hand: rerun the script. */\n"
          % (sys.version.split()[0], unicodedata.unidata_version, what))
        w('#include "unicode_tables.h"\n\n')

    header("character properties, combining classes, lowercase mapping")
    w('const char uni_tables_version[] = "%s";\n\n' % unicodedata.unidata_version)

    def emit_u32(name, values, per_line=8):
        w("const uint32_t %s[%d] = {\n" % (name, len(values)))
        for i in range(0, len(values), per_line):
            w("    " + ", ".join("0x%x" % v for v in values[i:i + per_line]) + ",\n")
        w("};\n")
        w("const size_t %s_len = %d;\n\n" % (name, len(values)))

    emit_u32("uni_prop_ranges", [(s << 8) | f for s, f in props])
    emit_u32("uni_ccc_ranges", [(s << 8) | c for s, c in ccc])

    w("const uni_lower_run uni_lower_runs[%d] = {\n" % len(low))
    for s, n, stride, delta in low:
        w("    {0x%x, %d, %d, %d},\n" % (s, n, stride, delta))
    w("};\nconst size_t uni_lower_runs_len = %d;\n" % len(low))

    out.close()
    out = open(os.path.join(out_dir, "unicode_tables_decomp.c"), "w")
    header("canonical decompositions")
    emit_u32("uni_decomp_cp", [cp for cp, _ in decomp])
    offs = [0]
    pool = []
    for _, f in decomp:
        pool.extend(f)
        offs.append(len(pool))
    w("const uint16_t uni_decomp_off[%d] = {\n" % len(offs))
    for i in range(0, len(offs), 12):
        w("    " + ", ".join(str(v) for v in offs[i:i + 12]) + ",\n")
    w("};\n\n")
    emit_u32("uni_decomp_pool", pool)
    out.close()
    out = open(os.path.join(out_dir, "unicode_tables_compose.c"), "w")
    header("canonical composition (primary composites)")
    w("const uni_composition uni_compose[%d] = {\n" % len(compose))
    for a, b, c in compose:
        w("    {0x%x, 0x%x, 0x%x},\n" % (a, b, c))
    w("};\nconst size_t uni_compose_len = %d;\n" % len(compose))
    out.close()
    sys.stderr.write("props %d ranges, ccc %d, lower %d runs, decomp %d (pool %d, max %d), "
                     "compose %d\n" % (len(props), len(ccc), len(low), len(decomp), len(pool),
                                       max_decomp, len(compose)))
    assert max_decomp <= 4 and len(pool) < 65536


if __name__ == "__main__":
    main()
