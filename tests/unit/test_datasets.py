"""Dataset builders: exact Dataset and Secret manifests for every type, name
checks, suffixes for taken names, validation messages and redaction."""

import base64

import pytest
import yaml

from karvdash_hub.datasets import model as ds

S3_REMOTE = {
    "type": "s3-remote",
    "name": "climate",
    "endpoint": "https://s3.example.org",
    "bucket": "climate-data",
    "accessKeyID": "AKIAEXAMPLE",
    "secretAccessKey": "wJalrXUtnFEMI/K7MDENG",
}
LOCAL_SERVICES = {"minio": {"store": "http://store.karvdash-alice.svc:9000"},
                  "redis": {"cache": "redis://cache.karvdash-alice.svc:6379"}}


def test_enabled_types_honour_disabled_templates():
    assert [t.id for t in ds.enabled_types([])] == ["s3-local", "s3-remote", "h3-local", "h3-remote", "archive"]
    assert [t.id for t in ds.enabled_types(["s3-local", "archive"])] == ["s3-remote", "h3-local", "h3-remote"]


def test_disabled_type_is_refused():
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request(S3_REMOTE, disabled=["s3-remote"])
    assert (error.value.status, error.value.message) == (400, "dataset type s3-remote is disabled on this deployment")


def test_s3_remote_dataset_and_secret_manifests():
    request = ds.check_request(S3_REMOTE)
    dataset = ds.dataset_object("datashim.io", request, "karvdash-alice", "alice")
    assert dataset == {
        "apiVersion": "datashim.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {
            "name": "climate",
            "namespace": "karvdash-alice",
            "labels": {"karvdash.io/owner": "alice", "app.kubernetes.io/managed-by": "karvdash-hub"},
            "annotations": {"karvdash.io/dataset-type": "s3-remote"},
        },
        "spec": {
            "local": {
                "type": "COS",
                "endpoint": "https://s3.example.org",
                "bucket": "climate-data",
                "secret-name": "karvdash-dataset-climate",
            }
        },
    }
    secret = ds.credentials_secret(request, "karvdash-alice", "alice")
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "karvdash-dataset-climate",
            "namespace": "karvdash-alice",
            "labels": {
                "karvdash.io/owner": "alice",
                "app.kubernetes.io/managed-by": "karvdash-hub",
                "karvdash.io/dataset": "climate",
            },
        },
        "data": {
            "accessKeyID": base64.b64encode(b"AKIAEXAMPLE").decode(),
            "secretAccessKey": base64.b64encode(b"wJalrXUtnFEMI/K7MDENG").decode(),
        },
    }
    # nothing secret in the Dataset, in any form
    text = yaml.safe_dump(dataset)
    assert "AKIAEXAMPLE" not in text and "wJalr" not in text


def test_s3_options_region_and_readonly():
    request = ds.check_request({**S3_REMOTE, "region": "eu-west-1", "readonly": True})
    assert request.local == {
        "type": "COS",
        "endpoint": "https://s3.example.org",
        "bucket": "climate-data",
        "region": "eu-west-1",
        "readonly": "true",
        "secret-name": "karvdash-dataset-climate",
    }


def test_s3_local_uses_the_users_minio_service():
    body = {**S3_REMOTE, "type": "s3-local", "service": "store"}
    del body["endpoint"]
    request = ds.check_request(body, local_services=LOCAL_SERVICES)
    assert request.local["endpoint"] == "http://store.karvdash-alice.svc:9000"
    assert ds.dataset_object("com.ie.ibm.hpsys", request, "ns", "alice")["metadata"]["annotations"] == {
        "karvdash.io/dataset-type": "s3-local"
    }
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request({**body, "service": "other"}, local_services=LOCAL_SERVICES)
    assert error.value.message == "service: you have no minio service named 'other' (yours: store)"


