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
import sys
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from karvdash_hub.core import labels
from karvdash_hub.core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart" / "karvdash-hub"
# a Karvdash 2.x values file, every key of Karvdash's README table
KARVDASH_VALUES = ROOT / "tests" / "values" / "karvdash-2.yaml"
BASE = {
    "karvdash.ingressURL": "https://example.test",
    "karvdash.filesURL": "file:///mnt/karvdash/files",
    "karvdash.stateHostPath": "/mnt/karvdash/state",
}
# value sets the chart must render for: files on a node path, NFS or S3,
# datasets on or off, native accounts or OAuth, cert-manager or not
VALUE_SETS = {
    "file": {},
    "nfs": {"karvdash.filesURL": "nfs://nfs.example.test/export/karvdash", "karvdash.stateVolumeClaim": "state",
            "karvdash.stateHostPath": ""},
    "datasets": {"karvdash.datasetsAvailable": True, "karvdash.datasetsAPIGroup": "com.ie.ibm.hpsys"},
    "s3": {"karvdash.filesURL": "minio://minio.storage.svc:9000/karvdash-files/deploy",
           "karvdash.filesS3AccessKey": "AKID", "karvdash.filesS3SecretKey": "s3cret"},
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
                  "karvdash.djangoSecret": "x" * 50, "karvdash.djangoDebug": "1", "karvdash.logsHostPath": "/var/log/kd"},
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
    from karvdash_hub.core.settings import KarvdashConfig

    settings = set(KarvdashConfig.class_own_traits(config=True))
    # every user-facing setting is a chart value, under the same name
    assert settings - generator.CHART_SET <= set(karvdash["properties"])
    # and every Karvdash 2 value of its README's table (and of its earlier chart)
    karvdash2 = {"stateVolumeClaim", "stateHostPath", "logsVolumeClaim", "logsHostPath", "djangoSecret", "djangoDebug",
                 "adminPassword", "htpasswdExportDir", "dashboardTitle", "dashboardTheme", "issuesURL", "ingressURL",
                 "dockerRegistryURL", "dockerRegistryCert", "datasetsAvailable", "filesURL", "filesSize",
                 "allowedHostPathDirs", "disabledServiceTemplates", "disabledDatasetTemplates", "serviceURLPrefixes",
                 "argoURL", "argoNamespace", "dockerRegistry", "dockerRegistryNoVerify"}
    assert karvdash2 <= set(karvdash["properties"])
    assert set(yaml.safe_load(KARVDASH_VALUES.read_text())["karvdash"]) == karvdash2
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
    ({"networkPolicy.ingressControllers": [{"namespace": "ingress-nginx"}]},
     "additional properties 'namespace' not allowed"),
    ({"ingress.direct.enabled": "yes"}, "direct"),
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
    # what the dashboard needs to know about the deployment
    assert settings.hubNamespace == "karvdash"
    assert settings.serviceAuthURL == \
        "http://kd-karvdash-hub-dashboard.karvdash.svc:8080/services/karvdash/ingress-auth/check"
    assert settings.ingressClassName == "nginx"
    assert settings.appProxyImage == "karvdash-hub:0.1.0"
    # karvdashctl in users' pods: the proxy's Service, not the ingress
    assert settings.karvdashctlURL == "http://kd-karvdash-hub-proxy-public.karvdash.svc:80/services/karvdash/karvdash2/api/"
    assert settings.dashboard_api_url == settings.karvdashctlURL
    hub_config = raw["hub"]["config"]
    assert hub_config["ConfigurableHTTPProxy"] == {"should_start": False, "api_url": "http://kd-karvdash-hub-proxy-api:8001"}
    assert hub_config["JupyterHub"]["hub_connect_url"] == "http://kd-karvdash-hub-hub.karvdash.svc:8081"
    # chart-only keys do not reach the settings (load_settings would refuse them)
    assert not {"stateVolumeClaim", "stateHostPath", "logsVolumeClaim", "logsHostPath"} & set(raw["karvdash"])

    webhook_settings, webhook_raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-webhook-values"))
    assert webhook_settings.filesURL == settings.filesURL
    assert webhook_settings.allowedHostPathDirs == settings.allowedHostPathDirs
    assert webhook_settings.datasetsAvailable == settings.datasetsAvailable
    assert not {"adminPassword", "dashboardAPIToken", "dockerRegistryURL", "djangoSecret"} & set(webhook_raw["karvdash"])
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
    from karvdash_hub.hub.config import configure

    c = Config()
    c.JupyterHub.db_url = f"sqlite:///{tmp_path}/from-jupyterhub-config.sqlite"
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
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path}/from-jupyterhub-config.sqlite"


