#!/usr/bin/env bash
# Load and shutdown end to end: while an image is being generated, a bounded wrk run
# against /health stays responsive (requests served, no errors); then SIGTERM starts a
# drain: /ready and new jobs get 503, the running job finishes and its client gets the
# PNG, and the server exits 0.
. "$(dirname "$0")/lib_server.sh"

start_server drain --workers 1
gen_bg() { # STEPS NAME: a job in the background; status to $tmp/NAME.code
  curl -s -o "$tmp/$2.png" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "{\"prompt\":\"a red circle\",\"steps\":$1,\"sampler\":\"ddim\",\"seed\":3}" \
    "$URL/generate" >"$tmp/$2.code" &
  client=$!
}

# ---- responsiveness under generation
gen_bg 24 load
check "a job is running" "wait_metric cfgserve_jobs_running 1 15"
if command -v wrk >/dev/null; then
  wrk -t2 -c8 -d3s "$URL/health" >"$tmp/wrk" 2>&1
  reqs=$(awk '/requests in/ { print $1 }' "$tmp/wrk")
  echo "wrk: $(grep -E 'Requests/sec|Latency ' "$tmp/wrk" | tr -s ' ' | tr '\n' ';')"
  check "wrk against /health served requests ($reqs)" "[ -n \"$reqs\" ] && [ \"$reqs\" -gt 100 ]"
  check "wrk saw no errors" "! grep -Eq 'Non-2xx|Socket errors' $tmp/wrk"
else
  echo "wrk not installed: load check skipped"
fi
wait "$client"
check "the job under load finished" "[ \"\$(cat $tmp/load.code)\" = 200 ] && is_png $tmp/load.png"

# ---- drain: a job sized to run about 5 s on this machine is running at SIGTERM
steps=$(curl -s "$URL/metrics" | awk '$1 == "cfgserve_step_seconds_sum" { s = $2 }
  $1 == "cfgserve_step_seconds_count" { n = $2 }
  END { k = (n > 0 && s > 0) ? int(5 / (s / n)) : 24; if (k < 8) k = 8; if (k > 300) k = 300; print k }')
echo "drain job: $steps steps"
gen_bg "$steps" drain
check "the job is running" "wait_metric cfgserve_jobs_running 1 15"
kill -TERM "$SPID"
check "/ready answers 503 while draining" "for i in \$(seq 50); do [ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/ready)\" = 503 ] && break; sleep 0.1; done; [ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/ready)\" = 503 ]"
code=$(post /generate '{"prompt":"too late","steps":4}')
check "new jobs get 503 draining" "[ $code = 503 ] && grep -q '\"code\":\"draining\"' $tmp/body"
check "/health still answers while draining" "curl -sf $URL/health >/dev/null"
wait "$client"
check "the running job finished: its client got the PNG" "[ \"\$(cat $tmp/drain.code)\" = 200 ] && is_png $tmp/drain.png && grep -aq 'Steps: $steps,' $tmp/drain.png"
for _ in $(seq 1 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
wait "$SPID"
rc=$?
check "server exits 0 after the drain (got $rc)" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || { tail -n 20 "$SLOG"; tail -n 40 "$tmp/drain.stderr"; }
check "the log tells the story" "grep -q 'drained; stopping' $SLOG && grep -q 'exiting with status 0' $SLOG"
exit $fail
