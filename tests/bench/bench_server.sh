#!/usr/bin/env bash
# Server throughput with and without step-level batching, measured in one run:
# images per minute and request latency (p50 / p95) at 1, 2, 4 and 8 concurrent clients,
# against the real server with --max-batch 8 (batching on) and --max-batch 1 (off), and
# the on/off throughput ratio. Not part of ctest (it measures, it does not check).
#
#   tests/bench/bench_server.sh [--bin build/bin] [--model DIR] [--steps 8]
#                               [--per-client 2] [--clients "1 2 4 8"] [--workers 1]
#                               [--wrk SECONDS]
#
# Each client sends --per-client requests one after the other (different seeds, same
# size and step count); a run's throughput is its images over its wall time. Defaults
# suit the tiny golden model; for a real model raise --steps and lower the client counts.
# A client is a curl process per request, which on a small machine takes CPU from the
# server; --wrk SECONDS runs wrk instead (one process, N keep-alive connections, for
# SECONDS a run) and reports p50 / p99 from wrk's latency distribution.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin_dir=$here/../../build/bin
model=${CS_GOLDEN_DIR:-$here/../../../shared/golden}/pipeline_tiny/model
steps=8
per_client=2
clients="1 2 4 8"
workers=1
wrk_s=
while [ $# -gt 0 ]; do
  case $1 in
  --bin) bin_dir=$2; shift 2 ;;
  --model) model=$2; shift 2 ;;
  --steps) steps=$2; shift 2 ;;
  --per-client) per_client=$2; shift 2 ;;
  --clients) clients=$2; shift 2 ;;
  --workers) workers=$2; shift 2 ;;
  --wrk) wrk_s=$2; shift 2 ;;
  -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
  *) echo "bench_server: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin=$bin_dir/cfgserve
[ -x "$bin" ] || { echo "bench_server: $bin is not built" >&2; exit 1; }
[ -d "$model" ] || { echo "bench_server: no model folder $model" >&2; exit 1; }
[ -z "$wrk_s" ] || command -v wrk >/dev/null || { echo "bench_server: --wrk needs wrk" >&2; exit 1; }

tmp=$(mktemp -d)
spid=
cleanup() {
  [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

start() { # MAX_BATCH
  "$bin" --config none --host 127.0.0.1 --port 0 --model "$model" --workers "$workers" \
    --max-batch "$1" --queue-size 1000 --log-file "$tmp/server.log" \
    2>"$tmp/server.err" &
  spid=$!
  : >"$tmp/server.log"
  local port="" i
  for i in $(seq 1 600); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/server.log" | head -n 1)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    sleep 0.1
  done
  url=http://127.0.0.1:$port
}
stop() {
  kill -TERM "$spid"
  wait "$spid"
  spid=
}

request() { # SEED → "status seconds" on stdout
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
    --data-binary "{\"prompt\":\"a red circle on a blue background\",\"steps\":$steps,\"seed\":$1,\"sampler\":\"ddim\"}" \
    "$url/generate"
}

client() { # ID OUT
  local k
  for k in $(seq 1 "$per_client"); do request $(($1 * 1000 + k)) >>"$2"; done
}

# wrk's request script: the same request as `request`, a new seed each time.
cat >"$tmp/post.lua" <<EOF
seed = 0
request = function()
  seed = seed + 1
  return wrk.format("POST", "/generate", {["Content-Type"] = "application/json"},
    '{"prompt":"a red circle on a blue background","steps":$steps,"seed":' .. seed ..
    ',"sampler":"ddim"}')
end
EOF

# run_wrk CLIENTS → "images_per_min p50 p99 failures"
run_wrk() {
  wrk -t1 -c"$1" -d"${wrk_s}s" --timeout 120s --latency -s "$tmp/post.lua" "$url/" 2>&1 |
    awk 'function sec(v) { return v ~ /us$/ ? v / 1e6 : v ~ /ms$/ ? v / 1e3 : v ~ /m$/ ? v * 60 : v + 0 }
      $1 == "50%" { p50 = sec($2) } $1 == "99%" { p99 = sec($2) }
      / requests in / { n = $1; wall = $4 + 0 }
      /Non-2xx/ { bad = $NF } /Socket errors/ { bad += 1 }
      END { printf "%.1f %.2f %.2f %d\n", (wall > 0 ? (n - bad) * 60 / wall : 0), p50, p99, bad }'
}

# run CLIENTS → "images_per_min p50 p95 failures"
run() {
  [ -n "$wrk_s" ] && { run_wrk "$1"; return; }
  local c=$1 i pids=() t0 t1
  : >"$tmp/lat"
  t0=$(date +%s.%N)
  for i in $(seq 1 "$c"); do
    client "$i" "$tmp/lat" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  awk -v t0="$t0" -v t1="$t1" '$1 == 200 { ok++; print $2 } $1 != 200 { bad++ }
    END { printf "%d %d %f\n", ok, bad, t1 - t0 > "/dev/stderr" }' "$tmp/lat" 2>"$tmp/sum" |
    sort -g >"$tmp/sorted"
  read -r ok bad wall <"$tmp/sum"
  awk -v ok="$ok" -v bad="$bad" -v wall="$wall" '{ v[NR] = $1 }
    END {
      p50 = NR ? v[int(0.50 * NR + 0.999)] : 0; p95 = NR ? v[int(0.95 * NR + 0.999)] : 0
      printf "%.1f %.2f %.2f %d\n", ok * 60 / wall, p50, p95, bad
    }' "$tmp/sorted"
}

if [ -n "$wrk_s" ]; then
  echo "cfgserve throughput: model $model, $steps steps, wrk for ${wrk_s} s per run, $workers worker(s)"
  tail=p99_s
else
  echo "cfgserve throughput: model $model, $steps steps, $per_client request(s) per client, $workers worker(s)"
  tail=p95_s
fi
declare -A result
for mode in on off; do
  if [ $mode = on ]; then start 8; else start 1; fi
  request 1 >/dev/null # warm-up: page in the weights, fill the prompt cache
  for c in $clients; do result[$mode,$c]=$(run "$c"); done
  stop
done

printf '\n%7s | %-27s | %-27s | %s\n' clients "batching on (--max-batch 8)" "batching off (--max-batch 1)" "on/off"
printf '%7s | %9s %8s %8s | %9s %8s %8s | %s\n' "" img/min p50_s "$tail" img/min p50_s "$tail" throughput
for c in $clients; do
  read -r a_ipm a_p50 a_p95 a_bad <<<"${result[on,$c]}"
  read -r b_ipm b_p50 b_p95 b_bad <<<"${result[off,$c]}"
  ratio=$(awk -v a="$a_ipm" -v b="$b_ipm" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')
  printf '%7s | %9s %8s %8s | %9s %8s %8s | %s' "$c" "$a_ipm" "$a_p50" "$a_p95" "$b_ipm" "$b_p50" "$b_p95" "$ratio"
  [ "$a_bad$b_bad" = 00 ] || printf '   (failed requests: on %s, off %s)' "$a_bad" "$b_bad"
  echo
done
