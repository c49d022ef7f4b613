#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm) from Go modules through the module
# proxy, at the versions pinned in versions.env.
#
#   tools/kube/build.sh                 build if needed, print the bin dir
#   tools/kube/build.sh --print-bin-dir print where the binaries are (or will be)
#   tools/kube/build.sh --check         exit 0 if built, 1 if not
#
# Binaries live outside the repository, keyed by a hash of the settings in
# versions.env, so a fresh clone on the same machine reuses them:
#   ${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}/kube-<hash>/bin
# Exit 3 when no usable Go toolchain is found.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
versions_file="$here/versions.env"
# shellcheck source=versions.env
. "$versions_file"

binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

cache_root=${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}
# Keyed by the settings only, so editing a comment does not rebuild.
key=$(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$versions_file" | sha256sum | cut -c1-12)
dest="$cache_root/kube-$key"
bin_dir="$dest/bin"

built() {
    local b
    for b in "${binaries[@]}"; do
        [[ -x "$bin_dir/$b" ]] || return 1
    done
}

case "${1:-}" in
    --print-bin-dir) echo "$bin_dir"; exit 0 ;;
    --check) built; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--print-bin-dir|--check]" >&2; exit 2 ;;
esac

if built; then
    echo "$bin_dir"
    exit 0
fi

# /usr/local/go is where the official Go archive installs; it is not always on PATH.
go_bin=$(command -v go || true)
if [[ -z "$go_bin" && -x /usr/local/go/bin/go ]]; then
    go_bin=/usr/local/go/bin/go
fi
if [[ -z "$go_bin" ]]; then
    echo "build.sh: Go not found (need Go >= 1.26 on PATH or in /usr/local/go/bin); cannot build the Kubernetes test binaries" >&2
    exit 3
fi
go_version=$("$go_bin" env GOVERSION)
if ! printf '%s\n' go1.26 "$go_version" | sort -V -C; then
    echo "build.sh: $go_version is too old (need Go >= 1.26); cannot build the Kubernetes test binaries" >&2
    exit 3
fi

export CGO_ENABLED=0
# Never let go fetch a different toolchain: only the module proxy is reachable.
export GOTOOLCHAIN=local
# Wrapper modules get their requirements filled in by the build itself.
export GOFLAGS="-mod=mod -buildvcs=false"
# Checksums: sum.golang.org does not resolve from the project's machines, but
# the go command reads the checksum database through the module proxy
# (<GOPROXY>/sumdb/sum.golang.org/...), so verification stays on (GOSUMDB as
# the environment has it). That database answers 404 for
# k8s.io/kubernetes@v1.34.12 (it knows v1.34.4 and every other module here),
# so the hashes of the first build are kept in tools/kube/gosum/ and copied
# into each wrapper: modules recorded there are checked against those hashes
# and not looked up. After a version bump that hits such a 404, build once
# with GONOSUMDB=<that module> and commit the updated tools/kube/gosum/.
# Two compile jobs: the machines have two cores and should stay usable.
jobs=${KARVDASH_KUBE_BUILD_JOBS:-2}

mkdir -p "$cache_root"
exec 9>"$cache_root/kube-$key.lock"
flock 9
if built; then  # another build finished while this one waited
    echo "$bin_dir"
    exit 0
fi

work=$(mktemp -d "$cache_root/kube-$key.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$work/bin"
mkdir -p "$out"
start=$(date +%s)

log() { echo "build.sh: [$(( $(date +%s) - start ))s] $*" >&2; }

# new_wrapper NAME MODULE VERSION: an empty module requiring MODULE@VERSION.
new_wrapper() {
    local dir="$work/$1"
    mkdir -p "$dir"
    (
        cd "$dir"
        "$go_bin" mod init "karvdash-hub.test/kube/$1" >/dev/null 2>&1
        "$go_bin" mod edit -require="$2@$3"
        if [[ -f "$here/gosum/$1.sum" ]]; then
            cp "$here/gosum/$1.sum" go.sum
        fi
    )
}

# gomod_of MODULE VERSION: path of that version's go.mod in the module cache.
gomod_of() {
    (cd "$work" && GOFLAGS= "$go_bin" list -m -f '{{.GoMod}}' "$1@$2")
}

# copy_replaces WRAPPER GOMOD STAGING_VERSION: a dependency's replace lines do
# not apply to the modules that require it, so carry them over. Local
# ./staging/src/<module> paths become the published module at STAGING_VERSION.
copy_replaces() {
    local dir="$work/$1" gomod=$2 staging_version=$3 old new
    while read -r old new; do
        case "$new" in
            ./staging/src/*)
                [[ "$old" == "${new#./staging/src/}" ]] || { echo "build.sh: unexpected replace $old => $new" >&2; return 1; }
                (cd "$dir" && "$go_bin" mod edit -replace="$old=$old@$staging_version") ;;
            ./* | ../* | /*)
                echo "build.sh: cannot carry over local replace $old => $new from $gomod" >&2; return 1 ;;
            *)
                (cd "$dir" && "$go_bin" mod edit -replace="$old=$new") ;;
        esac
    done < <(awk '
        function emit(s,   p, a, b, n, m, l, r) {
            sub(/\/\/.*/, "", s)
            split(s, p, "=>"); n = split(p[1], a, " "); m = split(p[2], b, " ")
            if (n == 0 || m == 0) return
            l = a[1]; if (n > 1) l = l "@" a[2]
            r = b[1]; if (m > 1) r = r "@" b[2]
            print l, r
        }
        $1 == "replace" && $2 == "(" { blk = 1; next }
        blk && $1 == ")" { blk = 0; next }
        blk { emit($0); next }
        $1 == "replace" { sub(/^[ \t]*replace[ \t]+/, ""); emit($0) }
    ' "$gomod")
}