def warned_keys(settings) -> list[str]:
    """The Karvdash keys the settings' warnings name ("Karvdash value <key> ...")."""
    return [warning.split()[2] for warning in settings.value_warnings]


def test_karvdash2_values_are_understood(tmp_path):
    import hashlib

    objects = render(tmp_path, VALUE_SETS["karvdash2"])
    secret = find(objects, "Secret", "kd-karvdash-hub-secrets")
    settings, raw = load_values_secret(tmp_path, secret)
    assert settings.datasetsAvailable is True
    assert settings.allowedHostPathDirs == ["/opt/data", "/scratch"]
    # Karvdash's names reach the hub as they are, which maps them and says so
    assert (raw["karvdash"]["djangoDebug"], raw["karvdash"]["djangoSecret"]) == ("1", "x" * 50)
    assert settings.debug is True
    # the cookie secret is derived as the chart always did: cookies of earlier installs stay valid
    assert settings.config.JupyterHub.cookie_secret == hashlib.sha256(b"x" * 50).hexdigest()
    assert warned_keys(settings) == ["djangoDebug", "djangoSecret"]
    assert raw["hub"]["config"]["JupyterHub"]["extra_log_file"] == "/var/log/karvdash/jupyterhub.log"
    assert "log_level" not in raw["hub"]["config"]["JupyterHub"]
    webhook_settings, webhook_raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-webhook-values"))
    assert webhook_settings.debug is True and "djangoSecret" not in webhook_raw["karvdash"]
    # one way to each setting: no environment or arguments beside the values file
    for component in ("hub", "dashboard", "webhook"):
        [container] = find(objects, "Deployment", f"kd-karvdash-hub-{component}")["spec"]["template"]["spec"]["containers"]
        assert "args" not in container, component
        assert "JPY_COOKIE_SECRET" not in {e["name"] for e in container["env"]}, component
    assert "cookie-secret" not in secret["stringData"]
    hub = find(objects, "Deployment", "kd-karvdash-hub-hub")["spec"]["template"]["spec"]
    assert {"name": "logs", "hostPath": {"path": "/var/log/kd", "type": "DirectoryOrCreate"}} in hub["volumes"]
    for flag in ("yes", "true", "1", True):
        objects = render(tmp_path, {"karvdash.datasetsAvailable": flag})
        assert load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))[0].datasetsAvailable
    for flag in ("false", "no", "0", "", False):
        objects = render(tmp_path, {"karvdash.datasetsAvailable": flag})
        assert not load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))[0].datasetsAvailable
    # an empty value is the default, also where the schema lists the values
    objects = render(tmp_path, {"karvdash.dashboardTheme": "", "karvdash.dashboardTitle": "", "karvdash.filesSize": ""})
    empty = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))[0]
    assert (empty.dashboardTheme, empty.dashboardTitle, empty.filesSize) == ("evolve", "Karvdash", "1Pi")


