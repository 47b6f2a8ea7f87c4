#!/usr/bin/env bash
# The AUTOMATIC1111 web UI API (/sdapi/v1) against the real server: txt2img and img2img
# answers in the web UI's shape (images with infotext, parameters, info JSON text), its
# sampler names, its error shapes (422 detail list, 404 "Sampler not found"), the info
# routes, progress and interrupt for the caller's own job, and a native request batched
# together with A1111 ones.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib_server.sh"
py() { python3 -c "$1" "${@:2}"; }

start_server a1111 --max-batch 8
a1111() { # a1111 PATH JSON: POST, body to $tmp/body, prints the status
  curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$2" "$URL/sdapi/v1/$1"
}

code=$(a1111 txt2img '{"prompt":"a red circle","negative_prompt":"blue","steps":6,"cfg_scale":7,
  "seed":42,"sampler_name":"DPM++ 2M","scheduler":"Karras","batch_size":2,"n_iter":1,
  "send_images":true,"save_images":false,"width":64,"height":64}')
check "txt2img: 200 ($code)" "[ $code = 200 ]"
out=$(py '
import json, sys, base64
d = json.load(open(sys.argv[1]))
info = json.loads(d["info"])
png = base64.b64decode(d["images"][0])
ok = (len(d["images"]) == 2 and png[:8] == b"\x89PNG\r\n\x1a\n" and b"parameters" in png
      and info["all_seeds"] == [42, 43] and info["seed"] == 42 and info["sampler_name"] == "DPM++ 2M"
      and len(info["infotexts"]) == 2 and "Seed: 43" in info["infotexts"][1]
      and "Karras" in info["infotexts"][0] and d["parameters"]["prompt"] == "a red circle"
      and d["parameters"]["steps"] == 6 and info["negative_prompt"] == "blue")
print("ok" if ok else "bad: " + json.dumps(info)[:400])' "$tmp/body")
check "txt2img: two PNGs with infotext, seeds 42/43, info and parameters ($out)" "[ '$out' = ok ]"
py 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' "$tmp/body" "$tmp/a.png"

code=$(a1111 txt2img '{"prompt":"a red circle","steps":6,"seed":42,"sampler_name":"DPM++ 2M","scheduler":"Karras","width":64,"height":64}')
py 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["images"][0]))' "$tmp/body" "$tmp/b.png"
code=$(post /generate '{"prompt":"a red circle","steps":6,"seed":42,"sampler":"dpmpp_2m","karras":true,"width":64,"height":64,"guidance_scale":7}')
cp "$tmp/body" "$tmp/native.png"
check "the native API gives the same PNG for the same settings ($code)" \
  "[ $code = 200 ] && cmp -s $tmp/native.png $tmp/b.png"

# img2img with the first image as init image, and an inpainting mask.
b64=$(base64 -w0 "$tmp/a.png")
code=$(a1111 img2img "{\"prompt\":\"a blue circle\",\"init_images\":[\"$b64\"],\"denoising_strength\":0.5,\"steps\":6,\"seed\":7}")
out=$(py 'import json,sys; d=json.load(open(sys.argv[1])); i=json.loads(d["info"]); print("ok" if len(d["images"])==1 and i["denoising_strength"]==0.5 else "bad")' "$tmp/body")
check "img2img: 200 with one image and denoising_strength 0.5 ($code $out)" "[ $code = 200 ] && [ '$out' = ok ]"
code=$(a1111 img2img "{\"prompt\":\"x\",\"init_images\":[\"$b64\"],\"mask\":\"$b64\",\"inpainting_mask_invert\":1,\"steps\":4}")
check "img2img with a mask: 200 ($code)" "[ $code = 200 ]"
for fill in 0 2 3; do
  code=$(a1111 img2img "{\"prompt\":\"x\",\"init_images\":[\"$b64\"],\"mask\":\"$b64\",\"inpainting_fill\":$fill,\"steps\":4}")
  check "img2img with a mask, inpainting_fill $fill: 200 ($code)" "[ $code = 200 ]"
