"""What both spawners share: the profiles a user may pick, the form, and the
strict validation of the user's choice before anything starts."""

from __future__ import annotations

import asyncio

import jinja2
from tornado import web
from traitlets import HasTraits, Instance, List, default

from karvdash_hub.core.settings import KarvdashConfig
from karvdash_hub.images.registry import registry_image_choices
from karvdash_hub.theme import HUB_TEMPLATES_DIR

from . import deployment
from .profiles import Profile, Selection, UserOptionsError, options_from_form, select

# the longest the spawn page waits for the registry's image list
REGISTRY_TIMEOUT = 3

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
