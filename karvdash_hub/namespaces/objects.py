"""Kubernetes objects of user namespaces and user servers, as plain dicts.

Pure functions of the settings, the user and the chosen profile: no I/O, so
tests compare their output with exact expected manifests. ``store.py``
sends the namespace objects; ``karvdash_hub.hub.spawner`` turns the server
parts into KubeSpawner settings.
"""

from __future__ import annotations

import base64
import configparser
import io
import json
import re
from urllib.parse import unquote, urlsplit

from karvdash_hub.admission.rules import pod_additions
from karvdash_hub.core import labels
from karvdash_hub.core.labels import owner_labels
from karvdash_hub.core.settings import USERNAME_PATTERN, KarvdashConfig
from karvdash_hub.files.domains import FileDomains

# The namespace's default service account gets settings.namespaceRole by this binding.
ROLE_BINDING = "karvdash-user"
REGISTRY_PULL_SECRET = "karvdash-registry"
APP_PROXY_CONTAINER = "karvdash-app-proxy"
APP_PORT_NAME = "app"
# KubeSpawner finds the server's port by this name (in any container).
SERVER_PORT_NAME = "notebook-port"


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


# --- the user namespace ----------------------------------------------------------------


def namespace(settings: KarvdashConfig, username: str) -> dict:
    """The user's namespace, labelled for the admission webhook."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": settings.user_namespace(username),
            "labels": {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE, **owner_labels(username)},
        },
    }


# the namespace's own service account, which the user's servers run as
SERVER_ACCOUNT = "default"


def server_service_account(settings: KarvdashConfig, username: str) -> dict:
    """The namespace's ``default`` service account as the controller
    manager makes it (no labels: it is the namespace's, not ours)."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVER_ACCOUNT, "namespace": settings.user_namespace(username)},
    }


def role_binding(settings: KarvdashConfig, username: str) -> dict:
    """Gives the namespace's ``default`` service account the built-in
    ``edit`` or ``admin`` ClusterRole, inside that namespace only."""
    name = settings.user_namespace(username)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE_BINDING, "namespace": name, "labels": owner_labels(username)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": settings.namespaceRole},
        "subjects": [{"kind": "ServiceAccount", "name": SERVER_ACCOUNT, "namespace": name}],
    }


# Lets into a user namespace only its own pods, the hub's namespace and the
# ingress controller's (docs/deployment.md, Tenant isolation).
NETWORK_POLICY = "karvdash-tenant"
# set by the API server on every namespace, and no one can change it
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def network_policy(settings: KarvdashConfig, username: str, hub_namespace: str) -> dict:
    """The NetworkPolicy of the user's namespace: connections in from its own
    pods, from the hub's namespace (hub, proxy, dashboard) and from the
    ingress controller's namespace (``ingressControllerNamespace``); not from
    other users' namespaces."""
    allowed = [hub_namespace]
    if settings.ingressControllerNamespace and settings.ingressControllerNamespace != hub_namespace:
        allowed.append(settings.ingressControllerNamespace)
    sources = [{"podSelector": {}}] + [
        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}} for name in allowed
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NETWORK_POLICY,
            "namespace": settings.user_namespace(username),
            "labels": owner_labels(username),
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": sources}]},
    }


def api_settings_ini(api_url: str, token: str) -> str:
    """``karvdashctl``'s configuration file: where the API is and the token."""
    config = configparser.ConfigParser(interpolation=None)
    config[labels.API_SETTINGS_SECTION] = {"base_url": api_url, "token": token}
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def read_api_settings_token(ini: str) -> str:
    """The token in an ``api_settings_ini`` text ('' if there is none)."""
    config = configparser.ConfigParser(interpolation=None)
    try:
        config.read_string(ini)
    except configparser.Error:
        return ""
    return config.get(labels.API_SETTINGS_SECTION, "token", fallback="")


