"""The Helm chart without a cluster: `helm lint` and `helm template` for
several value sets, the values file it writes loads as the hub's settings,
the schema is in sync and refuses unknown keys, the webhook configurations
cannot reach system namespaces.

helm is the one built with the test control plane (tools/kube/build.sh);
without it these tests skip. tests/integration/test_chart_kube.py sends the
rendered objects to a real API server.
"""

from __future__ import annotations

import configparser
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from karvdash_hub import labels
from karvdash_hub.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "karvdash-hub"
BASE = {
    "karvdash.ingressURL": "https://example.test",
    "karvdash.filesURL": "file:///mnt/karvdash/files",
    "karvdash.stateHostPath": "/mnt/karvdash/state",
}
# value sets the chart must render for: files on a node path or NFS,
# datasets on or off, native accounts or OAuth, cert-manager or not
VALUE_SETS = {
    "file": {},
    "nfs": {"karvdash.filesURL": "nfs://nfs.example.test/export/karvdash", "karvdash.stateVolumeClaim": "state",
            "karvdash.stateHostPath": ""},
    "datasets": {"karvdash.datasetsAvailable": True, "karvdash.datasetsAPIGroup": "com.ie.ibm.hpsys"},
    "oauth": {"karvdash.authenticator": "oauth", "hub.config.GenericOAuthenticator.client_id": "karvdash",
              "hub.config.GenericOAuthenticator.client_secret": "s3cret",
              "hub.config.GenericOAuthenticator.oauth_callback_url": "https://example.test/hub/oauth_callback",
              "hub.config.GenericOAuthenticator.authorize_url": "https://sso.example.test/authorize",
              "hub.config.GenericOAuthenticator.token_url": "https://sso.example.test/token",
              "hub.config.GenericOAuthenticator.userdata_url": "https://sso.example.test/userinfo",
              "hub.db.url": "postgresql://hub@db.example.test/hub"},
    "no-cert-manager": {"webhook.certManager.enabled": False, "webhook.tls.secretName": "webhook-tls",
                        "webhook.tls.caBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                        "networkPolicy.enabled": False, "rbac.create": False, "ingress.enabled": False},
    "karvdash2": {"karvdash.datasetsAvailable": "yes", "karvdash.allowedHostPathDirs": "/opt/data:/scratch",
                  "karvdash.djangoSecret": "x" * 50, "karvdash.djangoDebug": "1", "karvdash.logsHostPath": "/var/log/kd",
                  "karvdash.htpasswdExportDir": "/etc/htpasswd"},
}


def helm_binary() -> Path:
    from tests.kube.cluster import default_bin_dir

    helm = default_bin_dir() / "helm"
    if not helm.exists():
        pytest.skip(f"helm not built in {helm.parent}; run make kube-binaries")
    return helm


def value_file(tmp_path: Path, values: dict) -> Path:
    """--set style dotted keys -> a values file (keeps types: bools, strings with ':')."""
    tree: dict = {}
    for dotted, value in {**BASE, **values}.items():
        node = tree
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def render(tmp_path: Path, values: dict, namespace: str = "karvdash") -> list[dict]:
    out = helm("template", "kd", str(CHART), "--namespace", namespace, "-f", str(value_file(tmp_path, values)))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(objects: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"{kind} {name}: {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def load_values_secret(tmp_path: Path, secret: dict, name: str = "values.yaml"):
    path = tmp_path / f"rendered-{secret['metadata']['name']}.yaml"
    path.write_text(secret["stringData"][name])
    return load_settings(values_file=path, environ={}), yaml.safe_load(path.read_text())


# --- schema ---------------------------------------------------------------------------


def test_values_schema_json_is_generated_from_the_yaml_and_the_settings():
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_values_schema", ROOT / "chart" / "generate_values_schema.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert (CHART / "values.schema.json").read_text() == generator.render(), \
        "values.schema.json is stale: run make chart-schema"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    karvdash = schema["properties"]["karvdash"]
    assert karvdash["additionalProperties"] is False
    from karvdash_hub.settings import KarvdashConfig

    settings = set(KarvdashConfig.class_own_traits(config=True))
    # every user-facing setting is a chart value, under the same name
    assert settings - generator.CHART_SET <= set(karvdash["properties"])
    # and every Karvdash 2 value of its README's table
    karvdash2 = {"stateVolumeClaim", "stateHostPath", "logsVolumeClaim", "logsHostPath", "djangoSecret", "djangoDebug",
                 "adminPassword", "htpasswdExportDir", "dashboardTitle", "dashboardTheme", "issuesURL", "ingressURL",
                 "dockerRegistryURL", "dockerRegistryCert", "datasetsAvailable", "filesURL", "filesSize",
                 "allowedHostPathDirs", "disabledServiceTemplates", "disabledDatasetTemplates", "serviceURLPrefixes",
                 "argoURL", "argoNamespace"}
    assert karvdash2 <= set(karvdash["properties"])
    assert {"image", "rbac"} <= set(schema["properties"])


def test_values_yaml_keys_are_all_in_the_schema():
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)


@pytest.mark.parametrize("values, message", [
    ({"karvdash.fileURL": "file:///x"}, "additional properties 'fileURL' not allowed"),
    ({"webhook.mutatingFailurePolicy": "Sometimes"}, "mutatingFailurePolicy"),
    ({"karvdash.filesURL": "s3://bucket"}, "filesURL"),
    ({"karvdash.dashboardTheme": "dark"}, "dashboardTheme"),
    ({"hub.replicas": 2}, "additional properties 'replicas' not allowed"),
])
def test_schema_refuses_bad_values(tmp_path, values, message):
    proc = helm("template", "kd", str(CHART), "-f", str(value_file(tmp_path, values)), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


@pytest.mark.parametrize("values, message", [
    ({"karvdash.filesURL": ""}, "karvdash.filesURL is required"),
    ({"karvdash.ingressURL": ""}, "karvdash.ingressURL is required"),
    ({"karvdash.stateHostPath": ""}, "set karvdash.stateVolumeClaim"),
    ({"webhook.certManager.enabled": False}, "webhook.tls.secretName is required without cert-manager"),
])
def test_missing_required_values_fail_with_a_clear_message(tmp_path, values, message):
    proc = helm("template", "kd", str(CHART), "-f", str(value_file(tmp_path, values)), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


# --- lint and render ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint(tmp_path, name):
    proc = helm("lint", "--strict", str(CHART), "-f", str(value_file(tmp_path, VALUE_SETS[name])))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_values_file_is_what_the_hub_loads(tmp_path, name):
    objects = render(tmp_path, VALUE_SETS[name])
    settings, raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))
    assert settings.mode == "kubernetes"
    assert settings.stateDir == "/srv/karvdash/state"
    assert settings.ingressURL == "https://example.test"
    assert settings.dashboardURL == "http://kd-karvdash-hub-dashboard.karvdash.svc:8080"
    assert len(settings.dashboardAPIToken) == 64
    hub_config = raw["hub"]["config"]
    assert hub_config["ConfigurableHTTPProxy"] == {"should_start": False, "api_url": "http://kd-karvdash-hub-proxy-api:8001"}
    assert hub_config["JupyterHub"]["hub_connect_url"] == "http://kd-karvdash-hub-hub.karvdash.svc:8081"
    # chart-only keys do not reach the settings (load_settings would refuse them)
    assert not {"stateHostPath", "djangoSecret", "logsHostPath"} & set(raw["karvdash"])

    webhook_settings, webhook_raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-webhook-values"))
    assert webhook_settings.filesURL == settings.filesURL
    assert webhook_settings.allowedHostPathDirs == settings.allowedHostPathDirs
    assert webhook_settings.datasetsAvailable == settings.datasetsAvailable
    assert not {"adminPassword", "dashboardAPIToken", "dockerRegistryURL"} & set(webhook_raw["karvdash"])
    assert "hub" not in webhook_raw


def test_oauth_and_database_reach_the_hub_config(tmp_path):
    objects = render(tmp_path, VALUE_SETS["oauth"])
    settings, raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))
    assert settings.authenticator == "oauth"
    config = raw["hub"]["config"]
    assert config["GenericOAuthenticator"]["client_id"] == "karvdash"
    assert config["JupyterHub"]["db_url"] == "postgresql://hub@db.example.test/hub"
    # and the hub applies them: hubconfig merges hub.config into JupyterHub's config
    path = tmp_path / "hub-values.yaml"
    raw["karvdash"]["stateDir"] = str(tmp_path / "state")
    raw["karvdash"]["filesURL"] = f"file://{tmp_path}/files"
    path.write_text(yaml.safe_dump(raw))
    from karvdash_hub.hubconfig import configure

    c = Config()
    c.JupyterHub.db_url = "sqlite:///from-jupyterhub-config.sqlite"
    import os

    old = os.environ.get("KARVDASH_VALUES")
    os.environ["KARVDASH_VALUES"] = str(path)
    try:
        configure(c)
    finally:
        if old is None:
            del os.environ["KARVDASH_VALUES"]
        else:
            os.environ["KARVDASH_VALUES"] = old
    assert c.GenericOAuthenticator.client_secret == "s3cret"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.hub_bind_url == "http://:8081"
    # jupyterhub_config.py's own setting wins over the values file
    assert c.JupyterHub.db_url == "sqlite:///from-jupyterhub-config.sqlite"