done
code=$(a1111 img2img "{\"prompt\":\"x\",\"init_images\":[\"$b64\"],\"mask\":\"$b64\",\"inpainting_fill\":4}")
check "inpainting_fill 4: 422 ($code)" "[ $code = 422 ]"
# Another size than the init image's resizes it (resize_mode 0, 1, 2): a 32x32 answer.
for mode in 0 1 2; do
  code=$(a1111 img2img "{\"prompt\":\"x\",\"init_images\":[\"$b64\"],\"width\":32,\"height\":32,\"resize_mode\":$mode,\"steps\":4}")
  out=$(py 'import base64,json,struct,sys; p=base64.b64decode(json.load(open(sys.argv[1]))["images"][0]); print("%dx%d" % struct.unpack(">II", p[16:24]))' "$tmp/body" 2>/dev/null)
  check "img2img 64x64 init image at 32x32, resize_mode $mode: 200, $out" "[ $code = 200 ] && [ '$out' = 32x32 ]"
done
code=$(a1111 img2img "{\"prompt\":\"x\",\"init_images\":[\"$b64\"],\"resize_mode\":7}")
check "img2img resize_mode 7: 422 ($code)" "[ $code = 422 ] && grep -q resize_mode $tmp/body"
code=$(a1111 img2img '{"prompt":"x","init_images":["bm90IGEgcG5n"]}')
check "img2img with a non-PNG image: 422 naming init_images ($code)" \
  "[ $code = 422 ] && grep -q '\"init_images\"' $tmp/body"
code=$(a1111 img2img '{"prompt":"x","init_images":["@@@"]}')
check "img2img with broken base64: 422 ($code)" "[ $code = 422 ]"

# Errors in the web UI's shapes.
code=$(a1111 txt2img '{"prompt":"x","sampler_name":"Heun"}')
check "unknown sampler: 404 Sampler not found ($code)" \
  "[ $code = 404 ] && grep -q '\"detail\":\"Sampler not found\"' $tmp/body"
code=$(a1111 txt2img '{"prompt":"x","steps":"ten"}')
check "wrong type: 422 with a detail list naming steps ($code)" \
  "[ $code = 422 ] && grep -q '\"loc\":\\[\"body\",\"steps\"\\]' $tmp/body"
code=$(a1111 txt2img '{"prompt":"x","enable_hr":true}')
check "hires fix asked for: 422 not supported ($code)" "[ $code = 422 ] && grep -q 'not supported' $tmp/body"
code=$(a1111 txt2img '{"prompt":"x","override_settings":{"sd_model_checkpoint":"other"}}')
check "another checkpoint: 422 ($code)" "[ $code = 422 ] && grep -q 'sd_model_checkpoint' $tmp/body"
code=$(a1111 txt2img '{"prompt":"x","steps":2,"override_settings":{"CLIP_stop_at_last_layers":2},"styles":["a"],"restore_faces":false,"unknown_field":1}')
check "override_settings clip skip, styles, unknown fields accepted ($code)" "[ $code = 200 ]"
code=$(a1111 txt2img '{"prompt":"x","steps":2,"sampler_index":"Euler a","scheduler":"Automatic"}')
check "sampler_index and scheduler Automatic ($code)" "[ $code = 200 ] && grep -q 'Euler a' $tmp/body"

# Info routes.
for r in options sd-models samplers schedulers loras upscalers embeddings memory progress; do
  code=$(curl -s -o "$tmp/body" -w '%{http_code}' "$URL/sdapi/v1/$r")
  check "GET /sdapi/v1/$r: 200 JSON ($code)" "[ $code = 200 ] && python3 -m json.tool $tmp/body >/dev/null"
done
check "samplers lists DPM++ 2M and Euler a" \
  "curl -s $URL/sdapi/v1/samplers | grep -q '\"name\":\"DPM++ 2M\"' && curl -s $URL/sdapi/v1/samplers | grep -q 'Euler a'"

