#!/usr/bin/env bash
# Sets up and runs the whole test suite: installs dependencies, builds the normal
# (build/) and the AddressSanitizer+UBSan (build-asan/) configurations, and runs ctest
# in both. Golden cases are replayed when ../shared/golden exists (CS_GOLDEN_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
jobs=$(nproc)
status=0
for cfg in "build:-DCMAKE_BUILD_TYPE=RelWithDebInfo" "build-asan:-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCS_SANITIZE=ON"; do
  dir=${cfg%%:*}
  flags=${cfg#*:}
  echo "=== $dir ($flags)"
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" $flags >/dev/null
  cmake --build "$dir" -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" || status=1
done
exit $status
