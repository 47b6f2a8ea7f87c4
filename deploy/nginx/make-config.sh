#!/usr/bin/env bash
# Writes the nginx configuration for N cfgserve instances to stdout.
#
#   deploy/nginx/make-config.sh [options] N PORT_BASE
#
# Instance i (0 <= i < N) listens on HOST:(PORT_BASE + i) and runs with --instance-id i.
# Options:
#   --host HOST            where the instances listen (default 127.0.0.1)
#   --listen ADDR:PORT     where nginx listens (default 8080)
#   --max-body SIZE        client_max_body_size, the servers' --max-body (default 8m)
#   --read-timeout SECONDS at least the servers' --job-timeout (default 660)
#   --access-log PATH      (default: /var/log/nginx/cfgserve.access.log; logs/access.log
#                          with --standalone)
#   --standalone           a complete nginx.conf for `nginx -p PREFIX -c FILE` without
#                          root (see standalone.conf.in); default: the http { } part only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; exit "${1:-2}"; }

host=127.0.0.1 listen=8080 max_body=8m read_timeout=660 access_log="" standalone=0
while (($#)); do
  case $1 in
    --host) host=$2; shift 2 ;;
    --listen) listen=$2; shift 2 ;;
    --max-body) max_body=$2; shift 2 ;;
    --read-timeout) read_timeout=$2; shift 2 ;;
    --access-log) access_log=$2; shift 2 ;;
    --standalone) standalone=1; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "make-config.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
(($# == 2)) || usage
n=$1 base=$2
num() { [[ $2 =~ ^[0-9]+$ ]] || { echo "make-config.sh: $1 must be a number (got '$2')" >&2; exit 2; }; }
num N "$n"; num PORT_BASE "$base"; num --read-timeout "$read_timeout"
# Job ids carry the instance in 0..65535; ports end at 65535.
if ((n < 1 || n > 65536)); then echo "make-config.sh: N must be in 1..65536" >&2; exit 2; fi
if ((base < 1 || base + n - 1 > 65535)); then
  echo "make-config.sh: ports $base..$((base + n - 1)) are not all in 1..65535" >&2; exit 2
fi
[ -n "$access_log" ] || { ((standalone)) && access_log=logs/access.log ||
  access_log=/var/log/nginx/cfgserve.access.log; }

pool="" groups="" map=""
for ((i = 0; i < n; i++)); do
  addr=$host:$((base + i))
  # A refused connection takes the instance out of the pool for 5 s (then it is tried
  # again), so a stopped instance costs one failed connect, not one per request.
  pool+="    server $addr max_fails=1 fail_timeout=5s;"$'\n'
  groups+="upstream cfgserve_i$i { server $addr; }"$'\n'
  map+="    ~^/jobs/$i- cfgserve_i$i;"$'\n'
done

# Fills the @NAME@ lines of a template (whole-line blocks) and the @NAME@ words.
render() {
  awk -v pool="${pool%$'\n'}" -v groups="${groups%$'\n'}" -v map="${map%$'\n'}" \
      -v http_conf="${2:-}" -v listen="$listen" -v max_body="$max_body" \
      -v read_timeout="${read_timeout}s" -v access_log="$access_log" '
    $1 == "@POOL_SERVERS@" { print pool; next }
    $1 == "@INSTANCE_UPSTREAMS@" { print groups; next }
    $1 == "@INSTANCE_MAP@" { print map; next }
    $1 == "@HTTP_CONF@" { print http_conf; next }
    { gsub(/@LISTEN@/, listen); gsub(/@MAX_BODY@/, max_body);
      gsub(/@READ_TIMEOUT@/, read_timeout); gsub(/@ACCESS_LOG@/, access_log); print }
  ' "$1"
}

conf=$(render "$here/cfgserve.conf.in")
if ((standalone)); then
  render "$here/standalone.conf.in" "$(printf '%s\n' "$conf" | sed 's/^./    &/')"
else
  printf '%s\n' "$conf"
fi
