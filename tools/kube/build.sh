#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm) from Go modules through the module
# proxy, at the versions pinned in versions.env.
#
#   tools/kube/build.sh                 build if needed, print the bin dir
#   tools/kube/build.sh --print-bin-dir print where the binaries are (or will be)
#   tools/kube/build.sh --check         exit 0 if built, 1 if not
#
# With --node first (tools/kube/build.sh --node [--print-bin-dir|--check]) the
# same for the pieces of a real node (tests/kube/realnode.py): kubelet,
# kube-proxy, containerd 2.x (containerd, containerd-shim-runc-v2, ctr),
# CoreDNS, the pause binary with its image (pause-image.tar) and
# kube-router (its network policy controller; pinned in node-network.env and
# keyed by that file alone: a change there rebuilds kube-router only), in
# node-bin/ beside bin/. runc and the CNI plugins are Debian's (make
# node-packages); building pause needs gcc and static glibc (libc6-dev).
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
node_binaries=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr coredns pause pause-image.tar)
network_file="$here/node-network.env"

target=control-plane
if [[ "${1:-}" == --node ]]; then
    target=node
    shift
    binaries=("${node_binaries[@]}")
    # shellcheck source=node-network.env
    . "$network_file"
fi

cache_root=${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}
# Keyed by the settings only, so editing a comment does not rebuild; the
# CERT_MANAGER_* lines key tools/certmanager/build.sh's output alone.
key=$(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$versions_file" | grep -v '^CERT_MANAGER_' | sha256sum | cut -c1-12)
dest="$cache_root/kube-$key"
bin_dir="$dest/bin"
lock_name="kube-$key"
if [[ $target == node ]]; then
    bin_dir="$dest/node-bin"
    lock_name="kube-$key.node"
fi

network_key=$(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$network_file" | sha256sum | cut -c1-12)
# kube_router_built: node-bin/kube-router is there and from node-network.env's settings.
kube_router_built() {
    [[ -x "$bin_dir/kube-router" && "$(cat "$bin_dir/kube-router.key" 2>/dev/null)" == "$network_key" ]]
}

# built_core: the binaries keyed by versions.env.
built_core() {
    local b
    for b in "${binaries[@]}"; do
        if [[ $b == *.tar ]]; then
            [[ -f "$bin_dir/$b" ]] || return 1
        else
            [[ -x "$bin_dir/$b" ]] || return 1
        fi
    done
}

built() {
    built_core || return 1
    [[ $target != node ]] || kube_router_built
}

case "${1:-}" in
    --print-bin-dir) echo "$bin_dir"; exit 0 ;;
    --check) built; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--node] [--print-bin-dir|--check]" >&2; exit 2 ;;
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
exec 9>"$cache_root/$lock_name.lock"
flock 9
if built; then  # another build finished while this one waited
    echo "$bin_dir"
    exit 0
fi
if [[ $target == node ]] && ! command -v gcc >/dev/null 2>&1; then
    echo "build.sh: gcc not found (apt-get install gcc libc6-dev, or make node-packages); cannot build the pause binary" >&2
    exit 3
fi

