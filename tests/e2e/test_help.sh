#!/usr/bin/env bash
# Every executable answers --help with its usage on stdout and exit status 0, and does
# nothing else (no benchmark, no server, no replay).
bin=${CFGSERVE_BIN:?}
fail=0
for b in cfgserve cfgserve-generate cfgserve-golden cfgserve-eval cfgserve-bench; do
  out=$(timeout 20 "$bin/$b" --help 2>/dev/null)
  rc=$?
  if [ $rc -eq 0 ] && grep -qi usage <<<"$out"; then echo "ok: $b --help"; else
    echo "FAIL: $b --help (exit $rc)"; fail=1; fi
done
exit $fail
