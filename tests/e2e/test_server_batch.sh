#!/usr/bin/env bash
# Step-level batching end to end: requests that differ in guidance scale (1 = no
# unconditional rows), negative prompt, seed, sampler and step count run together in
# one UNet batch, and each one's image is byte-identical to the same request run alone.
# /metrics must show a batch of more than one image.
. "$(dirname "$0")/lib_server.sh"

start_server batch --workers 1 --max-batch 8

reqs=(
  '{"prompt":"a red circle","negative_prompt":"blurry","guidance_scale":5,"steps":4,"seed":7,"sampler":"ddim"}'
  '{"prompt":"a green triangle","guidance_scale":1,"steps":4,"seed":8,"sampler":"ddim"}'
  '{"prompt":"a blue square","negative_prompt":"red","guidance_scale":9,"steps":5,"seed":9,"sampler":"euler"}'
  '{"prompt":"a red circle","negative_prompt":"green","guidance_scale":3,"steps":4,"seed":7,"sampler":"dpmpp_2m"}'
)
gen() { # INDEX OUT
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "${reqs[$1]}" \
    "$URL/generate"
}

# Alone, one after the other: the references for the first two.
check "request 0 alone" "[ \$(gen 0 $tmp/alone0.png) = 200 ]"
check "request 1 alone" "[ \$(gen 1 $tmp/alone1.png) = 200 ]"
before=$(metric 'cfgserve_batch_size_images_bucket{le="1"}')

# All four at once.
pids=()
for i in 0 1 2 3; do
  gen $i "$tmp/batch$i.png" >"$tmp/code$i" &
  pids+=($!)
done
wait "${pids[@]}"
for i in 0 1 2 3; do
  check "request $i in the batch: 200 and a PNG" "[ \"\$(cat $tmp/code$i)\" = 200 ] && is_png $tmp/batch$i.png"
done
check "request 0: same bytes alone and batched" "cmp -s $tmp/alone0.png $tmp/batch0.png"
check "request 1 (guidance 1): same bytes alone and batched" "cmp -s $tmp/alone1.png $tmp/batch1.png"
check "different requests give different images" "! cmp -s $tmp/batch0.png $tmp/batch3.png"

le1=$(metric 'cfgserve_batch_size_images_bucket{le="1"}')
total=$(metric 'cfgserve_batch_size_images_count')
echo "batches: $total in all, $le1 of one image ($before before the concurrent run)"
check "metrics show batches of more than one image" "[ -n \"$total\" ] && [ \"$total\" -gt \"$le1\" ]"
check "the concurrent run stepped fewer batches than steps" "[ \$(( total - le1 )) -ge 1 ] && [ \$(( le1 - before )) -lt 17 ]"
check "queue and running back to 0" "wait_metric cfgserve_queue_depth 0 5 && wait_metric cfgserve_jobs_running 0 5"
stop_server
exit $fail