work=$(mktemp -d "$cache_root/$lock_name.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="$work/bin"
mkdir -p "$out"
start=$(date +%s)

log() { echo "build.sh: [$(( $(date +%s) - start ))s] $*" >&2; }

# new_wrapper NAME MODULE VERSION [SEED]: an empty module requiring
# MODULE@VERSION, with the recorded go.sum of NAME (or, the first time, of
# the wrapper SEED, whose hashes it shares).
new_wrapper() {
    local dir="$work/$1"
    mkdir -p "$dir"
    (
        cd "$dir"
        "$go_bin" mod init "karvdash-hub.test/kube/$1" >/dev/null 2>&1
        "$go_bin" mod edit -require="$2@$3"
        if [[ -f "$here/gosum/$1.sum" ]]; then
            cp "$here/gosum/$1.sum" go.sum
        elif [[ -n "${4:-}" && -f "$here/gosum/$4.sum" ]]; then
            cp "$here/gosum/$4.sum" go.sum
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

# build WRAPPER OUTPUT LDFLAGS PACKAGE... (build tags from $build_tags)
build_tags=
build() {
    local name=$1 output=$2 ldflags=$3
    shift 3
    log "building $* ..."
    (cd "$work/$name" && "$go_bin" build -p "$jobs" -trimpath -tags "$build_tags" -ldflags "$ldflags" -o "$output" "$@")
    cp "$work/$name/go.sum" "$work/$name.go.sum"
}

# kube_wrapper NAME [SEED]: a wrapper over k8s.io/kubernetes with its staging
# replaces turned into the published v0.<minor>.<patch> modules; sets
# kube_ldflags (both version packages, as hack/lib/version.sh does, so
# /version and kubectl version report the real release: helm checks
# kubeVersion).
kube_wrapper() {
    local kube_gomod kube_minor pkg
    new_wrapper "$1" k8s.io/kubernetes "$KUBERNETES_VERSION" "${2:-}"
    kube_gomod=$(gomod_of k8s.io/kubernetes "$KUBERNETES_VERSION")
    copy_replaces "$1" "$kube_gomod" "v0.${KUBERNETES_VERSION#v1.}"
    copy_godebug "$1" "$kube_gomod"
    kube_minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
    kube_ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
        kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
}

# record_sums: keep new module hashes (after a version bump) for the next builds.
record_sums() {
    local sum recorded
    for sum in "$work"/*.go.sum; do
        recorded="$here/gosum/$(basename "$sum" .go.sum).sum"
        if ! cmp -s "$sum" "$recorded"; then
            mkdir -p "$here/gosum" && cp "$sum" "$recorded" && log "updated $recorded: commit it"
        fi
    done
}

# finish: move the built files into place.
finish() {
    mkdir -p "$dest"
    cp "$work"/*.go.sum "$out/"
    cp "$versions_file" "$out/versions.env"
    rm -rf "$bin_dir"
    mv "$out" "$bin_dir"
    log "done: $bin_dir"
    echo "$bin_dir"
}

build_node() {
    # kubelet and kube-proxy: their own wrapper, since they need a few
    # modules the control plane does not (netlink, netns, ipvs, knftables,
    # ...); its go.sum starts from the control plane's, which has the hash
    # of k8s.io/kubernetes itself (not in the checksum database).
    kube_wrapper kubernetes-node kubernetes
    build kubernetes-node "$out/" "$kube_ldflags" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy

    # pause, from the same module's sources, as its build/pause/Makefile does.
    local kube_dir pause_tag rootfs
    kube_dir=$(cd "$work/kubernetes-node" && "$go_bin" list -m -f '{{.Dir}}' k8s.io/kubernetes)
    pause_tag=$(awk '$1 == "TAG" && $2 == "?=" { print $3; exit }' "$kube_dir/build/pause/Makefile")
    [[ -n "$pause_tag" ]] || { echo "build.sh: no TAG in $kube_dir/build/pause/Makefile" >&2; exit 1; }
    log "building pause $pause_tag ..."
    gcc -Os -Wall -Werror -static "-DVERSION=v$pause_tag-$KUBERNETES_VERSION" -o "$out/pause" "$kube_dir/build/pause/linux/pause.c"
    strip "$out/pause" 2>/dev/null || true
    # its image: /pause alone, run as 65535 like the published one
    rootfs="$work/pause-rootfs"
    mkdir -p "$rootfs"
    cp "$out/pause" "$rootfs/pause"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/pause-rootfs.tar" pause
    python3 "$here/../images/oci.py" "$work/pause-rootfs.tar" "$out/pause-image.tar" \
        --ref "localhost/karvdash-node/pause:$pause_tag" --entrypoint '["/pause"]' --user 65535:65535 >/dev/null
    echo "localhost/karvdash-node/pause:$pause_tag" > "$out/pause-image.ref"

    # containerd 2: static, without the snapshotters that need cgo or are
    # not used (btrfs, devmapper, zfs); overlayfs is the one the node uses.
    new_wrapper containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
    copy_replaces containerd "$(gomod_of github.com/containerd/containerd/v2 "$CONTAINERD_VERSION")" ""
    build_tags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"
    local ctrd_ldflags="-s -w"
    ctrd_ldflags+=" -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
    ctrd_ldflags+=" -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
    build containerd "$out/" "$ctrd_ldflags" \
        github.com/containerd/containerd/v2/cmd/containerd \
        github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
        github.com/containerd/containerd/v2/cmd/ctr
    build_tags=

    # CoreDNS with the plugins the node's Corefile uses (the full set, with
    # every cloud provider's SDK, takes minutes longer to build).
    new_wrapper coredns github.com/coredns/coredns "$COREDNS_VERSION"
    copy_replaces coredns "$(gomod_of github.com/coredns/coredns "$COREDNS_VERSION")" ""
    cat > "$work/coredns/main.go" <<'GO'
// CoreDNS with the plugins tests/kube/realnode.py's Corefile uses.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() {
	coremain.Run()
}
GO
    build coredns "$out/coredns" "-s -w" .
}

log "Go $go_version, GOSUMDB=$("$go_bin" env GOSUMDB), building into $work"

# build_kube_router: the network policy controller alone (the router and
# service proxy are compiled in but never run: one binary upstream).
build_kube_router() {
    new_wrapper kube-router github.com/cloudnativelabs/kube-router/v2 "$KUBE_ROUTER_VERSION"
    local kr_ldflags="-s -w"
    kr_ldflags+=" -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
    kr_ldflags+=" -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=1970-01-01T00:00:00Z"
    build kube-router "$out/kube-router" "$kr_ldflags" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
    echo "$network_key" > "$out/kube-router.key"
    cp "$network_file" "$out/node-network.env"
}

if [[ $target == node ]]; then
    if built_core; then
        # only node-network.env changed (or kube-router is new): build it into place
        build_kube_router
        record_sums
        # renamed into place (a running cluster's binary is replaced, not
        # written to), the key last: it says the binary is complete
        mv -f "$out"/kube-router "$out"/node-network.env "$work"/kube-router.go.sum "$bin_dir/"
        mv -f "$out"/kube-router.key "$bin_dir/"
        log "done: $bin_dir/kube-router"
        echo "$bin_dir"
        exit 0
    fi
    build_node
    build_kube_router
    record_sums
    finish
    exit 0
fi

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

# Kubernetes: a wrapper over k8s.io/kubernetes (see kube_wrapper).
kube_wrapper kubernetes
build kubernetes "$out/" "$kube_ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl

record_sums
finish
