#!/usr/bin/env bash
# Sets up and runs the whole test suite (= CI): installs dependencies, then
#   build/       normal build, every ctest
#   build-asan/  AddressSanitizer + UBSan, every ctest
#   build-tsan/  ThreadSanitizer: the server and concurrency tests (see TSAN_TESTS)
#   build-fuzz/  clang + libFuzzer (-DCS_FUZZ=ON): each fuzz target for a few seconds
# Golden cases are replayed when ../shared/golden exists (CS_GOLDEN_DIR). Prints the time
# of each phase and the total (CI's budget is 90 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
jobs=$(nproc)
status=0
t_all=$SECONDS
phase() { printf '=== %s: %dm%02ds\n' "$1" $(((SECONDS - $2) / 60)) $(((SECONDS - $2) % 60)); }

for cfg in "build:-DCMAKE_BUILD_TYPE=RelWithDebInfo" "build-asan:-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_SANITIZE=ON"; do
  t0=$SECONDS
  dir=${cfg%%:*}
  flags=${cfg#*:}
  echo "=== $dir ($flags)"
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" $flags >/dev/null
  cmake --build "$dir" -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" || status=1
  phase "$dir" "$t0"
done

# ThreadSanitizer over everything that runs threads against each other: the service core
# (queue, batcher, workers, cancellation), the thread pool, mixed-LoRA batches and the real
# server end to end. OPENBLAS_NUM_THREADS=1: OpenBLAS's own worker threads are not
# instrumented (Debian's library) and their lock-free hand-off shows up as false races;
# our compute pool (engine/threadpool.c) still runs, and is what TSan checks.
t0=$SECONDS
echo "=== build-tsan (-DCS_TSAN=ON)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_TSAN=ON >/dev/null
cmake --build build-tsan -j "$jobs" --target cfgserve test_service test_service_control \
  test_threadpool test_lora_batch
TSAN_TESTS='^(test_service|test_service_control|test_threadpool|test_lora_batch|e2e\.test_server_.*)$'
OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --test-dir build-tsan --output-on-failure -j "$jobs" -R "$TSAN_TESTS" || status=1
phase build-tsan "$t0"

# Fuzz smoke: every libFuzzer target from its committed seeds for 5 s (ctest label fuzz).
# Long runs are manual: tests/fuzz/run_all.sh SECONDS.
t0=$SECONDS
echo "=== build-fuzz (clang, -DCS_FUZZ=ON)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_FUZZ=ON >/dev/null
# shellcheck disable=SC2046
cmake --build build-fuzz -j "$jobs" --target $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
ctest --test-dir build-fuzz --output-on-failure -j "$jobs" -L fuzz || status=1
phase build-fuzz "$t0"

phase total "$t_all"
exit $status
