#!/usr/bin/env bash
# Scale-out end to end: two cfgserve instances (--instance-id 0 and 1) behind Debian's
# nginx with the configuration deploy/nginx/make-config.sh writes, all on 127.0.0.1.
# Checks: new work spreads over both instances (each one's /metrics counts its share);
# an event stream comes through unbuffered (events arrive while the job runs); a job
# submitted through the balancer is found there again (GET /jobs/{id}, its events and
# its image reach the owner, whichever it is); after one instance is stopped with SIGTERM
# new requests still succeed (nginx retries the refused connection on the other one).
# nginx runs in the foreground as this user, with every path in the test's folder.
# Skipped (exit 0) only when nginx is not installed; deploy/install-deps.sh installs it.
. "$(dirname "$0")/lib_server.sh"

nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; }
if [ -z "$nginx_bin" ]; then
  echo "SKIP: nginx not found (install it: deploy/install-deps.sh); scale-out not tested"
  exit 0
fi
src=${CS_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# Three consecutive free ports: two instances, then the balancer.
base=$(python3 - <<'EOF'
import random, socket
for _ in range(200):
    b = random.randint(20000, 60000)
    socks = []
    try:
        for p in range(b, b + 3):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(b); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
EOF
)
check "found free ports ($base..$((base + 2)))" "[ -n \"$base\" ]"
[ -n "$base" ] || exit 1

start_server i0 --instance-id 0 --port "$base"
URL0=$URL PID0=$SPID LOG0=$SLOG
start_server i1 --instance-id 1 --port $((base + 1))
URL1=$URL PID1=$SPID

# ---- the balancer
ngx=$tmp/nginx
mkdir -p "$ngx/logs" "$ngx/tmp"
# As root, nginx's workers run as nobody: they must be able to reach their temp folders.
[ "$(id -u)" -ne 0 ] || chmod 711 "$tmp" "$ngx"
"$src/deploy/nginx/make-config.sh" --standalone --listen 127.0.0.1:$((base + 2)) \
  --read-timeout 120 2 "$base" >"$ngx/nginx.conf"
"$nginx_bin" -p "$ngx/" -c "$ngx/nginx.conf" -e "$ngx/logs/error.log" 2>"$tmp/nginx.stderr" &
NPID=$!
stop_nginx() { # fast shutdown: the master stops its workers, then exits
  kill -TERM "$NPID" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$NPID" 2>/dev/null || return 0; sleep 0.1; done
  for p in $(ps -o pid= --ppid "$NPID"); do kill -KILL "$p" 2>/dev/null; done
  kill -KILL "$NPID" 2>/dev/null
}
trap 'stop_nginx; cleanup' EXIT
LB=http://127.0.0.1:$((base + 2))
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$LB/ready")" = 200 ] && break
  kill -0 "$NPID" 2>/dev/null || break
  sleep 0.1
done
check "nginx answers /ready through the balancer" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $LB/ready)\" = 200 ]" ||
  { cat "$tmp/nginx.stderr" "$ngx/logs/error.log"; }

URL=$LB # post() and friends now go through nginx
served() { # URL: POST /generate answered 200 by that instance
  curl -s "$1/metrics" | awk '$1 == "cfgserve_http_requests_total{route=\"/generate\",status=\"200\"}" { print $2 }'
}
gen='{"prompt":"a red circle","steps":1,"sampler":"ddim","guidance_scale":5}'

# ---- new work spreads over both instances
ok=0
for _ in 1 2 3 4; do [ "$(post /generate "$gen")" = 200 ] && is_png "$tmp/body" && ok=$((ok + 1)); done
n0=$(served "$URL0") n1=$(served "$URL1")
check "4 generations through the balancer succeed ($ok)" "[ $ok = 4 ]"
check "both instances served some (instance 0: ${n0:-0}, instance 1: ${n1:-0})" \
  "[ \"${n0:-0}\" -ge 1 ] && [ \"${n1:-0}\" -ge 1 ] && [ \$((${n0:-0} + ${n1:-0})) = 4 ]"

