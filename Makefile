# karvdash-hub: `make run` starts the hub in local mode, `make test` runs every test.
# Both set up what they need first: a virtual environment in .venv with
# karvdash-hub and its dependencies, the hub's proxy from npm in node_modules;
# only for tests, the test tools (pytest, Playwright, ...) in the same .venv,
# Debian's chromium and the Kubernetes binaries built from Go modules.

SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip
# reinstall when the package's requirements change: what running needs
# (RUN_STAMP), and the test tools on top (VENV_STAMP, which the targets of
# tools/kube/kube.mk use too)
REQUIREMENTS := $(shell cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)
RUN_STAMP := $(VENV)/.installed-run-$(REQUIREMENTS)
VENV_STAMP := $(VENV)/.installed-test-$(REQUIREMENTS)
PROXY := node_modules/.bin/configurable-http-proxy
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=

.PHONY: run setup setup-test test test-unit test-integration chromium registry postgresql curl nginx dex clean help chart-schema

help:
	@echo "make run      set up and run the hub in local mode on http://127.0.0.1:8000"
	@echo "make test     set up and run every test (unit, integration, browser, Kubernetes)"
	@echo "make test-unit            only the fast unit tests"
	@echo "make cluster / cluster-down   a local Kubernetes control plane for trying things"
	@echo "make cluster NODE=real        the same with a real node (kubelet, containerd; root; docs/deployment.md)"
	@echo "make test-node                only the real-node tests (make test runs them last)"

setup: $(RUN_STAMP) $(PROXY)

setup-test: $(VENV_STAMP) $(PROXY)

# pip speaks up only on errors
$(RUN_STAMP): setup.cfg pyproject.toml
	@test -x $(PYTHON) || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "Installing karvdash-hub and its dependencies into $(VENV)/"
	@$(PIP) install --quiet --upgrade pip
	@$(PIP) install --quiet -e .
	@rm -f $(VENV)/.installed-* && touch $@

$(VENV_STAMP): $(RUN_STAMP)
	@echo "Installing the test tools into $(VENV)/"
	@$(PIP) install --quiet -e '.[test]'
	@touch $@

$(PROXY): package.json package-lock.json
	@echo "Installing the hub's proxy (configurable-http-proxy) into node_modules/"
	@npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

# exit status 3: a hub already runs on this checkout's state, which
# karvdash-hub has said in one line; nothing failed
run: setup
	@$(VENV)/bin/karvdash-hub $(ARGS) || [ $$? = 3 ]

# Debian's chromium drives the browser tests (Playwright's own browser
# download cannot work without internet access beyond package registries).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "Installing Debian's chromium for the browser tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

# Debian's docker-registry (a real registry for the image tests) and skopeo
# (which the dashboard runs to push image archives).
registry:
	@if [ ! -x /usr/bin/docker-registry ] || [ ! -x /usr/bin/skopeo ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "Installing Debian's docker-registry and skopeo for the image tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends docker-registry skopeo >/dev/null; \
	fi

# Debian's postgresql: a real PostgreSQL server for the test that reads a
# Karvdash database kept there (tests/postgres.py starts its own cluster).
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "Installing Debian's postgresql for the migration tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	fi

# Debian's curl: a browser-like client beside the download benchmark's own
# (bench/files_bench.py), and the client of the real-node transfers.
curl:
	@if [ ! -x /usr/bin/curl ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "Installing Debian's curl for the transfer benchmarks"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends curl >/dev/null; \
	fi

# Debian's nginx, unpacked (not installed: an install starts a system
# service on port 80), for the benchmark of the chart's front door
# (bench/frontdoor.py; tools/nginx/unpack.sh, cached outside the repository).
nginx:
	@tools/nginx/unpack.sh >/dev/null

# Dex, the OpenID Connect provider of the single sign-on tests, from Go
# modules (tools/dex/build.sh; cached outside the repository, a no-op once
# built). Without Go those tests skip; with Go a failed build stops here and
# the tests fail rather than skip.
dex:
	@if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then \
	  echo "Single sign-on tests skipped: Go not found; install Go >= 1.25 to build Dex (tools/dex/build.sh)"; \
	else \
	  tools/dex/build.sh >/dev/null; \
	fi

include tools/kube/kube.mk

# Where Go is, the control plane gets built, so a Kubernetes test that finds
# no binaries is a failure, not a skip.
HAVE_GO := $(shell command -v go >/dev/null 2>&1 || test -x /usr/local/go/bin/go && echo 1)

# Then the real-node tests (root, Go-built node binaries, images built here;
# tools/kube/kube.mk): a run narrowed by PYTEST_ARGS may select none of them.
test: setup-test chromium registry postgresql curl nginx kube-binaries dex $(if $(HAVE_GO),node-packages node-binaries)
	KARVDASH_KUBE_REQUIRED=$(HAVE_GO) $(PYTHON) -m pytest $(PYTEST_ARGS)
	$(if $(HAVE_GO),KARVDASH_NODE_REQUIRED=1 $(PYTHON) -m pytest -m node tests/node $(PYTEST_ARGS)$(if $(PYTEST_ARGS), || [ $$? = 5 ]))

test-unit: setup-test
	$(PYTHON) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: setup-test chromium registry postgresql curl nginx kube-binaries dex
	KARVDASH_KUBE_REQUIRED=$(HAVE_GO) $(PYTHON) -m pytest -m integration $(PYTEST_ARGS)

# The chart's values.schema.json from values.schema.yaml and the settings model.
chart-schema: $(RUN_STAMP)
	$(PYTHON) chart/generate_values_schema.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