def test_h3_and_archive_have_no_secret():
    h3 = ds.check_request({"type": "h3-local", "name": "cache-set", "service": "cache", "bucket": "b01"},
                          local_services=LOCAL_SERVICES)
    assert h3.local == {"type": "H3", "storageUri": "redis://cache.karvdash-alice.svc:6379", "bucket": "b01"}
    assert h3.credentials == {}
    remote = ds.check_request({"type": "h3-remote", "name": "h", "storageUri": "redis://redis.example.org:6379",
                               "bucket": "b01"})
    assert remote.local == {"type": "H3", "storageUri": "redis://redis.example.org:6379", "bucket": "b01"}
    archive = ds.check_request({"type": "archive", "name": "books", "url": "https://example.org/books.tar"})
    assert archive.local == {"type": "ARCHIVE", "url": "https://example.org/books.tar", "format": "application/x-tar"}
    assert archive.credentials == {}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "Climate"}, "name: 'Climate' is not a valid dataset name (up to 63 lowercase letters, digits and '-', "
                              "starting and ending with a letter or digit)"),
        ({"name": "a" * 64}, None),
        ({"name": "-x"}, None),
        ({"name": "../etc"}, None),
        ({"name": ""}, "name: a dataset needs a name"),
        ({"endpoint": "ftp://s3.example.org"}, "endpoint: 'ftp://s3.example.org' is not a http:// or https:// URL with a host"),
        ({"endpoint": "https://key:secret@s3.example.org"},
         "endpoint: must not contain a user name or password (Datashim would keep them in clear)"),
        ({"endpoint": "https://s3.example.org:99999"}, "endpoint: 'https://s3.example.org:99999' has a bad port"),
        ({"bucket": "Bad_Bucket"}, "bucket: 'Bad_Bucket' is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')"),
        ({"bucket": ""}, "bucket: is required"),
        ({"accessKeyID": ""}, "accessKeyID: is required"),
        ({"secretAccessKey": "x\ny"}, "secretAccessKey: cannot contain control characters"),
        ({"secretAccessKey": 5}, "secretAccessKey: must be text"),
        ({"secretAccessKey": "x" * 1025}, "secretAccessKey: is longer than 1024 characters"),
        ({"region": "EU West"}, "region: 'EU West' is not a region name (lowercase letters, digits and '-')"),
        ({"readonly": "maybe"}, "readonly: must be true or false"),
        ({"storageUri": "redis://x"}, "storageUri: not a field of s3-remote datasets"),
        ({"type": "nfs"}, "unknown dataset type 'nfs'; types are s3-local, s3-remote, h3-local, h3-remote, archive"),
    ],
)
def test_bad_values_are_named(change, message):
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request({**S3_REMOTE, **change})
    assert error.value.status == 400
    if message:
        assert error.value.message == message
    else:
        assert error.value.message.startswith(f"name: {change['name']!r} is not a valid dataset name")


def test_remote_h3_and_archive_urls_refuse_credentials_and_other_schemes():
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request({"type": "h3-remote", "name": "h", "storageUri": "redis://:pw@redis.example.org", "bucket": "b01"})
    assert error.value.message == "storageUri: must not contain a user name or password (Datashim would keep them in clear)"
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request({"type": "archive", "name": "a", "url": "file:///etc/passwd"})
    assert error.value.message == "url: 'file:///etc/passwd' is not a http:// or https:// URL with a host"
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request({"type": "archive", "name": "a", "url": "https://example.org/a.zip", "format": "application/zip"})
    assert error.value.message == "format: must be one of application/x-tar"


def test_not_an_object_is_refused():
    with pytest.raises(ds.DatasetError) as error:
        ds.check_request(["s3-remote"])
    assert error.value.message == "send a JSON object with type, name and the type's fields"


def test_free_name_keeps_a_free_name_and_suffixes_a_taken_one():
    assert ds.free_name("climate", set()) == "climate"
    picks = iter("abcd" "wxyz")
    assert ds.free_name("climate", {"climate"}, choose=lambda alphabet: next(picks)) == "climate-abcd"
    picks = iter("abcd" "wxyz")
    assert ds.free_name("climate", {"climate", "climate-abcd"}, choose=lambda alphabet: next(picks)) == "climate-wxyz"
    long = "a" * 63
    suffixed = ds.free_name(long, {long})
    assert len(suffixed) == 63 and suffixed.startswith("a" * 58 + "-")
    assert ds.check_name(suffixed) == suffixed


def test_with_name_moves_the_secret_reference():
    request = ds.with_name(ds.check_request(S3_REMOTE), "climate-x1y2")
    assert request.name == "climate-x1y2"
    assert request.local["secret-name"] == "karvdash-dataset-climate-x1y2"
    assert ds.credentials_secret(request, "ns", "alice")["metadata"]["name"] == "karvdash-dataset-climate-x1y2"


