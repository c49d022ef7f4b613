"""KarvdashSpawner without a cluster: the pod KubeSpawner would create for
every shipped profile (golden manifests, valid for Kubernetes 1.34), the
strict handling of user options, GPUs, datasets, apps, progress messages,
failures and deletion. The Kubernetes clients are replaced (the I/O layer
is tested against a real API server in tests/integration)."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from unittest import mock

import pytest
from kubernetes_asyncio.client import ApiClient, ApiException
from kubespawner import KubeSpawner
from tornado.web import HTTPError
from traitlets.config import Config

from karvdash_hub.core.paths import SHIPPED_PROFILES_DIR
from karvdash_hub.core.settings import load_settings
from karvdash_hub.hub.profiles import load_profiles
from karvdash_hub.hub.spawner import (
    NAMESPACE_TOKEN_NOTE,
    KarvdashSpawner,
    merge_override,
    namespace_token_scopes,
)
from karvdash_hub.namespaces.spawnfailures import SpawnFailure
from tests.unit.test_objects import golden, k8s_valid

PROFILES = ["jupyter", "jupyter-gpu", "zeppelin", "zeppelin-gpu", "argo"]
FILES = {
    "file": {"KARVDASH_FILES_URL": "file:///data/karvdash"},
    "nfs": {"KARVDASH_FILES_URL": "nfs://nfs.example.test/exports/karvdash", "KARVDASH_FILES_MOUNT_PATH": "/mnt/files"},
}
ENV = {
    "KARVDASH_STATE_DIR": "/srv/karvdash",
    "KARVDASH_MODE": "kubernetes",
    "KARVDASH_INGRESS_URL": "https://example.test",
    "KARVDASH_DATASETS_AVAILABLE": "true",
    "KARVDASH_DOCKER_REGISTRY_URL": "https://puller:s3cret@registry.example.test:5000",
    "KARVDASH_GPU_NODE_SELECTOR": "{nvidia.com/gpu.present: 'true'}",
    "KARVDASH_GPU_TOLERATIONS": "[{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]",
    "KARVDASH_APP_PROXY_IMAGE": "registry.example.test:5000/karvdash-hub:0.1.0",
}
DATASETS = ["imagenet", "cifar-10"]


class FakeNamespaces:
    """Stands in for namespaces.UserNamespaces (no cluster in unit tests)."""

    def __init__(self, datasets=()):
        self.datasets = list(datasets)
        self.prepared = []
        self.deleted = []

    async def ensure(self, username, token_source, report):
        self.prepared.append(username)
        report(f"Preparing your namespace karvdash-{username}")

    async def list_datasets(self, username):
        return self.datasets

    async def delete_user(self, username):
        self.deleted.append(username)
        return [f"namespace/karvdash-{username}"]


def make_user(name="alice", groups=(), admin=False):
    return SimpleNamespace(
        name=name,
        groups=[SimpleNamespace(name=g) for g in groups],
        admin=admin,
        url=f"/user/{name}/",
        escaped_name=name,
        id=1,
    )


def make_spawner(env=None, user=None, profiles=None, config=None, name=""):
    settings = load_settings(environ={**ENV, **FILES["file"], **(env or {})})
    with mock.patch("kubespawner.spawner.load_config"), mock.patch("kubespawner.spawner.shared_client"):
        spawner = KarvdashSpawner(
            _mock=True,
            user=user or make_user(),
            config=config or Config(),
            karvdash_settings=settings,
            karvdash_profiles=profiles if profiles is not None else load_profiles([SHIPPED_PROFILES_DIR]),
        )
    spawner.api_token = "server-token"
    if name:
        # a named server: JupyterHub gives its name through the database row
        spawner.orm_spawner = SimpleNamespace(name=name, display_name=name, server=None, state=None)
    return spawner


async def pod_of(spawner) -> dict:
    pod = await spawner.get_pod_manifest()
    client = ApiClient()
    try:
        return client.sanitize_for_serialization(pod)
    finally:
        await client.close()


async def prepared(spawner, fake) -> None:
    # the folders of the settings' file domains are not made on this machine
    with mock.patch.object(KarvdashSpawner, "user_namespaces", return_value=fake), \
            mock.patch("karvdash_hub.hub.spawner.open_storage"):
        await spawner._ensure_namespace()


@pytest.mark.parametrize("files", sorted(FILES))
@pytest.mark.parametrize("slug", PROFILES)
async def test_pod_of_every_shipped_profile(slug, files):
    spawner = make_spawner(FILES[files])
    await spawner.apply_profile({"profile": slug})
    fake = FakeNamespaces(DATASETS)
    await prepared(spawner, fake)
    pod = await pod_of(spawner)
    k8s_valid(pod)
    golden(f"pod-{slug}-{files}", pod)


@pytest.mark.parametrize("files", sorted(FILES))
async def test_the_users_folders_are_made_before_the_pod(tmp_path, files):
    """By the hub, before KubeSpawner creates the pod: a private folder that
    kubelet makes for a hostPath volume belongs to root."""
    root = tmp_path / "files"
    env = {"KARVDASH_FILES_URL": f"file://{root}"} if files == "file" else {
        "KARVDASH_FILES_URL": "nfs://nfs.example.test/exports/karvdash", "KARVDASH_FILES_MOUNT_PATH": str(root)}
    spawner = make_spawner(env)
    await spawner.apply_profile({"profile": "jupyter"})
    with mock.patch.object(KarvdashSpawner, "user_namespaces", return_value=FakeNamespaces()):
        await spawner._ensure_namespace()
    assert (root / "private" / "alice").is_dir() and (root / "shared").is_dir()
    assert not (root / "private" / "bob").exists()


async def test_pods_keep_karvdash_volumes_and_owner():
    for files in FILES:
        for slug in PROFILES:
            spawner = make_spawner(FILES[files])
            await spawner.apply_profile({"profile": slug})
            await prepared(spawner, FakeNamespaces(DATASETS))
            pod = await pod_of(spawner)
            volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
            main = pod["spec"]["containers"][0]
            mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
            assert mounts["/private"] == "karvdash-private" and mounts["/shared"] == "karvdash-shared"
            assert mounts["/var/lib/karvdash"] == "karvdash-api"
            assert "uploads" not in json.dumps(pod)
            if files == "file":
                assert volumes["karvdash-private"]["hostPath"]["path"] == "/data/karvdash/private/alice"
            else:
                assert volumes["karvdash-private"]["nfs"] == {
                    "server": "nfs.example.test",
                    "path": "/exports/karvdash/private/alice",
                }
            assert pod["metadata"]["labels"]["karvdash.io/owner"] == "alice"
            assert pod["spec"]["imagePullSecrets"] == [{"name": "karvdash-registry"}]
            assert pod["spec"]["serviceAccountName"] == "default"
            if slug == "argo":  # opts out of datasets
                assert not any(p.startswith("/mnt/datasets") for p in mounts)
                assert pod["metadata"]["labels"]["karvdash.io/datasets"] == "false"
            else:
                assert mounts["/mnt/datasets/imagenet"] == "dataset-imagenet"
                assert volumes["dataset-cifar-10"]["persistentVolumeClaim"] == {"claimName": "cifar-10"}


def test_namespace_is_the_users_own():
    assert make_spawner().namespace == "karvdash-alice"
    # a name KubeSpawner's slugs would escape stays as the dashboard names it
    assert make_spawner(user=make_user("0bob")).namespace == "karvdash-0bob"
    assert make_spawner({"KARVDASH_NAMESPACE_TEMPLATE": "u-{username}"}).namespace == "u-alice"


def test_profile_list_is_built_from_the_profiles(tmp_path):
    (tmp_path / "team.yaml").write_text("display_name: Team lab\ngroups: [team]\n")
    profiles = load_profiles([SHIPPED_PROFILES_DIR, tmp_path])
    spawner = make_spawner(profiles=profiles)
    entries = spawner.profile_list(spawner)
    assert [e["slug"] for e in entries] == ["jupyter", "argo", "jupyter-gpu", "zeppelin", "zeppelin-gpu"]
    assert entries[0] == next(p for p in profiles if p.slug == "jupyter").kubespawner_entry()
    member = make_spawner(profiles=profiles, user=make_user(groups=["team"]))
    assert "team" in [e["slug"] for e in member.profile_list(member)]


async def test_free_form_image_is_validated_before_start():
    spawner = make_spawner()
    await spawner.apply_profile({"profile": "jupyter", "image--unlisted-choice": "registry.example.test:5000/team/lab:1.2"})
    assert spawner.image == "registry.example.test:5000/team/lab:1.2"
    assert spawner.user_options == {
        "profile": "jupyter",
        "image--unlisted-choice": "registry.example.test:5000/team/lab:1.2",
        "resources": "small",
    }

    refused = make_spawner()
    with pytest.raises(HTTPError) as error:
        await refused.apply_profile({"profile": "jupyter", "image--unlisted-choice": "evil image; rm -rf /"})
    assert error.value.status_code == 400
    assert error.value.log_message == (
        "Invalid server options: Image: 'evil image; rm -rf /' is not allowed: "
        "an image reference such as registry.example.com/team/image:tag"
    )
    assert refused.image == "quay.io/jupyterhub/singleuser:latest"  # nothing applied
    assert refused.selection is None


@pytest.mark.parametrize(
    "options, words",
    [
        ({"profile": "jupyter", "namespace": "karvdash-bob"}, "has no option 'namespace'"),
        ({"profile": "jupyter", "image": "../../etc"}, "unknown choice '../../etc'"),
        ({"profile": "jupyter-gpu", "gpus": "64"}, "unknown choice '64'"),
        ({"profile": "root-shell"}, "unknown profile 'root-shell'"),
    ],
)
async def test_options_the_profiles_do_not_offer_are_refused(options, words):
    spawner = make_spawner()
    with pytest.raises(HTTPError) as error:
        await spawner.apply_profile(options)
    assert error.value.status_code == 400
    assert words in error.value.log_message
    assert spawner.namespace == "karvdash-alice"


async def test_group_limited_profile_is_refused_to_others(tmp_path):
    (tmp_path / "team.yaml").write_text("display_name: Team lab\ngroups: [team]\n")
    profiles = load_profiles([SHIPPED_PROFILES_DIR, tmp_path])
    with pytest.raises(HTTPError, match="unknown profile 'team'"):
        await make_spawner(profiles=profiles).apply_profile({"profile": "team"})
    member = make_spawner(profiles=profiles, user=make_user(groups=["team"]))
    await member.apply_profile({"profile": "team"})
    assert member.selection.profile.slug == "team"


async def test_gpu_count_selector_and_tolerations_added_once():
    config = Config()
    config.KubeSpawner.tolerations = [{"key": "dedicated", "operator": "Equal", "value": "lab", "effect": "NoSchedule"}]
    config.KubeSpawner.node_selector = {"zone": "a"}
    spawner = make_spawner(config=config)
    await spawner.apply_profile({"profile": "jupyter-gpu", "gpus": "4", "resources": "large"})
    await spawner.load_user_options()  # what KubeSpawner's start calls: must not apply twice
    assert spawner.extra_resource_limits == {"nvidia.com/gpu": "4"}
    assert spawner.node_selector == {"zone": "a", "nvidia.com/gpu.present": "true"}
    assert spawner.tolerations == [
        {"key": "dedicated", "operator": "Equal", "value": "lab", "effect": "NoSchedule"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert (spawner.cpu_limit, spawner.mem_limit) == (8, 32 * 1024**3)
    # the config's own values are untouched (other spawners share them)
    assert config.KubeSpawner.node_selector == {"zone": "a"}
    assert len(config.KubeSpawner.tolerations) == 1
    pod = await pod_of(spawner)
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"


async def test_kubespawner_does_not_reload_the_profile_at_start():
    spawner = make_spawner()
    await spawner.apply_profile({"profile": "jupyter", "image": "pyspark"})
    with mock.patch.object(KubeSpawner, "_load_profile", side_effect=AssertionError("applied twice")):
        await spawner.load_user_options()
    assert spawner.image == "quay.io/jupyter/pyspark-notebook:python-3.12"


async def test_start_without_the_hook_still_validates_and_applies():
    spawner = make_spawner()
    spawner.user_options = {"profile": "zeppelin", "resources": "large"}
    await spawner.load_user_options()
    assert spawner.selection.profile.slug == "zeppelin"
    assert spawner.cpu_limit == 4
    spawner = make_spawner()
    spawner.user_options = {"profile": "zeppelin", "resources": "huge"}
    with pytest.raises(HTTPError, match="unknown choice 'huge'"):
        await spawner.load_user_options()


async def test_profile_options_are_handled_without_hub_warning(caplog):
    spawner = make_spawner()
    with caplog.at_level(logging.DEBUG):
        await spawner._run_apply_user_options({"profile": "argo", "resources": "medium"})
    assert "unhandled user_options" not in caplog.text
    assert spawner.selection.profile.slug == "argo"


async def test_app_runs_behind_the_login_proxy():
    spawner = make_spawner()
    await spawner.apply_profile({"profile": "argo"})
    pod = await pod_of(spawner)
    app, proxy = pod["spec"]["containers"]
    assert app["command"][:2] == ["argo", "server"]
    assert "--port=2746" in app["command"]
    assert "--base-href=$(JUPYTERHUB_SERVICE_PREFIX)" in app["command"]
    assert "args" not in app
    assert app["ports"] == [{"name": "app", "containerPort": 2746}]
    assert proxy["name"] == "karvdash-app-proxy"
    assert proxy["ports"] == [{"name": "notebook-port", "containerPort": 8888}]
    # the proxy checks logins with the server's own hub settings
    assert proxy["env"] == app["env"]
    env = {e["name"]: e["value"] for e in proxy["env"]}
    assert env["JUPYTERHUB_API_TOKEN"] == "server-token"
    assert spawner._get_pod_port(pod) == 8888


async def test_datasets_only_when_available_and_wanted():
    spawner = make_spawner({"KARVDASH_DATASETS_AVAILABLE": "false"})
    await spawner.apply_profile({"profile": "jupyter"})
    fake = FakeNamespaces(DATASETS)
    fake.list_datasets = mock.AsyncMock(side_effect=AssertionError("must not list"))
    await prepared(spawner, fake)
    assert fake.prepared == ["alice"]
    assert not any(k.startswith("dataset-") for k in spawner.volumes)
    assert "karvdash.io/datasets" not in spawner.extra_labels


async def test_adding_a_volume_in_a_profile_keeps_the_file_domains(tmp_path):
    (tmp_path / "scratch.yaml").write_text(
        "display_name: Scratch\n"
        "kubespawner_override:\n"
        "  volumes: {scratch: {name: scratch, emptyDir: {}}}\n"
        "  volume_mounts: {scratch: {name: scratch, mountPath: /scratch}}\n"
    )
    spawner = make_spawner(profiles=load_profiles([SHIPPED_PROFILES_DIR, tmp_path]))
    await spawner.apply_profile({"profile": "scratch"})
    assert sorted(spawner.volumes) == ["karvdash-api", "karvdash-private", "karvdash-shared", "scratch"]


def test_profile_with_unknown_kubespawner_setting_is_refused(tmp_path):
    (tmp_path / "typo.yaml").write_text("display_name: Typo\nkubespawner_override: {imagee: x}\n")
    with pytest.raises(Exception, match=r"unknown KubeSpawner settings \['imagee'\]"):
        make_spawner(profiles=load_profiles([SHIPPED_PROFILES_DIR, tmp_path]))


def test_merge_override_follows_kubespawner_and_copies():
    shared = {"a": {"x": 1, "y": 2}, "b": 1}
    merged = merge_override(shared, {"a": {"y": None, "z": 3}})
    assert merged == {"a": {"x": 1, "z": 3}, "b": 1}
    assert shared == {"a": {"x": 1, "y": 2}, "b": 1}
    assert merge_override([{"name": "v", "emptyDir": {}}], {"w": {"name": "w"}}) == {
        "v": {"name": "v", "emptyDir": {}},
        "w": {"name": "w"},
    }
    assert merge_override({"a": 1}, ["replaced"]) == ["replaced"]


def test_namespace_token_carries_only_dashboard_scopes():
    held = {
        "custom:karvdash:files:read",
        "custom:karvdash:services:write",
        "access:services!service=karvdash",
        "read:services!service=karvdash",
        "access:services!service=other",
        "servers!user=alice",
        "tokens!user=alice",
        "custom:other:x",
    }
    assert namespace_token_scopes(held) == [
        "access:services!service=karvdash",
        "custom:karvdash:files:read",
        "custom:karvdash:services:write",
        "read:services!service=karvdash",
    ]


@pytest.fixture
def hub_db(monkeypatch):
    """A JupyterHub database as the hub sets it up (its roles, its OAuth
    client, the dashboard's custom scopes), with alice holding the user role
    and reading files."""
    from jupyterhub import orm, roles, scopes

    monkeypatch.setattr(scopes, "scope_definitions", dict(scopes.scope_definitions))
    scopes.define_custom_scopes({f"custom:karvdash:files:{verb}": {"description": verb} for verb in ("read", "write")})
    db = orm.new_session_factory("sqlite:///:memory:")()
    for role in roles.get_default_roles():
        roles.create_role(db, role)
    for verb in ("read", "write"):
        roles.create_role(db, {"name": f"files-{verb}", "scopes": [f"custom:karvdash:files:{verb}"]})
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    alice = orm.User(name="alice")
    db.add(alice)
    db.commit()
    roles.grant_role(db, alice, "user")
    roles.grant_role(db, alice, "files-read")
    yield db, alice
    db.close()


def test_namespace_token_is_reused_while_valid(hub_db):
    from jupyterhub import orm, roles

    db, alice = hub_db
    spawner = make_spawner()
    spawner.user.db, spawner.user.orm_user, spawner.user.new_api_token = db, alice, alice.new_api_token
    own = alice.new_api_token(note="mine")

    def tokens():
        return sorted((t.note, tuple(t.scopes)) for t in db.query(orm.APIToken).filter_by(user_id=alice.id))

    first = spawner.namespace_token("")
    assert tokens() == [(NAMESPACE_TOKEN_NOTE, ("custom:karvdash:files:read",)), ("mine", ("inherit",))]
    assert spawner.namespace_token(first) == first
    # the Secret lost it: a new one replaces it
    second = spawner.namespace_token("")
    assert second != first and orm.APIToken.find(db, first) is None
    # the user's scopes changed: a new token replaces ours, never the user's own tokens
    roles.grant_role(db, alice, "files-write")
    third = spawner.namespace_token(second)
    assert third != second and orm.APIToken.find(db, second) is None
    assert orm.APIToken.find(db, third).scopes == ["custom:karvdash:files:read", "custom:karvdash:files:write"]
    assert orm.APIToken.find(db, own) is not None and len(tokens()) == 2


def test_a_namespace_token_that_cannot_be_made_keeps_the_old_one(hub_db):
    """The old token is removed in the new one's transaction: if making the new
    one fails, the old one stays (and nothing half-done is left in the session)."""
    from jupyterhub import orm

    db, alice = hub_db
    spawner = make_spawner()
    spawner.user.db, spawner.user.orm_user, spawner.user.new_api_token = db, alice, alice.new_api_token
    old = spawner.namespace_token("")

    def refused(**kwargs):
        raise ValueError("no")

    spawner.user.new_api_token = refused
    with pytest.raises(ValueError):
        spawner.namespace_token("")
    db.commit()  # whatever commits next in the hub
    assert orm.APIToken.find(db, old) is not None


async def test_progress_shows_namespace_messages_between_pod_events():
    spawner = make_spawner()
    spawner.spawn_admission = None  # no spawn queue (no deployment is configured here)

    async def pod_events(self):
        await asyncio.sleep(0.2)
        yield {"progress": 30, "message": "pod scheduled"}
        await asyncio.sleep(0.2)
        yield {"progress": 50, "message": "pulling image"}

    with mock.patch.object(KubeSpawner, "progress", pod_events):
        events = []

        async def collect():
            async for event in spawner.progress():
                events.append(event["message"])

        collecting = asyncio.ensure_future(collect())
        await asyncio.sleep(0.05)
        spawner.report("Preparing your namespace karvdash-alice")
        await asyncio.sleep(0.05)
        assert events == ["Preparing your namespace karvdash-alice"]  # not held back until a pod event
        await asyncio.sleep(0.2)
        spawner.report("Creating your server's pod", progress=15)
        await collecting
    assert events == [
        "Preparing your namespace karvdash-alice",
        "pod scheduled",
        "Creating your server's pod",
        "pulling image",
    ]


async def test_start_stops_early_when_the_image_cannot_be_pulled():
    spawner = make_spawner()
    await spawner.apply_profile({"profile": "jupyter", "image--unlisted-choice": "example.test/missing:1"})
    pod = {
        "metadata": {"name": spawner.pod_name, "creationTimestamp": "2999-01-01T00:00:00Z"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "notebook",
                    "image": "example.test/missing:1",
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}},
                }
            ],
        },
    }
    started = asyncio.Event()

    async def slow_start(self):
        started.set()
        await asyncio.sleep(3600)

    reflector = SimpleNamespace(pods={f"karvdash-alice/{spawner.pod_name}": pod})
    with (
        mock.patch.object(KubeSpawner, "_start", slow_start),
        mock.patch.object(KarvdashSpawner, "pod_reflector", new=reflector),
        mock.patch.object(KarvdashSpawner, "events", new=[]),
    ):
        with pytest.raises(SpawnFailure) as failure:
            await asyncio.wait_for(spawner._start(), 10)
    assert started.is_set()
    assert failure.value.jupyterhub_message == (
        "The image example.test/missing:1 cannot be pulled (ErrImagePull: manifest unknown). "
        "Check its name and tag, or choose another image."
    )


def starting_pod(phase: str, ready: bool = False) -> dict:
    return {"metadata": {"name": "jupyter-alice"},
            "status": {"phase": phase, "podIP": "198.18.0.9" if phase == "Running" else None,
                       "containerStatuses": [{"name": "notebook", "ready": ready, "state": {}}]}}


async def test_a_hub_starting_again_waits_for_a_pod_that_is_still_starting():
    """A spawn under way when the previous hub died: the new hub's check
    polls, and the answer waits until the pod runs (or is gone)."""
    spawner = make_spawner()
    key = f"karvdash-alice/{spawner.pod_name}"
    reflector = SimpleNamespace(pods={key: starting_pod("Pending")})

    polled = []

    async def kubespawner_poll(self):
        # KubeSpawner's poll takes the address of a running pod
        polled.append(reflector.pods[key]["status"]["phase"] if key in reflector.pods else None)
        return None if key in reflector.pods else 1

    async def becomes(pod, after):
        await asyncio.sleep(after)
        if pod is None:
            del reflector.pods[key]
        else:
            reflector.pods[key] = pod

    with (
        mock.patch.object(KubeSpawner, "poll", kubespawner_poll),
        mock.patch.object(KarvdashSpawner, "pod_reflector", new=reflector),
        mock.patch.object(KarvdashSpawner, "events", new=[]),
    ):
        # a running hub polls as KubeSpawner does, without waiting
        assert await asyncio.wait_for(spawner.poll(), 0.5) is None
        spawner._check_pending = True
        change = asyncio.ensure_future(becomes(starting_pod("Running", ready=True), 1.5))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(spawner.poll(), 10) is None
        assert loop.time() - started >= 1.5
        assert polled[-2:] == ["Pending", "Running"]
        await change
        # a pod that goes while the hub waits: the server stopped
        reflector.pods[key] = starting_pod("Pending")
        change = asyncio.ensure_future(becomes(None, 1.5))
        assert await asyncio.wait_for(spawner.poll(), 10) == 1
        await change


async def test_a_hub_starting_again_stops_a_pod_that_cannot_start():
    spawner = make_spawner()
    pod = starting_pod("Pending")
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": "no"}}
    spawner._check_pending = True
    with (
        mock.patch.object(KubeSpawner, "poll", mock.AsyncMock(return_value=None)),
        mock.patch.object(KarvdashSpawner, "pod_reflector",
                          new=SimpleNamespace(pods={f"karvdash-alice/{spawner.pod_name}": pod})),
        mock.patch.object(KarvdashSpawner, "events", new=[]),
    ):
        assert await asyncio.wait_for(spawner.poll(), 5) == 1


async def test_an_old_failed_pod_does_not_stop_a_new_start():
    spawner = make_spawner()
    old = {"metadata": {"creationTimestamp": "2000-01-01T00:00:00Z"}, "status": {"phase": "Failed", "message": "x"}}
    reflector = SimpleNamespace(pods={f"karvdash-alice/{spawner.pod_name}": old})
    with (
        mock.patch.object(KarvdashSpawner, "pod_reflector", new=reflector),
        mock.patch.object(KarvdashSpawner, "events", new=[]),
    ):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._watch_for_failure("2026-01-01T00:00:00Z"), 2.5)


async def test_exceeded_quota_is_explained():
    spawner = make_spawner()
    body = json.dumps(
        {
            "kind": "Status",
            "message": 'pods "jupyter-alice" is forbidden: exceeded quota: compute, requested: limits.cpu=1, '
            "used: limits.cpu=0, limited: limits.cpu=500m",
        }
    )
    refused = ApiException(status=403, reason="Forbidden")
    refused.body = body
    with mock.patch.object(KubeSpawner, "_make_create_pod_request", side_effect=refused):
        with pytest.raises(SpawnFailure) as failure:
            await spawner._make_create_pod_request(None, 3)
    assert failure.value.jupyterhub_message.startswith(
        'The resource quota of your namespace does not allow this server (pods "jupyter-alice" is forbidden: '
        "exceeded quota: compute"
    )


async def test_deleting_a_named_server_keeps_the_namespace():
    fake = FakeNamespaces()
    spawner = make_spawner(name="lab")
    with mock.patch.object(KarvdashSpawner, "user_namespaces", return_value=fake):
        await spawner.delete_forever()
    assert fake.deleted == []


@pytest.mark.parametrize("delete_files", [False, True])
async def test_deleting_the_user_removes_the_namespace_and_maybe_files(tmp_path, delete_files):
    env = {
        "KARVDASH_FILES_URL": f"file://{tmp_path}/files",
        "KARVDASH_DELETE_PRIVATE_FILES_WITH_USER": str(delete_files).lower(),
    }
    private = tmp_path / "files" / "private" / "alice"
    (private / "notes").mkdir(parents=True)
    (tmp_path / "files" / "private" / "bob").mkdir()
    fake = FakeNamespaces()
    spawner = make_spawner(env)
    with mock.patch.object(KarvdashSpawner, "user_namespaces", return_value=fake):
        await spawner.delete_forever()
    assert fake.deleted == ["alice"]
    assert private.exists() is not delete_files
    assert (tmp_path / "files" / "private" / "bob").exists()


async def test_a_start_the_hub_gives_up_on_stops_kubespawners_start():
    spawner = make_spawner()
    inner_cancelled = asyncio.Event()

    async def endless_start(self):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            inner_cancelled.set()
            raise

    with (
        mock.patch.object(KubeSpawner, "_start", endless_start),
        mock.patch.object(KarvdashSpawner, "pod_reflector", new=None),
    ):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(spawner._start(), 0.5)  # as JupyterHub's start_timeout does
        await asyncio.wait_for(inner_cancelled.wait(), 2)