def test_karvdash2_values_are_understood(tmp_path):
    objects = render(tmp_path, VALUE_SETS["karvdash2"])
    settings, raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))
    assert settings.datasetsAvailable is True
    assert settings.allowedHostPathDirs == ["/opt/data", "/scratch"]
    assert raw["hub"]["config"]["JupyterHub"]["log_level"] == "DEBUG"
    assert raw["hub"]["config"]["JupyterHub"]["extra_log_file"] == "/var/log/karvdash/jupyterhub.log"
    secret = find(objects, "Secret", "kd-karvdash-hub-secrets")
    import hashlib

    assert secret["stringData"]["cookie-secret"] == hashlib.sha256(b"x" * 50).hexdigest()
    hub = find(objects, "Deployment", "kd-karvdash-hub-hub")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in hub["containers"][0]["env"]}
    assert env["JPY_COOKIE_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "kd-karvdash-hub-secrets", "key": "cookie-secret"}
    assert hub["containers"][0]["args"] == ["--debug"]
    assert {"name": "logs", "hostPath": {"path": "/var/log/kd", "type": "DirectoryOrCreate"}} in hub["volumes"]
    for flag in ("yes", "true", True):
        objects = render(tmp_path, {"karvdash.datasetsAvailable": flag})
        assert load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))[0].datasetsAvailable
    for flag in ("false", "no", "", False):
        objects = render(tmp_path, {"karvdash.datasetsAvailable": flag})
        assert not load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))[0].datasetsAvailable


