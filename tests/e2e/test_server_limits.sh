#!/usr/bin/env bash
# Over-limit request bodies get their 413 (and other early refusals their status) even
# when the client sends the whole body before reading, as Python's http.client and most
# SDKs do: with a declared length (16 MiB, 1 GiB) and chunked (64 MiB, 1 GiB). The bodies
# are generated while sending. Afterwards the server still serves, and the drained
# sockets are let go.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib_server.sh"
client="python3 $here/upload_client.py"

start_server limits --max-body 65536 --api-key sekret
auth="Authorization:Bearer sekret"
for size in 16777216 1073741824; do
  out=$($client "$URL/generate" $size "$auth")
  check "declared $size bytes: the client reads 413 ($out)" \
    '[[ $out == "413 "*payload_too_large* ]]'
done
for size in 67108864 1073741824; do
  out=$($client "$URL/generate" $size chunked "$auth")
  check "chunked $size bytes: the client reads 413 ($out)" \
    '[[ $out == "413 "*payload_too_large* ]]'
done
out=$($client "$URL/generate" 16777216)
check "16 MiB without the API key: the client reads 401 ($out)" '[[ $out == "401 "* ]]'
out=$($client "$URL/nope" 16777216 "$auth")
check "16 MiB to an unknown route: the client reads 404 ($out)" '[[ $out == "404 "* ]]'
out=$($client "$URL/generate" 16777216 "$auth" "Content-Type:text/plain")
check "16 MiB of the wrong type: the client reads 415 ($out)" '[[ $out == "415 "* ]]'
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" -H 'Content-Type: application/json' \
  --data-binary '{"prompt":"a red circle","steps":2}' "$URL/generate")
check "a normal request afterwards still succeeds ($code)" "[ $code = 200 ]"
n=$(curl -s -H "$auth" "$URL/metrics" |
  awk '$1 == "cfgserve_http_requests_total{route=\"/generate\",status=\"413\"}" { print $2 }')
check "413s are counted in /metrics ($n)" "[ \"${n:-0}\" -ge 4 ]"
stop_server
exit $fail
