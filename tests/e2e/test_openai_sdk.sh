#!/usr/bin/env bash
# The official OpenAI SDK (npm `openai`, pinned in tests/clients) against the real server
# with an API key: images.generate (b64_json, url), images.edit with a mask and without,
# and the SDK's error classes (BadRequestError with our message, NotFoundError for an
# unknown model, AuthenticationError for a wrong key). tests/clients/openai_test.mjs has
# the checks; this starts the server and installs the packages (npm ci, once).
here=$(cd "$(dirname "$0")" && pwd)
clients=$here/../clients
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIP: node/npm are not installed (deploy/install-deps.sh installs them): OpenAI SDK test not run"
  exit 0
fi
. "$here/lib_server.sh"
if ! "$clients/setup.sh" >"$tmp/npm.log" 2>&1; then
  echo "FAIL: npm ci in tests/clients failed:"; tail -n 20 "$tmp/npm.log"; exit 1
fi
start_server openai --api-key sdk-test-key --max-batch 8
CS_URL=$URL CS_KEY=sdk-test-key CS_SIZE=64 node "$clients/openai_test.mjs" || fail=1

# The same errors by curl: the OpenAI shape for a route of the dialect, a 415, a broken
# multipart body.
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Authorization: Bearer sdk-test-key' \
  -H 'Content-Type: application/json' -d '{"prompt":"x"}' "$URL/v1/images/edits")
check "edits with JSON: 415 in the OpenAI shape ($code)" \
  "[ $code = 415 ] && grep -q '\"type\":\"invalid_request_error\"' $tmp/body"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Authorization: Bearer sdk-test-key' \
  -H 'Content-Type: multipart/form-data; boundary=xx' --data-binary $'--xx\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi' \
  "$URL/v1/images/edits")
check "truncated multipart body: 400 ($code)" "[ $code = 400 ] && grep -q 'multipart' $tmp/body"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sdk-test-key' "$URL/v1/images/files/0-999999/0.png")
check "an unknown image file: 404 ($code)" "[ $code = 404 ]"
stop_server

# A url result whose job was evicted (here: only one finished job is kept) answers 410
# with the reason, in the OpenAI shape; its own url works until then.
start_server openai_gone --max-finished 1
gen() {
  curl -s -o "$tmp/gen" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"prompt":"a red star","size":"64x64","response_format":"url","steps":2}' \
    "$URL/v1/images/generations"
}
url1=""; url2=""
[ "$(gen)" = 200 ] && url1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"][0]["url"])' "$tmp/gen")
check "first url result works (${url1##*/v1/})" \
  "[ -n '$url1' ] && [ \$(curl -s -o /dev/null -w '%{http_code}' '$url1') = 200 ]"
[ "$(gen)" = 200 ] && url2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"][0]["url"])' "$tmp/gen")
code=$(curl -s -o "$tmp/body" -w '%{http_code}' "$url1")
check "its url after the job was evicted: 410 naming why ($code)" \
  "[ $code = 410 ] && grep -q '\"error\"' $tmp/body && grep -qi 'evicted' $tmp/body"
check "the newer url still works" "[ \$(curl -s -o /dev/null -w '%{http_code}' '$url2') = 200 ]"
stop_server
[ $fail = 0 ] && echo "test_openai_sdk: all passed"
exit $fail
