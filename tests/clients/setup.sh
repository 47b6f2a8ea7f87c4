#!/usr/bin/env bash
# Installs the client test packages (package.json, versions pinned by package-lock.json)
# with `npm ci`, once per lockfile: a stamp keeps the installed lockfile, and a lock lets
# the tests that share this folder run in parallel. Exit status non-zero when npm fails.
set -euo pipefail
cd "$(dirname "$0")"
exec 9>.setup.lock
flock 9
if [ -d node_modules ] && cmp -s package-lock.json node_modules/.cfgserve-lock; then exit 0; fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json node_modules/.cfgserve-lock
