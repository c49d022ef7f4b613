"""KarvdashSpawner: user servers as pods in per-user namespaces.

KubeSpawner does the pod work; this class adds what karvdash-hub needs:

- the profiles of ``spawner_profiles/`` (validated strictly by the mixin's
  ``apply_user_options`` before anything starts) applied as KubeSpawner
  overrides, GPUs from the settings, and non-Jupyter apps behind the hub's
  login (a ``jupyter-standaloneproxy`` sidecar);
- the user's namespace, prepared before every start (``karvdash_hub.namespaces``):
  labels for the webhook, a RoleBinding, the API settings with a scoped
  token, the registry pull secret; the user's folders; and the namespace's
  datasets mounted;
- clear messages on the spawn page while the namespace is prepared and when
  a start cannot succeed (missing image, exceeded quota, refused request);
- a hub that starts again while a spawn was under way waits for its pod
  (up to ``start_timeout``) instead of stopping a server still starting;
- clean-up when the user is deleted.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timezone

from jupyterhub import orm
from jupyterhub.scopes import get_scopes_for
from kubernetes_asyncio.client import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from kubespawner.utils import recursive_update
from traitlets import default, validate

from karvdash_hub.core.kubeapi import api_error_message
from karvdash_hub.core.scopes import ACCESS_SCOPE, CUSTOM_SCOPE_PREFIX, READ_SERVICE_SCOPE
from karvdash_hub.datasets.mounts import dataset_volumes
from karvdash_hub.files.domains import FileDomains
from karvdash_hub.files.storage import open_storage
from karvdash_hub.namespaces import objects
from karvdash_hub.namespaces.spawnfailures import SpawnFailure, api_failure, pod_failure
from karvdash_hub.namespaces.store import UserNamespaces

from .profiles import GPU_OPTION, Profile, Selection, unknown_overrides
from .profilespawner import ProfileSpawnerMixin

# The token in a namespace's API settings Secret carries this note, so the
# hub finds (and replaces) it among the user's tokens.
NAMESPACE_TOKEN_NOTE = "karvdash namespace API settings"
MAIN_CONTAINER = "notebook"


def namespace_token_scopes(held: set[str]) -> list[str]:
    """Of the scopes a user holds, those a token in their namespace may carry:
    the dashboard's own (``custom:karvdash:*``) and access to the dashboard."""
    service = {ACCESS_SCOPE, READ_SERVICE_SCOPE}
    return sorted(s for s in held if s.startswith(CUSTOM_SCOPE_PREFIX) or s in service)


def merge_override(current, value):
    """KubeSpawner's override rule (dicts merge recursively, ``None`` removes
    a key, anything else replaces), without touching ``current``, which may
    be shared config. A list of named objects merges into a dict by name."""
    if isinstance(value, dict) and isinstance(current, list):
        current = {item["name"]: item for item in current if isinstance(item, dict) and "name" in item}
    if isinstance(value, dict) and isinstance(current, dict):
        merged = copy.deepcopy(current)
        recursive_update(merged, copy.deepcopy(value))
        return merged
    return copy.deepcopy(value)


