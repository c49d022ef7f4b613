"""The registry client's pure parts: names, settings, pagination, sizes,
grouping by digest, archive inspection and the skopeo command."""

import json
import ssl
import tarfile

import pytest

from karvdash_hub.core.settings import load_settings
from karvdash_hub.images import registry as reg
from tests.kube.pki import CertificateAuthority
from tests.registry.images import docker_save_archive


def settings(**env):
    return load_settings(environ={f"KARVDASH_{k}": v for k, v in env.items()})


@pytest.mark.parametrize("name", ["hello", "team/hello", "a.b/c_d/e__f", "x-y--z", "a" * 255])
def test_valid_repositories(name):
    assert reg.check_repository(name) == name


@pytest.mark.parametrize("name", ["", "Hello", "team//x", "/x", "x/", "a_", "-a", "a" * 256, "a:b", "../x", None])
def test_invalid_repositories(name):
    with pytest.raises(reg.RegistryError) as error:
        reg.check_repository(name)
    assert error.value.status == 400


@pytest.mark.parametrize("tag, ok", [("1.0", True), ("latest", True), ("_x", True), (".x", False), ("-x", False),
                                     ("a" * 128, True), ("a" * 129, False), ("a/b", False), ("", False)])
def test_tags(tag, ok):
    if ok:
        assert reg.check_tag(tag) == tag
    else:
        with pytest.raises(reg.RegistryError):
            reg.check_tag(tag)


@pytest.mark.parametrize(
    "repo_tag, expected",
    [
        ("registry.example.com:5000/team/app:1.0", ("team/app", "1.0")),
        ("localhost/app", ("app", "latest")),
        ("docker.io/library/busybox:1.36", ("busybox", "1.36")),
        ("busybox:latest", ("busybox", "latest")),
        ("team/app:1.0", ("team/app", "1.0")),
        ("Bad/Name:1", None),
    ],
)
def test_archive_reference(repo_tag, expected):
    assert reg.archive_reference(repo_tag) == expected


def test_access_from_settings_with_credentials_and_ca(tmp_path):
    ca = CertificateAuthority()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    access = reg.RegistryAccess.from_settings(
        settings(DOCKER_REGISTRY_URL="https://pusher:p%40ss@registry.example.org:5000", DOCKER_REGISTRY_CERT=str(ca_file))
    )
    assert access.base_url == "https://registry.example.org:5000"
    assert access.host == "registry.example.org:5000"
    assert (access.username, access.password) == ("pusher", "p@ss")
    assert access.ca_pem == ca.cert_pem.decode()
    assert access.image("team/app", "1.0") == "registry.example.org:5000/team/app:1.0"
    context = access.ssl_context()
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    # the password is never in a representation that could reach a log
    assert "p@ss" not in repr(access)


def test_access_without_registry_or_credentials():
    assert reg.RegistryAccess.from_settings(settings()) is None
    access = reg.RegistryAccess.from_settings(settings(DOCKER_REGISTRY_URL="http://127.0.0.1:5000"))
    assert (access.base_url, access.host, access.username, access.secure) == ("http://127.0.0.1:5000", "127.0.0.1:5000", "", False)
    assert access.ssl_context() is False and access.headers() == {}
    assert json.loads(reg.auth_file_content(access)) == {"auths": {}}


def test_an_insecure_registry_is_not_verified_and_nothing_else_changes():
    access = reg.RegistryAccess.from_settings(
        settings(DOCKER_REGISTRY_URL="https://registry.example.org:5000", DOCKER_REGISTRY_INSECURE="true"))
    assert access.insecure and access.secure
    context = access.ssl_context()
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    # the default for every other connection of the process is still to verify
    assert ssl.create_default_context().verify_mode == ssl.CERT_REQUIRED
    info = reg.ArchiveInfo("docker-archive", 1)
    command = reg.skopeo_command("/a.tar", info, access, "team/app", "1.0", "/w/auth.json", "/w/certs")
    assert "--dest-tls-verify=false" in command and "--dest-cert-dir" not in command
    assert not [part for part in command if part.startswith(("--src-tls", "--tls"))]
    # by default (and with a CA) the registry is verified
    verified = reg.RegistryAccess.from_settings(settings(DOCKER_REGISTRY_URL="https://registry.example.org:5000"))
    assert not verified.insecure and verified.ssl_context().verify_mode == ssl.CERT_REQUIRED
    assert "--dest-tls-verify=false" not in reg.skopeo_command("/a.tar", info, verified, "a", "b", "/w/a", "/w/c")


def test_auth_file_holds_the_credentials_for_the_host():
    access = reg.RegistryAccess("https://r.example.org", "r.example.org", "u", "pw")
    assert json.loads(reg.auth_file_content(access)) == {"auths": {"r.example.org": {"auth": "dTpwdw=="}}}
    assert access.headers() == {"Authorization": "Basic dTpwdw=="}


def test_next_page_from_link_header():
    current = "https://r.example.org/v2/_catalog?n=2"
    assert reg.next_page('</v2/_catalog?last=b&n=2>; rel="next"', current) == "https://r.example.org/v2/_catalog?last=b&n=2"
    assert reg.next_page(None, current) is None
    assert reg.next_page('</x>; rel="prev"', current) is None