def test_a_karvdash_values_file_installs_and_the_hub_reads_it_mapped(tmp_path):
    import hashlib

    proc = helm("lint", "--strict", str(CHART), "-f", str(KARVDASH_VALUES))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    out = helm("template", "kd", str(CHART), "--namespace", "karvdash", "-f", str(KARVDASH_VALUES))
    objects = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    original = yaml.safe_load(KARVDASH_VALUES.read_text())["karvdash"]
    settings, raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))
    effective = {name: getattr(settings, name) for name in (
        "dockerRegistryURL", "dockerRegistryInsecure", "dockerRegistryCert", "debug", "datasetsAvailable",
        "allowedHostPathDirs", "issuesURL", "dashboardTitle", "dashboardTheme", "ingressURL", "filesURL", "filesSize",
        "adminPassword", "disabledServiceTemplates", "disabledDatasetTemplates", "serviceURLPrefixes", "argoURL",
        "argoNamespace", "stateDir")}
    assert effective == {
        "dockerRegistryURL": "https://registry.example.org:5000", "dockerRegistryInsecure": True,
        "dockerRegistryCert": original["dockerRegistryCert"], "debug": True, "datasetsAvailable": True,
        "allowedHostPathDirs": ["/opt/a", "/opt/b"], "issuesURL": "", "dashboardTitle": "Lab Dashboard",
        "dashboardTheme": "CARV", "ingressURL": "https://lab.example.org", "filesURL": "file:///mnt/nfs",
        "filesSize": "1Pi", "adminPassword": "lab-admin-password",
        "disabledServiceTemplates": ["kafka.template.yaml", "neo4j.template.yaml"],
        "disabledDatasetTemplates": ["h3-local", "h3-remote"], "serviceURLPrefixes": ["lab1", "lab2"],
        "argoURL": "https://argo.lab.example.org", "argoNamespace": "argo",
        # the chart mounts the state volume there
        "stateDir": "/srv/karvdash/state",
    }
    assert settings.config.JupyterHub.cookie_secret == hashlib.sha256(original["djangoSecret"].encode()).hexdigest()
    # the keys of the chart's volumes are the chart's, so only the hub's own are warned about
    assert warned_keys(settings) == ["djangoDebug", "djangoSecret", "dockerRegistry", "dockerRegistryNoVerify",
                                     "htpasswdExportDir"]
    webhook, webhook_raw = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-webhook-values"))
    assert warned_keys(webhook) == ["djangoDebug", "htpasswdExportDir"]
    assert not {"djangoSecret", "dockerRegistry", "dockerRegistryNoVerify", "dockerRegistryCert"} & set(webhook_raw["karvdash"])
    assert webhook.allowedHostPathDirs == settings.allowedHostPathDirs
    # the volumes: a volume claim wins over a host path, as in Karvdash
    hub = find(objects, "Deployment", "kd-karvdash-hub-hub")["spec"]["template"]["spec"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "karvdash-state"}} in hub["volumes"]
    assert {"name": "logs", "persistentVolumeClaim": {"claimName": "karvdash-logs"}} in hub["volumes"]
    assert raw["hub"]["config"]["JupyterHub"]["extra_log_file"] == "/var/log/karvdash/jupyterhub.log"
    # Karvdash's own image cannot run karvdash-hub: every container runs the chart's
    images = {c["image"] for o in objects if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {"karvdash-hub:0.1.0"} and settings.appProxyImage == "karvdash-hub:0.1.0"
    assert find(objects, "Deployment", "kd-karvdash-hub-hub")["spec"]["template"]["spec"]["containers"][0][
        "imagePullPolicy"] == "IfNotPresent"
    # the policy the API server enforces has the folders as a list
    variables = policy_variables(find(objects, "ValidatingAdmissionPolicy", "karvdash-kd-karvdash-hub-tenant-pods"))
    assert variables["allowedHostPathDirs"] == '["/opt/a","/opt/b"]'
    # an image of another repository is used as it is
    other = render(tmp_path, {"image": "registry.example.test/carvicsforth/karvdash-hub:1.0"})
    assert find(other, "Deployment", "kd-karvdash-hub-hub")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.test/carvicsforth/karvdash-hub:1.0"


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


def test_files_on_s3(tmp_path):
    objects = render(tmp_path, VALUE_SETS["s3"])
    assert [o for o in objects if o["kind"] in ("PersistentVolume", "PersistentVolumeClaim")] == []
    settings, _ = load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))
    assert (settings.filesURL, settings.filesS3AccessKey, settings.files_s3_secret_key) == (
        "minio://minio.storage.svc:9000/karvdash-files/deploy", "AKID", "s3cret")
    # the files are in the bucket: hub and dashboard only stage uploads on a folder of their pod
    assert settings.filesMountPath == "/srv/karvdash/files"
    for component in ("hub", "dashboard"):
        spec = find(objects, "Deployment", f"kd-karvdash-hub-{component}")["spec"]["template"]["spec"]
        assert {"name": "files", "emptyDir": {}} in spec["volumes"]
    # no host path of the files is opened by the tenant policy
    policy = policy_variables(find(objects, "ValidatingAdmissionPolicy", "karvdash-kd-karvdash-hub-tenant-pods"))
    assert policy["filesRoot"] == '""'
    refused = helm("template", "kd", str(CHART), "-f",
                   str(value_file(tmp_path, {"karvdash.filesURL": "minio:///bucket"})), check=False)
    assert refused.returncode != 0 and "an S3 URL needs a server" in refused.stderr


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
    from karvdash_hub.admission.rules import POD_SPEC_PATHS

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
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["com.ie.ibm.hpsys"], "resources": ["datasets"], "verbs": ["list", "watch"]},
    ]
    hub = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-hub")
    assert {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
            "resourceNames": ["edit", "admin"]} in hub["rules"]
    for role in [o for o in objects if o["kind"] in ("ClusterRole", "Role")]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule.get("resources", []), role["metadata"]["name"]
            assert "*" not in rule.get("nonResourceURLs", []), role["metadata"]["name"]
            assert "escalate" not in rule["verbs"] and "impersonate" not in rule["verbs"]
    dashboard = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-dashboard")
    granted = permissions(dashboard["rules"])
    # roles of users' namespaces only: nothing cluster-wide, no way to widen anyone's rights
    for resource in ("clusterroles", "clusterrolebindings", "namespaces", "nodes", "persistentvolumes",
                     "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
                     "customresourcedefinitions", "resourcequotas", "limitranges"):
        assert not [p for p in granted if p[1] == resource], resource
    assert not [p for p in granted if p[2] in ("escalate", "bind", "impersonate")]
    assert not [r for r in objects if r["kind"] == "Role"]
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
    assert commands["kd-karvdash-hub-dashboard"][:3] == ["python3", "-m", "karvdash_hub.dashboard"]
    assert (ROOT / "karvdash_hub" / "dashboard" / "__main__.py").exists()
    # the proxy runs through the wrapper the image holds at its editable install's path
    assert commands["kd-karvdash-hub-proxy"][:2] == ["node", "/opt/karvdash-hub/karvdash_hub/hub/chp-wrapper.mjs"]
    assert (ROOT / "karvdash_hub" / "hub" / "chp-wrapper.mjs").exists()
    assert "COPY karvdash_hub karvdash_hub" in (ROOT / "Dockerfile").read_text()
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
    # the ingress controller (any namespace, maybe hostNetwork) asks the dashboard's ingress-auth check
    assert policies["kd-karvdash-hub-dashboard"]["spec"]["ingress"] == [{"ports": [{"port": "http"}]}]
    hub = policies["kd-karvdash-hub-hub"]["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {labels.NAMESPACE_LABEL: labels.NAMESPACE_LABEL_VALUE}}} in hub
    api = policies["kd-karvdash-hub-proxy"]["spec"]["ingress"][1]
    assert api["ports"] == [{"port": "api"}]
    assert api["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hub"


def test_ingress_for_the_ingress_url(tmp_path):
    objects = render(tmp_path, {"karvdash.ingressURL": "https://hub.example.test:8443",
                                "ingress.className": "nginx", "ingress.tls": [{"secretName": "hub-tls"}]})
    ingress = find(objects, "Ingress", "kd-karvdash-hub")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "hub-tls", "hosts": ["hub.example.test"]}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "hub.example.test"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix", "backend": {"service": {
        "name": "kd-karvdash-hub-proxy-public", "port": {"name": "http"}}}}]
    # a notebook save and JupyterLab's 1 MiB upload chunks (base64 JSON) are over ingress-nginx's 1 MiB
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-body-size": "256m"}


