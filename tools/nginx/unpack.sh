#!/usr/bin/env bash
# Debian's nginx (the package of the binary, with the auth_request module
# that ingress-nginx's auth-url is built on), unpacked for the front-door
# benchmark (bench/frontdoor.py) without installing it: a package install
# would start nginx as a system service on port 80.
#
#   tools/nginx/unpack.sh                 unpack if needed, print the binary's path
#   tools/nginx/unpack.sh --print-path    print where the binary is (or will be)
#
# It lives outside the repository, keyed by the package's version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub/nginx-<version>/usr/sbin/nginx
# Its libraries (libssl3, libpcre2-8-0, zlib1g, libcrypt1) are the system's.
set -euo pipefail

cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub
version=$(apt-cache policy nginx 2>/dev/null | awk '/Candidate:/ {print $2}')
if [[ -z "$version" || "$version" == "(none)" ]]; then
    if [[ $(id -u) == 0 ]]; then apt-get update -qq; else sudo apt-get update -qq; fi
    version=$(apt-cache policy nginx | awk '/Candidate:/ {print $2}')
fi
dest="$cache_root/nginx-${version//[:+~]/_}"
binary="$dest/usr/sbin/nginx"

case "${1:-}" in
    --print-path) echo "$binary"; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--print-path]" >&2; exit 2 ;;
esac

if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi

mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/nginx.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq "nginx=$version" 2>/dev/null)
dpkg-deb -x "$work"/nginx_*.deb "$work/root"
"$work/root/usr/sbin/nginx" -V 2>&1 | grep -q -- --with-http_auth_request_module
rm -rf "$dest"
mv "$work/root" "$dest"
echo "$binary"