# copy_godebug WRAPPER GOMOD: keep the GODEBUG defaults the main module was released with.
copy_godebug() {
    local line
    while read -r line; do
        (cd "$work/$1" && "$go_bin" mod edit -godebug="$line")
    done < <(awk '$1 == "godebug" && $2 != "(" { print $2 }' "$2")
}

# build WRAPPER OUTPUT LDFLAGS PACKAGE...
build() {
    local name=$1 output=$2 ldflags=$3
    shift 3
    log "building $* ..."
    (cd "$work/$name" && "$go_bin" build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$output" "$@")
    cp "$work/$name/go.sum" "$work/$name.go.sum"
}

log "Go $go_version, GOSUMDB=$("$go_bin" env GOSUMDB), building into $work"

# etcd: go install fails on server/v3's own local replace lines; a wrapper
# module uses the published api/client modules instead.
new_wrapper etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
build etcd "$out/etcd" "-s -w" go.etcd.io/etcd/server/v3

# kwok: no replace lines; stages are read from tests/kube at run time.
new_wrapper kwok sigs.k8s.io/kwok "$KWOK_VERSION"
build kwok "$out/" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBERNETES_VERSION" \
    sigs.k8s.io/kwok/cmd/kwok

# helm 3: its default Kubernetes version (for template and lint without a
# cluster) is 1.20 unless set, as its Makefile does, from client-go's version.
new_wrapper helm helm.sh/helm/v3 "$HELM_VERSION"
helm_client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$(gomod_of helm.sh/helm/v3 "$HELM_VERSION")")
helm_kube_major=$(( $(echo "$helm_client_go" | sed -E 's/^v([0-9]+)\..*/\1/') + 1 ))
helm_kube_minor=$(echo "$helm_client_go" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    helm_ldflags+=" -X $pkg.k8sVersionMajor=$helm_kube_major -X $pkg.k8sVersionMinor=$helm_kube_minor"
done
build helm "$out/" "$helm_ldflags" helm.sh/helm/v3/cmd/helm

# Kubernetes: a wrapper over k8s.io/kubernetes with its staging replaces
# turned into the published v0.<minor>.<patch> modules.
new_wrapper kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION"
kube_gomod=$(gomod_of k8s.io/kubernetes "$KUBERNETES_VERSION")
copy_replaces kubernetes "$kube_gomod" "v0.${KUBERNETES_VERSION#v1.}"
copy_godebug kubernetes "$kube_gomod"
kube_minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
kube_ldflags="-s -w"
# Both version packages, as hack/lib/version.sh does, so /version and
# kubectl version report the real release (helm checks kubeVersion).
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
    kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
build kubernetes "$out/" "$kube_ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl

# Record new module hashes (after a version bump) for the next builds.
for sum in "$work"/*.go.sum; do
    recorded="$here/gosum/$(basename "$sum" .go.sum).sum"
    if ! cmp -s "$sum" "$recorded"; then
        mkdir -p "$here/gosum" && cp "$sum" "$recorded" && log "updated $recorded: commit it"
    fi
done

mkdir -p "$dest"
cp "$work"/*.go.sum "$out/"
cp "$versions_file" "$out/versions.env"
rm -rf "$bin_dir"
mv "$out" "$bin_dir"
log "done: $bin_dir"
echo "$bin_dir"
