#!/usr/bin/env bash
# The short version of tests/storm/storm.py (50 SSE streams cut mid-generation, 200 idle
# and slow-header connections around a normal request, a 60 s wrk soak at 4x the queue's
# capacity; RSS within 10 % of the warm baseline). The manual version: storm.py (1000
# streams, 2000 connections, 30 min). Needs wrk; the default model.
set -u
bin=${CFGSERVE_BIN:?}
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v wrk >/dev/null || { echo "wrk not installed: nothing to test"; exit 0; }
# RSS bound 10 %, not the manual run's 5 %: on a ~36 MiB baseline 5 % is 1.8 MiB, and
# the soak legitimately moves ~0.5 MiB (the finished-job set is refilled with bigger
# records than the cut streams of the sse phase left in it). History: 10 %, then 20 %
# after a loaded run grew +13.1 % (thread arenas keeping freed connection pools resident,
# trimmed only when a job retired: docs/reliability.md). With one malloc arena and the
# trimming thread, three runs on the shared 2-core machine while other tests ran:
# RSS after the soak -0.5 %, -1.1 %, -0.2 % of baseline (36.4, 35.6, 36.0 MiB; malloc in
# use +0.4, +0.3, +0.4 MiB = the kept set's bytes, free +0.7, +0.3, +0.2 MiB). Before the
# fix, same machine: +2.7 %, +4.4 %, +11.3 %.
extra=(--rss-pct 10)
# ASan's quarantine holds freed memory on purpose: RSS is reported, not bounded.
if grep -qa __asan_init "$bin/cfgserve"; then extra+=(--no-rss); fi
exec python3 "$root/tests/storm/storm.py" --short --bin "$bin" "${extra[@]}"
