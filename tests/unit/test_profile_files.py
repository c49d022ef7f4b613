"""Spawn profile files: loading, overriding, validation, and the strict
check of what a user asks for."""

import os
from types import SimpleNamespace

import pytest

from karvdash_hub.core.paths import SHIPPED_PROFILES_DIR
from karvdash_hub.core.settings import load_settings
from karvdash_hub.hub import deployment
from karvdash_hub.hub.localspawner import KarvdashLocalSpawner
from karvdash_hub.hub.profiles import ProfileError, UserOptionsError, load_profiles, options_from_form, select


def shipped():
    return load_profiles([SHIPPED_PROFILES_DIR])


def test_shipped_profiles_load_with_jupyter_first():
    profiles = shipped()
    assert [p.slug for p in profiles][0] == "jupyter"
    assert {p.slug for p in profiles} == {"jupyter", "jupyter-gpu", "zeppelin", "zeppelin-gpu", "argo"}
    by_slug = {p.slug: p for p in profiles}
    assert by_slug["jupyter"].local_unavailable_reason() == ""
    assert "GPU" in by_slug["jupyter-gpu"].local_unavailable_reason()
    assert "container image" in by_slug["zeppelin"].local_unavailable_reason()
    assert by_slug["zeppelin"].app["port"] == 8080


def test_admin_file_replaces_shipped_one_and_adds_new(tmp_path):
    (tmp_path / "jupyter.yaml").write_text("display_name: Team Lab\ndefault: true\nlocal: {available: true}\n")
    (tmp_path / "rstudio.yaml").write_text("display_name: RStudio\n")
    profiles = {p.slug: p for p in load_profiles([SHIPPED_PROFILES_DIR, tmp_path])}
    assert profiles["jupyter"].display_name == "Team Lab"
    assert profiles["jupyter"].source == str(tmp_path / "jupyter.yaml")
    assert "rstudio" in profiles


def test_disabled_profiles_are_hidden_and_unknown_names_refused():
    assert "argo" not in {p.slug for p in load_profiles([SHIPPED_PROFILES_DIR], ["argo"])}
    with pytest.raises(ProfileError, match="unknown profiles \\['argoo'\\]"):
        load_profiles([SHIPPED_PROFILES_DIR], ["argoo"])


@pytest.mark.parametrize(
    "text, words",
    [
        ("display_name: X\nimage: y\n", "Additional properties are not allowed ('image' was unexpected)"),
        ("description: no name\n", "'display_name' is a required property"),
        ("display_name: X\nprofile_options: {size: {display_name: Size}}\n", "no choices and no enabled unlisted_choice"),
        (
            "display_name: X\nprofile_options: {i: {display_name: I, unlisted_choice: {enabled: true, validation_regex: '('}}}\n",
            "bad validation_regex",
        ),
        ("display_name: X\napp: {command: [x]}\n", "'port' is a required property"),
        ("[not, a, mapping]\n", "holds one mapping"),
        ("display_name: [unclosed\n", "not valid YAML"),
        ("display_name: X\nslug: Bad_Slug\n", "does not match"),
    ],
)
def test_invalid_profile_files_are_named(tmp_path, text, words):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as error:
        load_profiles([tmp_path])
    assert str(path) in str(error.value)
    assert words in str(error.value)


def test_select_defaults_and_canonical_options():
    selection = select(shipped(), {})
    assert selection.profile.slug == "jupyter"
    assert selection.user_options() == {"profile": "jupyter", "image": "scipy", "resources": "small"}
    overrides = selection.overrides()
    assert overrides[1] == {"image": "quay.io/jupyter/scipy-notebook:python-3.12"}
    assert overrides[2]["mem_limit"] == "2G"


def test_select_free_form_image_validated_by_regex():
    selection = select(shipped(), {"profile": "jupyter", "image--unlisted-choice": "registry.example.org:5000/team/lab:1.2"})
    assert selection.overrides()[1] == {"image": "registry.example.org:5000/team/lab:1.2"}
    for bad in ["Registry/UPPER", "lab:tag with space", "a/b;rm -rf", "x" * 300 + ":"]:
        with pytest.raises(UserOptionsError, match="Image: .* is not allowed: an image reference"):
            select(shipped(), {"profile": "jupyter", "image--unlisted-choice": bad})


