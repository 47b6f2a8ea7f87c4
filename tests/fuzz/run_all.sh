#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c) for SECONDS each and prints, per
# target, the executions, the corpus growth and the findings.
#
#   tests/fuzz/run_all.sh SECONDS [TARGET...]
#       configures and builds build-fuzz/ (clang, -DCS_FUZZ=ON; a build dir of its own),
#       then fuzzes each target (default: all) one after the other. Work folders:
#       build-fuzz/fuzz-work/<target>/{corpus,artifacts,fuzz.log}; the committed seeds are
#       tests/fuzz/corpus/<target>/ (tests/fuzz/make_seeds.py writes most of them).
#   tests/fuzz/run_all.sh SECONDS --prebuilt BINDIR WORKDIR [TARGET...]
#       the same with already built targets (what the ctest "fuzz" entries use).
#
# Environment: FUZZ_JOBS=N runs N targets at a time (default 1: the machine is shared);
# FUZZ_TIMEOUT=S is the per-input limit (default 10 s; wall-clock in libFuzzer, so raise it
# for a long run on a loaded machine, where a starved process is not a hang);
# FUZZ_SEED=N fixes libFuzzer's seed (the ctest smoke does: the same mutations every run,
# so a CI result depends on the code, not on luck; long manual runs leave it random).
# Exits non-zero when any target reports a crash, leak, timeout, out-of-memory (a
# decompression bomb is one: -malloc_limit_mb) or invariant failure; the input that
# triggered it is saved under <work>/<target>/artifacts/ (replay: BINDIR/<target> FILE).
set -uo pipefail
export LC_ALL=C
usage() { echo "usage: $0 SECONDS [--prebuilt BINDIR WORKDIR] [TARGET...]" >&2; exit 2; }
[[ $# -ge 1 && $1 =~ ^[0-9]+$ ]] || usage
seconds=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
if [[ ${1:-} == --prebuilt ]]; then
    [[ $# -ge 3 ]] || usage
    bindir=$2 work=$3
    shift 3
else
    build=$root/build-fuzz
    CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_FUZZ=ON \
        >/dev/null || exit 2
    targets=$(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
    # shellcheck disable=SC2086
    cmake --build "$build" -j2 --target $targets >/dev/null || exit 2
    bindir=$build/bin work=$build/fuzz-work
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
fi

# Per-target input size bound and dictionary.
max_len() {
    case $1 in
    fuzz_prompt | fuzz_tokenizer) echo 4096 ;;
    fuzz_request | fuzz_a1111) echo 8192 ;;
    fuzz_ldm | fuzz_unpickle) echo 65536 ;;
    *) echo 16384 ;;
    esac
}
dict() {
    case $1 in
    fuzz_request | fuzz_a1111) echo "-dict=$root/tests/fuzz/json.dict" ;;
    fuzz_safetensors | fuzz_lora | fuzz_ldm) echo "-dict=$root/tests/fuzz/safetensors.dict" ;;
    esac
}

run_one() { # TARGET: fuzzes it; writes its summary line to <work>/<target>/summary
    local t=$1 w=$work/$1 rc execs cov corpus findings
    mkdir -p "$w/corpus" "$w/artifacts"
    # shellcheck disable=SC2046
    "$bindir/$t" -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 \
        -malloc_limit_mb=512 -max_len="$(max_len "$t")" $(dict "$t") -print_final_stats=1 \
        ${FUZZ_SEED:+-seed=$FUZZ_SEED} -artifact_prefix="$w/artifacts/" "$w/corpus" "$root/tests/fuzz/corpus/$t" \
        >"$w/fuzz.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$w/fuzz.log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$w/fuzz.log" | tail -n 1 | cut -d' ' -f2)
    corpus=$(find "$w/corpus" -type f | wc -l)
    # slow-unit-* files are inputs that took longer than libFuzzer's report threshold in
    # wall-clock time: on a loaded machine that is starvation, not a bug; they are listed
    # apart (replay them: BINDIR/<target> FILE) and are not findings.
    findings=$(find "$w/artifacts" -type f ! -name 'slow-unit-*' | wc -l)
    slow=$(find "$w/artifacts" -type f -name 'slow-unit-*' | wc -l)
    [[ $rc -ne 0 && $findings -eq 0 ]] && findings=1
    printf '%-18s %5ss  execs %-10s cov %-6s corpus %-6s findings %s  slow inputs %s%s\n' "$t" \
        "$seconds" "${execs:-?}" "${cov:-?}" "$corpus" "$findings" "$slow" \
        "$([[ $rc -ne 0 ]] && echo "  (exit $rc; log $w/fuzz.log)")" >"$w/summary"
    if [[ $rc -ne 0 ]]; then
        grep -E 'ERROR|SUMMARY|assertion|runtime error|out-of-memory' "$w/fuzz.log" | head -8 \
            >>"$w/summary"
        return 1
    fi
}

status=0
running=0
pids=()
for t in "${targets[@]}"; do
    [[ -x $bindir/$t ]] || { echo "$t: not built in $bindir" >&2; status=1; continue; }
    run_one "$t" &
    pids+=($!)
    running=$((running + 1))
    if [[ $running -ge ${FUZZ_JOBS:-1} ]]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
        running=$((running - 1))
    fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
for t in "${targets[@]}"; do [[ -f $work/$t/summary ]] && cat "$work/$t/summary"; done
[[ $status -eq 0 ]] && echo "no findings" || echo "FINDINGS: see the logs above" >&2
exit $status
