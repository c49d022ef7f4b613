#!/usr/bin/env bash
# Build cert-manager (controller, webhook, CA injector) for the real-node
# tests from Go modules through the module proxy, at the version pinned in
# tools/kube/versions.env (CERT_MANAGER_*), with an image per component and
# cert-manager's own Helm chart and CRDs from the module's source tree.
#
#   tools/certmanager/build.sh               build if needed, print the output dir
#   tools/certmanager/build.sh --print-dir   print where it is (or will be)
#   tools/certmanager/build.sh --check       exit 0 if built, 1 if not
#
# The output dir holds bin/cert-manager-{controller,webhook,cainjector},
# images/<component>.tar (OCI archives: the static binary alone, run as
# 1000:1000), images.env (their names), chart/ (deploy/charts/cert-manager)
# and crds/ (deploy/crds). It lives outside the repository, keyed by the
# CERT_MANAGER_* settings and the sources here:
#   ${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}/cert-manager-<version>-<key>/
#
# Why not the release's own cmd/: the module github.com/cert-manager/cert-manager
# that the proxy serves has pkg/, internal/ and deploy/, but its commands are
# nested modules (cmd/controller is module .../controller-binary, and so
# on) whose paths do not match their folders, so no proxy can serve them.
# controller/, webhook/ and cainjector/ here are their main packages, small
# and written for this build: the same configuration types, flags (those the
# chart passes) and constructors of the main module, one replica, no
# metrics. Their module path is below github.com/cert-manager/cert-manager,
# which lets them import its internal/ packages, as cmd/ does.
#
# The proxy refuses github.com/Venafi/vcert/v5 v5.13.7, which the release
# requires ("403 Forbidden: This module version is not available"); the
# Venafi issuer is compiled in through the controller's configuration
# defaults, so the build requires the next patch release the proxy serves
# (CERT_MANAGER_VCERT_VERSION).
#
# Exit 3 when no usable Go toolchain is found.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
versions_file="$here/../kube/versions.env"
# shellcheck source=../kube/versions.env
. "$versions_file"

components=(controller webhook cainjector)
cache_root=${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}
# Keyed by the settings and the sources, so editing a comment elsewhere does not rebuild.
key=$({ grep -E '^CERT_MANAGER_[A-Z0-9_]*=' "$versions_file"
        for c in "${components[@]}"; do cat "$here/$c/main.go"; done
        cat "$here/build.sh"; } | sha256sum | cut -c1-12)
dest="$cache_root/cert-manager-$CERT_MANAGER_VERSION-$key"

built() {
    local c
    for c in "${components[@]}"; do
        [[ -x "$dest/bin/cert-manager-$c" && -f "$dest/images/$c.tar" ]] || return 1
    done
    [[ -f "$dest/images.env" && -f "$dest/chart/Chart.yaml" && -d "$dest/crds" ]]
}

case "${1:-}" in
    --print-dir) echo "$dest"; exit 0 ;;
    --check) built; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--print-dir|--check]" >&2; exit 2 ;;
esac

if built; then
    echo "$dest"
    exit 0
fi

# /usr/local/go is where the official Go archive installs; it is not always on PATH.
go_bin=$(command -v go || true)
if [[ -z "$go_bin" && -x /usr/local/go/bin/go ]]; then
    go_bin=/usr/local/go/bin/go
fi
if [[ -z "$go_bin" ]]; then
    echo "build.sh: Go not found (need Go >= 1.26 on PATH or in /usr/local/go/bin); cannot build cert-manager" >&2
    exit 3
fi
go_version=$("$go_bin" env GOVERSION)
if ! printf '%s\n' go1.26 "$go_version" | sort -V -C; then
    echo "build.sh: $go_version is too old (need Go >= 1.26); cannot build cert-manager" >&2
    exit 3
fi

export CGO_ENABLED=0
# Never let go fetch a different toolchain: only the module proxy is reachable.
export GOTOOLCHAIN=local
# The wrapper module gets its requirements filled in by the build itself.
export GOFLAGS="-mod=mod -buildvcs=false"
# Two compile jobs: the machines have two cores and should stay usable.
jobs=${KARVDASH_KUBE_BUILD_JOBS:-2}

mkdir -p "$cache_root"
exec 9>"$dest.lock"
flock 9
if built; then  # another build finished while this one waited
    echo "$dest"
    exit 0
fi

work=$(mktemp -d "$dest.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log() { echo "build.sh: [$(( $(date +%s) - start ))s] $*" >&2; }
log "Go $go_version, GOSUMDB=$("$go_bin" env GOSUMDB), building cert-manager $CERT_MANAGER_VERSION into $work"

module=github.com/cert-manager/cert-manager
src="$work/src"
mkdir -p "$src" "$work/out/bin" "$work/out/images"
for c in "${components[@]}"; do
    mkdir -p "$src/$c"
    cp "$here/$c/main.go" "$src/$c/"
done
(
    cd "$src"
    "$go_bin" mod init "$module/karvdash-hub-build" >/dev/null 2>&1
    "$go_bin" mod edit -require="$module@$CERT_MANAGER_VERSION" \
        -require="github.com/Venafi/vcert/v5@$CERT_MANAGER_VCERT_VERSION"
    if [[ -f "$here/go.sum" ]]; then cp "$here/go.sum" go.sum; fi
)
cm_dir=$(cd "$src" && GOFLAGS= "$go_bin" mod download -json "$module@$CERT_MANAGER_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d "$cm_dir/deploy/charts/cert-manager" && -d "$cm_dir/deploy/crds" ]] \
    || { echo "build.sh: no deploy/charts/cert-manager or deploy/crds in $cm_dir" >&2; exit 1; }

ldflags="-s -w -X $module/pkg/util.AppVersion=$CERT_MANAGER_VERSION"
log "building ${components[*]} ..."
(cd "$src" && "$go_bin" build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$work/bin/" \
    "${components[@]/#/./}")
if ! cmp -s "$src/go.sum" "$here/go.sum"; then
    cp "$src/go.sum" "$here/go.sum" && log "updated $here/go.sum: commit it"
fi

# one image per component, as the chart expects (its containers give args only)
: > "$work/out/images.env"
for c in "${components[@]}"; do
    cp "$work/bin/$c" "$work/out/bin/cert-manager-$c"
    rootfs="$work/rootfs-$c"
    mkdir -p "$rootfs/app" "$rootfs/tmp"
    cp "$work/bin/$c" "$rootfs/app/$c"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/rootfs-$c.tar" app tmp
    ref="localhost/karvdash-node/cert-manager-$c:$CERT_MANAGER_VERSION"
    python3 "$here/../images/oci.py" "$work/rootfs-$c.tar" "$work/out/images/$c.tar" --ref "$ref" \
        --entrypoint "[\"/app/$c\"]" --user 1000:1000 >/dev/null
    echo "CERT_MANAGER_${c^^}_IMAGE=$ref" >> "$work/out/images.env"
done
cp -r "$cm_dir/deploy/charts/cert-manager" "$work/out/chart"
cp -r "$cm_dir/deploy/crds" "$work/out/crds"
chmod -R u+w "$work/out"
cp "$versions_file" "$work/out/versions.env"

rm -rf "$dest"
mv "$work/out" "$dest"
log "done: $dest"
echo "$dest"
