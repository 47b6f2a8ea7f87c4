#!/usr/bin/env bash
# Installs the Debian packages cfgserve needs to build, run and test (by name).
# Safe to re-run; does nothing when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libmicrohttpd-dev libcjson-dev libopenblas-dev
      libpng-dev libuv1-dev libzip-dev curl wrk clang libclang-rt-14-dev python3 nginx
      nodejs chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless the installed nodejs already brings its own npm.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
