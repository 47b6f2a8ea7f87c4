#!/usr/bin/env bash
# The web page at / in headless Chromium (Debian's chromium + puppeteer-core, pinned in
# tests/clients): loads under its CSP, generates with live progress, shows the images with
# their parameters, cancels a long job, fits a phone. The checks are in
# tests/clients/web_test.mjs; a screenshot goes to $CS_WEB_SCREENSHOT when set.
here=$(cd "$(dirname "$0")" && pwd)
clients=$here/../clients
chromium=${CS_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ] || ! command -v node >/dev/null 2>&1; then
  echo "SKIP: chromium or node is not installed (deploy/install-deps.sh installs both): web page test not run"
  exit 0
fi
. "$here/lib_server.sh"
if ! "$clients/setup.sh" >"$tmp/npm.log" 2>&1; then
  echo "FAIL: npm ci in tests/clients failed:"; tail -n 20 "$tmp/npm.log"; exit 1
fi
start_server web --api-key web-test-key
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/")
check "GET / needs no API key ($code)" "[ $code = 200 ]"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/models")
check "the API still does ($code)" "[ $code = 401 ]"
CS_URL=$URL CS_KEY=web-test-key CS_CHROMIUM=$chromium CS_SCREENSHOT=${CS_WEB_SCREENSHOT:-} \
  HOME=$tmp timeout 600 node "$clients/web_test.mjs" || fail=1
stop_server
[ $fail = 0 ] && echo "test_web_page: all passed"
exit $fail