def api_settings_secret(settings: KarvdashConfig, username: str, token: str) -> dict:
    """The Secret with the dashboard API URL and the user's scoped token."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": labels.API_SETTINGS_SECRET,
            "namespace": settings.user_namespace(username),
            "labels": owner_labels(username),
        },
        "data": {labels.API_SETTINGS_KEY: _b64(api_settings_ini(settings.dashboard_api_url, token))},
    }


def registry_credentials(registry_url: str) -> tuple[str, str, str] | None:
    """(host[:port], user, password) of ``dockerRegistryURL``, or None without credentials."""
    parts = urlsplit(registry_url)
    if not registry_url or parts.username is None:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return host, unquote(parts.username), unquote(parts.password or "")


def registry_pull_secret(settings: KarvdashConfig, username: str) -> dict | None:
    """The pull secret for the private registry, when it has credentials."""
    credentials = registry_credentials(settings.dockerRegistryURL)
    if credentials is None:
        return None
    host, user, password = credentials
    auth = {"username": user, "password": password, "auth": _b64(f"{user}:{password}")}
    config = json.dumps({"auths": {host: auth}}, sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {
            "name": REGISTRY_PULL_SECRET,
            "namespace": settings.user_namespace(username),
            "labels": owner_labels(username),
        },
        "data": {".dockerconfigjson": _b64(config)},
    }


# --- the user's identity in a shared Argo Workflows --------------------------------------
#
# argo-server with SSO RBAC and namespace delegation (docs/argo.md) serves a
# request in namespace N with the account of N whose rbac-rule matches the
# person's claims, if its precedence is above that of the account matched in
# the installation namespace (argoNamespace). Each user namespace gets one
# such account, matching only its owner.

ARGO_ACCOUNT = "karvdash-argo"
# argo-server finds an account's token in the Secret named "<account>.service-account-token"
ARGO_TOKEN_SECRET = f"{ARGO_ACCOUNT}.service-account-token"
ARGO_RULE_ANNOTATION = "workflows.argoproj.io/rbac-rule"
ARGO_PRECEDENCE_ANNOTATION = "workflows.argoproj.io/rbac-rule-precedence"
ARGO_TOKEN_ANNOTATION = "workflows.argoproj.io/service-account-token.name"
# above the login account (precedence 0) that docs/argo.md has the administrator make
ARGO_PRECEDENCE = "1"
# The SSO claim that holds the hub's username: docs/deployment.md's OAuth
# example logs in to the hub with username_claim: preferred_username.
ARGO_USER_CLAIM = "preferred_username"
# What a person may do with Argo in their own namespace: workflows and their
# templates, schedules and event bindings; read pods, logs and events (the
# UI's logs and timelines); delete pods (retrying a workflow removes its
# failed pods). The hub holds these (docs/kubernetes-permissions.md) to grant them.
ARGO_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflows", "workflowtemplates", "cronworkflows", "workfloweventbindings"],
        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log", "events"], "verbs": ["get", "list", "watch"]},
]


def argo_rbac_rule(username: str) -> str:
    """The expression (expr-lang) that matches ``username``'s SSO identity only."""
    # a karvdash username is lowercase letters and digits: nothing to escape in a string literal
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise ValueError(f"{username!r} is not a karvdash username")
    return f"{ARGO_USER_CLAIM} == '{username}'"


def argo_service_account(settings: KarvdashConfig, username: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": ARGO_ACCOUNT,
            "namespace": settings.user_namespace(username),
            "labels": owner_labels(username),
            "annotations": {
                ARGO_RULE_ANNOTATION: argo_rbac_rule(username),
                ARGO_PRECEDENCE_ANNOTATION: ARGO_PRECEDENCE,
                ARGO_TOKEN_ANNOTATION: ARGO_TOKEN_SECRET,
            },
        },
        # argo-server uses the token Secret, never a pod
        "automountServiceAccountToken": False,
    }