def stored(dataset: dict) -> dict:
    """The Dataset as the API server gives it back."""
    return {
        **dataset,
        "metadata": {
            **dataset["metadata"],
            "uid": "0a1b",
            "resourceVersion": "42",
            "generation": 1,
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "managedFields": [{"manager": "karvdash-hub"}],
        },
        "status": {"provision": {"status": "OK"}},
    }


def test_summary_has_no_credentials():
    obj = stored(ds.dataset_object("datashim.io", ds.check_request(S3_REMOTE), "karvdash-alice", "alice"))
    assert ds.summary(obj) == {
        "name": "climate",
        "type": "s3-remote",
        "type_title": "S3 (remote)",
        "endpoint": "https://s3.example.org",
        "bucket": "climate-data",
        "secret": "karvdash-dataset-climate",
        "readonly": False,
        "created": "2026-01-02T03:04:05Z",
        "status": "OK",
    }


def test_yaml_download_is_clean_and_redacts_inline_credentials():
    # a Dataset someone wrote by hand with credentials inline
    obj = stored(
        {
            "apiVersion": "datashim.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "handmade", "namespace": "karvdash-alice"},
            "spec": {"local": {"type": "COS", "endpoint": "http://x", "bucket": "b01",
                               "accessKeyID": "AKIAHAND", "secretAccessKey": "hand-secret"}},
        }
    )
    text = ds.dataset_yaml(obj)
    assert yaml.safe_load(text) == {
        "apiVersion": "datashim.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "handmade", "namespace": "karvdash-alice"},
        "spec": {"local": {"type": "COS", "endpoint": "http://x", "bucket": "b01",
                           "accessKeyID": "<redacted>", "secretAccessKey": "<redacted>"}},
    }
    assert "AKIAHAND" not in text and "hand-secret" not in text
    # the original is untouched
    assert obj["spec"]["local"]["accessKeyID"] == "AKIAHAND"
    assert ds.summary(obj)["type"] == "s3-remote"


def test_local_service_endpoints_from_services():
    services = [
        {"metadata": {"name": "store"}, "spec": {"ports": [{"name": "api", "port": 9000}, {"port": 9001}]}},
        {"metadata": {"name": "odd"}, "spec": {"ports": [{"port": 8080}]}},
    ]
    assert ds.local_service_endpoints(services, ds.TYPES["s3-local"], "karvdash-alice") == {
        "store": "http://store.karvdash-alice.svc:9000"
    }
    redis = [{"metadata": {"name": "cache"}, "spec": {"ports": [{"port": 6379}]}}]
    assert ds.local_service_endpoints(redis, ds.TYPES["h3-local"], "ns") == {"cache": "redis://cache.ns.svc:6379"}


def test_owner_reference_points_at_the_dataset():
    obj = stored(ds.dataset_object("datashim.io", ds.check_request(S3_REMOTE), "ns", "alice"))
    assert ds.owner_reference(obj) == {
        "apiVersion": "datashim.io/v1alpha1", "kind": "Dataset", "name": "climate", "uid": "0a1b"
    }


def test_type_descriptions_for_the_form():
    described = ds.TYPES["s3-local"].to_json(["store"])
    assert described["services"] == ["store"] and described["service_template"] == "minio"
    assert [f["name"] for f in described["fields"]] == [
        "name", "service", "bucket", "accessKeyID", "secretAccessKey", "region", "readonly"
    ]
    assert "services" not in ds.TYPES["archive"].to_json()


class Terminal:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_karvdashctl_asks_for_missing_s3_keys_only_on_a_terminal(monkeypatch):
    from karvdash_hub.cli import datasetcommands

    asked = []
    monkeypatch.setattr(datasetcommands.getpass, "getpass", lambda prompt: asked.append(prompt) or "typed")
    fields = datasetcommands.ask_secrets("s3-remote", {"name": "x", "accessKeyID": "given"}, stdin=Terminal(True))
    assert fields == {"name": "x", "accessKeyID": "given", "secretAccessKey": "typed"}
    assert asked == ["secretAccessKey: "]
    assert datasetcommands.ask_secrets("s3-remote", {"name": "x"}, stdin=Terminal(False)) == {"name": "x"}
    assert datasetcommands.ask_secrets("archive", {"name": "x"}, stdin=Terminal(True)) == {"name": "x"}
    assert asked == ["secretAccessKey: "]
