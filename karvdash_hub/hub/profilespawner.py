"""What both spawners share: the profiles a user may pick, the form, the
strict validation of the user's choice before anything starts, and the wait
for a place in the spawn queue (``spawnqueue.py``)."""

from __future__ import annotations

import asyncio

import jinja2
from jupyterhub.utils import maybe_future, url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Any, HasTraits, Instance, List, default

from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.images.registry import registry_image_choices
from karvdash_hub.theme import HUB_TEMPLATES_DIR

from . import deployment
from .profiles import Profile, Selection, UserOptionsError, options_from_form, select
from .spawnqueue import SpawnAdmission, Ticket

# the longest the spawn page waits for the registry's image list
REGISTRY_TIMEOUT = 3
# how often a started server is asked whether it answers, to give its place on
# (JupyterHub's own check backs off up to 5 s: too slow to hand places on)
ANSWER_POLL_INTERVAL = 0.25

_form_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HUB_TEMPLATES_DIR)),
    autoescape=True,
    trim_blocks=True,
)


class ProfileSpawnerMixin(HasTraits):
    """Mixed into a Spawner: offers the karvdash profiles and applies the choice."""

    karvdash_settings = Instance(KarvdashConfig, help="The deployment settings.")
    karvdash_profiles = List(Instance(Profile), help="All spawn profiles, validated at start-up.")

    @default("karvdash_settings")
    def _default_karvdash_settings(self):
        return deployment.current().settings

    @default("karvdash_profiles")
    def _default_karvdash_profiles(self):
        return deployment.current().profiles

    selection = Instance(Selection, allow_none=True, help="The validated choice of the current start.")

    spawn_admission = Instance(SpawnAdmission, allow_none=True, help="The hub's spawn queue (None: no queueing).")

    @default("spawn_admission")
    def _default_spawn_admission(self):
        return deployment.current().spawn_admission

    spawn_ticket = Instance(Ticket, allow_none=True, help="This start's entry in the spawn queue.")
    _place_holder = Any(None, help="The task that gives the place on once the server answers.")

    def profile_unavailable_reason(self, profile: Profile) -> str:
        """Why ``profile`` cannot start with this spawner ('' if it can)."""
        return ""

    def user_profiles(self) -> list[Profile]:
        """The profiles this user may pick (group-limited ones included only for members)."""
        groups = {g.name for g in self.user.groups}
        return [p for p in self.karvdash_profiles if p.allowed_for(self.user.name, groups, self.user.admin)]

    def startable_profiles(self) -> list[Profile]:
        return [p for p in self.user_profiles() if not self.profile_unavailable_reason(p)]

    @default("options_form")
    def _karvdash_options_form(self):
        return self._render_profile_form

    async def registry_images(self) -> list[str]:
        """Images of the private registry, offered for free-form image options.
        The spawn page must render when the registry is slow or down."""
        if not self.karvdash_settings.dockerRegistryURL:
            return []
        try:
            return await asyncio.wait_for(registry_image_choices(self.karvdash_settings), REGISTRY_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - any failure only loses the suggestions
            self.log.warning("Registry images not offered on the spawn page: %s", error or type(error).__name__)
            return []

    async def _render_profile_form(self, spawner) -> str:
        profiles = self.user_profiles()
        startable = self.startable_profiles()
        try:
            current = select(startable, self.user_options or {}).user_options()
        except UserOptionsError:
            current = select(startable, {}).user_options() if startable else {}
        entries = [
            {
                "profile": p,
                "reason": self.profile_unavailable_reason(p),
                "selected": p.slug == current.get("profile"),
                "chosen": current if p.slug == current.get("profile") else {},
            }
            for p in profiles
        ]
        return _form_env.get_template("spawn_form.html").render(
            profiles=entries, registry_images=await self.registry_images()
        )

    @default("options_from_form")
    def _karvdash_options_from_form(self):
        return lambda formdata: options_from_form(formdata)

    @default("apply_user_options")
    def _karvdash_apply_user_options(self):
        return type(self).apply_profile

    async def apply_profile(self, user_options: dict) -> None:
        """Validate the user's choice (a clear 400 if it is wrong) and apply it.

        Runs before ``start`` for form and REST API spawns alike, so a bad
        choice never reaches the cluster.
        """
        profiles = self.user_profiles()
        slug = (user_options or {}).get("profile")
        chosen = next((p for p in profiles if p.slug == slug), None)
        if chosen is not None:
            reason = self.profile_unavailable_reason(chosen)
            if reason:
                raise web.HTTPError(400, f"Profile {chosen.display_name!r} is not available here: {reason}")
        try:
            self.selection = select(self.startable_profiles() if chosen is None else profiles, user_options or {})
        except UserOptionsError as e:
            raise web.HTTPError(400, f"Invalid server options: {e}") from None
        # keep the canonical choice, so the admin panel, the Servers page and
        # the next form show it, also once the server is stopped (the hub
        # stores what was asked for, {} for a start with the defaults)
        self.user_options = self.selection.user_options()
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = self.user_options
        await self.apply_selection(self.selection)

    async def apply_selection(self, selection: Selection) -> None:
        raise NotImplementedError

    # --- the spawn queue ---------------------------------------------------------------
    #
    # JupyterHub calls run_pre_spawn_hook after the user's options were
    # validated and just before start, outside start_timeout: the wait for a
    # place is there, so start_timeout and http_timeout keep bounding only the
    # server's own start. The place is held until the server answers, as its
    # start costs most after Spawner.start returned (a process booting, a pod
    # pulling its image), and given on by whichever comes first of: it
    # answers, it exited, http_timeout passed, the start failed, the server
    # stopped (also while still waiting: JupyterHub cancels the spawn).

    async def run_pre_spawn_hook(self):
        admission = self.spawn_admission
        if admission is not None:
            self.release_spawn_place()  # a place left from an earlier start
            self.spawn_ticket = ticket = admission.join(self._log_name)
            position = admission.position(ticket)
            if position:
                self.log.info("%s waits to start: number %d in the spawn queue", self._log_name, position)
            try:
                await admission.admitted(ticket, self.karvdash_settings.spawnQueueTimeout)
            except TimeoutError:
                self.spawn_ticket = None
                raise web.HTTPError(
                    429,
                    f"The hub is busy starting other servers: yours waited "
                    f"{self.karvdash_settings.spawnQueueTimeout} seconds for its turn. Try again in a few minutes.",
                ) from None
        return await maybe_future(super().run_pre_spawn_hook())

    async def start(self):
        try:
            url = await maybe_future(super().start())
        except BaseException:
            self.release_spawn_place()
            raise
        if self.spawn_ticket is not None:
            self._place_holder = asyncio.ensure_future(self._hold_place_until_answering(self.spawn_ticket, url))
        return url

    def run_post_stop_hook(self):
        # every stop, also the hub's clean-up after a failed start
        self.release_spawn_place()
        return super().run_post_stop_hook()

    def release_spawn_place(self) -> None:
        ticket, self.spawn_ticket = self.spawn_ticket, None
        holder, self._place_holder = self._place_holder, None
        if holder is not None and holder is not asyncio.current_task():
            holder.cancel()
        if ticket is not None and self.spawn_admission is not None:
            self.spawn_admission.leave(ticket)

    async def _hold_place_until_answering(self, ticket: Ticket, url) -> None:
        if isinstance(url, tuple):  # (ip, port) from LocalProcessSpawner
            url = f"http://{url[0]}:{url[1]}"
        api = url_path_join(url, self.server.base_url, "api") if self.server is not None else url
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        client = AsyncHTTPClient()
        try:
            while loop.time() < deadline:
                try:
                    response = await client.fetch(
                        api, raise_error=False, follow_redirects=False, connect_timeout=1, request_timeout=5
                    )
                except (OSError, HTTPClientError):  # not listening yet, or no answer in time (599)
                    pass
                else:
                    # any answer but a 5xx, as JupyterHub's own check
                    if response.code < 500:
                        break
                if await self.poll() is not None:
                    break  # it exited: JupyterHub's own check fails the start
                await asyncio.sleep(ANSWER_POLL_INTERVAL)
        finally:
            if self.spawn_ticket is ticket:
                self.release_spawn_place()

    async def progress(self):
        """The place in the spawn queue while waiting, then the spawner's own events."""
        ticket, admission = self.spawn_ticket, self.spawn_admission
        if ticket is not None and admission is not None:
            async for position in admission.positions(ticket):
                ahead = {1: "no one", 2: "1 user"}.get(position, f"{position - 1} users")
                yield {
                    "progress": 1,
                    "message": f"Waiting for a place to start: number {position} in the queue "
                    f"({ahead} ahead of you, {admission.limit} servers start at a time)",
                }
        async for event in super().progress():
            yield event
