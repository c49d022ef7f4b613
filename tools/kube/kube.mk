# Kubernetes control plane for the tests and for trying things by hand.
# Included by the main Makefile, which defines PYTHON (the project's venv).
#
#   make kube-binaries  build etcd, kube-*, kubectl, kwok, helm from Go modules
#                       (cached outside the repo; a no-op once built)
#   make cluster        start a control plane in .cluster/ and print its KUBECONFIG
#   make cluster-down   stop it
#
# A real node (tests/kube/realnode.py: kubelet, kube-proxy, containerd,
# runc, CNI bridge, CoreDNS, a registry, in a network namespace of its own;
# root only):
#
#   make node-packages  Debian's runc, CNI plugins, docker-registry, skopeo,
#                       mmdebstrap, buildah, iproute2, iptables, ipset, gcc
#   make node-binaries  kubelet, kube-proxy, containerd 2, CoreDNS, pause, kube-router, and cert-manager
#                       with its images (tools/certmanager/build.sh) (Go modules, cached)
#   make cluster NODE=real   the control plane with the real node instead of kwok's
#   make images         the images (tools/images/build.sh), pushed into that cluster's registry
#   make test-node      the real-node tests (pytest -m node tests/node)

PYTHON ?= python3
KUBE_BUILD := tools/kube/build.sh
IMAGES_BUILD := tools/images/build.sh
CERT_MANAGER_BUILD := tools/certmanager/build.sh
KUBE_CLUSTER_DIR ?= .cluster
# kwok (fake node, no containers) or real (tests/kube/realnode.py)
NODE ?= kwok
IMAGES ?= karvdash-hub notebook

.PHONY: kube-binaries cluster cluster-down node-packages node-binaries images test-node

# Without Go the Kubernetes tests skip themselves, so this must not fail.
kube-binaries:
	@if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then \
	  echo "Kubernetes tests skipped: Go not found; install Go >= 1.26 to build the control plane (tools/kube/build.sh)"; \
	else \
	  rc=0; $(KUBE_BUILD) >/dev/null || rc=$$?; \
	  if [ $$rc -eq 3 ]; then \
	    echo "Kubernetes tests skipped: Go >= 1.26 not found (see the line above)"; \
	  elif [ $$rc -ne 0 ]; then \
	    exit $$rc; \
	  fi; \
	fi

# runc and the CNI plugins at the upstream versions versions.env pins.
node-packages:
	@. tools/kube/versions.env; \
	have() { dpkg-query -W -f='$${Status} $${Version}\n' "$$1" 2>/dev/null | grep -q "^install ok installed $${2:-}"; }; \
	if ! have runc "$${RUNC_DEBIAN_VERSION%\*}" || ! have containernetworking-plugins "$${CNI_PLUGINS_DEBIAN_VERSION%\*}" \
	   || ! have docker-registry || ! have skopeo || ! have mmdebstrap || ! have buildah \
	   || ! have iproute2 || ! have iptables || ! have ipset || ! have gcc || ! have libc6-dev; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  pkgs="runc=$$RUNC_DEBIAN_VERSION containernetworking-plugins=$$CNI_PLUGINS_DEBIAN_VERSION docker-registry skopeo mmdebstrap buildah iproute2 iptables ipset gcc libc6-dev"; \
	  echo "Installing Debian's packages for the real node: $$pkgs"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	fi

node-binaries: kube-binaries
	@$(KUBE_BUILD) --node >/dev/null
	@$(CERT_MANAGER_BUILD) >/dev/null

cluster: $(if $(VENV_STAMP),$(VENV_STAMP)) kube-binaries $(if $(filter real,$(NODE)),node-packages node-binaries)
ifeq ($(NODE),real)
	@$(PYTHON) -m tests.kube.realnode up --dir $(KUBE_CLUSTER_DIR)
else
	@$(PYTHON) -m tests.kube.cluster up --dir $(KUBE_CLUSTER_DIR)
endif

cluster-down:
	@if [ -f $(KUBE_CLUSTER_DIR)/realnode.json ]; then \
	  $(PYTHON) -m tests.kube.realnode down --dir $(KUBE_CLUSTER_DIR); \
	else \
	  $(PYTHON) -m tests.kube.cluster down --dir $(KUBE_CLUSTER_DIR); \
	fi

# Build IMAGES (cached) and, when `make cluster NODE=real` runs, push them
# into its registry as 198.18.1.1:5000/<name>:<tag>.
images: node-packages
	@for image in $(IMAGES); do \
	  archive=$$($(IMAGES_BUILD) $$image) || exit $$?; \
	  ref=$$($(IMAGES_BUILD) --ref $$image); \
	  if [ -f $(KUBE_CLUSTER_DIR)/realnode.json ]; then \
	    $(PYTHON) -m tests.kube.realnode push --dir $(KUBE_CLUSTER_DIR) $$archive $${ref#localhost/} || exit $$?; \
	  else \
	    echo "$$archive ($$ref; make cluster NODE=real to push it into a cluster)"; \
	  fi; \
	done

test-node: $(if $(VENV_STAMP),$(VENV_STAMP)) node-packages node-binaries
	KARVDASH_NODE_REQUIRED=1 $(PYTHON) -m pytest -m node tests/node $(PYTEST_ARGS)
