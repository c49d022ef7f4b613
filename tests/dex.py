"""A real OpenID Connect provider for the single sign-on tests: Dex (built
from Go modules by tools/dex/build.sh) on loopback, with its memory storage
and static users that carry groups (Dex >= 2.45)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests

from tests.hubprocess import ROOT, free_port

BUILD = ROOT / "tools" / "dex" / "build.sh"
CLIENT_ID = "karvdash"
CLIENT_SECRET = "dex-test-client-secret"


@dataclass(frozen=True)
class DexUser:
    username: str
    password: str
    groups: tuple[str, ...]

    @property
    def email(self) -> str:
        return f"{self.username}@example.org"


def dex_binary() -> Path:
    return Path(subprocess.run([str(BUILD), "--print-path"], capture_output=True, text=True, check=True).stdout.strip())


def go_available() -> bool:
    return shutil.which("go") is not None or os.access("/usr/local/go/bin/go", os.X_OK)


def unavailable_reason() -> str:
    """Why Dex cannot run here ('' if it can)."""
    if dex_binary().is_file():
        return ""
    return f"Dex is not built: run `make dex` (tools/dex/build.sh, needs Go >= 1.25); expected {dex_binary()}"


class Dex:
    """Dex on a free loopback port: start(redirect_uri) once the client's
    callback URL is known, stop() by its process id."""

    def __init__(self, work: Path, users: list[DexUser]):
        self.work = work
        self.users = users
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/dex"
        self.log_path = work / "dex.log"
        self.process: subprocess.Popen | None = None

    def hub_config(self) -> dict:
        """The GenericOAuthenticator settings a hub needs for this Dex."""
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "login_service": "Dex",
            "authorize_url": f"{self.issuer}/auth",
            "token_url": f"{self.issuer}/token",
            "userdata_url": f"{self.issuer}/userinfo",
            "scope": ["openid", "profile", "email", "groups"],
            "username_claim": "preferred_username",
        }

    def config(self, redirect_uri: str) -> dict:
        return {
            "issuer": self.issuer,
            "storage": {"type": "memory"},
            "web": {"http": f"127.0.0.1:{self.port}"},
            "logger": {"level": "info"},
            "oauth2": {"skipApprovalScreen": True},
            "staticClients": [
                {"id": CLIENT_ID, "secret": CLIENT_SECRET, "name": "karvdash-hub", "redirectURIs": [redirect_uri]}
            ],
            "enablePasswordDB": True,
            "staticPasswords": [
                {
                    "email": user.email,
                    # cost 10: the lowest Dex accepts, so logins stay fast
                    "hash": bcrypt.hashpw(user.password.encode(), bcrypt.gensalt(rounds=10)).decode(),
                    "username": user.username,
                    "preferredUsername": user.username,
                    "userID": str(uuid.uuid5(uuid.NAMESPACE_URL, user.email)),
                    "groups": list(user.groups),
                }
                for user in self.users
            ],
        }

    def start(self, redirect_uri: str, timeout: float = 30) -> None:
        self.redirect_uri = redirect_uri
        config_path = self.work / "dex.yaml"
        # JSON is YAML: Dex reads it as its config file
        config_path.write_text(json.dumps(self.config(redirect_uri), indent=2))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(dex_binary()), "serve", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work,
                start_new_session=True,
            )
        discovery = self.issuer + "/.well-known/openid-configuration"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dex exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(discovery, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dex did not answer in {timeout}s:\n{self.log()}")

    def replace_user(self, user: DexUser) -> None:
        """Change a user's groups at the provider (Dex reads static users at start)."""
        self.users = [user if known.username == user.username else known for known in self.users]
        self.stop()
        self.start(self.redirect_uri)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
