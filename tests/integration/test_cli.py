"""karvdashctl against a running hub: every file command, --json, exit
codes, and finding the dashboard from a notebook's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.dashboardsession import (
    ACCESS,
    FILES_READ,
    dashboard_url,
    ensure_user,
    files_root,
    private_folder,
)

pytestmark = pytest.mark.integration

KARVDASHCTL = str(Path(sys.executable).parent / "karvdashctl")


@pytest.fixture(scope="module")
def cli(hub, tmp_path_factory):
    ensure_user(hub, "carol")
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "config.ini"
    config.write_text(f"[Karvdash]\nbase_url = {dashboard_url(hub)}\ntoken = {hub.token_for('carol')}\n")
    home = folder / "home"
    home.mkdir()

    def run(*args, env=None, cwd=None, config_file=config):
        environment = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            **({"KARVDASH_CONFIG": str(config_file)} if config_file else {}),
            **(env or {}),
        }
        return subprocess.run(
            [KARVDASHCTL, *args], env=environment, cwd=cwd or folder, capture_output=True, text=True, timeout=300
        )

    return run


@pytest.fixture
def carol(hub):
    folder = private_folder(hub, "carol")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_mkdir_ls_and_json(cli, carol):
    done = cli("mkdir", "private/results")
    assert (done.returncode, done.stdout.strip()) == (0, "created private/results")
    assert (carol / "results").is_dir()
    (carol / "results" / "r.csv").write_text("12345")
    listing = cli("ls", "private/results")
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[0].split() == ["type", "size", "modified", "name"]
    assert listing.stdout.splitlines()[1].split()[0:2] == ["-", "5"] and listing.stdout.rstrip().endswith("r.csv")
    as_json = json.loads(cli("--json", "ls", "/private/results/").stdout)
    assert [(e["name"], e["size"]) for e in as_json["entries"]] == [("r.csv", 5)]


def test_ls_lists_a_folder_larger_than_a_page_by_following_the_cursor(cli, carol):
    big = carol / "big"
    big.mkdir()
    names = [f"f{i:04d}" for i in range(2500)]  # two and a half of the pages ls asks for
    for name in names:
        os.close(os.open(big / name, os.O_WRONLY | os.O_CREAT, 0o644))
    (big / "f0042").write_text("big one")
    as_json = json.loads(cli("--json", "ls", "private/big").stdout)
    assert [e["name"] for e in as_json["entries"]] == names and "next" not in as_json
    by_size = cli("ls", "private/big", "--sort", "size", "-r", "--filter", "F004")
    assert by_size.returncode == 0, by_size.stderr
    rows = [line.split() for line in by_size.stdout.splitlines()[1:]]
    assert [row[-1] for row in rows] == ["f0042"] + [f"f{i:04d}" for i in range(49, 39, -1) if i != 42]
    assert rows[0][1] == "7"


def test_upload_download_round_trip(cli, carol, tmp_path):
    (carol / "in").mkdir(exist_ok=True)
    first, second = tmp_path / "one.bin", tmp_path / "two.txt"
    first.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    second.write_text("two")
    done = cli("--json", "upload", str(first), str(second), "private/in/")
    assert done.returncode == 0, done.stderr
    assert [e["path"] for e in json.loads(done.stdout)["uploaded"]] == ["in/one.bin", "in/two.txt"]
    assert (carol / "in" / "one.bin").read_bytes() == first.read_bytes()
    renamed = cli("upload", str(second), "private/in/renamed.txt")
    assert renamed.returncode == 0 and (carol / "in" / "renamed.txt").read_text() == "two"

    again = cli("upload", str(second), "private/in/")
    assert again.returncode == 6 and "already exists" in again.stderr
    second.write_text("newer")
    assert cli("upload", "--overwrite", str(second), "private/in/").returncode == 0
    assert (carol / "in" / "two.txt").read_text() == "newer"

    out = tmp_path / "back.bin"
    done = cli("download", "private/in/one.bin", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == first.read_bytes()
    assert cli("download", "private/in/one.bin", str(out)).returncode == 2
    assert cli("download", "--overwrite", "private/in/one.bin", str(out)).returncode == 0

    zipped = cli("download", "private/in", str(tmp_path))
    assert zipped.returncode == 0, zipped.stderr
    import zipfile

    with zipfile.ZipFile(tmp_path / "in.zip") as archive:
        assert sorted(archive.namelist()) == ["in/", "in/one.bin", "in/renamed.txt", "in/two.txt"]


def test_mv_and_rm(cli, hub, carol):
    (carol / "m.txt").write_text("m")
    done = cli("mv", "private/m.txt", "shared/carol-m.txt")
    assert done.returncode == 0, done.stderr
    assert (files_root(hub) / "shared" / "carol-m.txt").read_text() == "m"
    (carol / "other.txt").write_text("o")
    assert cli("mv", "shared/carol-m.txt", "private/other.txt").returncode == 6
    assert cli("mv", "--overwrite", "shared/carol-m.txt", "private/other.txt").returncode == 0
    assert (carol / "other.txt").read_text() == "m"

    (carol / "tree" / "deep").mkdir(parents=True)
    refused = cli("rm", "private/tree")
    assert refused.returncode == 2 and "rm -r" in refused.stderr and (carol / "tree").is_dir()
    assert cli("rm", "-r", "private/tree", "private/other.txt").returncode == 0
    assert not (carol / "tree").exists() and not (carol / "other.txt").exists()
    assert cli("rm", "private/").returncode == 2


def test_exit_codes_for_refusals(cli, hub, tmp_path):
    assert cli("ls", "private/no/such").returncode == 5
    assert cli("ls", "home/x").returncode == 2
    assert cli("ls", "private/../carol").returncode == 2
    assert cli("mkdir", "private/" + "n" * 300).returncode == 7
    limited = tmp_path / "limited.ini"
    limited.write_text(
        f"[Karvdash]\nbase_url = {dashboard_url(hub)}\ntoken = {hub.token_for('carol', scopes=[ACCESS, FILES_READ])}\n"
    )
    assert cli("ls", config_file=limited).returncode == 0
    refused = cli("mkdir", "private/nope", config_file=limited)
    assert refused.returncode == 4 and "custom:karvdash:files:write" in refused.stderr
    bad = tmp_path / "bad.ini"
    bad.write_text(f"[Karvdash]\nbase_url = {dashboard_url(hub)}\ntoken = not-a-token\n")
    assert cli("ls", config_file=bad).returncode == 4
    nowhere = tmp_path / "nowhere.ini"
    nowhere.write_text("[Karvdash]\nbase_url = http://127.0.0.1:9/services/karvdash/\ntoken = x\n")
    unreachable = cli("ls", config_file=nowhere)
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    as_json = cli("--json", "ls", "private/no/such")
    assert json.loads(as_json.stdout)["status"] == 404


def test_inside_a_notebook_the_environment_is_enough(cli, hub, carol):
    (carol / "nb.txt").write_text("notebook")
    env = {"JUPYTERHUB_API_TOKEN": hub.token_for("carol"), "JUPYTERHUB_API_URL": hub.url + "/hub/api"}
    listing = cli("--json", "ls", "private/", env=env, config_file=None)
    assert listing.returncode == 0, listing.stderr
    assert "nb.txt" in [e["name"] for e in json.loads(listing.stdout)["entries"]]


def test_help_everywhere(cli):
    from karvdash_hub.cli.main import COMMANDS

    for command in (c.name for c in COMMANDS):
        shown = cli(command, "--help")
        assert shown.returncode == 0 and f"usage: karvdashctl {command}" in shown.stdout
    top = cli("--help")
    assert top.returncode == 0 and "Exit codes" in top.stdout


def test_karvdash_config_files_and_the_config_option(cli, hub, carol, tmp_path):
    """Karvdash's config.ini names an API (``base_url = http://host/api``),
    as do the files mounted into pods: each finds the dashboard (never
    ``.../api/api/``), given with Karvdash's ``--config`` or in its places."""
    (carol / "kd2.txt").write_text("karvdash 2")
    token = hub.token_for("carol")
    for url in (hub.url + "/api", dashboard_url(hub, "api/"), dashboard_url(hub, "karvdash2/api")):
        config = tmp_path / "karvdash.ini"
        config.write_text(f"[Karvdash]\nbase_url = {url}\ntoken = {token}\n")
        listing = cli("--json", "--config", str(config), "ls", "private/", config_file=None)
        assert listing.returncode == 0, (url, listing.stderr)
        assert "kd2.txt" in [e["name"] for e in json.loads(listing.stdout)["entries"]]
        templates = cli("--config", str(config), "list_templates", config_file=None)
        assert templates.returncode == 0 and "hello-kubernetes" in templates.stdout, (url, templates.stderr)
    # --config wins over $KARVDASH_CONFIG (here a file whose token is refused)
    bad = tmp_path / "bad.ini"
    bad.write_text(f"[Karvdash]\nbase_url = {hub.url}/api\ntoken = not-a-token\n")
    assert cli("ls", "private/", config_file=bad).returncode == 4
    assert cli("--config", str(config), "ls", "private/", config_file=bad).returncode == 0
    # and Karvdash's default place, ~/.karvdash/config.ini
    home = tmp_path / "home"
    write = home / ".karvdash" / "config.ini"
    write.parent.mkdir(parents=True)
    write.write_text(f"[Karvdash]\nbase_url = {hub.url}/api\ntoken = {token}\n")
    assert cli("ls", "private/", config_file=None, env={"HOME": str(home)}).returncode == 0
