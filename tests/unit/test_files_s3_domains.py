"""S3 file domains as a model (no I/O): the minio:// settings and their
checks, the keys of each domain, and that pods mount none of them (their
credentials would reach every user's files)."""

from __future__ import annotations

import logging

import pytest
from traitlets.config import Config

from karvdash_hub.admission.rules import pod_additions
from karvdash_hub.core.settings import SettingsError, load_settings
from karvdash_hub.files.domains import S3_NOT_MOUNTED, FileDomains
from karvdash_hub.hub.config import log_value_warnings
from karvdash_hub.namespaces.objects import server_base_overrides

S3 = {"filesURL": "minio://minio.example.test:9000/karvdash-files/deploy/one", "filesS3AccessKey": "AKID",
      "filesS3SecretKey": "s3cr3t", "filesS3Region": "eu-west-1"}


def settings(environ=None, **values):
    return load_settings(config=Config({"KarvdashConfig": values}), environ=environ or {})


def test_a_minio_url_names_endpoint_bucket_and_prefix(tmp_path):
    domains = FileDomains.from_settings(settings(stateDir=str(tmp_path), **S3))
    assert (domains.is_s3, domains.endpoint_url, domains.bucket, domains.key_prefix, domains.region) == (
        True, "http://minio.example.test:9000", "karvdash-files", "deploy/one/", "eu-west-1")
    assert domains.key("private", "alice") == "deploy/one/private/alice/"
    assert domains.key("shared") == "deploy/one/shared/"
    # uploads are staged on the dashboard's own disk
    assert domains.local_path("uploads") == tmp_path / "files" / "uploads"
    tls = FileDomains.from_settings(settings(**{**S3, "filesURL": "minios://s3.example.test/bucket-1"}))
    assert (tls.endpoint_url, tls.bucket, tls.key_prefix, tls.key("shared")) == (
        "https://s3.example.test", "bucket-1", "", "shared/")


@pytest.mark.parametrize("url, reason", [
    ("minio://host:9000/", "needs a bucket name"),
    ("minio://host:9000/Upper", "needs a bucket name"),
    ("minio://key:secret@host:9000/files", "credentials go in filesS3AccessKey"),
    ("minio://host:9000/files/../other", "a prefix inside the bucket"),
    ("minio://host:9000/files//double", "a prefix inside the bucket"),
    ("minio://host:99999/files", "bad port"),
    ("minio:///files", "needs a server"),
    ("s3://host/files", "must start with"),
])
def test_bad_minio_urls_are_refused_at_start_up(url, reason):
    with pytest.raises(SettingsError) as refused:
        settings(**{**S3, "filesURL": url})
    assert refused.value.setting == "filesURL" and reason in str(refused.value)


def test_credentials_are_required_and_the_secret_file_is_read_at_start_up(tmp_path):
    with pytest.raises(SettingsError, match="filesS3AccessKey"):
        settings(**{**S3, "filesS3AccessKey": ""})
    with pytest.raises(SettingsError, match="filesS3SecretKey"):
        settings(**{**S3, "filesS3SecretKey": ""})
    secret = tmp_path / "secret-key"
    secret.write_text("from-a-file\n")
    chosen = settings(**{**S3, "filesS3SecretKey": "", "filesS3SecretKeyFile": str(secret)})
    assert chosen.files_s3_secret_key == "from-a-file"
    with pytest.raises(SettingsError, match="filesS3SecretKeyFile: cannot read"):
        settings(**{**S3, "filesS3SecretKeyFile": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        settings(**{**S3, "filesS3SecretKeyFile": str(tmp_path / "empty")})
    with pytest.raises(SettingsError, match="filesS3SecretKeyFile"):
        settings(**{**S3, "filesS3SecretKeyFile": "relative/path"})
    with pytest.raises(SettingsError, match="filesS3Region"):
        settings(**{**S3, "filesS3Region": "EU West"})
    # the secret from the environment, as a Secret's env var gives it
    from_env = settings(environ={"KARVDASH_FILES_S3_SECRET_KEY": "env-secret"},
                        **{k: v for k, v in S3.items() if k != "filesS3SecretKey"})
    assert from_env.files_s3_secret_key == "env-secret"


# what every pod of a user namespace gets besides: the karvdashctl settings
API_VOLUME = {"name": "karvdash-api", "secret": {"secretName": "karvdash-api", "optional": True}}
API_MOUNT = {"name": "karvdash-api", "mountPath": "/var/lib/karvdash", "readOnly": True}


def test_pods_mount_no_s3_file_domains_only_the_karvdashctl_settings():
    domains = FileDomains.from_settings(settings(**S3))
    assert not domains.mounted_in_pods
    assert (domains.volumes("alice"), domains.volume_mounts()) == ([], [])
    # the webhook's additions and the server's base volumes alike
    assert pod_additions(domains, "alice") == ([API_VOLUME], [API_MOUNT])
    overrides = server_base_overrides(settings(**S3), "alice", mount_datasets=True)
    assert (overrides["volumes"], overrides["volume_mounts"]) == ({"karvdash-api": API_VOLUME},
                                                                  {"karvdash-api": API_MOUNT})
    # no host path is opened for S3 files
    assert domains.allowed_host_paths("alice") == []


def test_folders_are_still_mounted(tmp_path):
    domains = FileDomains.from_settings(settings(filesURL=f"file://{tmp_path}"))
    assert domains.mounted_in_pods
    assert [v["name"] for v in pod_additions(domains, "alice")[0]] == ["karvdash-private", "karvdash-shared",
                                                                       "karvdash-api"]


def test_the_hub_says_once_why_pods_mount_no_s3_files(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        log_value_warnings(settings(**S3))
    assert [r.getMessage() for r in caplog.records].count(S3_NOT_MOUNTED) == 1
    assert "credentials" in S3_NOT_MOUNTED and "karvdashctl" in S3_NOT_MOUNTED
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        log_value_warnings(settings(filesURL=f"file://{tmp_path}"))
    assert S3_NOT_MOUNTED not in [r.getMessage() for r in caplog.records]
