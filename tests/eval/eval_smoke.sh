#!/usr/bin/env bash
# Smoke test of cfgserve-eval on the bundled model: a few prompts, two scales, a short
# negative-prompt test and a grid. Checks that every table is printed with numbers and
# that the grid is a PNG of the expected size (rows x columns of 64x64 cells).
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" --threads 1 --limit 12 --seeds 2 --scales 1,7.5 --steps 4 --batch 8 \
    --neg-seeds 2 --grid "$work/grid.png" > "$work/out.txt"
cat "$work/out.txt"
fail() { echo "eval_smoke: $*" >&2; exit 1; }
grep -q ', 1 thread(s)$' "$work/out.txt" || fail "--threads 1 not in effect"
grep -q '^| 1 | [0-9.]* | ' "$work/out.txt" || fail "no table row for s = 1"
grep -q '^| 7.5 | [0-9.]* | ' "$work/out.txt" || fail "no table row for s = 7.5"
grep -q '^| all (mean) | ' "$work/out.txt" || fail "no negative-prompt summary"
[ "$(head -c 8 "$work/grid.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "grid is not a PNG"
# IHDR width and height: 2 columns and 8 rows of 64-pixel cells with 2-pixel gaps.
dims=$(od -An -tu1 -j16 -N8 "$work/grid.png" | tr -s ' ' | sed 's/^ //')
[ "$dims" = "0 0 0 134 0 0 2 18" ] || fail "grid size bytes '$dims', want 134 x 530"
echo "eval_smoke: ok"
