#!/usr/bin/env bash
# Sets up and runs the cfgserve HTTP server: installs the Debian packages, builds an
# optimised binary in build-release/, and starts it on the default model (models/default)
# unless --model is given. Extra arguments go to the server (see --help), e.g.
#   deploy/run.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j "$(nproc)" --target cfgserve cfgserve-generate
exec build-release/bin/cfgserve "$@"
