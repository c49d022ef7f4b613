"""A real S3 server for the tests (moto in server mode, on 127.0.0.1) and a
small path type over its keys, so that the Files tests look at an S3 file
domain the way they look at a folder: ``files_root(hub) / "shared" / "a.txt"``.

moto answers the S3 REST API over HTTP like any S3 server (it enforces
``If-None-Match: *`` on PutObject and CompleteMultipartUpload, as AWS and
MinIO do); the dashboard talks to it with boto3 as to any other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from karvdash_hub.hub.service import free_loopback_port

ACCESS_KEY = "karvdash-test-access"
SECRET_KEY = "karvdash-test-secret-key"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    log_path: Path

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            region_name=REGION, config=Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = "files-" + uuid.uuid4().hex[:12]
        self.client().create_bucket(Bucket=name)
        return name

    def hub_env(self, bucket: str, prefix: str = "") -> dict:
        """The settings of a hub whose file domains are ``bucket`` (and ``prefix``)."""
        host = self.endpoint.split("://", 1)[1]
        return {
            "KARVDASH_FILES_URL": f"minio://{host}/{bucket}" + (f"/{prefix}" if prefix else ""),
            "KARVDASH_FILES_S3_ACCESS_KEY": ACCESS_KEY,
            "KARVDASH_FILES_S3_SECRET_KEY": SECRET_KEY,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_s3_server(folder: Path, timeout: float = 60) -> S3Server:
    """moto's S3 server on a free loopback port, answering once it lists buckets."""
    port = free_loopback_port()
    log_path = folder / "moto.log"
    # no AWS settings of the machine reach it; nothing leaves 127.0.0.1
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = S3Server(endpoint=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            requests.get(server.endpoint, timeout=2)
            server.client().list_buckets()
            return server
        except (requests.ConnectionError, ClientError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"the S3 server did not answer in {timeout}s:\n{log_path.read_text()}")


@dataclass(frozen=True)
class StatResult:
    st_size: int
    st_mtime: float


class S3Path:
    """A key (a file) or a key prefix (a folder) of a bucket, with the part
    of pathlib the Files tests use. Folders are prefixes, made visible while
    empty by a marker object ``<key>/``, as the dashboard makes them."""

    def __init__(self, client, bucket: str, key: str = ""):
        self.client, self.bucket, self.key = client, bucket, key.strip("/")

    def __truediv__(self, name: str) -> S3Path:
        return S3Path(self.client, self.bucket, f"{self.key}/{name}" if self.key else str(name))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    __repr__ = __str__

    def __eq__(self, other) -> bool:
        return isinstance(other, S3Path) and (self.bucket, self.key) == (other.bucket, other.key)

    def __hash__(self) -> int:
        return hash((self.bucket, self.key))

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Path:
        return S3Path(self.client, self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def prefix(self) -> str:
        return f"{self.key}/" if self.key else ""

    def _head(self):
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError:
            return None

    def is_file(self) -> bool:
        return bool(self.key) and self._head() is not None

    def is_dir(self) -> bool:
        return self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1).get("KeyCount", 0) > 0

    def is_symlink(self) -> bool:
        return False

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        if self.exists():
            if exist_ok:
                return
            raise FileExistsError(str(self))
        if not parents and self.parent.key and not self.parent.is_dir():
            raise FileNotFoundError(str(self.parent))
        self.client.put_object(Bucket=self.bucket, Key=self.prefix, Body=b"")

    def write_bytes(self, data: bytes) -> int:
        self.client.put_object(Bucket=self.bucket, Key=self.key, Body=data)
        return len(data)

    def write_text(self, text: str) -> int:
        return self.write_bytes(text.encode())

    def read_bytes(self) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError:
            raise FileNotFoundError(str(self)) from None

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def open(self, mode: str = "rb"):
        """The object's body, streamed (``with path.open("rb") as f: f.read(n)``)."""
        assert mode == "rb", "S3Path opens files for reading only"
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except ClientError:
            raise FileNotFoundError(str(self)) from None

    def stat(self) -> StatResult:
        head = self._head()
        if head is None:
            raise FileNotFoundError(str(self))
        return StatResult(head["ContentLength"], head["LastModified"].timestamp())

    def iterdir(self):
        seen = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(self.prefix):].rstrip("/")
                if name and name not in seen:
                    seen.add(name)
                    yield self / name
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix):]
                if name and name not in seen:
                    seen.add(name)
                    yield self / name

    def keys(self) -> dict[str, tuple[int, str]]:
        """Every key below this folder: (size, ETag), for comparing states."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = (item["Size"], item["ETag"], item["LastModified"].timestamp())
        return found

    def unlink(self) -> None:
        if not self.is_file():
            raise FileNotFoundError(str(self))
        self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def rmtree(self) -> None:
        keys = list(self.keys())
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})

    def multipart_uploads(self) -> list[dict]:
        """Multipart uploads under way below this folder."""
        return self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix).get("Uploads", [])


def start_files_hub(request, tmp_path_factory, file_domain: str, env: dict | None = None, **kwargs):
    """A hub whose file domains are folders (``local``) or a bucket of the
    tests' S3 server below the prefix ``karvdash`` (``s3``); ``hub.files``
    is then that prefix as an :class:`S3Path`."""
    from tests.hubprocess import start_hub

    env = dict(env or {})
    files = None
    if file_domain == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = server.new_bucket()
        env.update(server.hub_env(bucket, prefix="karvdash"))
        files = S3Path(server.client(), bucket, "karvdash")
    running = start_hub(tmp_path_factory.mktemp("hub"), env=env, **kwargs)
    running.files = files
    return running