# ---- an event stream is not buffered: the first event arrives well before the last
python3 - "$LB" >"$tmp/sse_timing" <<'EOF'
import http.client, json, sys, time
host = sys.argv[1].split("//")[1]
c = http.client.HTTPConnection(host, timeout=60)
body = json.dumps({"prompt": "a blue square", "steps": 10, "sampler": "ddim", "stream": True})
t0 = time.monotonic()
c.request("POST", "/generate", body, {"Content-Type": "application/json"})
r = c.getresponse()
times = {}
while True:
    line = r.readline()
    if not line:
        break
    if line.startswith(b"event: "):
        times.setdefault(line[7:].strip().decode(), time.monotonic() - t0)
print(r.status, " ".join("%s=%.3f" % kv for kv in sorted(times.items(), key=lambda kv: kv[1])))
EOF
read -r sse_status sse_events <"$tmp/sse_timing"
first=$(echo "$sse_events" | tr ' ' '\n' | sed -n 's/^started=//p')
done_t=$(echo "$sse_events" | tr ' ' '\n' | sed -n 's/^done=//p')
echo "SSE through nginx (seconds after the request): $sse_events"
check "SSE 200 with started and done events" "[ \"$sse_status\" = 200 ] && [ -n \"$first\" ] && [ -n \"$done_t\" ]"
# A buffering proxy delivers every event at once when the stream ends; unbuffered, the
# first comes within the first half of the stream, and ten steps take well over 50 ms.
check "SSE events arrive while the job runs (started at ${first:-?} s, done at ${done_t:-?} s)" \
  "awk -v a=\"${first:-0}\" -v b=\"${done_t:-0}\" 'BEGIN { exit !(b - a >= 0.05 && a <= b / 2) }'"

# ---- a job's id leads back to its owner through the balancer
owners="" routed=0 rounds=6
for _ in $(seq 1 $rounds); do
  [ "$(post /jobs "$gen")" = 202 ] || continue
  id=$(json_str id "$tmp/body")
  owners+=" ${id%%-*}"
  s1=$(curl -s -o "$tmp/js" -w '%{http_code}' "$LB/jobs/$id")
  ev=$(curl -s -N --max-time 60 "$LB/jobs/$id/events" | sed -n 's/^event: //p' | tail -n 1)
  s2=$(curl -s -o "$tmp/ji.png" -w '%{http_code}' "$LB/jobs/$id/image")
  s3=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$LB/jobs/$id")
  if [ "$s1" = 200 ] && grep -q "\"id\":\"$id\"" "$tmp/js" && [ "$ev" = done ] &&
    [ "$s2" = 200 ] && is_png "$tmp/ji.png" && [ "$s3" = 409 ]; then
    routed=$((routed + 1))
  else
    echo "job $id: GET $s1, last event '$ev', image $s2, DELETE $s3"
  fi
done
check "$rounds jobs: GET, events, image and DELETE all reached the owner ($routed)" "[ $routed = $rounds ]"
check "jobs landed on both instances (owners:$owners)" \
  "echo '$owners' | grep -qw 0 && echo '$owners' | grep -qw 1"
check "an unknown instance's id gets 404" \
  "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $LB/jobs/7-12345)\" = 404 ]"

# ---- one instance stops: new requests still succeed on the other
SPID=$PID0 SLOG=$LOG0
stop_server
before=$(served "$URL1")
ok=0
for _ in 1 2 3 4; do [ "$(post /generate "$gen")" = 200 ] && ok=$((ok + 1)); done
check "with instance 0 stopped, 4 of 4 generations succeed ($ok)" "[ $ok = 4 ]"
after=$(served "$URL1")
check "instance 1 served them ($before before, $after after)" "[ \$(($after - $before)) = 4 ]"
check "a job of the stopped instance: 502 (its owner is gone), not another's 404" \
  "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $LB/jobs/0-12345)\" = 502 ]"

SPID=$PID1
stop_server
stop_nginx
if [ $fail -ne 0 ]; then
  echo "--- nginx access log"; tail -n 40 "$ngx/logs/access.log"
  echo "--- nginx error log"; tail -n 20 "$ngx/logs/error.log"
fi
exit $fail