class KarvdashSpawner(ProfileSpawnerMixin, KubeSpawner):
    """Spawns the karvdash profiles as pods in the user's own namespace."""

    # --- KubeSpawner defaults for karvdash-hub ---------------------------------------

    @default("enable_user_namespaces")
    def _default_user_namespaces(self):
        return True

    @default("user_namespace_template")
    def _default_namespace_template(self):
        # the raw name: every karvdash username is already a DNS label part
        return self.karvdash_settings.namespaceTemplate.replace("{username}", "{unescaped_username}")

    @default("profile_list")
    def _default_profile_list(self):
        return lambda spawner: [p.kubespawner_entry() for p in spawner.startable_profiles()]

    @default("cmd")
    def _default_cmd(self):
        return ["jupyterhub-singleuser"]

    @default("service_account")
    def _default_service_account(self):
        # the namespace's account, with the namespace role: kubectl, argo and
        # karvdash services work from a notebook as they did in Karvdash
        return objects.SERVER_ACCOUNT

    @default("volumes")
    def _default_volumes(self):
        return {}

    @default("volume_mounts")
    def _default_volume_mounts(self):
        return {}

    @default("storage_pvc_ensure")
    def _default_pvc_ensure(self):
        # files live in the file domains, not in a per-server claim
        return False

    @default("delete_pvc")
    def _default_delete_pvc(self):
        return False

    @validate("karvdash_profiles")
    def _valid_profiles(self, proposal):
        for profile in proposal["value"]:
            self.check_profile(profile)
        return proposal["value"]

    def check_profile(self, profile: Profile) -> None:
        """Refuse override keys KubeSpawner does not have, so a typo in a
        profile file is an error instead of a silently ignored setting."""
        unknown = unknown_overrides(profile)
        if unknown:
            raise ValueError(f"{profile.source}: kubespawner_override has unknown KubeSpawner settings {unknown}")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the dashboard and the webhook name the namespace the same way
        self.namespace = self.karvdash_settings.user_namespace(self.user.name)
        self._setup_events: list[dict] = []
        self._setup_changed = asyncio.Event()

    # --- the user's choice ---------------------------------------------------------------

    def apply_overrides(self, overrides: dict) -> None:
        for name, value in overrides.items():
            setattr(self, name, merge_override(getattr(self, name), value))

    async def apply_selection(self, selection: Selection) -> None:
        """Turn the validated choice into KubeSpawner settings: karvdash's
        volumes and labels, then the profile's overrides, then GPUs and the
        app proxy, which depend on what the profile chose."""
        settings = self.karvdash_settings
        profile = selection.profile
        self._setup_events.clear()  # this start's messages only
        self.apply_overrides(objects.server_base_overrides(settings, self.user.name, profile.datasets))
        for override in selection.overrides():
            self.apply_overrides(override)
        if profile.gpu:
            count = int(selection.choices.get(GPU_OPTION) or 1)
            gpu = objects.gpu_overrides(settings, count)
            tolerations = self.tolerations if isinstance(self.tolerations, list) else list(self.tolerations.values())
            gpu["tolerations"] = copy.deepcopy(tolerations) + gpu["tolerations"]
            self.apply_overrides(gpu)
        if profile.app:
            self.apply_overrides(objects.app_overrides(settings, profile.app, self.port))

    async def load_user_options(self):
        # JupyterHub ran apply_user_options (validated and applied) before
        # start; KubeSpawner's own profile loading would apply it a second time
        if self.selection is None:
            await self.apply_profile(self.user_options or {})

    # --- progress on the spawn page ------------------------------------------------------

    def report(self, message: str, progress: int = 5) -> None:
        self.log.info("%s: %s", self._log_name, message)
        self._setup_events.append({"progress": progress, "message": message})
        self._setup_changed.set()

    async def progress(self):
        """KubeSpawner's pod events, with the namespace set-up messages as they happen."""
        sent = 0
        pod_events = super().progress().__aiter__()
        next_pod_event = asyncio.ensure_future(pod_events.__anext__())
        try:
            while True:
                while sent < len(self._setup_events):
                    yield self._setup_events[sent]
                    sent += 1
                changed = asyncio.ensure_future(self._setup_changed.wait())
                await asyncio.wait({next_pod_event, changed}, return_when=asyncio.FIRST_COMPLETED)
                self._setup_changed.clear()
                changed.cancel()
                if next_pod_event.done():
                    try:
                        event = next_pod_event.result()
                    except StopAsyncIteration:
                        break
                    while sent < len(self._setup_events):
                        yield self._setup_events[sent]
                        sent += 1
                    yield event
                    next_pod_event = asyncio.ensure_future(pod_events.__anext__())
        finally:
            next_pod_event.cancel()
        for event in self._setup_events[sent:]:
            yield event

    # --- starting ----------------------------------------------------------------------

    def user_namespaces(self) -> UserNamespaces:
        return UserNamespaces(
            self.karvdash_settings,
            core=self.api,
            rbac=shared_client("RbacAuthorizationV1Api"),
            custom=shared_client("CustomObjectsApi"),
            log=self.log,
        )

    def namespace_token(self, current: str) -> str:
        """The token for the namespace's API settings: ``current`` while it
        is still this user's namespace token, else a new one (replacing the old)."""
        db = self.user.db
        orm_user = self.user.orm_user
        wanted = namespace_token_scopes(get_scopes_for(orm_user))
        if current:
            found = orm.APIToken.find(db, current)
            if (
                found is not None
                and found.user_id == orm_user.id
                and found.note == NAMESPACE_TOKEN_NOTE
                and sorted(found.scopes) == wanted
            ):
                return current
        for token in db.query(orm.APIToken).filter_by(user_id=orm_user.id, note=NAMESPACE_TOKEN_NOTE):
            db.delete(token)
        # the old tokens go in the new one's commit: one transaction (a
        # commit is a disk flush, and a class starting at once waits for each)
        try:
            return self.user.new_api_token(note=NAMESPACE_TOKEN_NOTE, scopes=wanted)
        except BaseException:
            db.rollback()
            raise

    def mount_datasets(self, datasets: list[str]) -> None:
        volumes, mounts = dataset_volumes(datasets)
        self.apply_overrides(
            {"volumes": {v["name"]: v for v in volumes}, "volume_mounts": {m["name"]: m for m in mounts}}
        )

    async def _ensure_namespace(self):
        """KubeSpawner calls this before the pod: prepare the whole user
        namespace and the user's folders, then mount its datasets."""
        namespaces = self.user_namespaces()
        await namespaces.ensure(self.user.name, self.namespace_token, report=self.report)
        # made by the hub's account, which is the servers' (uid 1000): a
        # hostPath that kubelet has to create itself belongs to root, and
        # neither the server nor the dashboard could write into it
        storage = open_storage(FileDomains.from_settings(self.karvdash_settings), self.karvdash_settings)
        await asyncio.get_running_loop().run_in_executor(None, storage.ensure_folders, self.user.name)
        if self.karvdash_settings.datasetsAvailable and self.selection.profile.datasets:
            datasets = await namespaces.list_datasets(self.user.name)
            if datasets:
                self.report(f"Mounting your datasets at /mnt/datasets: {', '.join(datasets)}", progress=10)
            self.mount_datasets(datasets)
        self.report(f"Creating your server's pod in {self.namespace}", progress=15)

    async def _make_create_pod_request(self, pod, request_timeout):
        try:
            return await super()._make_create_pod_request(pod, request_timeout)
        except ApiException as e:
            raise SpawnFailure(
                api_failure(f"create your server's pod in {self.namespace}", e.status, api_error_message(e.body))
            ) from None

    async def get_pod_manifest(self):
        pod = await super().get_pod_manifest()
        if self.selection is not None and self.selection.profile.app:
            # the proxy sidecar authenticates with the server's own JupyterHub settings
            main = next(c for c in pod.spec.containers if c.name == MAIN_CONTAINER)
            for container in pod.spec.containers:
                if container.name == objects.APP_PROXY_CONTAINER:
                    container.env = copy.deepcopy(main.env)
        return pod

    async def _start(self):
        """KubeSpawner's start, stopped early with a clear message when the
        pod cannot become ready (its image cannot be pulled, it failed)."""
        # a pod left from an earlier start may still be listed: only newer ones count
        since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        start = asyncio.ensure_future(super()._start())
        watch = asyncio.ensure_future(self._watch_for_failure(since))
        try:
            await asyncio.wait({start, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done() and watch.done() and watch.exception() is None:
                start.cancel()
                raise SpawnFailure(watch.result())
            return await start
        finally:
            # also when JupyterHub gives up on this start (its timeout cancels us)
            for running in (start, watch):
                if not running.done():
                    running.cancel()

    async def _watch_for_failure(self, since: str) -> str:
        while True:
            await asyncio.sleep(1)
            reflector = self.pod_reflector
            pod = reflector.pods.get(f"{self.namespace}/{self.pod_name}") if reflector else None
            if pod is not None and pod["metadata"].get("creationTimestamp", "") < since:
                continue
            failure = pod_failure(pod, self.events)
            if failure:
                return failure

    # --- a hub that starts again ----------------------------------------------------------

    async def poll(self):
        """KubeSpawner's poll, but when the hub checks at its start a server
        whose pod is still starting (a spawn the previous hub did not see
        finish, e.g. one pulling a large image when that hub's pod died), it
        waits for the pod first: the hub then gives the server only
        ``http_timeout`` to answer, and would stop one that was about to run."""
        status = await super().poll()
        if status is None and self._check_pending:
            status = await self._wait_for_starting_pod()
            if status is None:
                # KubeSpawner's poll puts the running pod's address in place
                # of the one the spawn had not filled in yet
                status = await super().poll()
        return status

    async def _wait_for_starting_pod(self):
        """None once the pod runs (or after ``start_timeout``: the hub's own
        check decides then), 1 if it went or cannot start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}")
            if pod is None or pod_failure(pod, self.events):
                return 1
            if self.is_pod_running(pod):
                return None
            await asyncio.sleep(1)
        return None

    # --- deleting ------------------------------------------------------------------------

    async def delete_forever(self):
        """JupyterHub calls this for a removed named server (nothing to do:
        its pod is gone) and for the default server of a deleted user, whose
        namespace, volumes and (if the settings say so) private files go."""
        if self.name:
            return
        username = self.user.name
        deleted = await self.user_namespaces().delete_user(username)
        self.log.info("Deleted %s of removed user %s", ", ".join(deleted) or "nothing", username)
        if self.karvdash_settings.deletePrivateFilesWithUser:
            storage = open_storage(FileDomains.from_settings(self.karvdash_settings), self.karvdash_settings)
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, storage.delete_private, username):
                self.log.info("Deleted the private folder of removed user %s", username)
