# Kubernetes control plane for the tests and for trying things by hand.
# Included by the main Makefile, which defines PYTHON (the project's venv).
#
#   make kube-binaries  build etcd, kube-*, kubectl, kwok, helm from Go modules
#                       (cached outside the repo; a no-op once built)
#   make cluster        start a control plane in .cluster/ and print its KUBECONFIG
#   make cluster-down   stop it

PYTHON ?= python3
KUBE_BUILD := tools/kube/build.sh
KUBE_CLUSTER_DIR ?= .cluster

.PHONY: kube-binaries cluster cluster-down

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

cluster: $(if $(VENV_STAMP),$(VENV_STAMP)) kube-binaries
	@$(PYTHON) -m tests.kube.cluster up --dir $(KUBE_CLUSTER_DIR)

cluster-down:
	@$(PYTHON) -m tests.kube.cluster down --dir $(KUBE_CLUSTER_DIR)
