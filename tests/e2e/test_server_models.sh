#!/usr/bin/env bash
# Several models in one server (--model A,B): /v1/models and the A1111 sd-models list
# both; each dialect picks one per request (native/OpenAI "model", A1111
# override_settings.sd_model_checkpoint and POST options); an unknown name is a 404 that
# lists the served ones. Mixed traffic — teacher requests with negative prompts beside
# student (guidance-distilled) requests with different guidance scales — runs at once,
# and each image equals the same request run alone.
. "$(dirname "$0")/lib_server.sh"
src=${CS_SOURCE_DIR:?}
if [ ! -f "$src/models/student/model_index.json" ]; then echo "no student model: skipped"; exit 0; fi

start_server models --model "$src/models/default,$src/models/student" --workers 1 --max-batch 8

check "/v1/models lists both, default first" \
  "curl -s $URL/v1/models | grep -q '\"id\":\"default\",\"object\":\"model\",\"owned_by\":\"cfgserve\",\"default\":true,\"guidance\":\"cfg\"' &&
   curl -s $URL/v1/models | grep -q '\"id\":\"student\",\"object\":\"model\",\"owned_by\":\"cfgserve\",\"default\":false,\"guidance\":\"distilled\"'"
check "A1111 sd-models lists both" \
  "curl -s $URL/sdapi/v1/sd-models | grep -q '\"title\":\"default\"' && curl -s $URL/sdapi/v1/sd-models | grep -q '\"title\":\"student\"'"

reqs=(
  '{"prompt":"a red circle","negative_prompt":"blue","guidance_scale":7.5,"steps":6,"seed":3}'
  '{"model":"student","prompt":"a red circle","guidance_scale":2,"steps":6,"seed":3}'
  '{"model":"student","prompt":"a red circle","guidance_scale":9,"steps":6,"seed":3}'
  '{"model":"default","prompt":"a green star","negative_prompt":"yellow","guidance_scale":5,"steps":6,"seed":4}'
)
gen() { # INDEX OUT
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "${reqs[$1]}" \
    "$URL/generate"
}
for i in 0 1 2 3; do
  check "request $i alone" "[ \$(gen $i $tmp/alone$i.png) = 200 ] && is_png $tmp/alone$i.png"
done
pids=()
for i in 0 1 2 3; do
  gen $i "$tmp/mixed$i.png" >"$tmp/code$i" &
  pids+=($!)
done
wait "${pids[@]}"
for i in 0 1 2 3; do
  check "request $i in mixed traffic: 200, same bytes as alone" \
    "[ \"\$(cat $tmp/code$i)\" = 200 ] && cmp -s $tmp/alone$i.png $tmp/mixed$i.png"
done
check "the student's two guidance scales give different images" "! cmp -s $tmp/alone1.png $tmp/alone2.png"
check "teacher and student differ on the same prompt and seed" "! cmp -s $tmp/alone0.png $tmp/alone1.png"
check "metrics count images per model" \
  "[ \"\$(metric 'cfgserve_model_images_total{model=\"default\"}')\" = 4 ] &&
   [ \"\$(metric 'cfgserve_model_images_total{model=\"student\"}')\" = 4 ]"

code=$(post /generate '{"model":"nope","prompt":"a red circle","steps":2}')
check "unknown model: 404 naming the field and the served models" \
  "[ $code = 404 ] && grep -q '\"field\":\"model\"' $tmp/body && grep -q 'student' $tmp/body"
code=$(post /generate '{"model":"student","prompt":"a red circle","negative_prompt":"blue","steps":2}')
check "student with a negative prompt: 400" "[ $code = 400 ] && grep -q 'negative_prompt' $tmp/body"
code=$(post /generate '{"model":7,"prompt":"a red circle","steps":2}')
check "model of the wrong type: 400" "[ $code = 400 ] && grep -q '\"field\":\"model\"' $tmp/body"

code=$(post /v1/images/generations '{"model":"student","prompt":"a red circle","size":"64x64","guidance_scale":9,"steps":6,"seed":3}')
check "OpenAI model student: 200, the student's image" \
  "[ $code = 200 ] && sed -n 's/.*\"b64_json\":\"\\([^\"]*\\)\".*/\\1/p' $tmp/body | base64 -d >$tmp/oa.png && cmp -s $tmp/oa.png $tmp/alone2.png"
code=$(post /v1/images/generations '{"model":"dall-e-3","prompt":"a red circle","size":"64x64"}')
check "OpenAI dall-e-3: an alias of the default" "[ $code = 200 ]"
code=$(post /v1/images/generations '{"model":"nope","prompt":"a red circle"}')
check "OpenAI unknown model: 404 model_not_found" "[ $code = 404 ] && grep -q model_not_found $tmp/body"

code=$(post /sdapi/v1/txt2img '{"prompt":"a red (circle:1.2)","steps":6,"seed":3,"override_settings":{"sd_model_checkpoint":"student"}}')
check "A1111 override_settings student: 200 from the student" \
  "[ $code = 200 ] && grep -q 'sd_model_name[^,]*\"student' $tmp/body"
code=$(post /sdapi/v1/txt2img '{"prompt":"a red circle","steps":2,"override_settings":{"sd_model_checkpoint":"nope"}}')
check "A1111 override_settings with an unknown model: 422" "[ $code = 422 ] && grep -q 'not served' $tmp/body"
code=$(post /sdapi/v1/txt2img '{"prompt":"a red circle","steps":2,"seed":3}')
check "A1111 txt2img on the default model" "[ $code = 200 ] && grep -q 'sd_model_name[^,]*\"default' $tmp/body"
code=$(post /sdapi/v1/options '{"sd_model_checkpoint":"student"}')
check "A1111 POST options picks the student" \
  "[ $code = 200 ] && curl -s $URL/sdapi/v1/options | grep -q '\"sd_model_checkpoint\":\"student\"'"
code=$(post /sdapi/v1/options '{"sd_model_checkpoint":"nope"}')
check "A1111 POST options with an unknown model: 422, setting unchanged" \
  "[ $code = 422 ] && grep -q 'not a served model' $tmp/body &&
   curl -s $URL/sdapi/v1/options | grep -q '\"sd_model_checkpoint\":\"student\"'"
code=$(post /sdapi/v1/txt2img '{"prompt":"a red circle","steps":2,"seed":3}')
check "A1111 txt2img then runs on the student" "[ $code = 200 ] && grep -q 'sd_model_name[^,]*\"student' $tmp/body"
code=$(post /generate '{"prompt":"a red circle","steps":2,"seed":1}' -H 'Accept: application/json')
check "the native default stays the first model" "[ $code = 200 ]"
check "queue and running back to 0" "wait_metric cfgserve_queue_depth 0 5 && wait_metric cfgserve_jobs_running 0 5"
stop_server

# Two models of one name cannot be told apart: refused at start.
"$bin" --config none --port 0 --model "$src/models/default,$src/models/default" --log-file "$tmp/dup.log" 2>/dev/null
rc=$?
check "the same model twice: exit 1 naming the clash" "[ $rc = 1 ] && grep -q 'same name' $tmp/dup.log"
exit $fail