def test_the_proxy_ingress_takes_the_chart_wide_annotations_under_its_own(tmp_path):
    objects = render(tmp_path, {"ingress.annotations": {"example.test/team": "lab",
                                                        "nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
                                "ingress.proxy.annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1g"}})
    assert find(objects, "Ingress", "kd-karvdash-hub")["metadata"]["annotations"] == {
        "example.test/team": "lab", "nginx.ingress.kubernetes.io/proxy-body-size": "1g"}


def dashboard_backend() -> dict:
    return {"service": {"name": "kd-karvdash-hub-dashboard", "port": {"name": "http"}}}


def test_bulk_transfers_go_straight_to_the_dashboard(tmp_path):
    objects = render(tmp_path, {"karvdash.ingressURL": "https://hub.example.test:8443",
                                "ingress.className": "nginx", "ingress.tls": [{"secretName": "hub-tls"}],
                                "ingress.annotations": {"example.test/team": "lab",
                                                        "nginx.ingress.kubernetes.io/proxy-read-timeout": "60"}})
    direct = find(objects, "Ingress", "kd-karvdash-hub-dashboard")
    assert direct["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboard"
    # its own annotations win over the chart-wide ones, which it carries too
    assert direct["metadata"]["annotations"] == {
        "example.test/team": "lab",
        "nginx.ingress.kubernetes.io/proxy-body-size": "256m",
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-buffer-size": "4m",
        "nginx.ingress.kubernetes.io/client-body-buffer-size": "1m",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "600",
    }
    assert direct["spec"] == {
        "ingressClassName": "nginx",
        "tls": [{"secretName": "hub-tls", "hosts": ["hub.example.test"]}],
        "rules": [{"host": "hub.example.test", "http": {"paths": [
            {"path": "/services/karvdash/api/download", "pathType": "Prefix", "backend": dashboard_backend()},
            {"path": "/services/karvdash/api/download-zip", "pathType": "Prefix", "backend": dashboard_backend()},
            {"path": "/services/karvdash/api/uploads", "pathType": "Prefix", "backend": dashboard_backend()},
        ]}}],
    }
    # the paths are the dashboard's own routes under the prefix the hub gives it
    container = find(objects, "Deployment", "kd-karvdash-hub-dashboard")["spec"]["template"]["spec"]["containers"][0]
    prefix = {e["name"]: e.get("value") for e in container["env"]}["JUPYTERHUB_SERVICE_PREFIX"]
    from karvdash_hub.dashboard import transferpages

    routes = [pattern for pattern, _ in transferpages.handlers(None)]
    for path in direct["spec"]["rules"][0]["http"]["paths"]:
        assert path["path"].startswith(prefix)
        element = path["path"][len(prefix):]
        assert [r for r in routes if r == element or r.startswith(element + "/")], (element, routes)
    for route in routes:
        assert any(route.startswith(p["path"][len(prefix):] + "/") for p in direct["spec"]["rules"][0]["http"]["paths"])
    # the Service's port named http is the dashboard's
    service = find(objects, "Service", "kd-karvdash-hub-dashboard")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]