# Progress and interrupt: a long job of this caller is seen and cut short.
curl -s -o "$tmp/long" -H 'Content-Type: application/json' \
  --data-binary '{"prompt":"x","steps":500,"width":64,"height":64}' "$URL/sdapi/v1/txt2img" &
lp=$!
seen=no
for _ in $(seq 1 300); do
  curl -s "$URL/sdapi/v1/progress?skip_current_image=true" >"$tmp/prog"
  if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["state"]["sampling_steps"]==500 and d["state"]["job_count"]==1 else 1)' "$tmp/prog"; then seen=yes; break; fi
  sleep 0.1
done
check "progress shows the caller's running job (500 steps)" "[ $seen = yes ]"
# A preview comes every 5 steps: current_image is a base64 PNG of the running job.
preview=no
for _ in $(seq 1 300); do
  curl -s "$URL/sdapi/v1/progress" >"$tmp/prog"
  if py 'import base64,json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["current_image"] and base64.b64decode(d["current_image"])[:4]==b"\x89PNG" else 1)' "$tmp/prog"; then preview=yes; break; fi
  sleep 0.1
done
check "progress current_image is a PNG preview of the running job" "[ $preview = yes ]"
check "skip_current_image=true leaves it out" \
  "curl -s '$URL/sdapi/v1/progress?skip_current_image=true' | grep -q '\"current_image\":null'"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST "$URL/sdapi/v1/interrupt")
check "interrupt: 200 ($code)" "[ $code = 200 ]"
wait $lp
out=$(py 'import base64,json,sys; d=json.load(open(sys.argv[1])); print("ok" if len(d["images"])==1 and base64.b64decode(d["images"][0])[:4]==b"\x89PNG" and "info" in d else "bad")' "$tmp/long" 2>/dev/null)
check "the interrupted txt2img answers 200 with the image it had reached ($out)" "[ '$out' = ok ]"
check "progress then reports interrupted" \
  "curl -s $URL/sdapi/v1/progress | grep -q '\"interrupted\":true'"
# skip: the same for the running job (a job holds all of a request's images), reported as skipped.
curl -s -o "$tmp/long2" -H 'Content-Type: application/json' \
  --data-binary '{"prompt":"x","steps":500,"width":64,"height":64,"batch_size":2}' "$URL/sdapi/v1/txt2img" &
lp=$!
for _ in $(seq 1 300); do
  curl -s "$URL/sdapi/v1/progress?skip_current_image=true" | grep -q '"sampling_step":[1-9]' && break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/sdapi/v1/skip")
wait $lp
out=$(py 'import json,sys; d=json.load(open(sys.argv[1])); print("ok" if len(d["images"])==2 else "bad")' "$tmp/long2" 2>/dev/null)
check "skip: 200 ($code), the request answers with its 2 images ($out)" "[ $code = 200 ] && [ '$out' = ok ]"
check "progress then reports skipped" \
  "curl -s $URL/sdapi/v1/progress | grep -q '\"skipped\":true'"

# A1111 and native requests share batches.
le1_before=$(metric 'cfgserve_batch_size_images_bucket{le="1"}')
total_before=$(metric 'cfgserve_batch_size_images_count')
pids=()
for i in 1 2 3; do
  curl -s -o /dev/null --data-binary '{"prompt":"a green square","steps":30,"width":64,"height":64}' \
    "$URL/sdapi/v1/txt2img" &
  pids+=($!)
  curl -s -o /dev/null -H 'Content-Type: application/json' --data-binary '{"prompt":"a green square","steps":30}' \
    "$URL/generate" &
  pids+=($!)
done
wait "${pids[@]}"
batches=$(metric 'cfgserve_batch_size_images_bucket{le="1"}')
total=$(metric 'cfgserve_batch_size_images_count')
check "mixed dialect traffic was batched (one-image batches $((batches - le1_before)) of $((total - total_before)))" \
  "[ -n \"$total\" ] && [ $((batches - le1_before)) -lt $((total - total_before)) ]"
stop_server
exit $fail
