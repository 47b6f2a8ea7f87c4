#!/usr/bin/env bash
# cfgserve HTTP API end to end: probes, PNG / JSON / SSE responses of POST /generate (the
# same seed gives the same image in every mode), the jobs API, every request error class
# (400 malformed / wrong type / out of range / unknown field / invalid UTF-8, 404, 405,
# 413, 415) and the metrics page.
. "$(dirname "$0")/lib_server.sh"

start_server api --max-body 4096

# ---- probes
check "/health 200" "[ \"\$(curl -s -o $tmp/h -w '%{http_code}' $URL/health)\" = 200 ] && grep -q '\"ok\"' $tmp/h"
check "/ready 200" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/ready)\" = 200 ]"
curl -s "$URL/v1/models" >"$tmp/models"
check "/v1/models lists the model and samplers" "grep -q '\"object\":\"list\"' $tmp/models && grep -q '\"ddim\"' $tmp/models && grep -q '\"width\":64' $tmp/models"

# ---- PNG (default)
req='{"prompt":"a red circle","negative_prompt":"blurry","steps":4,"seed":42,"sampler":"ddim","guidance_scale":5}'
code=$(post /generate "$req"); cp "$tmp/body" "$tmp/a.png"; cp "$tmp/headers" "$tmp/a.h"
check "PNG response 200" "[ $code = 200 ]"
check "PNG content type" "[ \"\$(header Content-Type $tmp/a.h)\" = image/png ]"
check "PNG signature" "is_png $tmp/a.png"
check "seed header" "[ \"\$(header X-Seed $tmp/a.h)\" = 42 ]"
check "parameters header" "header X-Parameters $tmp/a.h | grep -q '\"seed\":42,'"
check "parameters tEXt chunk" "grep -aq 'tEXtparameters' $tmp/a.png && grep -aq 'Steps: 4, Sampler: DDIM, CFG scale: 5, Seed: 42, Size: 64x64' $tmp/a.png"

# ---- JSON: two images, the first equal to the PNG above
req2='{"prompt":"a red circle","negative_prompt":"blurry","steps":4,"seed":42,"sampler":"ddim","guidance_scale":5,"num_images":2}'
code=$(post /generate "$req2" -H 'Accept: application/json'); cp "$tmp/body" "$tmp/b.json"
check "JSON response 200" "[ $code = 200 ] && [ \"\$(header Content-Type $tmp/headers)\" = application/json ]"
check "JSON seeds are seed, seed+1" "grep -q '\"seeds\":\[42,43\]' $tmp/b.json"
check "JSON parameters" "grep -q '\"parameters\":{\"prompt\":\"a red circle\"' $tmp/b.json"
first_image "$tmp/b.json" "$tmp/b.png"
check "JSON image 0 equals the PNG response" "cmp -s $tmp/a.png $tmp/b.png"
code=$(post /generate "$req2")
check "num_images 2 without JSON or streaming is a 400" "[ $code = 400 ] && grep -q '\"field\":\"num_images\"' $tmp/body"

# ---- SSE: events in order, the done event carries the same image
curl -s -N -H 'Content-Type: application/json' -D "$tmp/c.h" \
  --data-binary '{"prompt":"a red circle","negative_prompt":"blurry","steps":4,"seed":42,"sampler":"ddim","guidance_scale":5,"stream":true}' \
  "$URL/generate" >"$tmp/c.sse"
events=$(sed -n 's/^event: //p' "$tmp/c.sse" | uniq | tr '\n' ' ')
check "SSE content type" "[ \"\$(header Content-Type $tmp/c.h)\" = text/event-stream ]"
check "SSE events queued started progress done (got: $events)" "[ \"$events\" = 'queued started progress done ' ]"
check "SSE progress reaches 4/4" "grep -q '\"step\":4,\"steps\":4' $tmp/c.sse"
sed -n 's/^data: //p' "$tmp/c.sse" | tail -n 1 >"$tmp/c.json"
first_image "$tmp/c.json" "$tmp/c.png"
check "SSE done image equals the PNG response" "cmp -s $tmp/a.png $tmp/c.png"

