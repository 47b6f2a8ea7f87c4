#!/usr/bin/env bash
# The engine's layers call only down: every symbol a layer's library leaves undefined
# must be defined in that layer or one listed before it (or come from outside the
# engine: libc, OpenBLAS, cJSON, libpng, libzip). Includes are held down by the build
# (each layer sees only its own and lower include directories); this catches the calls
# that slip past it through the public header include/cfgserve/cfgserve.h.
#
#   tests/layers/check_engine_layers.sh BUILD_DIR LAYER...   (lowest layer first)
set -euo pipefail
export LC_ALL=C # sort and join must agree on the order
build=$1
shift
defined=$(mktemp)
trap 'rm -f "$defined" "$defined".*' EXIT
status=0
# Every symbol the engine defines, and in which layer.
for layer in "$@"; do
    nm --defined-only -g "$build/libcfgengine_$layer.a" 2>/dev/null |
        awk -v l="$layer" 'NF == 3 { print $3, l }'
done | sort -u >"$defined.all"
below=""
for layer in "$@"; do
    below="$below $layer"
    nm --undefined-only -g "$build/libcfgengine_$layer.a" | awk 'NF == 2 { print $2 }' |
        sort -u >"$defined.undef"
    # join keeps the engine's symbols only (the rest come from system libraries).
    while read -r sym owner; do
        if [[ " $below " != *" $owner "* ]]; then
            echo "layer $layer calls up: $sym is defined in $owner" >&2
            status=1
        fi
    done < <(join "$defined.undef" "$defined.all")
done
[[ $status -eq 0 ]] && echo "engine layers: every call points down ($*)"
exit $status
