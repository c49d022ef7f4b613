"""The private Docker Registry (v2 API) of ``dockerRegistryURL``: its
repositories, tags grouped by manifest digest with their size, deleting a
tag, and pushing an image archive from the file domains.

Reading and deleting use the registry's HTTP API directly (aiohttp, on the
event loop). Pushing runs ``skopeo copy`` (Debian's ``skopeo`` package, the
containers project's tool): it reads ``docker save`` archives of every
Docker version and OCI-layout archives, compresses layers, resumes and
retries uploads, none of which needs a Docker daemon. Credentials reach it
in a private auth file, never on its command line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import ssl
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urljoin, urlsplit

import aiohttp

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.settings import KarvdashConfig, registry_cert_file
from karvdash_hub.namespaces.objects import registry_credentials

log = logging.getLogger("karvdash.registry")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)

# the distribution spec's grammar of repository names and tags
REPOSITORY_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{REPOSITORY_COMPONENT}(?:/{REPOSITORY_COMPONENT})*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_REPOSITORY = 255
PAGE_SIZE = 1000
CONCURRENT_MANIFESTS = 8
PUSH_TIMEOUT = 3600
MAX_ARCHIVE_MANIFEST = 4 * 1024 * 1024


class RegistryError(KarvdashError):
    """A registry request failed."""


# --- names ---------------------------------------------------------------------------------

# repositories whose tags are listed at once for the overview
CONCURRENT_TAG_LISTS = 8
# the files the Files page offers to push to the registry (docker save, OCI layout)
IMAGE_ARCHIVE_SUFFIX = ".tar"


def check_repository(name) -> str:
    if not isinstance(name, str) or not name:
        raise RegistryError(400, "an image needs a name")
    if len(name) > MAX_REPOSITORY or not REPOSITORY.match(name):
        raise RegistryError(
            400, f"{name!r} is not an image name (lowercase letters and digits, separated by '.', '_', '-' "
            "or '/' between path parts)"
        )
    return name


def check_tag(tag) -> str:
    if not isinstance(tag, str) or not TAG.match(tag):
        raise RegistryError(400, f"{tag!r} is not a tag (up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-')")
    return tag


def archive_reference(repo_tag: str) -> tuple[str, str] | None:
    """The name and tag to suggest for an archive's ``RepoTags`` entry
    (``registry.example.com:5000/team/app:1.0`` -> ("team/app", "1.0")),
    or None when it is not a usable name."""
    name, colon, tag = repo_tag.rpartition(":")
    if not colon or "/" in tag:
        name, tag = repo_tag, "latest"
    first, slash, rest = name.partition("/")
    # a first part with a dot or a port, or "localhost", names a registry
    if slash and ("." in first or ":" in first or first == "localhost"):
        name = rest
    if name.startswith("library/"):
        name = name[len("library/"):]
    try:
        return check_repository(name), check_tag(tag)
    except RegistryError:
        return None


# --- where the registry is ----------------------------------------------------------------


@dataclass(frozen=True)
class RegistryAccess:
    """``dockerRegistryURL``, ``dockerRegistryCert`` and
    ``dockerRegistryInsecure`` taken apart."""

    base_url: str  # scheme://host[:port], no credentials
    host: str  # host[:port] as image references name it
    username: str = ""
    password: str = field(default="", repr=False)
    ca_pem: str = ""
    # TLS without certificate verification, for this registry only
    insecure: bool = False

    @classmethod
    def from_settings(cls, settings: KarvdashConfig) -> RegistryAccess | None:
        """None when no registry is configured."""
        url = settings.dockerRegistryURL
        if not url:
            return None
        parts = urlsplit(url)
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        if ":" in parts.hostname:  # an IPv6 address
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        credentials = registry_credentials(url)
        username, password = (credentials[1], credentials[2]) if credentials else ("", "")
        return cls(
            base_url=f"{parts.scheme}://{host}",
            host=host,
            username=username,
            password=password,
            ca_pem=read_ca(settings.dockerRegistryCert),
            insecure=settings.dockerRegistryInsecure,
        )

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.secure:
            return False
        # a context of its own: other TLS connections of the process stay verified
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            context.load_verify_locations(cadata=self.ca_pem)
        return context

    def headers(self) -> dict[str, str]:
        """Basic auth, sent with every request (the registry answers 401 otherwise)."""
        if not self.username:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def image(self, repository: str, tag: str) -> str:
        """The reference pods pull: ``host[:port]/repository:tag``."""
        return f"{self.host}/{repository}:{tag}"


def read_ca(setting: str) -> str:
    """``dockerRegistryCert``: PEM text, or the path of a PEM file (read once at start)."""
    path = registry_cert_file(setting)
    return Path(path).read_text() if path else setting.strip()


# --- pure parts of the API -----------------------------------------------------------------


def next_page(link_header: str | None, current_url: str) -> str | None:
    """The URL of the next page from a ``Link: <...>; rel="next"`` header."""
    if not link_header:
        return None
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link_header)
    return urljoin(current_url, match.group(1)) if match else None


def manifest_blobs(manifest: dict) -> dict[str, int]:
    """Digest -> size of the config and layers of an image manifest."""
    blobs = {}
    for descriptor in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
        if descriptor.get("digest"):
            blobs[descriptor["digest"]] = int(descriptor.get("size") or 0)
    return blobs


def group_by_digest(tags: dict[str, tuple[str, int, str]]) -> list[dict]:
    """``{tag: (digest, size, media type)}`` -> one entry per digest with its
    tags, largest group first, then by the first tag."""
    groups: dict[str, dict] = {}
    for tag, (digest, size, media_type) in tags.items():
        group = groups.setdefault(digest, {"digest": digest, "tags": [], "size": size, "media_type": media_type})
        group["tags"].append(tag)
    for group in groups.values():
        group["tags"].sort()
    return sorted(groups.values(), key=lambda g: (-len(g["tags"]), g["tags"][0]))


def registry_message(status: int, body: bytes) -> str:
    """The registry's own words for an error (its ``errors`` list)."""
    try:
        errors = json.loads(body).get("errors") or []
        words = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except (ValueError, AttributeError):
        words = ""
    return words or f"HTTP {status}"


