# karvdash-hub: `make run` starts the hub in local mode, `make test` runs every test.
# Both set up what they need first: a virtual environment in .venv, the hub's
# proxy from npm in node_modules, and (for tests) Debian's chromium and the
# Kubernetes binaries built from Go modules.

SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
PIP := $(PYTHON) -m pip
# reinstall when the package's requirements change
VENV_STAMP := $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | sha1sum | cut -c1-12)
PROXY := node_modules/.bin/configurable-http-proxy
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=

.PHONY: run setup test test-unit test-integration chromium registry clean help chart-schema

help:
	@echo "make run      set up and run the hub in local mode on http://127.0.0.1:8000"
	@echo "make test     set up and run every test (unit, integration, browser, Kubernetes)"
	@echo "make test-unit            only the fast unit tests"
	@echo "make cluster / cluster-down   a local Kubernetes control plane for trying things"

setup: $(VENV_STAMP) $(PROXY)

$(VENV_STAMP): setup.cfg pyproject.toml
	@test -x $(PYTHON) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

$(PROXY): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	$(VENV)/bin/karvdash-hub $(ARGS)

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

include tools/kube/kube.mk

# Where Go is, the control plane gets built, so a Kubernetes test that finds
# no binaries is a failure, not a skip.
HAVE_GO := $(shell command -v go >/dev/null 2>&1 || test -x /usr/local/go/bin/go && echo 1)

test: setup chromium registry kube-binaries
	KARVDASH_KUBE_REQUIRED=$(HAVE_GO) $(PYTHON) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PYTHON) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: setup chromium registry kube-binaries
	KARVDASH_KUBE_REQUIRED=$(HAVE_GO) $(PYTHON) -m pytest -m integration $(PYTEST_ARGS)

# The chart's values.schema.json from values.schema.yaml and the settings model.
chart-schema: $(VENV_STAMP)
	$(PYTHON) chart/generate_values_schema.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache
