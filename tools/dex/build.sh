#!/usr/bin/env bash
# Build Dex (the OpenID Connect provider of the single sign-on tests) from
# Go modules through the module proxy, at the version pinned in versions.env.
#
#   tools/dex/build.sh                 build if needed, print the binary's path
#   tools/dex/build.sh --print-path    print where the binary is (or will be)
#   tools/dex/build.sh --check         exit 0 if built, 1 if not
#
# The binary lives outside the repository, keyed by the release and a hash
# of the settings in versions.env, so a fresh clone on the same machine
# reuses it:
#   ${KARVDASH_DEX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}/dex-<release>-<hash>/dex
# Exit 3 when no usable Go toolchain is found.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
versions_file="$here/versions.env"
# shellcheck source=versions.env
. "$versions_file"

cache_root=${KARVDASH_DEX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}
# Keyed by the settings only, so editing a comment does not rebuild.
key=$(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$versions_file" | sha256sum | cut -c1-12)
dest="$cache_root/dex-$DEX_RELEASE-$key"
binary="$dest/dex"

case "${1:-}" in
    --print-path) echo "$binary"; exit 0 ;;
    --check) [[ -x "$binary" ]]; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--print-path|--check]" >&2; exit 2 ;;
esac

if [[ -x "$binary" ]]; then
    echo "$binary"
    exit 0
fi

# /usr/local/go is where the official Go archive installs; it is not always on PATH.
go_bin=$(command -v go || true)
if [[ -z "$go_bin" && -x /usr/local/go/bin/go ]]; then
    go_bin=/usr/local/go/bin/go
fi
if [[ -z "$go_bin" ]]; then
    echo "build.sh: Go not found (need Go >= 1.25 on PATH or in /usr/local/go/bin); cannot build Dex" >&2
    exit 3
fi
go_version=$("$go_bin" env GOVERSION)
if ! printf '%s\n' go1.25 "$go_version" | sort -V -C; then
    echo "build.sh: $go_version is too old (need Go >= 1.25); cannot build Dex" >&2
    exit 3
fi

# Static, without cgo: the tests use Dex's memory storage, not SQLite.
export CGO_ENABLED=0
# Never let go fetch a different toolchain: only the module proxy is reachable.
export GOTOOLCHAIN=local
# The wrapper module gets its requirements filled in by the build itself.
export GOFLAGS="-mod=mod -buildvcs=false"
# Two compile jobs: the machines have two cores and should stay usable.
jobs=${KARVDASH_DEX_BUILD_JOBS:-2}

mkdir -p "$cache_root"
exec 9>"$dest.lock"
flock 9
if [[ -x "$binary" ]]; then  # another build finished while this one waited
    echo "$binary"
    exit 0
fi

work=$(mktemp -d "$dest.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log() { echo "build.sh: [$(( $(date +%s) - start ))s] $*" >&2; }
log "Go $go_version, GOSUMDB=$("$go_bin" env GOSUMDB), building Dex $DEX_RELEASE into $work"

# `go install github.com/dexidp/dex/cmd/dex@...` refuses Dex's go.mod, which
# replaces github.com/dexidp/dex/api/v2 by its local ./api/v2; a wrapper
# module requiring Dex uses the published api/v2 module instead (the same
# code). Its go.sum is kept in tools/dex/go.sum.
(
    cd "$work"
    "$go_bin" mod init karvdash-hub.test/dex >/dev/null 2>&1
    "$go_bin" mod edit -require="github.com/dexidp/dex@$DEX_VERSION"
    if [[ -f "$here/go.sum" ]]; then cp "$here/go.sum" go.sum; fi
    log "building github.com/dexidp/dex/cmd/dex ..."
    "$go_bin" build -p "$jobs" -trimpath -ldflags "-s -w -X main.version=$DEX_RELEASE" \
        -o "$work/dex" github.com/dexidp/dex/cmd/dex
)
if ! cmp -s "$work/go.sum" "$here/go.sum"; then
    cp "$work/go.sum" "$here/go.sum" && log "updated $here/go.sum: commit it"
fi

mkdir -p "$dest"
cp "$versions_file" "$dest/versions.env"
mv "$work/dex" "$binary"
log "done: $binary"
echo "$binary"
