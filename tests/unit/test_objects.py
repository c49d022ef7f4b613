"""Builders of user-namespace objects and server parts: exact manifests,
checked against the Kubernetes 1.34 OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import kubernetes_validate
import pytest

from karvdash_hub.core.settings import load_settings
from karvdash_hub.namespaces import objects

GOLDEN = Path(__file__).parent / "golden" / "spawner"
KUBERNETES_VERSION = "1.34"

BASE_ENV = {
    "KARVDASH_STATE_DIR": "/srv/karvdash",
    "KARVDASH_MODE": "kubernetes",
    "KARVDASH_INGRESS_URL": "https://example.test",
}


def settings(**env):
    return load_settings(environ={**BASE_ENV, **env})


def k8s_valid(obj: dict) -> None:
    """Raises if ``obj`` is not valid for Kubernetes 1.34 (unknown fields too)."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def golden(name: str, actual) -> None:
    """Compare with tests/unit/golden/spawner/<name>.json
    (KARVDASH_UPDATE_GOLDEN=1 rewrites it: review the diff)."""
    path = GOLDEN / f"{name}.json"
    text = json.dumps(actual, indent=2, sort_keys=True) + "\n"
    if os.environ.get("KARVDASH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing; run with KARVDASH_UPDATE_GOLDEN=1 and review it"
    assert json.loads(text) == json.loads(path.read_text()), f"{name} differs from {path}"


def decoded(secret: dict, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_namespace_objects_exact_and_valid():
    s = settings(KARVDASH_DOCKER_REGISTRY_URL="https://puller:s3cr%40t@registry.example.test:5000")
    built = [
        objects.namespace(s, "alice"),
        objects.role_binding(s, "alice"),
        objects.api_settings_secret(s, "alice", "tok123"),
        objects.registry_pull_secret(s, "alice"),
    ]
    assert [o["kind"] for o in built] == ["Namespace", "RoleBinding", "Secret", "Secret"]
    for obj in built:
        k8s_valid(obj)
    golden("namespace-objects-with-registry", built)

    namespace, binding, api, pull = built
    assert namespace["metadata"] == {
        "name": "karvdash-alice",
        "labels": {
            "karvdash.io/user-namespace": "enabled",
            "karvdash.io/owner": "alice",
            "app.kubernetes.io/managed-by": "karvdash-hub",
        },
    }
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": "karvdash-alice"}]
    assert decoded(api, "config.ini") == (
        "[Karvdash]\nbase_url = https://example.test/services/karvdash/karvdash2/api/\ntoken = tok123\n\n"
    )
    dockerconfig = json.loads(decoded(pull, ".dockerconfigjson"))
    assert dockerconfig == {
        "auths": {
            "registry.example.test:5000": {
                "username": "puller",
                "password": "s3cr@t",
                "auth": base64.b64encode(b"puller:s3cr@t").decode(),
            }
        }
    }
    assert pull["type"] == "kubernetes.io/dockerconfigjson"


def test_no_pull_secret_without_registry_credentials():
    for url in ("", "https://registry.example.test"):
        s = settings(KARVDASH_DOCKER_REGISTRY_URL=url)
        assert objects.registry_pull_secret(s, "alice") is None


def test_namespace_template_role_and_api_url_settings():
    s = settings(
        KARVDASH_NAMESPACE_TEMPLATE="team-{username}-work",
        KARVDASH_NAMESPACE_ROLE="admin",
        KARVDASH_KARVDASHCTL_URL="http://karvdash-dashboard.hub.svc:8080/services/karvdash/api/",
    )
    namespace = objects.namespace(s, "bob")
    binding = objects.role_binding(s, "bob")
    api = objects.api_settings_secret(s, "bob", "abc")
    assert namespace["metadata"]["name"] == "team-bob-work"
    assert binding["metadata"]["namespace"] == "team-bob-work"
    assert binding["roleRef"]["name"] == "admin"
    assert objects.read_api_settings_token(decoded(api, "config.ini")) == "abc"
    assert "base_url = http://karvdash-dashboard.hub.svc:8080/services/karvdash/api/" in decoded(api, "config.ini")


@pytest.mark.parametrize("role", ["cluster-admin", "view", ""])
def test_namespace_role_is_edit_or_admin_only(role):
    with pytest.raises(ValueError, match="namespaceRole"):
        settings(KARVDASH_NAMESPACE_ROLE=role)


@pytest.mark.parametrize("username", ["Alice", "../x", "a" * 33, ""])
def test_namespace_name_needs_a_valid_username(username):
    with pytest.raises(ValueError, match="not a karvdash username"):
        objects.namespace(settings(), username)


def test_api_settings_token_reader_tolerates_garbage():
    assert objects.read_api_settings_token("not an ini file") == ""
    assert objects.read_api_settings_token("[Other]\ntoken = x\n") == ""
    assert objects.read_api_settings_token(objects.api_settings_ini("https://x.test/api/", "t%1")) == "t%1"


def test_base_overrides_file_domains_api_settings_labels():
    s = settings(KARVDASH_FILES_URL="nfs://nfs.example.test/exports/karvdash", KARVDASH_FILES_MOUNT_PATH="/mnt/f")
    overrides = objects.server_base_overrides(s, "alice", mount_datasets=True)
    assert overrides["volumes"] == {
        "karvdash-private": {
            "name": "karvdash-private",
            "nfs": {"server": "nfs.example.test", "path": "/exports/karvdash/private/alice"},
        },
        "karvdash-shared": {"name": "karvdash-shared", "nfs": {"server": "nfs.example.test", "path": "/exports/karvdash/shared"}},
        "karvdash-api": {"name": "karvdash-api", "secret": {"secretName": "karvdash-api", "optional": True}},
    }
    assert overrides["volume_mounts"] == {
        "karvdash-private": {"name": "karvdash-private", "mountPath": "/private"},
        "karvdash-shared": {"name": "karvdash-shared", "mountPath": "/shared"},
        "karvdash-api": {"name": "karvdash-api", "mountPath": "/var/lib/karvdash", "readOnly": True},
    }
    assert "uploads" not in json.dumps(overrides)
    assert overrides["extra_labels"] == {"karvdash.io/owner": "alice", "app.kubernetes.io/managed-by": "karvdash-hub"}
    assert overrides["image_pull_secrets"] == []


def test_datasets_opt_out_labels_the_pod_for_the_webhook():
    with_datasets = settings(KARVDASH_DATASETS_AVAILABLE="true")
    assert objects.server_base_overrides(with_datasets, "alice", False)["extra_labels"]["karvdash.io/datasets"] == "false"
    assert "karvdash.io/datasets" not in objects.server_base_overrides(with_datasets, "alice", True)["extra_labels"]
    assert "karvdash.io/datasets" not in objects.server_base_overrides(settings(), "alice", False)["extra_labels"]


def test_gpu_overrides_from_settings():
    s = settings(
        KARVDASH_GPU_RESOURCE_NAME="amd.com/gpu",
        KARVDASH_GPU_NODE_SELECTOR="{gpu: 'yes'}",
        KARVDASH_GPU_TOLERATIONS="[{key: gpu, operator: Exists, effect: NoSchedule}]",
    )
    assert objects.gpu_overrides(s, 2) == {
        "extra_resource_limits": {"amd.com/gpu": "2"},
        "node_selector": {"gpu": "yes"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def test_app_overrides_put_the_proxy_on_the_server_port():
    app = {"command": ["srv", "--port={port}", "--prefix={base_url}", "${HOME}"], "port": 9000}
    overrides = objects.app_overrides(settings(KARVDASH_APP_PROXY_IMAGE="reg.test/karvdash-hub:1.0"), app, 8888)
    assert overrides["cmd"] is None
    assert overrides["extra_container_config"] == {
        "command": ["srv", "--port=9000", "--prefix=$(JUPYTERHUB_SERVICE_PREFIX)", "${HOME}"],
        "ports": [{"name": "app", "containerPort": 9000}],
    }
    proxy = overrides["extra_containers"]["karvdash-app-proxy"]
    assert proxy["image"] == "reg.test/karvdash-hub:1.0"
    assert proxy["command"] == [
        "jupyter-standaloneproxy",
        "--address=0.0.0.0",
        "--port=8888",
        "--server-port=9000",
        "--timeout=60",
    ]
    assert proxy["ports"] == [{"name": "notebook-port", "containerPort": 8888}]
    with pytest.raises(ValueError, match="server's port"):
        objects.app_overrides(settings(), {"command": ["x"], "port": 8888}, 8888)


def test_schema_check_refuses_what_kubernetes_would():
    binding = objects.role_binding(settings(), "alice")
    binding["subject"] = binding.pop("subjects")
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_valid(binding)
    secret = objects.api_settings_secret(settings(), "alice", "t")
    secret["data"]["config.ini"] = 42
    with pytest.raises(kubernetes_validate.ValidationError):
        k8s_valid(secret)


# --- the user's Argo Workflows account ------------------------------------------------------


def test_argo_account_exact_and_valid():
    s = settings(KARVDASH_ARGO_NAMESPACE="argo")
    built = objects.argo_objects(s, "alice")
    for obj in built:
        k8s_valid(obj)
    owner = {"karvdash.io/owner": "alice", "app.kubernetes.io/managed-by": "karvdash-hub"}
    assert built == [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "karvdash-argo",
                "namespace": "karvdash-alice",
                "labels": owner,
                "annotations": {
                    "workflows.argoproj.io/rbac-rule": "preferred_username == 'alice'",
                    "workflows.argoproj.io/rbac-rule-precedence": "1",
                    "workflows.argoproj.io/service-account-token.name": "karvdash-argo.service-account-token",
                },
            },
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": "karvdash-argo.service-account-token",
                "namespace": "karvdash-alice",
                "labels": owner,
                "annotations": {"kubernetes.io/service-account.name": "karvdash-argo"},
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "karvdash-argo", "namespace": "karvdash-alice", "labels": owner},
            "rules": [
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflows", "workflowtemplates", "cronworkflows", "workfloweventbindings"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                },
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
                {"apiGroups": [""], "resources": ["pods/log", "events"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "karvdash-argo", "namespace": "karvdash-alice", "labels": owner},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "karvdash-argo"},
            "subjects": [{"kind": "ServiceAccount", "name": "karvdash-argo", "namespace": "karvdash-alice"}],
        },
    ]


def test_no_argo_account_without_argo_namespace():
    assert objects.argo_objects(settings(KARVDASH_ARGO_URL="https://argo.example.test"), "alice") == []


def test_argo_account_follows_the_namespace_template():
    s = settings(KARVDASH_ARGO_NAMESPACE="argo", KARVDASH_NAMESPACE_TEMPLATE="team-{username}")
    account, token, role, binding = objects.argo_objects(s, "bob")
    assert {o["metadata"]["namespace"] for o in (account, token, role, binding)} == {"team-bob"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "karvdash-argo", "namespace": "team-bob"}]
    assert account["metadata"]["annotations"]["workflows.argoproj.io/rbac-rule"] == "preferred_username == 'bob'"


@pytest.mark.parametrize("username", ["bob' || true || '", "alice\n", "Alice", ""])
def test_argo_rule_refuses_what_is_not_a_username(username):
    # the name goes into an expression: nothing but a karvdash username may
    with pytest.raises(ValueError, match="not a karvdash username"):
        objects.argo_rbac_rule(username)


def test_argo_role_is_a_copy():
    s = settings(KARVDASH_ARGO_NAMESPACE="argo")
    objects.argo_role(s, "alice")["rules"][0]["verbs"].append("escalate")
    assert "escalate" not in objects.argo_role(s, "bob")["rules"][0]["verbs"]


def test_network_policy_lets_in_the_namespace_the_hub_and_the_ingress_controller_only():
    policy = objects.network_policy(settings(), "alice", "karvdash")
    k8s_valid(policy)
    assert policy == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "karvdash-tenant",
            "namespace": "karvdash-alice",
            "labels": {"karvdash.io/owner": "alice", "app.kubernetes.io/managed-by": "karvdash-hub"},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "karvdash"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
            ]}],
        },
    }


@pytest.mark.parametrize("controller, hub, expected", [
    ("", "karvdash", ["karvdash"]),
    ("karvdash", "karvdash", ["karvdash"]),
    ("traefik", "hub", ["hub", "traefik"]),
])
def test_network_policy_namespaces_from_the_settings(controller, hub, expected):
    policy = objects.network_policy(settings(KARVDASH_INGRESS_CONTROLLER_NAMESPACE=controller), "bob", hub)
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources[0] == {"podSelector": {}}
    assert [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources[1:]] == expected
    assert policy["metadata"]["namespace"] == "karvdash-bob"