# ---- SSE previews: every preview_every steps but the last, a base64 PNG at most 256 px
# (the tiny model's PNDM runs one step more: 8)
curl -s -N -H 'Content-Type: application/json' \
  --data-binary '{"prompt":"a red circle","steps":7,"seed":42,"preview_every":2,"stream":true}' \
  "$URL/generate" >"$tmp/p.sse"
previews=$(python3 - "$tmp/p.sse" <<'EOF'
import base64, json, struct, sys
lines = open(sys.argv[1]).read().split("\n")
steps = []
for i, l in enumerate(lines):
    if l == "event: preview":
        d = json.loads(lines[i + 1][len("data: "):])
        png = base64.b64decode(d["image"])
        w, h = struct.unpack(">II", png[16:24])
        assert png[:4] == b"\x89PNG" and max(w, h) <= 256 and d["steps"] >= 7 and d["id"]
        steps.append(d["step"])
print(" ".join(map(str, steps)))
EOF
)
check "SSE preview events after steps 2 4 6 of 7 (got: $previews)" "[ '$previews' = '2 4 6' ]"
curl -s -N -H 'Content-Type: application/json' \
  --data-binary '{"prompt":"a red circle","steps":7,"seed":42,"preview_every":0,"stream":true}' \
  "$URL/generate" >"$tmp/p0.sse"
check "preview_every 0: no preview events" "! grep -q '^event: preview' $tmp/p0.sse"
code=$(post /generate '{"prompt":"x","preview_every":-1}')
check "preview_every -1: 400 naming it ($code)" "[ $code = 400 ] && grep -q '\"field\":\"preview_every\"' $tmp/body"

# ---- jobs API; the seed is random here and reported
code=$(post /jobs '{"prompt":"a blue square","steps":4,"sampler":"euler"}'); cp "$tmp/body" "$tmp/j.json"
id=$(json_str id "$tmp/j.json")
check "POST /jobs 202 with an id" "[ $code = 202 ] && [ -n \"$id\" ]"
curl -s "$URL/jobs/$id" >"$tmp/j1"
check "GET /jobs/{id} while pending" "grep -Eq '\"state\":\"(queued|running)\"' $tmp/j1"
curl -s -N "$URL/jobs/$id/events" >"$tmp/j.sse"
check "GET /jobs/{id}/events ends with done" "[ \"\$(sed -n 's/^event: //p' $tmp/j.sse | tail -n 1)\" = done ]"
curl -s "$URL/jobs/$id" >"$tmp/j2"
seed=$(sed -n 's/.*"seeds":\[\([0-9]*\)\].*/\1/p' "$tmp/j2")
check "GET /jobs/{id} done with its random seed ($seed)" "grep -q '\"state\":\"done\"' $tmp/j2 && [ -n \"$seed\" ]"
code=$(curl -s -o "$tmp/j.png" -D "$tmp/j.h" -w '%{http_code}' "$URL/jobs/$id/image?index=0")
check "GET /jobs/{id}/image" "[ $code = 200 ] && is_png $tmp/j.png && [ \"\$(header X-Seed $tmp/j.h)\" = \"$seed\" ]"
check "the image has the reported seed" "grep -aq 'Seed: $seed,' $tmp/j.png"
check "image index out of range: 400" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' \"$URL/jobs/$id/image?index=1\")\" = 400 ]"
check "DELETE of a finished job: 409" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X DELETE $URL/jobs/$id)\" = 409 ]"
check "unknown job: 404" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/jobs/12345)\" = 404 ]"
check "events of an unknown job: 404" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/jobs/12345/events)\" = 404 ]"