def argo_token_secret(settings: KarvdashConfig, username: str) -> dict:
    """The account's long-lived token, which the token controller fills in
    (since Kubernetes 1.24 no one makes it unasked)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": ARGO_TOKEN_SECRET,
            "namespace": settings.user_namespace(username),
            "labels": owner_labels(username),
            "annotations": {"kubernetes.io/service-account.name": ARGO_ACCOUNT},
        },
    }


def argo_role(settings: KarvdashConfig, username: str) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {
            "name": ARGO_ACCOUNT,
            "namespace": settings.user_namespace(username),
            "labels": owner_labels(username),
        },
        "rules": [{key: list(values) for key, values in rule.items()} for rule in ARGO_RULES],
    }


def argo_role_binding(settings: KarvdashConfig, username: str) -> dict:
    name = settings.user_namespace(username)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ARGO_ACCOUNT, "namespace": name, "labels": owner_labels(username)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ARGO_ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": ARGO_ACCOUNT, "namespace": name}],
    }


def argo_objects(settings: KarvdashConfig, username: str) -> list[dict]:
    """The user's Argo account, its token, Role and RoleBinding, in the order
    they must be made (the token controller drops a token whose account is
    missing); none without ``argoNamespace``."""
    if not settings.argoNamespace:
        return []
    return [
        argo_service_account(settings, username),
        argo_token_secret(settings, username),
        argo_role(settings, username),
        argo_role_binding(settings, username),
    ]


# --- the user's server pod -------------------------------------------------------------


def server_base_overrides(settings: KarvdashConfig, username: str, mount_datasets: bool) -> dict:
    """KubeSpawner settings every user server gets before its profile's own.

    The volumes are the ones the admission webhook gives every pod of the
    user (file domains and API settings; datasets come once the namespace is
    listed), as dicts keyed by name: KubeSpawner merges dict-valued
    overrides, so profiles can add mounts, and the webhook skips volumes a
    pod already has."""
    volumes, mounts = pod_additions(FileDomains.from_settings(settings), username)
    overrides = {
        "volumes": {v["name"]: v for v in volumes},
        "volume_mounts": {m["name"]: m for m in mounts},
        "extra_labels": owner_labels(username),
        "image_pull_secrets": [REGISTRY_PULL_SECRET] if registry_credentials(settings.dockerRegistryURL) else [],
    }
    if settings.datasetsAvailable and not mount_datasets:
        # the webhook must not add them either
        overrides["extra_labels"][labels.DATASETS_LABEL] = "false"
    return overrides


def gpu_overrides(settings: KarvdashConfig, count: int) -> dict:
    """GPU limit, node selector and tolerations of a GPU profile."""
    return {
        "extra_resource_limits": {settings.gpuResourceName: str(count)},
        "node_selector": dict(settings.gpuNodeSelector),
        "tolerations": [dict(t) for t in settings.gpuTolerations],
    }


def app_command(app: dict) -> list[str]:
    """The app's command with ``{port}`` and ``{base_url}`` filled in; the
    base URL is left to Kubernetes to expand from the server's environment."""
    return [
        arg.replace("{port}", str(app["port"])).replace("{base_url}", "$(JUPYTERHUB_SERVICE_PREFIX)")
        for arg in app["command"]
    ]


def app_proxy_container(settings: KarvdashConfig, app: dict, server_port: int) -> dict:
    """The sidecar that answers on the server's port with the hub's login
    (jupyter-standaloneproxy) and forwards to the app on ``app.port``. The
    spawner gives it the server's JupyterHub environment."""
    return {
        "name": APP_PROXY_CONTAINER,
        "image": settings.appProxyImage,
        "command": [
            "jupyter-standaloneproxy",
            "--address=0.0.0.0",
            f"--port={server_port}",
            f"--server-port={app['port']}",
            # apps start slower than a notebook: wait for them on every request
            "--timeout=60",
        ],
        "ports": [{"name": SERVER_PORT_NAME, "containerPort": server_port}],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False},
    }


def app_overrides(settings: KarvdashConfig, app: dict, server_port: int) -> dict:
    """A non-Jupyter app: the main container runs the app (its image, sizes
    and GPUs), the proxy sidecar takes the server's port."""
    if app["port"] == server_port:
        raise ValueError(f"the app's port {app['port']} is the server's port; choose another")
    return {
        "cmd": None,
        "default_url": "",
        "extra_container_config": {
            "command": app_command(app),
            "ports": [{"name": APP_PORT_NAME, "containerPort": app["port"]}],
        },
        "extra_containers": {APP_PROXY_CONTAINER: app_proxy_container(settings, app, server_port)},
    }