def test_files_on_a_node_path(tmp_path):
    objects = render(tmp_path, VALUE_SETS["file"])
    assert not [o for o in objects if o["kind"] in ("PersistentVolume", "PersistentVolumeClaim")]
    for component in ("hub", "dashboard"):
        pod = find(objects, "Deployment", f"kd-karvdash-hub-{component}")["spec"]["template"]["spec"]
        assert {"name": "files", "hostPath": {"path": "/mnt/karvdash/files", "type": "DirectoryOrCreate"}} in pod["volumes"]
        assert {"name": "files", "mountPath": "/mnt/karvdash/files"} in pod["containers"][0]["volumeMounts"]
        assert {"name": "state", "hostPath": {"path": "/mnt/karvdash/state", "type": "DirectoryOrCreate"}} in pod["volumes"]


def test_files_on_nfs(tmp_path):
    objects = render(tmp_path, VALUE_SETS["nfs"])
    pv = find(objects, "PersistentVolume")
    assert pv["metadata"]["name"] == "karvdash-kd-karvdash-hub-files"
    assert pv["spec"]["csi"] == {"driver": "nfs.csi.k8s.io", "volumeHandle": "nfs.example.test#/export/karvdash#",
                                 "volumeAttributes": {"server": "nfs.example.test", "share": "/export/karvdash"}}
    assert pv["spec"]["claimRef"] == {"namespace": "karvdash", "name": "kd-karvdash-hub-files"}
    pvc = find(objects, "PersistentVolumeClaim")
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Pi"
    settings, _ = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))
    assert settings.filesMountPath == "/srv/karvdash/files"
    hub = find(objects, "Deployment", "kd-karvdash-hub-hub")["spec"]["template"]["spec"]
    assert {"name": "files", "persistentVolumeClaim": {"claimName": "kd-karvdash-hub-files"}} in hub["volumes"]
    assert {"name": "files", "mountPath": "/srv/karvdash/files"} in hub["containers"][0]["volumeMounts"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "state"}} in hub["volumes"]


