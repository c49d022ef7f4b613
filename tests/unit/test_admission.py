"""Admission rules without a server: JSONPatch building, pod templates of
workloads, the host-path policy, AdmissionReview parsing. Inputs are the
AdmissionReview JSON files in tests/unit/admission/."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import jsonpatch
import pytest
from traitlets.config import Config

from karvdash_hub.admission.hostpaths import HostPathPolicy
from karvdash_hub.admission.rules import (
    POD_SPEC_PATHS,
    AdmissionRequest,
    ReviewError,
    mount_patch,
    parse_review,
    pod_additions,
    pod_templates,
    pointer,
    review_response,
    volume_refusals,
    wants_datasets,
)
from karvdash_hub.core.settings import load_settings
from karvdash_hub.files.domains import FileDomains

FIXTURES = Path(__file__).parent / "admission"
WORKLOADS = ["deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob"]


def review(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}-create.json").read_text())


def settings(**values):
    return load_settings(config=Config({"KarvdashConfig": values}), environ={})


@pytest.fixture
def file_settings():
    return settings(filesURL="file:///data/karvdash", allowedHostPathDirs=["/opt/datasets"])


@pytest.fixture
def policy(file_settings):
    return HostPathPolicy.from_settings(file_settings)


@pytest.fixture
def nfs_policy():
    return HostPathPolicy.from_settings(settings(
        filesURL="nfs://files.example.test/export/karvdash", filesMountPath="/mnt/files",
        allowedHostPathDirs=["/opt/datasets"]))


def host_path(path: str, name: str = "v") -> dict:
    return {"name": name, "hostPath": {"path": path}}


# --- host-path policy -------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/data/karvdash/private/alice",
    "/data/karvdash/private/alice/",
    "/data/karvdash/private/./alice",
    "/data/karvdash/shared",
    "/opt/datasets",
    "/opt/datasets/imagenet",
    "//opt/datasets/imagenet",
    "/data/karvdash/shared/../private/alice",
])
def test_allowed_host_paths(policy, path):
    assert policy.volume_refusal(host_path(path), "alice") is None


@pytest.mark.parametrize("path, shown", [
    ("/data/karvdash/private/bob", "/data/karvdash/private/bob"),
    ("/data/karvdash/private/alice/../bob", "/data/karvdash/private/bob"),
    ("/data/karvdash/private", "/data/karvdash/private"),
    ("/data/karvdash/uploads", "/data/karvdash/uploads"),
    ("/data/karvdash", "/data/karvdash"),
    ("/data", "/data"),
    ("/", "/"),
    ("//data/karvdash/private/bob", "/data/karvdash/private/bob"),
])
def test_refused_paths_in_the_files_tree(policy, path, shown):
    assert policy.volume_refusal(host_path(path), "alice") == (
        f"mounts host path {shown}, which reaches into the files folder /data/karvdash outside your "
        "folders (/data/karvdash/private/alice, /data/karvdash/shared)"
    )


@pytest.mark.parametrize("path", ["/data/karvdash/private/alice/projects", "/data/karvdash/shared/team/x"])
def test_subfolders_of_own_folders_are_refused(policy, path):
    # the node would follow symlinks users can make there (shared/x -> ../private/bob)
    assert policy.volume_refusal(host_path(path), "alice") == (
        f"mounts host path {path}, inside one of your folders: mount the folder itself "
        "(/data/karvdash/private/alice, /data/karvdash/shared) and choose the subfolder with subPath"
    )


@pytest.mark.parametrize("path", ["/etc", "/opt/datasets2", "/opt", "/var/run/docker.sock", "/opt/datasets-old/x"])
def test_refused_paths_elsewhere(policy, path):
    assert policy.volume_refusal(host_path(path), "alice") == (
        f"mounts host path {path}, which is outside the allowed folders "
        "(/opt/datasets, /data/karvdash/private/alice, /data/karvdash/shared)"
    )


@pytest.mark.parametrize("source", [{"path": "relative/dir"}, {"path": ""}, {}, "x", {"path": 5}, {"path": "/a\0b"}])
def test_malformed_host_paths_are_refused(policy, source):
    assert policy.volume_refusal({"name": "v", "hostPath": source}, "alice") == \
        "has a hostPath that is not an absolute path"


def test_unknown_owner_gets_only_shared_and_extra_folders(policy):
    assert policy.volume_refusal(host_path("/data/karvdash/shared"), None) is None
    assert policy.volume_refusal(host_path("/opt/datasets"), None) is None
    assert policy.volume_refusal(host_path("/data/karvdash/private/alice"), None) == (
        "mounts host path /data/karvdash/private/alice, which reaches into the files folder /data/karvdash "
        "outside your folders (/data/karvdash/shared)"
    )


def test_broad_allowed_folder_does_not_open_the_files_tree():
    broad = HostPathPolicy.from_settings(settings(filesURL="file:///mnt/nfs/karvdash", allowedHostPathDirs=["/mnt"]))
    assert broad.volume_refusal(host_path("/mnt/scratch"), "alice") is None
    assert broad.volume_refusal(host_path("/mnt/nfs/karvdash/private/alice"), "alice") is None
    assert broad.volume_refusal(host_path("/mnt/nfs/karvdash/private/bob"), "alice") is not None
    # a parent of the files tree holds everyone's files
    assert broad.volume_refusal(host_path("/mnt"), "alice") is not None
    assert broad.volume_refusal(host_path("/mnt/nfs"), "alice") is not None


def test_other_volume_types_pass(policy):
    for volume in ({"name": "a", "emptyDir": {}}, {"name": "b", "persistentVolumeClaim": {"claimName": "x"}},
                   {"name": "c", "nfs": {"server": "elsewhere", "path": "/data/karvdash"}},
                   {"name": "d", "configMap": {"name": "x"}}):
        assert policy.volume_refusal(volume, "alice") is None


def test_nfs_volumes_into_the_export(nfs_policy):
    def nfs(server, path):
        return {"name": "n", "nfs": {"server": server, "path": path}}

    assert nfs_policy.volume_refusal(nfs("files.example.test", "/export/karvdash/private/alice"), "alice") is None
    assert nfs_policy.volume_refusal(nfs("files.example.test", "/export/karvdash/shared"), "alice") is None
    assert "choose the subfolder with subPath" in nfs_policy.volume_refusal(
        nfs("files.example.test", "/export/karvdash/shared/x"), "alice")
    assert nfs_policy.volume_refusal(nfs("files.example.test", "/export/other"), "alice") is None
    assert nfs_policy.volume_refusal(nfs("nas.example.test", "/export/karvdash/private/bob"), "alice") is None
    expected = ("mounts FILES.example.test.:/export/karvdash/private/bob, which reaches into the files export "
                "/export/karvdash outside your folders (/export/karvdash/private/alice, /export/karvdash/shared)")
    assert nfs_policy.volume_refusal(nfs("FILES.example.test.", "/export/karvdash/private/bob"), "alice") == expected
    assert nfs_policy.volume_refusal(nfs("files.example.test", "/export"), "alice") is not None
    assert nfs_policy.volume_refusal(nfs("files.example.test", "/export/karvdash/uploads"), "alice") is not None
    assert nfs_policy.volume_refusal(nfs("files.example.test", "relative"), "alice") == \
        "has an NFS source without a server and an absolute path"
    assert nfs_policy.volume_refusal({"name": "n", "nfs": "x"}, "alice") == "has a malformed nfs source"


def test_nfs_csi_inline_volumes_into_the_export(nfs_policy):
    def csi(share, sub=None):
        attributes = {"server": "files.example.test", "share": share}
        if sub:
            attributes["subDir"] = sub
        return {"name": "c", "csi": {"driver": "nfs.csi.k8s.io", "volumeAttributes": attributes}}

    assert nfs_policy.volume_refusal(csi("/export/karvdash", "private/alice"), "alice") is None
    assert nfs_policy.volume_refusal(csi("/export/karvdash", "private/bob"), "alice") is not None
    assert nfs_policy.volume_refusal(csi("/export/karvdash", "shared/../private/bob"), "alice") is not None
    assert nfs_policy.volume_refusal(csi("/export/karvdash/private/bob"), "alice") is not None
    other_driver = {"name": "c", "csi": {"driver": "smb.csi.k8s.io", "volumeAttributes": {"share": "/export"}}}
    assert nfs_policy.volume_refusal(other_driver, "alice") is None


def test_host_paths_with_nfs_files_only_allow_extra_folders(nfs_policy):
    assert nfs_policy.volume_refusal(host_path("/opt/datasets/a"), "alice") is None
    assert nfs_policy.volume_refusal(host_path("/export/karvdash/private/alice"), "alice") == (
        "mounts host path /export/karvdash/private/alice, which is outside the allowed folders (/opt/datasets)"
    )


def test_no_allowed_folders_at_all():
    strict = HostPathPolicy.from_settings(settings(filesURL="nfs://files.example.test/export", filesMountPath="/m"))
    assert strict.volume_refusal(host_path("/etc"), "alice") == \
        "mounts host path /etc, which is outside the allowed folders (none)"


# --- AdmissionReview parsing and answers ---------------------------------------------


def test_parse_review_reads_the_request():
    request = parse_review(json.dumps(review("pod")).encode())
    assert (request.uid, request.group, request.kind, request.namespace, request.operation, request.name) == (
        "b0c5ab13-4c1c-4d39-8f55-8a5a4f0d7e01", "", "Pod", "karvdash-alice", "CREATE", "web")
    assert request.username == "system:serviceaccount:karvdash-alice:default"
    assert request.display_name == "Pod web"


def test_display_name_of_generated_names():
    body = review("pod")
    body["request"]["name"] = ""
    body["request"]["object"]["metadata"] = {"generateName": "web-7d9f-"}
    assert parse_review(body).display_name == "Pod web-7d9f-*"


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "the body is not JSON"),
    (b"\xff\xfe", "the body is not JSON"),
    (b"[1, 2]", "the body is not a JSON object"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {}}',
     "expected an AdmissionReview of admission.k8s.io/v1, got kind='AdmissionReview' apiVersion='admission.k8s.io/v1beta1'"),
    (b'{"kind": "Pod", "apiVersion": "admission.k8s.io/v1"}', "expected an AdmissionReview"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "the AdmissionReview has no request"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": ""}}',
     "the request has no uid"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": "u", "kind": "Pod"}}',
     "the request has no kind"),
    (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", '
     b'"request": {"uid": "u", "kind": {"kind": "Pod"}, "object": null}}', "the request has no object"),
])
def test_parse_review_refuses_malformed_reviews(body, reason):
    with pytest.raises(ReviewError) as error:
        parse_review(body)
    assert str(error.value).startswith(reason)


def test_review_response_shapes():
    assert review_response("u1") == {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u1", "allowed": True}}
    denied = review_response("u2", allowed=False, message="no")
    assert denied["response"] == {"uid": "u2", "allowed": False, "status": {"message": "no", "code": 403}}
    patched = review_response("u3", patch=[{"op": "add", "path": "/a", "value": 1}], warnings=["w"])
    assert patched["response"]["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(patched["response"]["patch"])) == [{"op": "add", "path": "/a", "value": 1}]
    assert patched["response"]["warnings"] == ["w"]
    assert "patch" not in review_response("u4", patch=[])["response"]


def test_pointer_escapes_slash_and_tilde():
    assert pointer("metadata", "annotations", "karvdash.io/added-volumes") == \
        "/metadata/annotations/karvdash.io~1added-volumes"
    assert pointer("a~b", "c/~d", 0, "-") == "/a~0b/c~1~0d/0/-"


# --- the mutation ----------------------------------------------------------------------


def additions(file_settings, owner="alice", datasets=()):
    return pod_additions(FileDomains.from_settings(file_settings), owner, list(datasets))


def test_pod_additions(file_settings):
    volumes, mounts = additions(file_settings, datasets=["mnist", "imagenet"])
    assert volumes == [
        {"name": "karvdash-private", "hostPath": {"path": "/data/karvdash/private/alice", "type": "DirectoryOrCreate"}},
        {"name": "karvdash-shared", "hostPath": {"path": "/data/karvdash/shared", "type": "DirectoryOrCreate"}},
        {"name": "karvdash-api", "secret": {"secretName": "karvdash-api", "optional": True}},
        {"name": "dataset-imagenet", "persistentVolumeClaim": {"claimName": "imagenet"}},
        {"name": "dataset-mnist", "persistentVolumeClaim": {"claimName": "mnist"}},
    ]
    assert mounts == [
        {"name": "karvdash-private", "mountPath": "/private"},
        {"name": "karvdash-shared", "mountPath": "/shared"},
        {"name": "karvdash-api", "mountPath": "/var/lib/karvdash", "readOnly": True},
        {"name": "dataset-imagenet", "mountPath": "/mnt/datasets/imagenet"},
        {"name": "dataset-mnist", "mountPath": "/mnt/datasets/mnist"},
    ]


def test_pod_additions_without_owner_have_no_file_domains(file_settings):
    volumes, mounts = additions(file_settings, owner=None, datasets=["mnist"])
    assert [v["name"] for v in volumes] == ["karvdash-api", "dataset-mnist"]
    assert [m["mountPath"] for m in mounts] == ["/var/lib/karvdash", "/mnt/datasets/mnist"]


def test_mount_patch_on_a_real_pod(file_settings):
    pod = review("pod")["request"]["object"]
    volumes, mounts = additions(file_settings)
    patch = mount_patch(pod, volumes, mounts)
    assert patch == [
        {"op": "add", "path": "/spec/volumes/-", "value": volumes[0]},
        {"op": "add", "path": "/spec/volumes/-", "value": volumes[1]},
        {"op": "add", "path": "/spec/volumes/-", "value": volumes[2]},
        {"op": "add", "path": "/spec/containers/0/volumeMounts/-", "value": mounts[0]},
        {"op": "add", "path": "/spec/containers/0/volumeMounts/-", "value": mounts[1]},
        {"op": "add", "path": "/spec/containers/0/volumeMounts/-", "value": mounts[2]},
        {"op": "add", "path": "/spec/containers/1/volumeMounts", "value": mounts},
        {"op": "add", "path": "/metadata/annotations/karvdash.io~1added-volumes",
         "value": "karvdash-private,karvdash-shared,karvdash-api"},
    ]
    patched = jsonpatch.apply_patch(pod, patch)
    assert [v["name"] for v in patched["spec"]["volumes"]] == [
        "kube-api-access-7xk2p", "karvdash-private", "karvdash-shared", "karvdash-api"]
    assert [m["mountPath"] for m in patched["spec"]["containers"][0]["volumeMounts"]] == [
        "/var/run/secrets/kubernetes.io/serviceaccount", "/private", "/shared", "/var/lib/karvdash"]
    # init containers are left as they were
    assert patched["spec"]["initContainers"] == pod["spec"]["initContainers"]
    assert patched["metadata"]["annotations"] == {
        "example.org/team": "analytics", "karvdash.io/added-volumes": "karvdash-private,karvdash-shared,karvdash-api"}
    # idempotent: a second pass adds nothing
    assert mount_patch(patched, volumes, mounts) == []


def test_mount_patch_builds_missing_lists_and_metadata(file_settings):
    pod = {"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    volumes, mounts = additions(file_settings)
    patched = jsonpatch.apply_patch(pod, mount_patch(pod, volumes, mounts))
    assert patched["spec"]["volumes"] == volumes
    assert patched["spec"]["containers"][0]["volumeMounts"] == mounts
    assert patched["metadata"]["annotations"] == {"karvdash.io/added-volumes": "karvdash-private,karvdash-shared,karvdash-api"}
    assert mount_patch(patched, volumes, mounts) == []
    no_metadata = {"spec": {"containers": [{"name": "c"}]}}
    assert jsonpatch.apply_patch(no_metadata, mount_patch(no_metadata, volumes, mounts))["metadata"] == {
        "annotations": {"karvdash.io/added-volumes": "karvdash-private,karvdash-shared,karvdash-api"}}


def test_mount_patch_keeps_the_pods_own_choices(file_settings):
    # a spawned server already has the file domains (same names); a container
    # that mounts something else at /shared keeps it
    pod = {
        "metadata": {"annotations": {"karvdash.io/added-volumes": "dataset-old"}},
        "spec": {
            "volumes": [{"name": "karvdash-private", "hostPath": {"path": "/data/karvdash/private/alice"}},
                        {"name": "scratch", "emptyDir": {}}],
            "containers": [{"name": "c", "volumeMounts": [{"name": "karvdash-private", "mountPath": "/home/me"},
                                                          {"name": "scratch", "mountPath": "/shared/"}]}],
        },
    }
    volumes, mounts = additions(file_settings, datasets=["mnist"])
    patch = mount_patch(pod, volumes, mounts)
    patched = jsonpatch.apply_patch(pod, patch)
    assert [v["name"] for v in patched["spec"]["volumes"]] == [
        "karvdash-private", "scratch", "karvdash-shared", "karvdash-api", "dataset-mnist"]
    assert patched["spec"]["volumes"][0] == pod["spec"]["volumes"][0]
    assert patched["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "karvdash-private", "mountPath": "/home/me"},
        {"name": "scratch", "mountPath": "/shared/"},
        {"name": "karvdash-api", "mountPath": "/var/lib/karvdash", "readOnly": True},
        {"name": "dataset-mnist", "mountPath": "/mnt/datasets/mnist"},
    ]
    assert patched["metadata"]["annotations"]["karvdash.io/added-volumes"] == \
        "dataset-old,karvdash-shared,karvdash-api,dataset-mnist"
    assert mount_patch(patched, volumes, mounts) == []


def test_datasets_opt_out_label():
    assert wants_datasets({"metadata": {"labels": {"app": "x"}}})
    assert wants_datasets({})
    assert not wants_datasets({"metadata": {"labels": {"karvdash.io/datasets": "false"}}})
    assert not wants_datasets({"metadata": {"labels": {"karvdash.io/datasets": "False"}}})
    assert wants_datasets({"metadata": {"labels": {"karvdash.io/datasets": "true"}}})


@pytest.mark.parametrize("spec, reason", [
    ({"containers": [], "volumes": {"a": 1}}, "spec.volumes is not a list of objects"),
    ({"containers": "c"}, "spec.containers is not a list of objects"),
    ({"containers": [{"name": "c", "volumeMounts": "x"}]}, "spec.containers[0].volumeMounts is not a list of objects"),
])
def test_mount_patch_refuses_malformed_pods(file_settings, spec, reason):
    with pytest.raises(ReviewError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        mount_patch({"metadata": {}, "spec": spec}, *additions(file_settings))
    with pytest.raises(ReviewError, match="the pod has no spec"):
        mount_patch({"metadata": {}}, *additions(file_settings))


# --- validation of pods and workloads ------------------------------------------------


def test_pod_templates_of_every_kind():
    for kind in ["pod", *WORKLOADS]:
        request = parse_review(review(kind))
        [(path, spec)] = pod_templates(request.group, request.kind, request.object)
        assert path == POD_SPEC_PATHS[(request.group, request.kind)]
        assert "containers" in spec
    assert pod_templates("", "ConfigMap", {"data": {}}) == []
    assert pod_templates("apps", "Deployment", {"metadata": {}}) == []
    with pytest.raises(ReviewError, match="spec.template of the Deployment is not an object"):
        pod_templates("apps", "Deployment", {"spec": {"template": "x"}})


def with_volumes(kind: str, volumes: list[dict]) -> dict:
    body = review(kind)
    obj = body["request"]["object"]
    request = parse_review(body)
    path = POD_SPEC_PATHS[(request.group, request.kind)]
    node = obj
    for key in path:
        node = node[key]
    node["volumes"] = copy.deepcopy(volumes)
    return body


@pytest.mark.parametrize("kind, where", [
    ("pod", ""),
    ("deployment", " (in spec.template)"),
    ("statefulset", " (in spec.template)"),
    ("daemonset", " (in spec.template)"),
    ("replicaset", " (in spec.template)"),
    ("job", " (in spec.template)"),
    ("cronjob", " (in spec.jobTemplate.spec.template)"),
])
def test_volume_refusals_name_the_volume_and_the_reason(policy, kind, where):
    body = with_volumes(kind, [host_path("/data/karvdash/private/alice", "mine"), host_path("/etc", "etc"),
                               {"name": "scratch", "emptyDir": {}}, host_path("/data/karvdash/private/bob", "bobs")])
    request = parse_review(body)
    assert volume_refusals(request, policy, "alice") == [
        f"volume 'etc' of {request.kind} web{where} mounts host path /etc, which is outside the allowed folders "
        "(/opt/datasets, /data/karvdash/private/alice, /data/karvdash/shared)",
        f"volume 'bobs' of {request.kind} web{where} mounts host path /data/karvdash/private/bob, which reaches "
        "into the files folder /data/karvdash outside your folders (/data/karvdash/private/alice, /data/karvdash/shared)",
    ]
    allowed = parse_review(with_volumes(kind, [host_path("/data/karvdash/shared", "s"), host_path("/opt/datasets/a")]))
    assert volume_refusals(allowed, policy, "alice") == []


def test_volume_refusals_on_malformed_volumes(policy):
    request = parse_review(with_volumes("pod", []))
    request.object["spec"]["volumes"] = "hostPath"
    with pytest.raises(ReviewError, match="spec.volumes is not a list of objects"):
        volume_refusals(request, policy, "alice")
    unnamed = parse_review(with_volumes("pod", [{"hostPath": {"path": "/etc"}}]))
    assert volume_refusals(unnamed, policy, "alice")[0].startswith("volume '#0' of Pod web mounts host path /etc")


# --- the same host-path rule in the chart's ValidatingAdmissionPolicy ----------------------

TENANT = Path(__file__).resolve().parents[1] / "integration" / "tenant"
# the policy refuses a path not written plainly; the webhook reads it normalised
PLAIN_PATHS_ONLY = {"a-dot-path-out-of-an-allowed-folder"}


def _tenant_entries():
    import yaml

    for name in ("refused", "allowed"):
        for entry in yaml.safe_load((TENANT / f"{name}.yaml").read_text()):
            yield name, entry


@pytest.mark.parametrize("verdict, entry", [
    (verdict, entry) for verdict, entry in _tenant_entries()
    if entry["manifest"]["kind"] != "Service" and entry["name"] not in PLAIN_PATHS_ONLY
], ids=lambda value: value["name"] if isinstance(value, dict) else value)
def test_the_webhook_and_the_tenant_policy_agree_on_host_paths(verdict, entry):
    # tests/integration/test_tenant_policy_kube.py sends these to the policy, with these settings
    rules = HostPathPolicy.from_settings(settings(filesURL="file:///data/karvdash", allowedHostPathDirs=["/opt/datasets"]))
    manifest = entry["manifest"]
    group = manifest["apiVersion"].rpartition("/")[0]
    request = AdmissionRequest(uid="u", group=group, kind=manifest["kind"], namespace="karvdash-alice",
                               operation="CREATE", object=manifest)
    refused_by_webhook = bool(volume_refusals(request, rules, "alice"))
    refused_by_policy_for_host_paths = verdict == "refused" and "host paths outside" in entry["refusal"]
    assert refused_by_webhook == refused_by_policy_for_host_paths