def test_manifest_blobs_and_grouping():
    manifest = {
        "config": {"digest": "sha256:c", "size": 100},
        "layers": [{"digest": "sha256:l1", "size": 1000}, {"digest": "sha256:l2", "size": 24}],
    }
    assert reg.manifest_blobs(manifest) == {"sha256:c": 100, "sha256:l1": 1000, "sha256:l2": 24}
    groups = reg.group_by_digest(
        {"1.0": ("sha256:a", 10, reg.DOCKER_MANIFEST), "latest": ("sha256:a", 10, reg.DOCKER_MANIFEST),
         "0.9": ("sha256:b", 7, reg.OCI_MANIFEST)}
    )
    assert groups == [
        {"digest": "sha256:a", "tags": ["1.0", "latest"], "size": 10, "media_type": reg.DOCKER_MANIFEST},
        {"digest": "sha256:b", "tags": ["0.9"], "size": 7, "media_type": reg.OCI_MANIFEST},
    ]


def test_registry_message():
    body = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]})
    assert reg.registry_message(404, body.encode()) == "NAME_UNKNOWN: repository name not known to registry"
    assert reg.registry_message(500, b"oops") == "HTTP 500"


def test_tag_removal_manifest_is_unique_and_consistent():
    config, manifest = reg.tag_removal_manifest("n1")
    other_config, other_manifest = reg.tag_removal_manifest("n2")
    assert reg.sha256_digest(manifest) != reg.sha256_digest(other_manifest)
    described = json.loads(manifest)
    assert described["config"] == {"mediaType": reg.DOCKER_CONFIG, "size": len(config), "digest": reg.sha256_digest(config)}
    assert described["layers"] == []


def test_inspect_docker_save_archive(tmp_path):
    docker_save_archive(tmp_path / "img.tar", ["registry.example.org/team/app:2.1"])
    info = reg.inspect_archive(tmp_path / "img.tar")
    assert info == reg.ArchiveInfo("docker-archive", 1, ("registry.example.org/team/app:2.1",))
    assert info.suggestion() == ("team/app", "2.1")


def test_inspect_oci_archive(tmp_path):
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "manifests": [{"mediaType": reg.OCI_MANIFEST, "digest": "sha256:x", "size": 1,
                                            "annotations": {"org.opencontainers.image.ref.name": "3.0"}}]}))
    with tarfile.open(tmp_path / "oci.tar", "w") as tar:
        tar.add(layout / "oci-layout", "oci-layout")
        tar.add(layout / "index.json", "index.json")
    assert reg.inspect_archive(tmp_path / "oci.tar") == reg.ArchiveInfo("oci-archive", 1, ("3.0",))


def test_inspect_refuses_what_is_not_an_image(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(reg.RegistryError) as error:
        reg.inspect_archive(tmp_path / "notes.txt")
    assert (error.value.status, error.value.message) == (
        400, "not an image archive (a tar file from docker save or an OCI layout)")
    with tarfile.open(tmp_path / "plain.tar", "w") as tar:
        tar.add(tmp_path / "notes.txt", "notes.txt")
    with pytest.raises(reg.RegistryError) as error:
        reg.inspect_archive(tmp_path / "plain.tar")
    assert error.value.message == "not an image archive: it has neither manifest.json (docker save) nor an OCI layout"


def test_skopeo_command_keeps_credentials_off_the_command_line():
    access = reg.RegistryAccess("https://127.0.0.1:5000", "127.0.0.1:5000", "pusher", "s3cret", "PEM")
    info = reg.ArchiveInfo("docker-archive", 1)
    command = reg.skopeo_command("/proc/self/fd/7", info, access, "team/app", "1.0", "/w/auth.json", "/w/certs")
    assert command == [
        "skopeo", "copy", "--quiet", "--insecure-policy", "--retry-times", "3",
        "--dest-authfile", "/w/auth.json", "--dest-cert-dir", "/w/certs",
        "docker-archive:/proc/self/fd/7", "docker://127.0.0.1:5000/team/app:1.0",
    ]
    assert not any("s3cret" in part for part in command)
    plain = reg.RegistryAccess("http://127.0.0.1:5000", "127.0.0.1:5000")
    assert "--dest-tls-verify=false" in reg.skopeo_command("/a.tar", info, plain, "a", "b", "/w/a", "/w/c")
    with pytest.raises(reg.RegistryError) as error:
        reg.skopeo_command("/a.tar", reg.ArchiveInfo("docker-archive", 2), plain, "a", "b", "/w/a", "/w/c")
    assert error.value.message == "the archive holds 2 images; push an archive of one image"


def test_skopeo_message_takes_the_reason():
    stderr = 'time="2026-01-01T00:00:00Z" level=fatal msg="writing blob: \\"denied\\": access"\n'
    assert reg.skopeo_message(stderr) == 'writing blob: "denied": access'
    assert reg.skopeo_message("plain failure\n") == "plain failure"
    assert reg.skopeo_message("") == "skopeo failed without a message"


async def test_no_registry_means_no_image_choices():
    assert await reg.registry_image_choices(settings()) == []


def test_karvdashctl_image_names():
    from karvdash_hub.cli.filecommands import UsageProblem
    from karvdash_hub.cli.imagecommands import image_path, split_image

    assert split_image("team/app:1.0", need_tag=True) == ("team/app", "1.0")
    assert split_image("team/app", need_tag=False) == ("team/app", "")
    assert split_image("registry:5000/app", need_tag=False) == ("registry:5000/app", "")
    for bad in ("team/app", ":1.0", "team/app:"):
        with pytest.raises(UsageProblem):
            split_image(bad, need_tag=True)
    assert image_path("team/my app") == "team/my%20app"
