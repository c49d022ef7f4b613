"""The webhook's HTTPS server on 127.0.0.1 with real AdmissionReview JSON.

The cluster lookups (namespace owner, datasets) are answered by a table here;
tests/integration/test_webhook_kube.py runs the same server against a real
kube-apiserver.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import ssl
from pathlib import Path

import jsonpatch
import pytest
from tornado import httpserver, netutil
from tornado.httpclient import AsyncHTTPClient
from traitlets.config import Config

from karvdash_hub.core.settings import SettingsError, load_settings
from karvdash_hub.webhook import server as webhook_server
from karvdash_hub.webhook.clusterlookup import ClusterUnavailable
from karvdash_hub.webhook.reviews import Reviewer
from karvdash_hub.webhook.server import ServingCertificate, check_tls_settings, make_app
from tests.kube.pki import CertificateAuthority
from tests.unit.test_admission import WORKLOADS, review, with_volumes


class TableLookup:
    """Owners and datasets from dicts; counts calls; can play an unreachable API."""

    def __init__(self, owners=None, datasets=None, down=False):
        self.owners = owners or {}
        self.dataset_names = datasets or {}
        self.down = down
        self.calls: list[tuple[str, str]] = []

    async def owner(self, namespace):
        self.calls.append(("owner", namespace))
        if self.down:
            raise ClusterUnavailable(f"cannot read namespace {namespace}: 500 Internal Server Error")
        return self.owners.get(namespace)

    async def datasets(self, namespace):
        self.calls.append(("datasets", namespace))
        if self.down:
            raise ClusterUnavailable(f"cannot list datasets in {namespace}: timed out")
        return self.dataset_names.get(namespace, [])


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority("webhook unit test CA")
    cert, key = ca.issue("webhook", ip_addresses=("127.0.0.1",), server=True).write(directory, "webhook")
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    return {"ca": ca, "cert": cert, "key": key, "ca_file": ca_file, "dir": directory}


def make_settings(**values):
    base = {"filesURL": "file:///data/karvdash", "allowedHostPathDirs": ["/opt/datasets"], "datasetsAvailable": True}
    return load_settings(config=Config({"KarvdashConfig": {**base, **values}}), environ={})


class Webhook:
    def __init__(self, url: str, lookup: TableLookup, ca_file: Path):
        self.url, self.lookup, self.ca_file = url, lookup, ca_file

    async def post(self, path: str, body, raw: bool = False):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await AsyncHTTPClient().fetch(
            self.url + path, method="POST", body=payload, ca_certs=str(self.ca_file),
            headers={"Content-Type": "application/json"}, raise_error=False)
        return response.code, json.loads(response.body) if response.body else None

    async def review(self, path: str, body) -> dict:
        code, answer = await self.post(path, body)
        assert code == 200, answer
        assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == body["request"]["uid"]
        return answer["response"]


@pytest.fixture
async def webhook(tls):
    servers = []

    async def start(lookup=None, **values):
        lookup = lookup or TableLookup(owners={"karvdash-alice": "alice"}, datasets={"karvdash-alice": ["mnist"]})
        reviewer = Reviewer(make_settings(**values), lookup)
        certificate = ServingCertificate(str(tls["cert"]), str(tls["key"]))
        server = httpserver.HTTPServer(make_app(reviewer.mutate, reviewer.validate), ssl_options=certificate.context)
        [sock] = netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets([sock])
        servers.append(server)
        return Webhook(f"https://127.0.0.1:{sock.getsockname()[1]}", lookup, tls["ca_file"])

    yield start
    for server in servers:
        server.stop()
        await server.close_all_connections()


def patch_of(response: dict) -> list[dict]:
    assert response["patchType"] == "JSONPatch"
    return json.loads(base64.b64decode(response["patch"]))


async def test_health(webhook, tls):
    hook = await webhook()
    response = await AsyncHTTPClient().fetch(hook.url + "/healthz", ca_certs=str(tls["ca_file"]))
    assert response.code == 200
    assert json.loads(response.body) == {"status": "ok", "version": "0.1.0"}


async def test_mutate_adds_file_domains_api_settings_and_datasets(webhook):
    hook = await webhook()
    body = review("pod")
    response = await hook.review("/mutate", body)
    assert response["allowed"] is True
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(response))
    assert pod["spec"]["volumes"][1:] == [
        {"name": "karvdash-private", "hostPath": {"path": "/data/karvdash/private/alice", "type": "DirectoryOrCreate"}},
        {"name": "karvdash-shared", "hostPath": {"path": "/data/karvdash/shared", "type": "DirectoryOrCreate"}},
        {"name": "karvdash-api", "secret": {"secretName": "karvdash-api", "optional": True}},
        {"name": "dataset-mnist", "persistentVolumeClaim": {"claimName": "mnist"}},
    ]
    for container in pod["spec"]["containers"]:
        assert [m["mountPath"] for m in container["volumeMounts"]][-4:] == [
            "/private", "/shared", "/var/lib/karvdash", "/mnt/datasets/mnist"]
    assert pod["spec"]["initContainers"] == body["request"]["object"]["spec"]["initContainers"]
    assert hook.lookup.calls == [("owner", "karvdash-alice"), ("datasets", "karvdash-alice")]

    # idempotent: the patched pod comes back unchanged
    again = copy.deepcopy(body)
    again["request"]["object"] = pod
    second = await hook.review("/mutate", again)
    assert second == {"uid": body["request"]["uid"], "allowed": True}


async def test_mutate_adds_the_registry_pull_secret_when_the_registry_has_credentials(webhook):
    hook = await webhook(dockerRegistryURL="https://puller:s3cret@registry.example.test")
    body = review("pod")
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(await hook.review("/mutate", body)))
    assert pod["spec"]["imagePullSecrets"] == [{"name": "karvdash-registry"}]

    # a pod's own secrets are kept, ours added once
    body = review("pod")
    body["request"]["object"]["spec"]["imagePullSecrets"] = [{"name": "theirs"}]
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(await hook.review("/mutate", body)))
    assert pod["spec"]["imagePullSecrets"] == [{"name": "theirs"}, {"name": "karvdash-registry"}]
    again = copy.deepcopy(body)
    again["request"]["object"] = pod
    assert await hook.review("/mutate", again) == {"uid": body["request"]["uid"], "allowed": True}

    # a namespace without an owner is not one the hub wrote the Secret into
    ownerless = await webhook(TableLookup(owners={}, datasets={}),
                              dockerRegistryURL="https://puller:s3cret@registry.example.test")
    response = await ownerless.review("/mutate", review("pod"))
    assert "imagePullSecrets" not in json.dumps(response.get("patch") and patch_of(response))

    body = review("pod")
    body["request"]["object"]["spec"]["imagePullSecrets"] = "nope"
    assert "spec.imagePullSecrets is not a list of objects" in json.dumps(await hook.review("/mutate", body))


async def test_mutate_adds_no_pull_secret_for_a_registry_without_credentials(webhook):
    for values in ({}, {"dockerRegistryURL": "https://registry.example.test"}):
        hook = await webhook(**values)
        body = review("pod")
        pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(await hook.review("/mutate", body)))
        assert "imagePullSecrets" not in pod["spec"], values


async def test_mutate_honours_the_datasets_opt_out_and_the_setting(webhook):
    hook = await webhook()
    body = review("pod")
    body["request"]["object"]["metadata"]["labels"]["karvdash.io/datasets"] = "false"
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(await hook.review("/mutate", body)))
    assert [v["name"] for v in pod["spec"]["volumes"]] == [
        "kube-api-access-7xk2p", "karvdash-private", "karvdash-shared", "karvdash-api"]
    assert ("datasets", "karvdash-alice") not in hook.lookup.calls

    no_datasets = await webhook(datasetsAvailable=False)
    body = review("pod")
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(await no_datasets.review("/mutate", body)))
    assert "dataset-mnist" not in [v["name"] for v in pod["spec"]["volumes"]]
    assert no_datasets.lookup.calls == [("owner", "karvdash-alice")]


async def test_mutate_without_an_owner_adds_no_file_domains_and_warns(webhook):
    hook = await webhook(lookup=TableLookup())
    body = review("pod")
    response = await hook.review("/mutate", body)
    assert response["allowed"] is True
    assert response["warnings"] == [
        "namespace karvdash-alice has no karvdash.io/owner label: no file domains were added"]
    pod = jsonpatch.apply_patch(body["request"]["object"], patch_of(response))
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["kube-api-access-7xk2p", "karvdash-api"]


async def test_mutate_leaves_workloads_and_updates_alone(webhook):
    hook = await webhook()
    for kind in WORKLOADS:
        body = review(kind)
        assert await hook.review("/mutate", body) == {"uid": body["request"]["uid"], "allowed": True}
    update = review("pod")
    update["request"]["operation"] = "UPDATE"
    assert await hook.review("/mutate", update) == {"uid": update["request"]["uid"], "allowed": True}
    assert hook.lookup.calls == []


async def test_mutate_when_the_api_is_down(webhook):
    hook = await webhook(lookup=TableLookup(down=True))
    body = review("pod")
    response = await hook.review("/mutate", body)
    assert response == {"uid": body["request"]["uid"], "allowed": False, "status": {
        "code": 503,
        "message": "karvdash webhook: cannot read namespace karvdash-alice: 500 Internal Server Error; try again"}}


@pytest.mark.parametrize("kind", ["pod", *WORKLOADS])
async def test_validate_refuses_forbidden_host_paths(webhook, kind):
    hook = await webhook()
    body = with_volumes(kind, [{"name": "root", "hostPath": {"path": "/"}},
                               {"name": "mine", "hostPath": {"path": "/data/karvdash/private/alice"}}])
    response = await hook.review("/validate", body)
    kind_name = body["request"]["kind"]["kind"]
    where = {"pod": "", "cronjob": " (in spec.jobTemplate.spec.template)"}.get(kind, " (in spec.template)")
    assert response == {"uid": body["request"]["uid"], "allowed": False, "status": {
        "code": 403,
        "message": f"karvdash: volume 'root' of {kind_name} web{where} mounts host path /, which reaches into the "
                   "files folder /data/karvdash outside your folders (/data/karvdash/private/alice, "
                   "/data/karvdash/shared)"}}


@pytest.mark.parametrize("kind", ["pod", *WORKLOADS])
async def test_validate_allows_own_folders(webhook, kind):
    hook = await webhook()
    body = with_volumes(kind, [{"name": "mine", "hostPath": {"path": "/data/karvdash/private/alice/"}},
                               {"name": "data", "hostPath": {"path": "/opt/datasets/mnist"}}])
    assert await hook.review("/validate", body) == {"uid": body["request"]["uid"], "allowed": True}
    # the owner was needed for the private folder, and asked once
    assert hook.lookup.calls == [("owner", "karvdash-alice")]


async def test_validate_asks_nothing_for_ordinary_pods(webhook):
    hook = await webhook(lookup=TableLookup(down=True))
    body = review("pod")
    assert await hook.review("/validate", body) == {"uid": body["request"]["uid"], "allowed": True}
    assert hook.lookup.calls == []


async def test_validate_when_the_api_is_down_and_the_owner_matters(webhook):
    hook = await webhook(lookup=TableLookup(down=True))
    body = with_volumes("pod", [{"name": "mine", "hostPath": {"path": "/data/karvdash/private/alice"}}])
    response = await hook.review("/validate", body)
    assert response["allowed"] is False
    assert response["status"]["code"] == 503


@pytest.mark.parametrize("body, error", [
    (b"not json", "the body is not JSON: invalid literal, expected 'null': line 1 column 1 (char 0)"),
    (b"", "the body is not JSON: Input is a zero-length, empty document: line 1 column 1 (char 0)"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "the AdmissionReview has no request"),
])
async def test_malformed_reviews_get_a_clear_error(webhook, body, error):
    hook = await webhook()
    for path in ("/mutate", "/validate"):
        assert await hook.post(path, body) == (400, {"error": error})


async def test_malformed_objects_are_refused_with_the_reason(webhook):
    hook = await webhook()
    body = review("deployment")
    body["request"]["object"]["spec"]["template"] = ["not", "an", "object"]
    response = await hook.review("/validate", body)
    assert response == {"uid": body["request"]["uid"], "allowed": False, "status": {
        "code": 400, "message": "karvdash: cannot read Deployment web: spec.template of the Deployment is not an object"}}
    pod = review("pod")
    pod["request"]["object"]["spec"]["containers"] = {"name": "x"}
    response = await hook.review("/mutate", pod)
    assert response["allowed"] is False
    assert response["status"] == {"code": 400, "message": "karvdash: cannot read Pod web: spec.containers is not a list of objects"}


async def test_wrong_method_and_path(webhook, tls):
    hook = await webhook()
    response = await AsyncHTTPClient().fetch(hook.url + "/mutate", ca_certs=str(tls["ca_file"]), raise_error=False)
    assert (response.code, json.loads(response.body)) == (405, {"error": "Method Not Allowed"})
    response = await AsyncHTTPClient().fetch(hook.url + "/nowhere", ca_certs=str(tls["ca_file"]), raise_error=False)
    assert response.code == 404


async def served_common_name(port: int, ca_file: Path) -> str:
    import asyncio

    context = ssl.create_default_context(cafile=str(ca_file))
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    cert = writer.get_extra_info("peercert")
    writer.close()
    return dict(field[0] for field in cert["subject"])["commonName"]


async def test_serving_certificate_reloads_renewed_files(tls, tmp_path, caplog):
    ca = tls["ca"]
    cert, key = ca.issue("first", ip_addresses=("127.0.0.1",), server=True).write(tmp_path, "serving")
    certificate = ServingCertificate(str(cert), str(key))
    server = httpserver.HTTPServer(make_app(None, None), ssl_options=certificate.context)
    [sock] = netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    try:
        assert await served_common_name(port, tls["ca_file"]) == "first"
        assert certificate.reload() is False
        # cert-manager renews the Secret; the kubelet swaps the files
        renewed = ca.issue("second", ip_addresses=("127.0.0.1",), server=True)
        cert.write_bytes(renewed.cert_pem)
        key.write_bytes(renewed.key_pem)
        os.utime(cert, ns=(1, 1))
        certificate.check()
        assert await served_common_name(port, tls["ca_file"]) == "second"
        # a half-written file keeps the last good pair in service
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated")
        os.utime(cert, ns=(2, 2))
        certificate.check()
        assert "cannot reload" in caplog.text
        assert await served_common_name(port, tls["ca_file"]) == "second"
    finally:
        server.stop()
        await server.close_all_connections()


def test_tls_settings_are_required(tls, tmp_path):
    with pytest.raises(SettingsError, match="setting webhookCertFile: is required: the webhook serves HTTPS only"):
        check_tls_settings(make_settings())
    with pytest.raises(SettingsError, match=f"setting webhookKeyFile: cannot read {tmp_path}/missing.key"):
        check_tls_settings(make_settings(webhookCertFile=str(tls["cert"]), webhookKeyFile=str(tmp_path / "missing.key")))
    check_tls_settings(make_settings(webhookCertFile=str(tls["cert"]), webhookKeyFile=str(tls["key"])))


def test_main_stops_with_the_bad_setting(monkeypatch, capsys):
    monkeypatch.setenv("KARVDASH_WEBHOOK_PORT", "70000")
    monkeypatch.delenv("KARVDASH_VALUES", raising=False)
    with pytest.raises(SystemExit) as stop:
        webhook_server.main([])
    assert str(stop.value) == "karvdash-webhook: setting webhookPort: must be a port number (1 to 65535)"
    with pytest.raises(SystemExit) as stop:
        webhook_server.main(["--port", "1"])
    assert "unexpected arguments ['--port', '1']" in str(stop.value)
    webhook_server.main(["--help"])
    assert "usage: karvdash-webhook [--debug]" in capsys.readouterr().out


def test_tls_context_refuses_old_protocols(tls):
    certificate = ServingCertificate(str(tls["cert"]), str(tls["key"]))
    assert certificate.context.minimum_version == ssl.TLSVersion.TLSv1_2
