# One image for the hub, the dashboard service, the admission webhook and
# configurable-http-proxy; the chart runs each with its own command.
#
#   docker build -t karvdash-hub:0.1.0 .
#
# Everything comes from package registries (npm, PyPI, Debian) through the
# lock file, setup.cfg and the base image's apt sources; no step downloads
# anything else.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# --- configurable-http-proxy, exactly as package-lock.json pins it
FROM ${NODE_IMAGE} AS proxy
WORKDIR /opt/karvdash-hub
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- the Python packages in a virtual environment
FROM ${PYTHON_IMAGE} AS python
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /opt/karvdash-hub
COPY pyproject.toml setup.cfg README.md ./
COPY karvdash_hub karvdash_hub
# Editable, so that the code finds jupyterhub_config.py, spawner_profiles/
# and service_templates/ beside its packages (karvdash_hub/core/paths.py), at the
# same path in the final stage.
# `karvdash-hub check-template` validates against the Kubernetes release the
# hub is made for (KUBERNETES_VERSION in karvdash_hub/services/check.py):
# kubernetes-validate's schemas of every other release (100 MB) stay out.
RUN /opt/venv/bin/pip install --no-cache-dir --editable .[s3] \
    && find /opt/venv/lib/python*/site-packages/kubernetes_validate/kubernetes-json-schema \
        -mindepth 1 -maxdepth 1 ! -name 'v1.34.0-local-strict' -exec rm -rf {} +

# --- the image
FROM ${PYTHON_IMAGE}
# skopeo pushes image archives to the registry (karvdash_hub/images/registry.py).
# Pinned to its upstream version in the base image's Debian release; the
# Debian revision floats so that security rebuilds come in.
RUN apt-get update \
    && apt-get install -y --no-install-recommends 'skopeo=1.9.3+ds1-*' \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 1000 --user-group --create-home --home-dir /home/karvdash --shell /usr/sbin/nologin karvdash
COPY --from=proxy /usr/local/bin/node /usr/local/bin/node
COPY --from=python /opt/venv /opt/venv
COPY --from=python /opt/karvdash-hub /opt/karvdash-hub
COPY --from=proxy /opt/karvdash-hub/node_modules /opt/karvdash-hub/node_modules
WORKDIR /opt/karvdash-hub
COPY jupyterhub_config.py ./
COPY spawner_profiles spawner_profiles
COPY service_templates service_templates
COPY docs docs
ENV PATH=/opt/venv/bin:/opt/karvdash-hub/node_modules/.bin:$PATH \
    PYTHONUNBUFFERED=1
# hub 8081, proxy 8000 (public) and 8001 (API), dashboard 8080, webhook 8443
EXPOSE 8000 8001 8080 8081 8443
USER 1000:1000
CMD ["karvdash-hub"]
