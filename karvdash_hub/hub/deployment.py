"""The deployment this process serves: its settings and spawn profiles,
loaded and validated once at start-up.

Hub components (spawners, authenticators) read it from here rather than
from traitlets config, because config values are deep-copied into every
instance and these objects are shared, read-only state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import Config

from karvdash_hub.core.paths import SHIPPED_PROFILES_DIR
from karvdash_hub.core.settings import KarvdashConfig, load_settings
from karvdash_hub.theme.images import ThemeImage, load_theme_images

from .profiles import Profile, ProfileError, load_profiles, unknown_overrides
from .spawnqueue import SpawnAdmission


@dataclass(frozen=True)
class Deployment:
    settings: KarvdashConfig
    profiles: list[Profile]
    # the logo and favicon files the hub serves (hub/theme.py)
    theme_images: dict[str, ThemeImage] = field(default_factory=dict)
    # the one spawn queue of this hub (hub/spawnqueue.py); None: no queueing
    spawn_admission: SpawnAdmission | None = None


_current: Deployment | None = None


def load(config: Config | None = None) -> Deployment:
    """Load and validate settings and profiles; raise SettingsError or ProfileError."""
    settings = load_settings(config=config)
    folders = [SHIPPED_PROFILES_DIR, Path(settings.stateDir) / "profiles"]
    profiles = load_profiles(folders, settings.disabledProfiles)
    if settings.mode == "kubernetes":
        check_overrides(profiles)
    return Deployment(
        settings=settings,
        profiles=profiles,
        theme_images=load_theme_images(settings),
        spawn_admission=SpawnAdmission(settings.spawn_concurrency),
    )


def check_overrides(profiles: list[Profile]) -> None:
    """A misspelt KubeSpawner trait in a profile stops start-up, instead of
    failing the first spawn of that profile."""
    for profile in profiles:
        unknown = unknown_overrides(profile)
        if unknown:
            raise ProfileError(f"{profile.source}: kubespawner_override sets unknown KubeSpawner traits {unknown}")


def activate(deployment: Deployment) -> Deployment:
    global _current
    _current = deployment
    return deployment


def current() -> Deployment:
    if _current is None:
        raise RuntimeError("no karvdash-hub deployment is active: jupyterhub_config.py must call configure(c)")
    return _current