def test_webhook_configurations_only_reach_user_namespaces(tmp_path):
    objects = render(tmp_path, VALUE_SETS["file"], namespace="hubspace")
    mutating = find(objects, "MutatingWebhookConfiguration")
    validating = find(objects, "ValidatingWebhookConfiguration")
    certificate = find(objects, "Certificate")
    for config in (mutating, validating):
        assert config["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": f"hubspace/{certificate['metadata']['name']}"}
        [hook] = config["webhooks"]
        assert hook["namespaceSelector"] == {
            "matchLabels": {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE},
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                                  "values": ["kube-system", "kube-public", "kube-node-lease", "default", "hubspace"]}],
        }
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["clientConfig"]["service"]["name"] == "kd-karvdash-hub-webhook"
        assert "caBundle" not in hook["clientConfig"]
    assert mutating["webhooks"][0]["failurePolicy"] == "Fail"
    assert mutating["webhooks"][0]["clientConfig"]["service"]["path"] == "/mutate"
    assert mutating["webhooks"][0]["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                                 "resources": ["pods"], "scope": "Namespaced"}]
    hook = validating["webhooks"][0]
    assert hook["failurePolicy"] == "Fail"
    assert hook["clientConfig"]["service"]["path"] == "/validate"
    covered = {(group, resource) for rule in hook["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}
    from karvdash_hub.admission import POD_SPEC_PATHS

    plural = {"Pod": "pods", "PodTemplate": "podtemplates", "ReplicationController": "replicationcontrollers"}
    for group, kind in POD_SPEC_PATHS:
        assert (group, plural.get(kind, kind.lower() + "s")) in covered
    # the serving certificate names the Service the configurations call
    assert "kd-karvdash-hub-webhook.hubspace.svc" in certificate["spec"]["dnsNames"]
    webhook = find(objects, "Deployment", "kd-karvdash-hub-webhook")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": certificate["spec"]["secretName"]}} in webhook["volumes"]

    ignore = render(tmp_path, {"webhook.mutatingFailurePolicy": "Ignore"})
    assert find(ignore, "MutatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Ignore"
    assert find(ignore, "ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"


def test_without_cert_manager_the_ca_bundle_is_given(tmp_path):
    objects = render(tmp_path, VALUE_SETS["no-cert-manager"])
    assert not [o for o in objects if o["kind"] in ("Certificate", "Issuer", "NetworkPolicy", "Ingress",
                                                     "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        config = find(objects, kind)
        assert "annotations" not in config["metadata"]
        assert config["webhooks"][0]["clientConfig"]["caBundle"] == \
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
    webhook = find(objects, "Deployment", "kd-karvdash-hub-webhook")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "webhook-tls"}} in webhook["volumes"]


def test_service_accounts_have_least_privilege(tmp_path):
    objects = render(tmp_path, VALUE_SETS["datasets"])
    webhook = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-webhook")
    assert webhook["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
        {"apiGroups": ["com.ie.ibm.hpsys"], "resources": ["datasets"], "verbs": ["list"]},
    ]
    hub = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-hub")
    assert {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
            "resourceNames": ["edit", "admin"]} in hub["rules"]
    for role in [o for o in objects if o["kind"] in ("ClusterRole", "Role")]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
            assert "escalate" not in rule["verbs"] and "impersonate" not in rule["verbs"]
    dashboard = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-dashboard")
    assert not [r for r in dashboard["rules"] if "rbac.authorization.k8s.io" in r["apiGroups"]]
    accounts = {find(objects, "Deployment", f"kd-karvdash-hub-{c}")["spec"]["template"]["spec"].get("serviceAccountName")
                for c in ("hub", "dashboard", "webhook")}
    assert accounts == {"kd-karvdash-hub-hub", "kd-karvdash-hub-dashboard", "kd-karvdash-hub-webhook"}
    proxy = find(objects, "Deployment", "kd-karvdash-hub-proxy")["spec"]["template"]["spec"]
    assert proxy["automountServiceAccountToken"] is False


def test_commands_exist_in_the_project(tmp_path):
    objects = render(tmp_path, VALUE_SETS["file"])
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = {line.split("=")[0].strip() for line in setup["options.entry_points"]["console_scripts"].splitlines()
               if line.strip()}
    commands = {}
    for deployment in [o for o in objects if o["kind"] == "Deployment"]:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        commands[deployment["metadata"]["name"]] = container["command"]
        assert container["image"] == "karvdash-hub:0.1.0"
    assert commands["kd-karvdash-hub-hub"] == ["karvdash-hub"]
    assert commands["kd-karvdash-hub-webhook"] == ["karvdash-webhook"]
    assert {"karvdash-hub", "karvdash-webhook"} <= scripts
    assert commands["kd-karvdash-hub-dashboard"][:3] == ["python3", "-m", "karvdash_dashboard"]
    assert (ROOT / "services" / "dashboard" / "__main__.py").exists()
    assert commands["kd-karvdash-hub-proxy"][0] == "configurable-http-proxy"
    assert "configurable-http-proxy" in json.loads((ROOT / "package.json").read_text())["dependencies"]


def test_every_object_is_named_and_labelled(tmp_path):
    for name, values in VALUE_SETS.items():
        for obj in render(tmp_path, values):
            metadata = obj["metadata"]
            assert len(metadata["name"]) <= 63, metadata["name"]
            assert metadata["labels"]["app.kubernetes.io/instance"] == "kd", (name, obj["kind"])
            assert "namespace" not in metadata  # helm sets it; cluster-scoped objects have none


def test_network_policies(tmp_path):
    objects = render(tmp_path, VALUE_SETS["file"])
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {f"kd-karvdash-hub-{c}" for c in ("hub", "proxy", "dashboard", "webhook")}
    hub = policies["kd-karvdash-hub-hub"]["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE}}} in hub
    api = policies["kd-karvdash-hub-proxy"]["spec"]["ingress"][1]
    assert api["ports"] == [{"port": "api"}]
    assert api["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"


def test_ingress_for_the_ingress_url(tmp_path):
    objects = render(tmp_path, {"karvdash.ingressURL": "https://hub.example.test:8443",
                                "ingress.className": "nginx", "ingress.tls": [{"secretName": "hub-tls"}]})
    ingress = find(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "hub-tls", "hosts": ["hub.example.test"]}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "hub.example.test"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "kd-karvdash-hub-proxy-public",
                                                              "port": {"name": "http"}}


def test_template_crd():
    crd = yaml.safe_load((CHART / "crds" / "template-crd.yaml").read_text())
    assert crd["metadata"]["name"] == "templates.karvdash.io"
    assert (crd["spec"]["group"], crd["spec"]["scope"], crd["spec"]["names"]["kind"]) == ("karvdash.io", "Namespaced", "Template")
    [version] = crd["spec"]["versions"]
    assert version["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] == ["data"]


def test_hub_cluster_role_is_the_documented_one(tmp_path):
    # docs/kubernetes-permissions.md lists (and its tests check) what the hub needs
    text = (ROOT / "docs" / "kubernetes-permissions.md").read_text()
    block = text.split("## The ClusterRole", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    documented = yaml.safe_load(block)["rules"]
    objects = render(tmp_path, VALUE_SETS["file"])
    assert find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-hub")["rules"] == documented
