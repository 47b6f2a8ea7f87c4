#!/usr/bin/env bash
# Locked doors (issue 13 item 5): the API key (Bearer, or the password of Basic
# credentials as A1111 clients send them; constant-time compare: a wrong key of the right
# length and one of another length are both refused), /metrics behind the
# key (default; --metrics-auth off opens it), no reflective CORS (an unlisted Origin
# gets no Access-Control-Allow-Origin; "*" is sent literally, never the caller's origin),
# Host checks against DNS rebinding (--allowed-hosts; default: the bound address plus
# loopback names; 421 with a JSON error otherwise; probes exempt), the Origin of
# state-changing requests (403 unless same-origin or listed in --cors-origin), and request
# logs without prompts.
source "$(dirname "$0")/lib_server.sh"

code() { curl -s -o "$tmp/out" -w '%{http_code}' "$@"; }
start_server doors --api-key s3cret-key --cors-origin https://ui.example \
  --log-level debug
auth=(-H 'Authorization: Bearer s3cret-key')
check "health open without key" "[ $(code "$URL/health") = 200 ]"
check "metrics need the key (default)" "[ $(code "$URL/metrics") = 401 ]"
check "metrics with the key" "[ $(code "${auth[@]}" "$URL/metrics") = 200 ]"
check "wrong key, same length: 401" \
  "[ $(code -H 'Authorization: Bearer s3cret-kez' "$URL/jobs/1-1") = 401 ]"
check "wrong key, longer: 401" \
  "[ $(code -H 'Authorization: Bearer s3cret-key-and-more' "$URL/jobs/1-1") = 401 ]"
check "key prefix: 401" "[ $(code -H 'Authorization: Bearer s3cret' "$URL/jobs/1-1") = 401 ]"
# A1111 clients with --api-auth send Basic credentials: the key is the password.
check "Basic with the key as password: A1111 route answers" \
  "[ $(code -u "webui:s3cret-key" "$URL/sdapi/v1/sd-models") = 200 ]"
check "Basic with a wrong password: 401" "[ $(code -u "webui:s3cret-kez" "$URL/sdapi/v1/sd-models") = 401 ]"
curl -s -D "$tmp/h0" -o /dev/null "$URL/sdapi/v1/sd-models"
check "A1111 route's 401 offers Basic" "grep -qi '^www-authenticate: Basic' $tmp/h0"

# Host: a rebinding page's name is refused with a JSON error; loopback names pass.
st=$(code "${auth[@]}" -H 'Host: evil.example' "$URL/v1/models")
check "foreign Host: 421 (got $st)" "[ $st = 421 ]"
check "foreign Host: JSON error names the option" "grep -q '\"code\":\"misdirected_host\"' $tmp/out && grep -q allowed-hosts $tmp/out"
check "foreign Host on /health still answers (probes)" \
  "[ $(code -H 'Host: 10.1.2.3:8080' "$URL/health") = 200 ]"
for h in localhost "localhost:${URL##*:}" 127.0.0.1 "[::1]:80"; do
  check "Host $h accepted" "[ $(code "${auth[@]}" -H "Host: $h" "$URL/v1/models") != 421 ]"
done

# CORS: no reflection.
curl -s -D "$tmp/h1" -o /dev/null "${auth[@]}" -H 'Origin: https://evil.example' "$URL/v1/models"
check "unlisted Origin gets no CORS grant" "! grep -qi '^access-control-allow-origin' $tmp/h1"
curl -s -D "$tmp/h2" -o /dev/null "${auth[@]}" -H 'Origin: https://ui.example' "$URL/v1/models"
check "listed Origin granted exactly" \
  "[ \"\$(header Access-Control-Allow-Origin $tmp/h2)\" = https://ui.example ]"

# Origin on state-changing requests.
body='{"prompt":"ZQXJ-secret-prompt-marker","steps":2}'
st=$(post /jobs "$body" "${auth[@]}" -H 'Origin: https://evil.example')
check "POST from a foreign page: 403 (got $st)" "[ $st = 403 ] && grep -q forbidden_origin $tmp/body"
st=$(post /jobs "$body" "${auth[@]}" -H 'Origin: https://ui.example')
check "POST from the listed origin: 202 (got $st)" "[ $st = 202 ]"
st=$(post /jobs "$body" "${auth[@]}" -H "Origin: $URL")
check "POST same-origin: 202 (got $st)" "[ $st = 202 ]"
st=$(post /jobs "$body" "${auth[@]}")
check "POST without Origin (not a browser): 202 (got $st)" "[ $st = 202 ]"
st=$(post /generate "$body" "${auth[@]}")
check "generate completes (got $st)" "[ $st = 200 ]"
check "prompts never reach the log" "! grep -q ZQXJ-secret-prompt-marker $SLOG"
check "the key never reaches the log" "! grep -q s3cret-key $SLOG"
stop_server

# --metrics-auth off; --allowed-hosts "*" accepts any name ("*" is also the default when
# bound to all interfaces, not tested here: loopback only).
start_server open --allowed-hosts '*' --api-key k2 --metrics-auth off --log-prompts on
check "--metrics-auth off: metrics open without the key" "[ $(code "$URL/metrics") = 200 ]"
check "--metrics-auth off: other routes still need it" "[ $(code "$URL/v1/models") = 401 ]"
check "--allowed-hosts '*' accepts any Host" \
  "[ $(code -H 'Host: anything.example' "$URL/metrics") = 200 ]"
st=$(post /jobs '{"prompt":"ZQXJ \"quoted\"\nline","negative_prompt":"NEGQ","steps":1}' -H 'Authorization: Bearer k2')
check "--log-prompts on: the prompts reach the log, escaped (got $st)" \
  "[ $st = 202 ] && grep -q 'prompt \"ZQXJ \\\\\"quoted\\\\\"\\\\x0aline\", negative \"NEGQ\"' $SLOG"
stop_server
start_server named --allowed-hosts 'cfg.internal, other'
check "--allowed-hosts list: listed name passes" \
  "[ $(code -H 'Host: CFG.internal:9000' "$URL/v1/models") = 200 ]"
check "--allowed-hosts list: loopback no longer implied" \
  "[ $(code -H 'Host: localhost' "$URL/v1/models") = 421 ]"
stop_server
exit $fail
