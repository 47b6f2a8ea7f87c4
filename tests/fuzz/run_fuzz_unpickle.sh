#!/usr/bin/env bash
# Fuzzes the restricted unpickler and the .ckpt zip reader with libFuzzer.
#
#   tests/fuzz/run_fuzz_unpickle.sh SECONDS
#       builds build-fuzz/ (clang, -DCS_FUZZ=ON), makes seeds with make_ckpt.py (stdlib
#       pickle only: fake state dicts, protocols 2-4, one small .ckpt zip), fuzzes SECONDS.
# Exits non-zero on a finding; the input is saved under build-fuzz/fuzz_unpickle/artifacts/.
set -euo pipefail
export LC_ALL=C
[[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || { echo "usage: $0 SECONDS" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_FUZZ=ON >/dev/null
make -C "$build" -j2 fuzz_unpickle >/dev/null
fuzzer=$build/bin/fuzz_unpickle
work=$build/fuzz_unpickle
rm -rf "$work/seeds"
mkdir -p "$work/seeds" "$work/corpus" "$work/artifacts"
python3 "$root/tests/fuzz/make_ckpt.py" seeds "$work/seeds"
python3 "$root/tests/fuzz/make_ckpt.py" zipseed "$work/seeds/tiny.ckpt"
echo "fuzzing $fuzzer for ${1}s ($(ls "$work/seeds" | wc -l) seeds)"
set +e
"$fuzzer" -max_total_time="$1" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$work/seeds" \
    2>"$work/fuzz.log"
rc=$?
set -e
grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|DONE' "$work/fuzz.log" | tail -4 || true
if [[ $rc -ne 0 ]]; then
    echo "FINDING (libFuzzer exit $rc); log: $work/fuzz.log" >&2
    grep -E 'ERROR|SUMMARY|assertion|runtime error' "$work/fuzz.log" | head -20 >&2
    exit 1
fi
echo "no findings; corpus now $(ls "$work/corpus" | wc -l) files"