def test_bulk_transfers_through_the_proxy_when_told(tmp_path):
    objects = render(tmp_path, {"ingress.direct.enabled": False})
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Ingress"] == ["kd-karvdash-hub"]
    assert not [o for o in render(tmp_path, {"ingress.enabled": False}) if o["kind"] == "Ingress"]
    plain = find(render(tmp_path, {}), "Ingress", "kd-karvdash-hub-dashboard")
    assert "ingressClassName" not in plain["spec"] and "tls" not in plain["spec"]


def test_the_dashboard_port_only_from_the_ingress_controller_when_named(tmp_path):
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}
    objects = render(tmp_path, {"networkPolicy.ingressControllers": [controller]})
    policy = find(objects, "NetworkPolicy", "kd-karvdash-hub-dashboard")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [{
        "ports": [{"port": "http"}],
        "from": [
            {"podSelector": {"matchExpressions": [
                {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["kd"]},
                {"key": "app.kubernetes.io/component", "operator": "In", "values": ["proxy", "hub"]},
            ]}},
            controller,
        ],
    }]
    # the proxy keeps its public port open and its API for the hub
    proxy = find(objects, "NetworkPolicy", "kd-karvdash-hub-proxy")["spec"]["ingress"]
    assert proxy[0] == {"ports": [{"port": "http"}]}


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


# --- the dashboard's permissions and wiring ------------------------------------------------


def permissions(rules: list[dict]) -> set[tuple[str, str, str]]:
    """Every (API group, resource, verb) a list of RBAC rules grants; non-resource URLs as ("url", path, verb)."""
    granted = set()
    for rule in rules:
        for verb in rule["verbs"]:
            granted |= {("url", url, verb) for url in rule.get("nonResourceURLs", [])}
            granted |= {(group, resource, verb) for group in rule.get("apiGroups", []) for resource in rule.get("resources", [])}
    return granted


