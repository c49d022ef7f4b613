"""Debian's ``docker-registry`` (Docker Distribution 2.8) for tests: TLS with
a test CA whose serving certificate has the IP SAN 127.0.0.1, htpasswd
(bcrypt) basic auth, deletes enabled, filesystem storage in a temp folder,
on a free loopback port."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests
import yaml

from tests.hubprocess import free_port
from tests.kube.pki import CertificateAuthority

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO_BINARY = shutil.which("skopeo") or "/usr/bin/skopeo"
USERNAME = "pusher"


@dataclass
class RunningRegistry:
    host: str  # 127.0.0.1:<port>
    ca_pem: str
    ca_path: Path
    username: str
    password: str
    storage: Path
    log_path: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def url_with_credentials(self) -> str:
        return f"https://{self.username}:{self.password}@{self.host}"

    def session(self) -> requests.Session:
        """A requests session that trusts the test CA and logs in."""
        session = requests.Session()
        # REQUESTS_CA_BUNDLE in the environment would override verify
        session.trust_env = False
        session.verify = str(self.ca_path)
        session.auth = (self.username, self.password)
        return session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_registry(work: Path, timeout: float = 30) -> RunningRegistry:
    work.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("karvdash-hub test registry CA")
    ca_path = work / "ca.crt"
    ca_path.write_bytes(ca.cert_pem)
    cert_path, key_path = ca.issue("127.0.0.1", ip_addresses=("127.0.0.1",), server=True).write(work, "registry")
    password = secrets.token_urlsafe(12)
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"{USERNAME}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    port = free_port()
    storage = work / "storage"
    config = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16),
                 "tls": {"certificate": str(cert_path), "key": str(key_path)}},
        "auth": {"htpasswd": {"realm": "karvdash-test", "path": str(htpasswd)}},
    }
    config_path = work / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = work / "registry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    registry = RunningRegistry(f"127.0.0.1:{port}", ca.cert_pem.decode(), ca_path, USERNAME, password,
                               storage, log_path, process)
    deadline = time.monotonic() + timeout
    session = registry.session()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}:\n{registry.log()}")
        try:
            if session.get(registry.url + "/v2/", timeout=2).status_code == 200:
                return registry
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    registry.stop()
    raise RuntimeError(f"docker-registry did not answer in {timeout}s:\n{registry.log()}")