# ---- request errors: status, code and field
bad() { # NAME STATUS CODE FIELD BODY [curl args]
  local name=$1 want=$2 ecode=$3 field=$4 body=$5 got
  shift 5
  got=$(post /generate "$body" "$@")
  check "$name: $want $ecode${field:+ field $field}" \
    "[ $got = $want ] && grep -q '\"code\":\"$ecode\"' $tmp/body ${field:+&& grep -q '\"field\":\"$field\"' $tmp/body}"
}
bad "malformed JSON" 400 invalid_json "" '{"prompt": "x",'
bad "not an object" 400 invalid_json "" '["a red circle"]'
bad "wrong type" 400 invalid_parameter steps '{"prompt":"x","steps":"4"}'
bad "steps out of range" 400 invalid_parameter steps '{"prompt":"x","steps":0}'
bad "width not a multiple" 400 invalid_parameter width '{"prompt":"x","width":66}'
bad "width above the server bound" 400 invalid_parameter width '{"prompt":"x","width":128}'
bad "guidance out of range" 400 invalid_parameter guidance_scale '{"prompt":"x","guidance_scale":-1}'
bad "unknown sampler" 400 invalid_parameter sampler '{"prompt":"x","sampler":"nope"}'
bad "unknown field" 400 invalid_parameter stpes '{"prompt":"x","stpes":4}'
bad "missing prompt" 400 invalid_parameter prompt '{"steps":4}'
bad "seed too large" 400 invalid_parameter seed '{"prompt":"x","seed":18446744073709551616}'
bad "invalid UTF-8" 400 invalid_parameter prompt "$(printf '{"prompt":"a \xff b"}')"
bad "NUL escape" 400 invalid_parameter prompt '{"prompt":"a\u0000b"}'
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: text/plain' -d '{"prompt":"x"}' "$URL/generate")
check "wrong content type: 415" "[ $code = 415 ] && grep -q '\"code\":\"unsupported_media_type\"' $tmp/body"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -d '{"prompt":"x"}' "$URL/generate")
check "curl -d without a JSON content type: 415" "[ $code = 415 ]"
head -c 5000 /dev/zero | tr '\0' 'a' >"$tmp/big"
bad "body too large" 413 payload_too_large "" "{\"prompt\":\"$(cat "$tmp/big")\"}"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' \
  -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big" "$URL/generate")
check "chunked body too large: 413" "[ $code = 413 ]"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' "$URL/nope")
check "unknown route: 404 JSON" "[ $code = 404 ] && grep -q '\"code\":\"not_found\"' $tmp/body"
code=$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$URL/generate")
check "GET /generate: 405 with Allow" "[ $code = 405 ] && header Allow $tmp/headers | grep -q POST"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/health")
check "DELETE /health: 405" "[ $code = 405 ]"
check "the server still works after the errors" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/ready)\" = 200 ]"

# ---- metrics
curl -s "$URL/metrics" >"$tmp/metrics"
check "metrics: requests by route and status" "grep -q 'cfgserve_http_requests_total{route=\"/generate\",status=\"200\"} 5' $tmp/metrics && grep -q 'route=\"/generate\",status=\"400\"' $tmp/metrics"
check "metrics: queue, running, images" "grep -q '^cfgserve_queue_depth 0' $tmp/metrics && grep -q '^cfgserve_jobs_running 0' $tmp/metrics && grep -q '^cfgserve_images_generated_total 7' $tmp/metrics"
check "metrics: histograms" "grep -q 'cfgserve_batch_size_images_bucket{le=\"+Inf\"}' $tmp/metrics && grep -q '^cfgserve_step_seconds_count' $tmp/metrics"
check "metrics: rejections" "grep -q 'cfgserve_rejections_total{reason=\"queue_full\"} 0' $tmp/metrics"

stop_server
check "access log lines carry request ids" "grep -q 'req [0-9]* POST /generate 200' $SLOG"
exit $fail
