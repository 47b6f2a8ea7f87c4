# Shared helpers for the server end-to-end tests (sourced by tests/e2e/test_server_*.sh;
# not a test itself). Each test starts the real cfgserve on 127.0.0.1 with an ephemeral
# port and the golden tiny model (64x64), drives it with curl, and stops it with SIGTERM,
# expecting exit status 0 (under ASan that also means no leaks). Every server is killed
# when the test exits, whatever happens.
#
# Environment (set by CTest): CFGSERVE_BIN (folder with cfgserve), CS_GOLDEN_DIR.
set -u
bin=${CFGSERVE_BIN:?}/cfgserve
model=${CS_GOLDEN_DIR:?}/pipeline_tiny/model
if [ ! -d "$model" ]; then echo "golden model absent: nothing to test"; exit 0; fi
if [ ! -x "$bin" ]; then echo "FAIL: $bin is not built"; exit 1; fi
tmp=$(mktemp -d)
fail=0
server_pids=()
cleanup() {
  for p in "${server_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  jobs -p | xargs -r kill 2>/dev/null
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
# ASan: leaks make the exit status non-zero, which stop_server reports.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

# start_server NAME [cfgserve flags...]: sets URL, SPID and SLOG once /ready answers 200.
start_server() {
  local name=$1 i port=""
  shift
  SLOG=$tmp/$name.log
  "$bin" --config none --host 127.0.0.1 --port 0 --model "$model" --log-file "$SLOG" "$@" \
    2>"$tmp/$name.stderr" &
  SPID=$!
  server_pids+=("$SPID")
  for i in $(seq 1 600); do # up to 60 s: sanitizer builds start slowly
    if [ -z "$port" ]; then
      port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$SLOG" \
        2>/dev/null | head -n 1)
    fi
    if [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' \
      "http://127.0.0.1:$port/ready")" = 200 ]; then break; fi
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  URL=http://127.0.0.1:$port
  check "server $name is ready on port ${port:-?}" \
    "[ -n \"$port\" ] && curl -sf \"$URL/ready\" >/dev/null"
}

# stop_server: SIGTERM, then the exit status must be 0 within 60 s.
stop_server() {
  local rc
  kill -TERM "$SPID" 2>/dev/null
  for _ in $(seq 1 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  wait "$SPID"
  rc=$?
  check "server exits 0 after SIGTERM (got $rc)" "[ $rc -eq 0 ]"
  if [ "$rc" -ne 0 ]; then
    echo "--- server log"; tail -n 30 "$SLOG"; echo "--- server stderr"; tail -n 60 "$tmp"/*.stderr
  fi
}

# post PATH BODY [curl args...]: JSON POST; body to $tmp/body, headers to $tmp/headers,
# prints the status code.
post() {
  local path=$1 body=$2
  shift 2
  curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$body" "$@" "$URL$path"
}

# json_str KEY FILE: the first string value of "KEY" in a JSON file.
json_str() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$2" | head -n 1; }
# header NAME FILE: a response header's value.
header() { tr -d '\r' <"$2" | sed -n "s/^$1: //Ip" | head -n 1; }
# metric NAME: the value of a metric line (exact name with labels) from /metrics.
metric() { curl -s "$URL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
# first_image FILE OUT: decodes images[0] of a JSON result (or an SSE done event) to OUT.
first_image() { sed -n 's/.*"images":\["\([^"]*\)".*/\1/p' "$1" | head -n 1 | base64 -d >"$2"; }

# wait_metric NAME VALUE SECONDS: polls /metrics until NAME equals VALUE.
wait_metric() {
  local i
  for i in $(seq 1 $(($3 * 10))); do
    [ "$(metric "$1")" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
