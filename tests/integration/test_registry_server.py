"""The registry client against a real Docker registry (Debian's
docker-registry 2.8) over TLS with a test CA and htpasswd basic auth: list,
tags grouped by digest with sizes, push of a ``docker save`` archive built
here (with Debian's skopeo), refusal of an existing name:tag, tag deletion."""

import os

import pytest

from karvdash_hub.core.settings import load_settings
from karvdash_hub.images.registry import (
    RegistryAccess,
    RegistryClient,
    RegistryError,
    inspect_archive,
    registry_image_choices,
)
from tests.registry.fixtures import docker_registry  # noqa: F401 - fixture
from tests.registry.images import docker_save_archive

pytestmark = pytest.mark.integration


def registry_settings(registry, url=None, cert=None):
    return load_settings(environ={
        "KARVDASH_DOCKER_REGISTRY_URL": url or registry.url_with_credentials,
        "KARVDASH_DOCKER_REGISTRY_CERT": registry.ca_pem if cert is None else cert,
    })


async def push(client, path, name, tag):
    """Push as the dashboard does: from a descriptor it opened itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return await client.push_archive(f"/proc/self/fd/{fd}", inspect_archive(path), name, tag)
    finally:
        os.close(fd)


async def test_push_list_group_and_delete(docker_registry, tmp_path):
    registry = docker_registry
    archive = tmp_path / "hello.tar"
    docker_save_archive(archive, ["example.org/demo/hello:1.0"], {"hello.txt": b"hello\n"})
    other = tmp_path / "other.tar"
    docker_save_archive(other, ["demo/hello:2.0"], {"other.txt": b"another image\n"})
    access = RegistryAccess.from_settings(registry_settings(registry))
    async with RegistryClient(access) as client:
        await client.check()
        pushed = await push(client, archive, "demo/hello", "1.0")
        assert pushed["image"] == f"{registry.host}/demo/hello:1.0"
        assert pushed["digest"].startswith("sha256:")

        # the size is the sum of the blobs the registry holds for the manifest
        session = registry.session()
        manifest = session.get(
            f"{registry.url}/v2/demo/hello/manifests/1.0",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        ).json()
        blobs = [manifest["config"], *manifest["layers"]]
        stored = sum(int(session.head(f"{registry.url}/v2/demo/hello/blobs/{b['digest']}").headers["Content-Length"])
                     for b in blobs)
        assert pushed["size"] == stored

        with pytest.raises(RegistryError) as refused:
            await push(client, other, "demo/hello", "1.0")
        assert (refused.value.status, refused.value.message) == (
            409, "demo/hello:1.0 exists already in the registry; choose another tag")
        # the refusal left the existing image as it was
        assert (await client.tag_details("demo/hello", "1.0"))[0] == pushed["digest"]

        await push(client, archive, "demo/hello", "stable")
        second = await push(client, other, "demo/hello", "2.0")
        assert await client.repositories() == ["demo/hello"]
        assert await client.tags("demo/hello") == ["1.0", "2.0", "stable"]
        image = await client.image("demo/hello")
        assert image["name"] == "demo/hello"
        assert [(g["digest"], g["tags"], g["size"]) for g in image["digests"]] == [
            (pushed["digest"], ["1.0", "stable"], pushed["size"]),
            (second["digest"], ["2.0"], second["size"]),
        ]
        assert sorted(await registry_image_choices(registry_settings(registry))) == [
            f"{registry.host}/demo/hello:1.0", f"{registry.host}/demo/hello:2.0", f"{registry.host}/demo/hello:stable",
        ]

        # deleting a tag that shares its digest keeps the other tag
        await client.delete_tag("demo/hello", "1.0")
        image = await client.image("demo/hello")
        assert [(g["digest"], g["tags"]) for g in image["digests"]] == [
            (second["digest"], ["2.0"]), (pushed["digest"], ["stable"])]
        # deleting the last tag of a digest removes the manifest
        await client.delete_tag("demo/hello", "stable")
        assert await client.tags("demo/hello") == ["2.0"]
        status = session.get(f"{registry.url}/v2/demo/hello/manifests/{pushed['digest']}",
                             headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}).status_code
        assert status == 404

        with pytest.raises(RegistryError) as missing:
            await client.delete_tag("demo/hello", "1.0")
        assert (missing.value.status, missing.value.message) == (404, "no image demo/hello:1.0 in the registry")
        with pytest.raises(RegistryError) as missing:
            await client.tags("demo/none")
        assert (missing.value.status, missing.value.message) == (404, "no image demo/none in the registry")


async def test_wrong_password_and_untrusted_certificate_are_explained(docker_registry):
    registry = docker_registry
    wrong = RegistryAccess.from_settings(
        registry_settings(registry, url=f"https://{registry.username}:wrong@{registry.host}"))
    async with RegistryClient(wrong) as client:
        with pytest.raises(RegistryError) as error:
            await client.repositories()
    assert error.value.status == 502
    assert error.value.message == (
        "the registry refused karvdash's credentials (UNAUTHORIZED: authentication required); check dockerRegistryURL")

    untrusted = RegistryAccess.from_settings(registry_settings(registry, cert=""))
    async with RegistryClient(untrusted) as client:
        with pytest.raises(RegistryError) as error:
            await client.check()
    assert error.value.status == 502
    assert error.value.message.startswith("the registry's certificate is not trusted (")
    assert error.value.message.endswith("set dockerRegistryCert to its CA")


async def test_push_of_something_else_is_refused_before_the_registry(docker_registry, tmp_path):
    notes = tmp_path / "notes.tar"
    notes.write_bytes(b"not a tar at all")
    with pytest.raises(RegistryError) as error:
        inspect_archive(notes)
    assert error.value.status == 400
    access = RegistryAccess.from_settings(registry_settings(docker_registry))
    async with RegistryClient(access) as client:
        with pytest.raises(RegistryError) as error:
            await client.push_archive(str(notes), None, "Bad Name", "1")
    assert error.value.message.startswith("'Bad Name' is not an image name")


async def test_push_of_an_oci_layout_archive(docker_registry, tmp_path):
    """An OCI-layout tar (what ``docker save`` of Docker 25+ and podman
    write), made here by skopeo from a docker-save archive."""
    import subprocess

    source = tmp_path / "docker.tar"
    docker_save_archive(source, ["demo/oci:1.0"], {"oci.txt": b"oci layout\n"})
    oci = tmp_path / "oci.tar"
    subprocess.run(["skopeo", "copy", "--insecure-policy", f"docker-archive:{source}", f"oci-archive:{oci}:1.0"],
                   check=True, capture_output=True, timeout=120)
    info = inspect_archive(oci)
    assert (info.transport, info.images, info.repo_tags) == ("oci-archive", 1, ("1.0",))
    access = RegistryAccess.from_settings(registry_settings(docker_registry))
    async with RegistryClient(access) as client:
        pushed = await push(client, oci, "demo/oci", "1.0")
        assert await client.tags("demo/oci") == ["1.0"]
        digest, size, media_type = await client.tag_details("demo/oci", "1.0")
    assert (digest, size) == (pushed["digest"], pushed["size"])
    assert media_type == "application/vnd.oci.image.manifest.v1+json"


async def test_an_insecure_registry_is_used_without_its_ca(docker_registry, tmp_path):
    """Karvdash's dockerRegistry and dockerRegistryNoVerify in a values file:
    listing and a skopeo push work against the test registry, whose CA the
    dashboard is not given; without NoVerify the same registry is refused."""
    import yaml

    registry = docker_registry
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"karvdash": {"dockerRegistry": registry.url_with_credentials,
                                                   "dockerRegistryNoVerify": "1"}}))
    settings = load_settings(values_file=values, environ={})
    assert (settings.dockerRegistryURL, settings.dockerRegistryInsecure, settings.dockerRegistryCert) == (
        registry.url_with_credentials, True, "")
    archive = tmp_path / "insecure.tar"
    docker_save_archive(archive, ["demo/insecure:1.0"], {"insecure.txt": b"no verification\n"})
    async with RegistryClient(RegistryAccess.from_settings(settings)) as client:
        await client.check()
        pushed = await push(client, archive, "demo/insecure", "1.0")
        assert await client.tags("demo/insecure") == ["1.0"]
        assert (await client.tag_details("demo/insecure", "1.0"))[0] == pushed["digest"]
    values.write_text(yaml.safe_dump({"karvdash": {"dockerRegistry": registry.url_with_credentials}}))
    verified = RegistryAccess.from_settings(load_settings(values_file=values, environ={}))
    async with RegistryClient(verified) as client:
        with pytest.raises(RegistryError) as error:
            await client.check()
    assert error.value.message.startswith("the registry's certificate is not trusted (")