@pytest.mark.parametrize(
    "options, words",
    [
        ({"profile": "nope"}, "unknown profile 'nope'; available: jupyter"),
        ({"profile": "jupyter", "image": "nope"}, "Image: unknown choice 'nope'; choose from scipy, datascience, pyspark"),
        ({"profile": "jupyter", "cpu": "8"}, "profile 'jupyter' has no option 'cpu'"),
        ({"profile": "zeppelin", "gpus--unlisted-choice": "x"}, "has no option 'gpus--unlisted-choice'"),
        ({"profile": "jupyter", "image--unlisted-choice": 5}, "must be text"),
    ],
)
def test_select_refuses_what_the_profiles_do_not_offer(options, words):
    with pytest.raises(UserOptionsError) as error:
        select(shipped(), options)
    assert words in str(error.value)


def test_options_from_form_uses_kubespawner_field_names():
    form = {
        "profile": ["jupyter"],
        "profile-option-jupyter--image": [""],
        "profile-option-jupyter--image--unlisted-choice": ["my/image:1"],
        "profile-option-jupyter--resources": ["medium"],
        "profile-option-zeppelin--resources": ["large"],
    }
    assert options_from_form(form) == {
        "profile": "jupyter",
        "image--unlisted-choice": "my/image:1",
        "resources": "medium",
    }
    form["profile-option-jupyter--image"] = ["pyspark"]
    assert options_from_form(form)["image"] == "pyspark"
    assert "image--unlisted-choice" not in options_from_form(form)


@pytest.fixture
def local_spawner(tmp_path):
    settings = load_settings(environ={"KARVDASH_STATE_DIR": str(tmp_path)})
    deployment.activate(deployment.Deployment(settings=settings, profiles=shipped()))
    user = SimpleNamespace(name="alice", groups=[], admin=False, url="/user/alice/", escaped_name="alice")
    return KarvdashLocalSpawner(user=user, _deprecated_db_session=None)


async def test_local_form_offers_jupyter_and_explains_the_rest(local_spawner):
    html = await local_spawner._render_profile_form(local_spawner)
    assert 'id="profile-jupyter"\n               value="jupyter" checked' in html or 'value="jupyter" checked' in html
    assert 'value="zeppelin" disabled' in html
    assert "Not available here: Zeppelin runs from its container image" in html
    assert 'name="profile-option-jupyter--image--unlisted-choice"' in html


def test_group_limited_profile_only_for_members(local_spawner, tmp_path):
    (tmp_path / "team.yaml").write_text("display_name: Team\ngroups: [team]\nlocal: {available: true}\n")
    local_spawner.karvdash_profiles = load_profiles([SHIPPED_PROFILES_DIR, tmp_path])
    assert "team" not in {p.slug for p in local_spawner.user_profiles()}
    local_spawner.user.groups = [SimpleNamespace(name="team")]
    assert "team" in {p.slug for p in local_spawner.user_profiles()}


async def test_local_spawner_refuses_kubernetes_profiles(local_spawner):
    from tornado.web import HTTPError

    with pytest.raises(HTTPError) as error:
        await local_spawner.apply_profile({"profile": "zeppelin"})
    assert error.value.status_code == 400
    assert "not available here" in error.value.log_message
    await local_spawner.apply_profile({"profile": "jupyter", "resources": "large"})
    assert local_spawner.user_options == {"profile": "jupyter", "image": "scipy", "resources": "large"}
    assert local_spawner.default_url == "/lab"
    assert local_spawner.environment["KARVDASH_OPTION_RESOURCES"] == "large"


def test_kubernetes_mode_refuses_unknown_override_traits_at_start(tmp_path, monkeypatch):
    from karvdash_hub.hub.profiles import ProfileError

    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "typo.yaml").write_text(
        "display_name: Typo\nprofile_options:\n  size:\n    display_name: Size\n"
        "    choices: {big: {display_name: Big, kubespawner_override: {mem_limt: 8G}}}\n"
    )
    env = {"KARVDASH_STATE_DIR": str(tmp_path), "KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://lab.example.org"}
    for name in list(os.environ):
        if name.startswith("KARVDASH_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ProfileError, match=r"typo.yaml: kubespawner_override sets unknown KubeSpawner traits \['mem_limt'\]"):
        deployment.load()
    (tmp_path / "profiles" / "typo.yaml").write_text(
        "display_name: Typo\nkubespawner_override: {mem_limit: 8G}\n"
    )
    assert "typo" in {p.slug for p in deployment.load().profiles}
