"""Profile rules for Kubernetes: every shipped profile offers sizes and a
validated free-form image, GPU counts, app ports, and apps in local mode
behind jupyter-standaloneproxy."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from karvdash_hub.core.paths import SHIPPED_PROFILES_DIR
from karvdash_hub.hub.profiles import ProfileError, load_profiles, select

GOOD_IMAGES = [
    "quay.io/jupyter/scipy-notebook:python-3.12",
    "registry.example.test:5000/team/lab:1.2",
    "apache/zeppelin:0.12.0",
    "busybox",
]
BAD_IMAGES = [
    "evil image",
    "Upper/Case:1",
    "repo@sha256:abc",
    "a/b:tag;rm -rf /",
    "-leading/dash",
    "x:" + "t" * 200,
    "",
]


def shipped():
    return {p.slug: p for p in load_profiles([SHIPPED_PROFILES_DIR])}


@pytest.mark.parametrize("slug", ["jupyter", "jupyter-gpu", "zeppelin", "zeppelin-gpu", "argo"])
def test_every_shipped_profile_offers_sizes_and_a_checked_free_image(slug):
    profile = shipped()[slug]
    assert profile.profile_options["resources"]["choices"]
    unlisted = profile.profile_options["image"]["unlisted_choice"]
    assert unlisted["enabled"] is True
    assert unlisted["kubespawner_override"] == {"image": "{value}"}
    for image in GOOD_IMAGES:
        selection = select([profile], {"profile": slug, "image--unlisted-choice": image})
        assert any(o.get("image") == image for o in selection.overrides())
    for image in BAD_IMAGES[:-1]:
        assert not re.fullmatch(unlisted["validation_regex"], image), image


def test_gpu_profiles_offer_gpu_counts():
    profiles = shipped()
    assert list(profiles["jupyter-gpu"].profile_options["gpus"]["choices"]) == ["1", "2", "4"]
    assert list(profiles["zeppelin-gpu"].profile_options["gpus"]["choices"]) == ["1", "2"]
    assert {s for s, p in profiles.items() if p.gpu} == {"jupyter-gpu", "zeppelin-gpu"}


def test_non_jupyter_profiles_are_apps_on_their_own_ports():
    profiles = shipped()
    assert profiles["zeppelin"].app == {"command": ["/opt/zeppelin/bin/zeppelin.sh"], "port": 8080}
    assert profiles["argo"].app["port"] == 2746
    assert "--base-href={base_url}" in profiles["argo"].app["command"]
    assert profiles["argo"].datasets is False
    assert profiles["jupyter"].app is None


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "display_name: X\ngpu: true\nprofile_options: {gpus: {display_name: G, choices: {many: {display_name: M}}}}\n",
            "choices ['many'] are not GPU counts",
        ),
        (
            "display_name: X\ngpu: true\nprofile_options: {gpus: {display_name: G, choices: {'0': {display_name: none}}}}\n",
            "choices ['0'] are not GPU counts",
        ),
        (
            "display_name: X\nprofile_options: {gpus: {display_name: G, choices: {'1': {display_name: one}}}}\n",
            "option 'gpus' needs 'gpu: true'",
        ),
        (
            "display_name: X\ngpu: true\nprofile_options: {gpus: {display_name: G, unlisted_choice: {enabled: true}}}\n",
            "option 'gpus' takes listed GPU counts only",
        ),
        (
            "display_name: X\napp: {command: [srv], port: 8888}\n",
            "app port 8888 is the server's own port",
        ),
    ],
)
def test_gpu_and_app_mistakes_are_named(tmp_path, text, words):
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(ProfileError) as error:
        load_profiles([tmp_path])
    assert words in str(error.value)
    assert str(tmp_path / "x.yaml") in str(error.value)


def test_local_app_runs_behind_standaloneproxy(tmp_path):
    (tmp_path / "web.yaml").write_text(
        "display_name: Web\n"
        "app: {command: [python3, -m, http.server, --bind, 127.0.0.1, '{port}'], port: 8080}\n"
        "local: {available: true}\n"
    )
    (tmp_path / "own.yaml").write_text(
        "display_name: Own\napp: {command: [srv], port: 8080}\nlocal: {available: true, cmd: [my-launcher]}\n"
    )
    profiles = {p.slug: p for p in load_profiles([tmp_path])}
    proxy = Path(sys.executable).parent / "jupyter-standaloneproxy"
    assert proxy.exists()
    assert profiles["web"].local["cmd"] == [
        str(proxy),
        "--",
        "python3",
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "{port}",
    ]
    assert profiles["web"].local_unavailable_reason() == ""
    assert profiles["own"].local["cmd"] == ["my-launcher"]  # an admin's own command wins
    # shipped apps stay Kubernetes-only
    assert "cmd" not in shipped()["zeppelin"].local
