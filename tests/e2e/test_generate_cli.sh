#!/usr/bin/env bash
# cfgserve-generate end to end on the golden tiny model: a valid PNG with the parameters
# chunk, byte-identical output for the same seed, and clear errors for bad arguments.
set -u
bin=${CFGSERVE_BIN:?}/cfgserve-generate
model=${CS_GOLDEN_DIR:?}/pipeline_tiny/model
if [ ! -d "$model" ]; then echo "golden model absent: nothing to test"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

args=(--model "$model" --prompt "a red cube" --negative-prompt "blurry" --steps 4 --seed 7
      --sampler dpmpp_2m --guidance-scale 5)
"$bin" "${args[@]}" -o "$tmp/a.png" 2>"$tmp/a.log"; rc=$?
check "first run exits 0" "[ $rc -eq 0 ]"
"$bin" "${args[@]}" --num-images 2 -o "$tmp/b.png" 2>"$tmp/b.log"; rc=$?
check "second run exits 0" "[ $rc -eq 0 ]"
check "PNG signature" "[ \"\$(head -c 8 $tmp/a.png | od -An -tx1 | tr -d ' \n')\" = 89504e470d0a1a0a ]"
check "same seed gives identical bytes" "cmp -s $tmp/a.png $tmp/b.png"
check "second image written with seed+1" "[ -s $tmp/b_1.png ] && grep -q 'seed 8' $tmp/b.log"
check "parameters chunk" "grep -aq 'Steps: 4, Sampler: DPM++ 2M, CFG scale: 5, Seed: 7, Size: 64x64' $tmp/a.png"
check "progress lines on a non-terminal" "grep -q 'step 4/4' $tmp/a.log"

"$bin" --model "$model" --prompt x --steps 0 -o "$tmp/c.png" 2>"$tmp/c.log"; rc=$?
check "steps 0 refused with exit 2" "[ $rc -eq 2 ] && grep -q -- '--steps' $tmp/c.log"
"$bin" --model "$model" --prompt x --width 66 -o "$tmp/c.png" 2>"$tmp/c.log"; rc=$?
check "width 66 refused naming width" "[ $rc -eq 2 ] && grep -q 'width' $tmp/c.log"
"$bin" --model "$model" --prompt x --sampler nope -o "$tmp/c.png" 2>"$tmp/c.log"; rc=$?
check "unknown sampler refused" "[ $rc -eq 2 ] && grep -q 'sampler' $tmp/c.log"
"$bin" --model "$tmp/none" --prompt x -o "$tmp/c.png" 2>"$tmp/c.log"; rc=$?
check "missing model folder refused" "[ $rc -eq 1 ] && grep -q 'no such model folder or checkpoint' $tmp/c.log"
"$bin" --bogus 2>"$tmp/c.log"; rc=$?
check "unknown argument refused" "[ $rc -eq 2 ] && grep -q 'unknown argument' $tmp/c.log"
check "no file left by failed runs" "[ ! -e $tmp/c.png ]"
exit $fail
