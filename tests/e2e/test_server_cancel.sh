#!/usr/bin/env bash
# Cancellation and admission end to end: a client that disconnects (PNG wait or event
# stream) and DELETE /jobs/{id} both free the job (metrics back to 0 running/queued); a
# full queue answers 429 with Retry-After; an idle event stream gets keep-alive comments
# and closing it does not cancel the job; a job past --job-timeout fails with 504.
. "$(dirname "$0")/lib_server.sh"

start_server cancel --workers 1 --max-batch 1 --queue-size 2 --sse-keepalive 1
long='{"prompt":"a red circle","steps":300,"sampler":"ddim"}'
cancelled() { metric 'cfgserve_jobs_finished_total{outcome="cancelled"}'; }

# ---- disconnect while waiting for a PNG
curl -s -o /dev/null --max-time 1 -H 'Content-Type: application/json' --data-binary "$long" \
  "$URL/generate"; rc=$?
check "the client gave up (curl exit 28)" "[ $rc -eq 28 ]"
check "disconnect cancels the job" "wait_metric 'cfgserve_jobs_finished_total{outcome=\"cancelled\"}' 1 15"
check "nothing running or queued after the disconnect" "wait_metric cfgserve_jobs_running 0 5 && wait_metric cfgserve_queue_depth 0 5"

# ---- disconnect from an event stream
curl -s -N -o "$tmp/s.sse" --max-time 1.5 -H 'Content-Type: application/json' \
  --data-binary '{"prompt":"a red circle","steps":300,"sampler":"ddim","stream":true}' "$URL/generate"
check "the stream had started" "grep -q '^event: started' $tmp/s.sse"
check "closing the stream cancels the job" "wait_metric 'cfgserve_jobs_finished_total{outcome=\"cancelled\"}' 2 15"
check "nothing running after the stream closed" "wait_metric cfgserve_jobs_running 0 5"

# ---- DELETE /jobs/{id}
post /jobs "$long" >/dev/null
id=$(json_str id "$tmp/body")
check "job submitted" "[ -n \"$id\" ] && wait_metric cfgserve_jobs_running 1 10"
code=$(curl -s -o "$tmp/d" -w '%{http_code}' -X DELETE "$URL/jobs/$id")
check "DELETE /jobs/{id}: 200" "[ $code = 200 ] && grep -q '\"cancelled\":true' $tmp/d"
check "the job is cancelled and freed" "wait_metric cfgserve_jobs_running 0 10 && curl -s $URL/jobs/$id | grep -q '\"state\":\"cancelled\"'"
check "DELETE again: 409" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X DELETE $URL/jobs/$id)\" = 409 ]"

# ---- a full queue: 429 with Retry-After
ids=()
n429=0
for i in 1 2 3 4 5; do
  code=$(post /jobs "$long")
  if [ "$code" = 202 ]; then ids+=("$(json_str id "$tmp/body")"); fi
  if [ "$code" = 429 ]; then
    n429=$((n429 + 1))
    cp "$tmp/headers" "$tmp/h429"
    cp "$tmp/body" "$tmp/b429"
  fi
done
echo "accepted ${#ids[@]}, refused $n429"
check "queue of 2 + 1 running: some submissions refused with 429" "[ $n429 -ge 2 ] && [ \${#ids[@]} -ge 2 ]"
check "429 carries Retry-After and code queue_full" "[ \"\$(header Retry-After $tmp/h429)\" = 1 ] && grep -q queue_full $tmp/b429"
check "metrics count the rejections" "[ \"\$(metric 'cfgserve_rejections_total{reason=\"queue_full\"}')\" = $n429 ]"

# ---- an idle event stream (a queued job) gets keep-alive comments
last=${ids[$((${#ids[@]} - 1))]}
curl -s -N -o "$tmp/k.sse" --max-time 3 "$URL/jobs/$last/events"
check "keep-alive comments on an idle stream" "grep -q '^: keep-alive' $tmp/k.sse && grep -q '^event: queued' $tmp/k.sse"
check "closing an events stream does not cancel the job" "curl -s $URL/jobs/$last | grep -q '\"state\":\"queued\"'"

for id in "${ids[@]}"; do curl -s -o /dev/null -X DELETE "$URL/jobs/$id"; done
check "after DELETE of all: nothing running or queued" "wait_metric cfgserve_jobs_running 0 15 && wait_metric cfgserve_queue_depth 0 5"
stop_server

# ---- a job past its timeout fails with 504
start_server timeout --workers 1 --job-timeout 1
code=$(post /generate "$long")
check "job timeout: 504 with code timeout" "[ $code = 504 ] && grep -q '\"code\":\"timeout\"' $tmp/body"
check "the timed-out job is counted and freed" "[ \"\$(metric 'cfgserve_jobs_finished_total{outcome=\"timed_out\"}')\" = 1 ] && wait_metric cfgserve_jobs_running 0 5"
stop_server
exit $fail