def documented_dashboard_rules() -> list[dict]:
    text = (ROOT / "docs" / "kubernetes-permissions.md").read_text()
    block = text.split("### The dashboard's rules", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return yaml.safe_load(block)["rules"]


def test_dashboard_cluster_role_is_the_documented_one(tmp_path):
    objects = render(tmp_path, VALUE_SETS["file"])
    role = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-dashboard")
    assert role["rules"] == documented_dashboard_rules()
    binding = find(objects, "ClusterRoleBinding", "karvdash-kd-karvdash-hub-dashboard")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kd-karvdash-hub-dashboard", "namespace": "karvdash"}]
    # datasets of both Datashim API groups, whatever datasetsAPIGroup says
    for values in (VALUE_SETS["datasets"], {"karvdash.datasetsAPIGroup": "datashim.io"}):
        granted = permissions(find(render(tmp_path, values), "ClusterRole", role["metadata"]["name"])["rules"])
        assert {("datashim.io", "datasets", "create"), ("com.ie.ibm.hpsys", "datasets", "create")} <= granted


def test_dashboard_holds_what_the_shipped_templates_roles_grant(tmp_path):
    # Kubernetes lets the dashboard create a Role only if it holds the Role's
    # permissions (it has no escalate): each shipped template's Roles must be covered
    from karvdash_hub.services.catalogue import file_catalogue

    catalogue, problems = file_catalogue(ROOT / "service_templates", tmp_path / "no-admin-templates")
    assert problems == []
    roles = [o for template in catalogue.values() for o in template.objects if o["kind"] == "Role"]
    assert {o["metadata"]["name"] for o in roles} == {"$NAME-controller", "$NAME-server", "$NAME-workflow",
                                                      "$NAME-prometheus", "$NAME"}
    granted = permissions(find(render(tmp_path, VALUE_SETS["file"]), "ClusterRole",
                               "karvdash-kd-karvdash-hub-dashboard")["rules"])
    for role in roles:
        missing = permissions(role["rules"]) - granted
        assert not missing, (role["metadata"]["name"], sorted(missing))
    # and every kind a shipped template is made of can be applied, listed and deleted
    plural = {"Ingress": "ingresses"}
    for template in catalogue.values():
        for obj in template.objects:
            group = obj["apiVersion"].rpartition("/")[0]
            resource = plural.get(obj["kind"], obj["kind"].lower() + "s")
            for verb in ("get", "list", "create", "patch", "delete"):
                assert (group, resource, verb) in granted, (template.id, obj["kind"], verb)


def test_dashboard_extra_rules(tmp_path):
    extra = [{"apiGroups": ["sparkoperator.k8s.io"], "resources": ["sparkapplications"],
              "verbs": ["get", "list", "create", "patch", "delete"]}]
    objects = render(tmp_path, {"dashboard.extraRules": extra})
    rules = find(objects, "ClusterRole", "karvdash-kd-karvdash-hub-dashboard")["rules"]
    assert rules == documented_dashboard_rules() + extra
    for bad, message in [([{"apiGroups": [""], "resources": ["pods"]}], "verbs"),
                         ([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "namespace": "x"}],
                          "additional properties 'namespace' not allowed"),
                         ([{"verbs": ["get"]}], "extraRules")]:
        proc = helm("template", "kd", str(CHART), "-f", str(value_file(tmp_path, {"dashboard.extraRules": bad})),
                    check=False)
        assert proc.returncode != 0 and message in proc.stderr, (bad, proc.stderr)


def test_settings_the_chart_fills_in_and_their_overrides(tmp_path):
    def settings_for(values):
        return load_values_secret(tmp_path, find(render(tmp_path, values), "Secret", "kd-karvdash-hub-secrets"))[0]

    # services use the ingress class of the hub's own Ingress, unless told otherwise
    assert settings_for({"ingress.className": "traefik"}).ingressClassName == "traefik"
    assert settings_for({"ingress.className": "traefik", "karvdash.ingressClassName": "nginx"}).ingressClassName == "nginx"
    assert settings_for({"ingress.className": "traefik", "karvdash.ingressClassName": ""}).ingressClassName == ""
    # the app sidecar is the chart's own image (it runs jupyter-standaloneproxy)
    assert settings_for({"image": "registry.example.test/kd:1.2"}).appProxyImage == "registry.example.test/kd:1.2"
    assert settings_for({"image": "registry.example.test/kd:1.2", "hub.image": "registry.example.test/hub:3"}
                        ).appProxyImage == "registry.example.test/hub:3"
    assert settings_for({"karvdash.appProxyImage": "proxy:9"}).appProxyImage == "proxy:9"
    explicit = settings_for({"karvdash.hubNamespace": "elsewhere", "karvdash.serviceAuthURL": "https://auth.example.test/check"})
    assert (explicit.hubNamespace, explicit.serviceAuthURL) == ("elsewhere", "https://auth.example.test/check")
    assert settings_for({"karvdash.karvdashctlURL": "https://example.test/services/karvdash/api/",
                         "proxy.service.port": 8000}).karvdashctlURL == "https://example.test/services/karvdash/api/"
    assert settings_for({"proxy.service.port": 8000}).karvdashctlURL == \
        "http://kd-karvdash-hub-proxy-public.karvdash.svc:8000/services/karvdash/karvdash2/api/"
    # another namespace, another default
    objects = render(tmp_path, {}, namespace="lab")
    assert load_values_secret(tmp_path, find(objects, "Secret", "kd-karvdash-hub-secrets"))[0].hubNamespace == "lab"
    # an empty Karvdash 2 htpasswdExportDir is no value at all
    assert settings_for({"karvdash.htpasswdExportDir": ""}).mode == "kubernetes"