def tag_removal_manifest(nonce: str) -> tuple[bytes, bytes]:
    """(config blob, manifest) of an empty image that exists only to move a
    tag off a digest other tags keep; the nonce makes its digest unique."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
         "config": {"Labels": {"karvdash.io/removed-tag": nonce}}},
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": sha256_digest(config)},
            "layers": [],
        },
        sort_keys=True,
    ).encode()
    return config, manifest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- image archives --------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveInfo:
    """What an image archive holds: ``transport`` is skopeo's name for its
    format (``docker-archive`` or ``oci-archive``)."""

    transport: str
    images: int
    repo_tags: tuple[str, ...] = ()

    def suggestion(self) -> tuple[str, str] | None:
        for repo_tag in self.repo_tags:
            found = archive_reference(repo_tag)
            if found:
                return found
        return None


def archive_name_hint(path: str) -> str:
    """A name to suggest from the file name: ``images/My_App.tar`` -> ``my-app``."""
    stem = PurePosixPath(path).name.split(".")[0].lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in stem).strip("-")
    return "-".join(part for part in cleaned.split("-") if part)


def choose_reference(info: ArchiveInfo | None, path: str, name: str = "", tag: str = "") -> tuple[str, str]:
    """The name and tag to push the archive at ``path`` as: the ones asked
    for, else the archive's own (``docker save``'s RepoTags), else a name
    from the file name and ``latest``."""
    suggested = info.suggestion() if info else None
    name = name or (suggested[0] if suggested else archive_name_hint(path))
    tag = tag or (suggested[1] if suggested and suggested[0] == name else "latest")
    return name, tag


def plan_push(archive: str | os.PathLike, display: str, path: str, name: str = "", tag: str = "") -> tuple[ArchiveInfo, str, str]:
    """What pushing the archive (``display`` names it, ``path`` in its
    domain) would push, checked: (its contents, name, tag). Blocking."""
    try:
        info = inspect_archive(archive)
    except RegistryError as error:
        raise RegistryError(400, f"{display}: {error.message}") from None
    name, tag = choose_reference(info, path, name, tag)
    return info, check_repository(name), check_tag(tag)


def inspect_archive(path: str | os.PathLike) -> ArchiveInfo:
    """Read an image archive's table of contents (blocking: run it in an
    executor). Raises RegistryError(400) for anything that is not one image."""
    try:
        with tarfile.open(path, "r:*") as archive:
            members = {}
            for member in archive:
                name = member.name.removeprefix("./")
                if name in ("manifest.json", "index.json", "oci-layout") and member.isfile():
                    if member.size > MAX_ARCHIVE_MANIFEST:
                        raise RegistryError(400, f"the archive's {name} is too large to be an image index")
                    members[name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError):
        raise RegistryError(400, "not an image archive (a tar file from docker save or an OCI layout)") from None
    except OSError as error:
        raise RegistryError(400, f"cannot read the archive: {error.strerror or error}") from None
    if "manifest.json" in members:
        # docker save, including Docker 25+, whose archives are OCI layouts as well
        try:
            entries = json.loads(members["manifest.json"])
            repo_tags = tuple(t for entry in entries for t in (entry.get("RepoTags") or []) if isinstance(t, str))
            return ArchiveInfo("docker-archive", len(entries), repo_tags)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(400, "the archive's manifest.json is not a docker save manifest") from None
    if "index.json" in members and "oci-layout" in members:
        try:
            manifests = json.loads(members["index.json"]).get("manifests") or []
        except (ValueError, AttributeError):
            raise RegistryError(400, "the archive's index.json is not an OCI image index") from None
        names = tuple(
            str((m.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")) for m in manifests
        )
        return ArchiveInfo("oci-archive", len(manifests), tuple(n for n in names if n))
    raise RegistryError(400, "not an image archive: it has neither manifest.json (docker save) nor an OCI layout")


def skopeo_command(
    source: str, info: ArchiveInfo, access: RegistryAccess, repository: str, tag: str, auth_file: str, cert_dir: str
) -> list[str]:
    """``skopeo copy`` of the archive at ``source`` to ``repository:tag``."""
    if info.images != 1:
        raise RegistryError(400, f"the archive holds {info.images} images; push an archive of one image")
    command = [
        "skopeo", "copy", "--quiet",
        # the signature policy concerns pulled images; this is the user's own archive
        "--insecure-policy",
        "--retry-times", "3",
        "--dest-authfile", auth_file,
    ]
    if access.secure and not access.insecure:
        command += ["--dest-cert-dir", cert_dir]
    else:
        # the destination only: the archive is a local file
        command += ["--dest-tls-verify=false"]
    command += [f"{info.transport}:{source}", f"docker://{access.image(repository, tag)}"]
    return command


def auth_file_content(access: RegistryAccess) -> str:
    """The containers auth file (same layout as Docker's config.json)."""
    if not access.username:
        return json.dumps({"auths": {}})
    token = base64.b64encode(f"{access.username}:{access.password}".encode()).decode()
    return json.dumps({"auths": {access.host: {"auth": token}}})


def skopeo_message(stderr: str) -> str:
    """The reason in skopeo's last error line (``time=... level=fatal msg="..."``)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "skopeo failed without a message"
    last = lines[-1]
    match = re.search(r'msg="((?:[^"\\]|\\.)*)"', last)
    return match.group(1).replace('\\"', '"') if match else last


# --- the client --------------------------------------------------------------------------------


class RegistryClient:
    """An aiohttp session to the registry, made on first use on the running loop."""

    def __init__(self, access: RegistryAccess, timeout: float = 60):
        self.access = access
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ssl = access.ssl_context()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _url(self, path: str) -> str:
        return self.access.base_url + path

    async def _request(self, method: str, url: str, *, expect=(200,), headers=None, data=None) -> tuple[int, dict, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, headers=self.access.headers())
        try:
            async with self._session.request(method, url, headers=headers, data=data, ssl=self._ssl,
                                             allow_redirects=True) as response:
                body = await response.read()
                status, response_headers = response.status, dict(response.headers)
        except aiohttp.ClientConnectorCertificateError as error:
            raise RegistryError(
                502, f"the registry's certificate is not trusted ({error.certificate_error}); "
                "set dockerRegistryCert to its CA"
            ) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise RegistryError(502, f"cannot reach the registry at {self.access.base_url}: {error or type(error).__name__}") from None
        if status in expect:
            return status, response_headers, body
        message = registry_message(status, body)
        if status == 401:
            raise RegistryError(502, f"the registry refused karvdash's credentials ({message}); check dockerRegistryURL")
        if status == 404:
            raise RegistryError(404, message)
        if status == 405 and method == "DELETE":
            raise RegistryError(
                405, "the registry does not allow deleting images (enable storage.delete in its configuration)"
            )
        raise RegistryError(502, f"the registry answered {method} {urlsplit(url).path} with {message}")

    async def _pages(self, path: str, key: str) -> list[str]:
        url = self._url(f"{path}?n={PAGE_SIZE}")
        found: list[str] = []
        while url:
            _, headers, body = await self._request("GET", url)
            found += json.loads(body).get(key) or []
            url = next_page(headers.get("Link"), url)
        return found

    # --- reading ---------------------------------------------------------------------------

    async def check(self) -> None:
        """The API version check: raises RegistryError when the registry
        cannot be reached or refuses the credentials."""
        await self._request("GET", self._url("/v2/"))

    async def repositories(self) -> list[str]:
        return sorted(await self._pages("/v2/_catalog", "repositories"))

    async def tags(self, repository: str) -> list[str]:
        check_repository(repository)
        try:
            return sorted(await self._pages(f"/v2/{repository}/tags/list", "tags"))
        except RegistryError as error:
            if error.status == 404:
                raise RegistryError(404, f"no image {repository} in the registry") from None
            raise

    async def manifest(self, repository: str, reference: str) -> tuple[str, str, dict]:
        """(digest, media type, manifest) of a tag or digest."""
        _, headers, body = await self._request(
            "GET", self._url(f"/v2/{repository}/manifests/{quote(reference, safe=':')}"),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        manifest = json.loads(body)
        media_type = manifest.get("mediaType") or headers.get("Content-Type", "").split(";")[0]
        return sha256_digest(body), media_type, manifest

    async def exists(self, repository: str, tag: str) -> bool:
        try:
            await self._request(
                "HEAD", self._url(f"/v2/{repository}/manifests/{tag}"), headers={"Accept": ", ".join(MANIFEST_TYPES)}
            )
        except RegistryError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def _size(self, repository: str, media_type: str, manifest: dict) -> int:
        """Bytes of every distinct blob the manifest (or index) refers to."""
        if media_type not in INDEX_TYPES:
            return sum(manifest_blobs(manifest).values())
        blobs: dict[str, int] = {}
        for child in manifest.get("manifests") or []:
            _, _, child_manifest = await self.manifest(repository, child["digest"])
            blobs.update(manifest_blobs(child_manifest))
        return sum(blobs.values())

    async def tag_details(self, repository: str, tag: str) -> tuple[str, int, str]:
        """(digest, size, media type) of one tag."""
        try:
            digest, media_type, manifest = await self.manifest(repository, tag)
            return digest, await self._size(repository, media_type, manifest), media_type
        except RegistryError as error:
            if error.status == 404:
                raise RegistryError(404, f"no image {repository}:{tag} in the registry") from None
            raise

    async def overview(self) -> list[dict]:
        """Every repository with its tags (a repository gone meanwhile has none)."""
        names = await self.repositories()
        limit = asyncio.Semaphore(CONCURRENT_TAG_LISTS)

        async def one(name: str) -> dict:
            async with limit:
                try:
                    return {"name": name, "tags": await self.tags(name)}
                except RegistryError as error:
                    if error.status == 404:
                        return {"name": name, "tags": []}
                    raise

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def image(self, repository: str) -> dict:
        """A repository's tags grouped by the digest they point at."""
        tags = await self.tags(repository)
        limit = asyncio.Semaphore(CONCURRENT_MANIFESTS)

        async def one(tag: str):
            async with limit:
                try:
                    return tag, await self.tag_details(repository, tag)
                except RegistryError as error:
                    if error.status == 404:  # deleted meanwhile
                        return tag, None
                    raise

        details = dict(await asyncio.gather(*(one(t) for t in tags)))
        return {
            "name": repository,
            "digests": group_by_digest({t: d for t, d in details.items() if d is not None}),
        }

    # --- changing ----------------------------------------------------------------------------

    async def delete_tag(self, repository: str, tag: str) -> None:
        """Remove one tag. The v2 API deletes manifests, not tags: when other
        tags share the digest, the tag is first moved to a unique empty image,
        which is then deleted, so the other tags stay."""
        check_repository(repository)
        check_tag(tag)
        try:
            digest, _, _ = await self.manifest(repository, tag)
        except RegistryError as error:
            if error.status == 404:
                raise RegistryError(404, f"no image {repository}:{tag} in the registry") from None
            raise
        others = [t for t in await self.tags(repository) if t != tag]
        sharing = False
        for other in others:
            try:
                other_digest, _, _ = await self.manifest(repository, other)
            except RegistryError as error:
                if error.status == 404:
                    continue
                raise
            if other_digest == digest:
                sharing = True
                break
        if sharing:
            digest = await self._retag_empty(repository, tag)
        await self._request("DELETE", self._url(f"/v2/{repository}/manifests/{digest}"), expect=(202, 200))
        log.info("deleted %s:%s (%s)", repository, tag, digest)

    async def _retag_empty(self, repository: str, tag: str) -> str:
        config, manifest = tag_removal_manifest(uuid.uuid4().hex)
        _, headers, _ = await self._request("POST", self._url(f"/v2/{repository}/blobs/uploads/"), expect=(202,))
        location = urljoin(self._url(f"/v2/{repository}/blobs/uploads/"), headers["Location"])
        separator = "&" if "?" in location else "?"
        await self._request(
            "PUT", f"{location}{separator}digest={sha256_digest(config)}", data=config,
            headers={"Content-Type": "application/octet-stream"}, expect=(201,),
        )
        await self._request(
            "PUT", self._url(f"/v2/{repository}/manifests/{tag}"), data=manifest,
            headers={"Content-Type": DOCKER_MANIFEST}, expect=(201,),
        )
        return sha256_digest(manifest)

    async def push_archive(self, archive: str, info: ArchiveInfo, repository: str, tag: str) -> dict:
        """Push the image archive at ``archive`` (a path skopeo can open) as
        ``repository:tag``; refuse a name:tag that exists. Returns the
        pushed image's reference, digest and size."""
        check_repository(repository)
        check_tag(tag)
        if await self.exists(repository, tag):
            raise RegistryError(409, f"{repository}:{tag} exists already in the registry; choose another tag")
        with tempfile.TemporaryDirectory(prefix="karvdash-push-") as work:
            auth_file = os.path.join(work, "auth.json")
            cert_dir = os.path.join(work, "certs")
            await asyncio.to_thread(_write_push_files, self.access, auth_file, cert_dir)
            command = skopeo_command(archive, info, self.access, repository, tag, auth_file, cert_dir)
            # skopeo keeps large temporary files (decompressed layers) in TMPDIR
            environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "TMPDIR": work,
                           "XDG_RUNTIME_DIR": work}
            try:
                process = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    env=environment, pass_fds=_inherited_fd(archive),
                )
            except FileNotFoundError:
                raise RegistryError(503, "skopeo is not installed on the dashboard's machine; it pushes images") from None
            try:
                _, stderr = await asyncio.wait_for(process.communicate(), PUSH_TIMEOUT)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                process.kill()
                await process.wait()
                raise
        if process.returncode != 0:
            message = skopeo_message(stderr.decode(errors="replace"))
            log.warning("push of %s:%s failed: %s", repository, tag, message)
            raise RegistryError(400 if "archive" in message or "manifest" in message else 502,
                                f"cannot push the image: {message}")
        digest, size, media_type = await self.tag_details(repository, tag)
        log.info("pushed %s:%s (%s)", repository, tag, digest)
        return {"name": repository, "tag": tag, "digest": digest, "size": size,
                "image": self.access.image(repository, tag)}


