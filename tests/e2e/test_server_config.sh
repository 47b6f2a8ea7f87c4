#!/usr/bin/env bash
# cfgserve configuration end to end: settings from a config file, the environment and
# flags (in that precedence), clear start-up errors naming the option and its source,
# --help and --print-config, the API key (401 without it; /health and /ready exempt),
# CORS headers and preflight, and the start-up log of effective settings (key masked).
. "$(dirname "$0")/lib_server.sh"

# ---- start-up errors: exit 2 and a message naming the option and where it came from
"$bin" --config none --port 70000 2>"$tmp/e1"; rc=$?
check "bad flag value: exit 2 naming --port" "[ $rc -eq 2 ] && grep -q 'flag --port' $tmp/e1"
CFGSERVE_MAX_BATCH=0 "$bin" --config none 2>"$tmp/e2"; rc=$?
check "bad environment value: exit 2 naming CFGSERVE_MAX_BATCH" "[ $rc -eq 2 ] && grep -q 'CFGSERVE_MAX_BATCH' $tmp/e2"
echo '{"port": 0, "qeue_size": 4}' >"$tmp/bad.json"
"$bin" --config "$tmp/bad.json" 2>"$tmp/e3"; rc=$?
check "unknown config-file key: exit 2 naming it" "[ $rc -eq 2 ] && grep -q 'unknown option \"qeue_size\"' $tmp/e3"
"$bin" --config none --bogus 2>"$tmp/e4"; rc=$?
check "unknown flag: exit 2" "[ $rc -eq 2 ] && grep -q -- '--bogus' $tmp/e4"
"$bin" --config none --port 0 --model "$tmp/nowhere" --log-file "$tmp/e5" 2>/dev/null; rc=$?
check "missing model folder: exit 1 with the reason" "[ $rc -eq 1 ] && grep -q 'cannot load the model' $tmp/e5"
if [ -n "${CS_SOURCE_DIR:-}" ] && [ ! -e "$CS_SOURCE_DIR/models/default/model_index.json" ]; then
  "$bin" --config none --port 0 --log-file "$tmp/e6" 2>/dev/null; rc=$?
  check "default model not built: exit 1 saying so and naming --model" "[ $rc -eq 1 ] && grep -q 'has not been built yet' $tmp/e6 && grep -q -- '--model' $tmp/e6"
fi
"$bin" --help >"$tmp/help"; rc=$?
check "--help lists options with their environment variables" "[ $rc -eq 0 ] && grep -q -- '--max-batch N' $tmp/help && grep -q CFGSERVE_MAX_BATCH $tmp/help"
CFGSERVE_QUEUE_SIZE=7 "$bin" --config none --port 9 --print-config >"$tmp/printed"; rc=$?
check "--print-config shows effective settings" "[ $rc -eq 0 ] && grep -q '\"queue_size\":.*7' $tmp/printed && grep -q '\"port\":.*9' $tmp/printed"
"$bin" --config "$tmp/printed" --print-config >"$tmp/printed2"
check "--print-config output loads as a config file" "cmp -s $tmp/printed $tmp/printed2"

# ---- a server configured from all three sources
cat >"$tmp/cfg.json" <<EOF
{"_comment": "test", "queue_size": 3, "cors_origin": "http://a.example, http://b.example",
 "api_key": "from-file", "retry_after": 9}
EOF
# The file's key is overridden by the environment, the environment's queue size by a flag.
CFGSERVE_API_KEY=s3cret CFGSERVE_QUEUE_SIZE=5 start_server cfg --config "$tmp/cfg.json" --queue-size 6 \
  --threads 1
check "--threads sets the compute threads" "grep -q '1 compute thread(s)' $SLOG"
check "settings logged with sources" "grep -q 'queue_size=6 (flag)' $SLOG && grep -q 'retry_after=9 (file)' $SLOG && grep -q 'api_key=\"\\*\\*\\*\" (env)' $SLOG"
check "the API key never reaches the log" "! grep -q s3cret $SLOG"

code=$(curl -s -o "$tmp/b" -D "$tmp/h" -w '%{http_code}' "$URL/v1/models")
check "no key: 401 with WWW-Authenticate" "[ $code = 401 ] && grep -q '\"code\":\"unauthorized\"' $tmp/b && header WWW-Authenticate $tmp/h | grep -q Bearer"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer from-file' "$URL/v1/models")
check "the file's key lost to the environment's: 401" "[ $code = 401 ]"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cret' "$URL/v1/models")
check "right key: 200" "[ $code = 200 ]"
code=$(post /generate '{"prompt":"x","steps":0}' -H 'Authorization: Bearer s3cret')
check "with the key, requests reach validation" "[ $code = 400 ]"
code=$(post /generate '{"prompt":"x","steps":0}')
check "without it they do not" "[ $code = 401 ]"
check "/health and /ready need no key" "curl -sf $URL/health >/dev/null && curl -sf $URL/ready >/dev/null"

code=$(curl -s -o /dev/null -D "$tmp/h" -w '%{http_code}' -X OPTIONS -H 'Origin: http://b.example' \
  -H 'Access-Control-Request-Method: POST' "$URL/generate")
check "CORS preflight: 204 allowing the origin and POST" "[ $code = 204 ] && [ \"\$(header Access-Control-Allow-Origin $tmp/h)\" = http://b.example ] && header Access-Control-Allow-Methods $tmp/h | grep -q POST && header Access-Control-Allow-Headers $tmp/h | grep -q Authorization"
curl -s -o /dev/null -D "$tmp/h" -H 'Origin: http://a.example' "$URL/health"
check "CORS: an allowed origin is echoed" "[ \"\$(header Access-Control-Allow-Origin $tmp/h)\" = http://a.example ] && header Vary $tmp/h | grep -q Origin"
curl -s -o /dev/null -D "$tmp/h" -H 'Origin: http://evil.example' "$URL/health"
check "CORS: another origin gets no grant" "! grep -qi Access-Control-Allow-Origin $tmp/h"

# ---- SIGHUP reopens the log file (log rotation)
mv "$SLOG" "$SLOG.1"
kill -HUP "$SPID"
for _ in $(seq 1 50); do [ -s "$SLOG" ] && break; sleep 0.1; done
curl -s -o /dev/null -H 'Authorization: Bearer s3cret' "$URL/v1/models"
sleep 0.2
check "SIGHUP: a new log file is opened" "grep -q 'log reopened' $SLOG && grep -q 'GET /v1/models' $SLOG"
stop_server
exit $fail