def resolved_env(container: dict, secret: dict) -> dict[str, str]:
    """A container's environment with the chart's Secret references filled in."""
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[entry["name"]] = secret["stringData"][ref["key"]]
    return env


def test_the_dashboard_is_the_hubs_external_service(tmp_path, monkeypatch):
    objects = render(tmp_path, VALUE_SETS["file"])
    secret = find(objects, "Secret", "kd-karvdash-hub-secrets")
    settings, raw = load_values_secret(tmp_path, secret)
    # the hub registers the dashboard by URL with the shared token, and does not start it
    raw["karvdash"].update(stateDir=str(tmp_path / "state"), filesURL=f"file://{tmp_path}/files")
    path = tmp_path / "hub-values.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("KARVDASH_VALUES", str(path))
    from karvdash_hub.hub.config import configure

    c = Config()
    configure(c)
    [service] = [s for s in c.JupyterHub.services if s["name"] == "karvdash"]
    assert service["url"] == "http://kd-karvdash-hub-dashboard.karvdash.svc:8080"
    assert service["api_token"] == secret["stringData"]["dashboard-token"] == settings.dashboardAPIToken
    assert "command" not in service

    # the dashboard's container: its command-line and the environment the hub gives its own services
    dashboard = find(objects, "Deployment", "kd-karvdash-hub-dashboard")["spec"]["template"]["spec"]
    [container] = dashboard["containers"]
    assert container["command"] == ["python3", "-m", "karvdash_hub.dashboard", "--ip", "0.0.0.0", "--port", "8080"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    service_port = find(objects, "Service", "kd-karvdash-hub-dashboard")["spec"]["ports"]
    assert service_port == [{"name": "http", "port": 8080, "targetPort": "http"}]
    env = resolved_env(container, secret)
    assert env["KARVDASH_VALUES"] == "/etc/karvdash-hub/values.yaml"
    assert {"name": "values", "mountPath": "/etc/karvdash-hub", "readOnly": True} in container["volumeMounts"]
    assert env["JUPYTERHUB_API_TOKEN"] == service["api_token"]
    assert env["JUPYTERHUB_API_URL"] == "http://kd-karvdash-hub-hub:8081/hub/api"
    assert find(objects, "Service", "kd-karvdash-hub-hub")["spec"]["ports"][0]["port"] == 8081
    assert env["JUPYTERHUB_SERVICE_NAME"] == service["name"]
    # JupyterHub's OAuth client of a service is service-<name>, its redirect <prefix>oauth_callback
    assert env["JUPYTERHUB_CLIENT_ID"] == "service-karvdash"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/karvdash/"
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == env["JUPYTERHUB_SERVICE_PREFIX"] + "oauth_callback"
    assert json.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == ["access:services!service=karvdash"]
    from karvdash_hub.dashboard.context import HubEnvironment

    hub = HubEnvironment.from_environ(env)
    assert (hub.service_prefix, hub.api_url, hub.base_url) == ("/services/karvdash/", env["JUPYTERHUB_API_URL"], "/")
    # the options the chart passes are the dashboard's own
    help_text = subprocess.run([sys.executable, "-m", "karvdash_hub.dashboard", "--help"], capture_output=True,
                               text=True, timeout=60, check=True).stdout
    assert "--ip IP" in help_text and "--port PORT" in help_text and "--debug" in help_text


# --- the tenant policy (templates/admission/) ----------------------------------------------


def policy_variables(policy: dict) -> dict[str, str]:
    return {v["name"]: v["expression"] for v in policy["spec"]["variables"]}


def test_tenant_policies_check_creates_and_updates_of_every_pod_shape(tmp_path):
    objects = render(tmp_path, VALUE_SETS["file"], namespace="hubspace")
    pods = find(objects, "ValidatingAdmissionPolicy", "hubspace-kd-karvdash-hub-tenant-pods")
    services = find(objects, "ValidatingAdmissionPolicy", "hubspace-kd-karvdash-hub-tenant-services")
    webhook = find(objects, "ValidatingWebhookConfiguration")["webhooks"][0]
    for policy in (pods, services):
        spec = policy["spec"]
        # the API server itself decides: no webhook, and an error refuses
        assert spec["failurePolicy"] == "Fail"
        # the same namespaces as the webhook: user namespaces, never the system ones or the chart's
        assert spec["matchConstraints"]["namespaceSelector"] == webhook["namespaceSelector"]
        for rule in spec["matchConstraints"]["resourceRules"]:
            assert rule["operations"] == ["CREATE", "UPDATE"], rule
            assert rule["scope"] == "Namespaced"
        binding = find(objects, "ValidatingAdmissionPolicyBinding", policy["metadata"]["name"])
        assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
        assert all(v["reason"] == "Forbidden" for v in spec["validations"])
    covered = {(group, resource) for rule in pods["spec"]["matchConstraints"]["resourceRules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    from karvdash_hub.admission.rules import POD_SPEC_PATHS

    plural = {"Pod": "pods", "PodTemplate": "podtemplates", "ReplicationController": "replicationcontrollers"}
    assert covered == {(group, plural.get(kind, kind.lower() + "s")) for group, kind in POD_SPEC_PATHS} | {
        ("", "pods/ephemeralcontainers")}
    assert services["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["services"],
         "scope": "Namespaced"}]
    # one validation per baseline rule and per rule of ours
    fields = " ".join(v.get("message", v.get("messageExpression")) for v in pods["spec"]["validations"])
    for words in ("hostNetwork", "hostPID", "hostIPC", "privileged", "capabilities", "hostPort", "nodeName",
                  "priority class", "host paths", "hostProcess", "procMount", "seccomp", "AppArmor", "SELinux",
                  "sysctls"):
        assert words in fields, words


def test_tenant_policies_carry_the_settings(tmp_path):
    variables = policy_variables(find(render(tmp_path, VALUE_SETS["file"]), "ValidatingAdmissionPolicy",
                                      "karvdash-kd-karvdash-hub-tenant-pods"))
    assert (variables["filesRoot"], variables["allowedHostPathDirs"], variables["allowedPriorityClasses"]) == (
        '"/mnt/karvdash/files"', "[]", "[]")
    # Karvdash 2's "a:b" host paths, written with trailing slashes
    objects = render(tmp_path, {**VALUE_SETS["karvdash2"], "karvdash.allowedHostPathDirs": "/opt/data/:/scratch",
                                "karvdash.filesURL": "file:///mnt/karvdash/files/",
                                "karvdash.allowedPriorityClasses": ["research", "low"],
                                "karvdash.allowedServiceTypes": ["LoadBalancer"],
                                "karvdash.allowServiceExternalIPs": True})
    variables = policy_variables(find(objects, "ValidatingAdmissionPolicy", "karvdash-kd-karvdash-hub-tenant-pods"))
    assert (variables["filesRoot"], variables["allowedHostPathDirs"], variables["allowedPriorityClasses"]) == (
        '"/mnt/karvdash/files"', '["/opt/data","/scratch"]', '["research","low"]')
    services = find(objects, "ValidatingAdmissionPolicy", "karvdash-kd-karvdash-hub-tenant-services")
    assert policy_variables(services)["allowedTypes"] == '["LoadBalancer"]'
    assert services["spec"]["validations"][1]["expression"].startswith("true ||")
    default = find(render(tmp_path, VALUE_SETS["file"]), "ValidatingAdmissionPolicy",
                   "karvdash-kd-karvdash-hub-tenant-services")["spec"]
    assert default["validations"][1]["expression"].startswith("false ||")
    # with NFS file domains no host path reaches the files: only allowedHostPathDirs count
    nfs = policy_variables(find(render(tmp_path, VALUE_SETS["nfs"]), "ValidatingAdmissionPolicy",
                                "karvdash-kd-karvdash-hub-tenant-pods"))
    assert nfs["filesRoot"] == '""'


def test_the_hub_may_write_the_network_policies_of_user_namespaces(tmp_path):
    hub = find(render(tmp_path, VALUE_SETS["file"]), "ClusterRole", "karvdash-kd-karvdash-hub-hub")
    assert {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
            "verbs": ["get", "create", "update"]} in hub["rules"]


@pytest.mark.parametrize(
    "component, path",
    [("hub", "/hub/health"), ("webhook", "/healthz"), ("dashboard", "/services/karvdash/health")],
)
def test_slow_starts_are_not_killed_by_the_liveness_probe(tmp_path, component, path):
    pod = find(render(tmp_path, VALUE_SETS["file"]), "Deployment", f"kd-karvdash-hub-{component}")["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if "livenessProbe" in c]
    startup = container["startupProbe"]
    # the liveness probe counts only once the startup probe has passed: 150 s to start
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 150
    assert startup["httpGet"]["path"] == container["livenessProbe"]["httpGet"]["path"] == path