def _write_push_files(access: RegistryAccess, auth_file: str, cert_dir: str) -> None:
    descriptor = os.open(auth_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write(auth_file_content(access))
    os.makedirs(cert_dir, mode=0o700)
    if access.ca_pem:
        Path(cert_dir, "ca.crt").write_text(access.ca_pem)


def _inherited_fd(path: str) -> tuple[int, ...]:
    """An archive given as ``/proc/self/fd/N`` (the file the caller opened and
    checked) must stay open in skopeo; skopeo sees it as its own fd N."""
    match = re.match(r"^/(?:proc/self/fd|dev/fd)/(\d+)$", path)
    return (int(match.group(1)),) if match else ()


# --- image choices for the spawn form ---------------------------------------------------------


async def registry_image_choices(settings: KarvdashConfig) -> list[str]:
    """Every ``host[:port]/repository:tag`` of the registry, sorted ([] without
    a registry). For the image option of the spawn profiles."""
    # reads dockerRegistryCert's file: off the event loop
    access = await asyncio.to_thread(RegistryAccess.from_settings, settings)
    if access is None:
        return []
    async with RegistryClient(access) as client:
        choices = []
        for repository in await client.repositories():
            try:
                tags = await client.tags(repository)
            except RegistryError as error:
                if error.status == 404:
                    continue
                raise
            choices += [access.image(repository, tag) for tag in tags]
    return choices
