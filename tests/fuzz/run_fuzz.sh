#!/usr/bin/env bash
# Fuzzes the safetensors reader with libFuzzer.
#
#   tests/fuzz/run_fuzz.sh SECONDS
#       configures and builds build-fuzz/ (clang, -DCS_FUZZ=ON), seeds a corpus from a few
#       small real files in $CS_GOLDEN_DIR (default ../shared/golden) plus hand-made files,
#       and fuzzes for SECONDS. The corpus grows in build-fuzz/fuzz_safetensors/corpus.
#   tests/fuzz/run_fuzz.sh SECONDS --prebuilt FUZZER WORKDIR
#       the same with an already built target (what the ctest entry uses).
#
# Exits non-zero when libFuzzer reports a crash, leak, timeout or invariant failure; the
# input that triggered it is saved under WORKDIR/artifacts/ (replay: FUZZER FILE).
set -euo pipefail
export LC_ALL=C

usage() { echo "usage: $0 SECONDS [--prebuilt FUZZER WORKDIR]" >&2; exit 2; }
[[ $# -ge 1 && $1 =~ ^[0-9]+$ ]] || usage
seconds=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
golden=${CS_GOLDEN_DIR:-$root/../shared/golden}

if [[ $# -ge 2 ]]; then
    [[ $# -eq 4 && $2 == --prebuilt ]] || usage
    fuzzer=$3
    work=$4
else
    build=$root/build-fuzz
    CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_FUZZ=ON \
        >/dev/null
    make -C "$build" -j2 fuzz_safetensors >/dev/null
    fuzzer=$build/bin/fuzz_safetensors
    work=$build/fuzz_safetensors
fi
[[ -x $fuzzer ]] || { echo "$0: no fuzzer at $fuzzer" >&2; exit 2; }

seeds=$work/seeds
rm -rf "$seeds"
mkdir -p "$seeds" "$work/corpus" "$work/artifacts"

# ---- seeds: a few small real files (the reference writer's exact layout) ----
n_real=0
for f in text_encoder_tiny/inputs.safetensors schedulers/ddim/schedule.safetensors \
         unet_tiny_variants/class_labels/outputs.safetensors; do
    if [[ -f $golden/$f ]]; then
        cp "$golden/$f" "$seeds/real_$(echo "$f" | tr / _)"
        n_real=$((n_real + 1))
    fi
done
[[ $n_real -gt 0 ]] || echo "note: $golden absent; hand-made seeds only" >&2

# ---- seeds: hand-made files covering every dtype and the edge cases ----
le64() { # the 8-byte little-endian header length
    local v=$1 i
    for i in 0 1 2 3 4 5 6 7; do
        printf "\\$(printf '%03o' $(((v >> (8 * i)) & 255)))"
    done
}
mkst() { # NAME HEADER DATA (DATA is a printf format of \x escapes)
    { le64 ${#2}; printf '%s' "$2"; printf "$3"; } >"$seeds/$1"
}
meta='"__metadata__":{"format":"pt"}'
mkst all_dtypes.st "{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\
\"f32\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},\
\"f16\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[9,13]},\
\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[13,17]},\
\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[17,25]},\
\"f64\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[25,33]},\
\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[33,37]},\
\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[37,39]},\
\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[39,40]},\
\"b\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[40,41]},\
\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[41,41]},$meta}    " \
    '\x07''\x00\x00\xc0\x3f\x00\x00\x80\x7f''\x00\x3c\x01\x00''\x80\x3f\x01\x00'\
'\xff\xff\xff\xff\xff\xff\xff\xff''\x9a\x99\x99\x99\x99\x99\xb9\x3f'\
'\x05\x00\x00\x00''\xd4\xfe''\x80''\x01'
mkst metadata_only.st "{$meta}" ''
mkst empty_object.st '{}      ' ''
f32=',"shape":[1],"dtype":"F32"}'
mkst overlap.st "{\"a\":{\"data_offsets\":[0,4]$f32,\"b\":{\"data_offsets\":[2,6]$f32}" \
    '\x00\x00\x80\x3f\x00\x00'
mkst duplicate.st "{\"a\":{\"data_offsets\":[0,4]$f32,\"a\":{\"data_offsets\":[4,8]$f32}" \
    '\x00\x00\x80\x3f\x00\x00\x00\x40'
mkst empty_between.st "{\"a\":{\"data_offsets\":[0,4]$f32,\"z\":{\"data_offsets\":[4,4],\
\"shape\":[0],\"dtype\":\"F32\"},\"b\":{\"data_offsets\":[4,8]$f32}" \
    '\x00\x00\x80\x3f\x00\x00\x00\x40'
mkst metadata_dup.st '{"__metadata__":{"format":"pt","format":"np"}}' ''
mkst metadata_int.st '{"__metadata__":{"format":"pt","n":1}}' ''
mkst f16_specials.st '{"h":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}' \
    '\x01\x00\xff\x03\x00\x7c\x00\xfe\xff\x7b\x00\x80'
mkst big_shape.st '{"w":{"dtype":"F32","shape":[9007199254740992,2],"data_offsets":[0,4]}}' \
    '\x00\x00\x00\x00'
mkst escapes.st \
    '{"n\u00e9\"\\\/":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"k":"v\n"}}' \
    '\x00'

# ---- run ----
dict=$root/tests/fuzz/safetensors.dict
echo "fuzzing $fuzzer for ${seconds}s ($(ls "$seeds" | wc -l) seeds, corpus $work/corpus)"
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -dict="$dict" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$seeds" 2>"$work/fuzz.log"
rc=$?
set -e
grep -E '^(#[0-9]+.*DONE|stat::|Done|INFO: -max_total_time)' "$work/fuzz.log" || true
tail -n 3 "$work/fuzz.log" | grep -E 'DONE|cov' || true
if [[ $rc -ne 0 ]]; then
    echo "FINDING (libFuzzer exit $rc); log: $work/fuzz.log; artifacts:" >&2
    ls -l "$work/artifacts" >&2
    grep -E 'ERROR|SUMMARY|assertion|runtime error' "$work/fuzz.log" | head -20 >&2
    exit 1
fi
echo "no findings; corpus now $(ls "$work/corpus" | wc -l) files"
